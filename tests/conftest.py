"""Shared fixtures: tiny model configs and exported bundles built once per session."""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("ALAGE_PROGRESS", "0")

# A compact configuration: every stage's code path, a fraction of the compute.
TINY = dict(global_size=64, width=8, local_width=8, crop_size=32, hidden=32)
BOXES = dict(TINY, selector="boxes")  # the box regression through a bilinear crop (older bundles)


def torch_or_skip():
    return pytest.importorskip("torch", reason="torch is not installed")


@pytest.fixture(scope="session")
def tiny_cfg():
    return dict(TINY)


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory):
    """An exported random-weight al_resnet18 bundle (64 px)."""
    torch = torch_or_skip()
    from alage_edge.convert.export import export_bundle
    from alage_edge.model import build_model

    torch.manual_seed(0)
    model = build_model("al_resnet18", **TINY)
    out = tmp_path_factory.mktemp("bundle") / "tiny"
    export_bundle(model, out)
    return out


@pytest.fixture(scope="session")
def onnx_bundle(tmp_path_factory):
    """A small real bundle written with onnx alone (tests/onnx_bundle.py): where torch is absent (a Jetson)."""
    pytest.importorskip("onnx")
    from tests.onnx_bundle import write_onnx_bundle

    return write_onnx_bundle(tmp_path_factory.mktemp("onnx-bundle") / "b")


@pytest.fixture(scope="session")
def device_bundle(request):
    """What the TensorRT tests build engines from: the trained bundle where torch can train it, else the
    ONNX-only bundle (a Jetson venv has no torch; `make test JETSON=1` must still run them)."""
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        return request.getfixturevalue("trained_bundle")
    return request.getfixturevalue("onnx_bundle")


@pytest.fixture(scope="session")
def synth_images():
    from alage_edge.data.synth import render

    return [render(7, i, 128).image for i in range(6)]  # the fixtures' input size (64 px x detail 2)


def logits_close(a: np.ndarray, b: np.ndarray, atol: float, rtol: float) -> bool:
    """An element fails only if it exceeds both the absolute and the relative tolerance."""
    diff = np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))
    return bool(np.all((diff <= atol) | (diff <= rtol * np.abs(np.asarray(b, np.float64)))))


# Trained long enough that INT8 is judged on realistic weights (random or barely trained weights make
# INT8 look far worse than it is), small enough to build in about a minute. Anchors anywhere on the grid
# (anchor_region "all"), not the default face oval: with face anchors this small model's INT8 local CNN moved
# a real photo 1.04-2.41 y depending on the Q/DQ calibration (min/max or percentile, two calibration sets),
# 1-6 joint epochs and its first block float or not, while the demo model with face anchors holds every INT8 row
# (docs/limits.md). The face oval is tested in tests/test_anchors.py and the exported graphs in test_export.
BUNDLE_LAYOUT = 10  # bump when what export/convert write changes (3: detail image input, synth v4; 4: fused OV IR;
# 5: GFLOPs in the manifest, a fused INT8 IR; 6: the LSTM anchor selector by default, global_size; 7: its LSTM reads the map;
# 8: a first-max choice (no ArgMax), INT8 of the local CNN by default; 9: OpenVINO IRs keep the attention
# stream f32 under a bf16 hint; 10: anchors on the face only)
TRAINED = dict(arch="al_resnet18", model=dict(global_size=64, width=16, local_width=16, crop_size=32, hidden=64,
                                             anchor_region="all"),
               data="synth:n=1536,n_val=64,n_test=64,seed=5", epochs=(8, 1, 1), batch_size=32, optimizer="adamw",
               lr=2e-3, l1=0.05, joint_lr_scale=0.3, seed=0)


@pytest.fixture(scope="session")
def trained_bundle(request, tmp_path_factory):
    """A tiny al_resnet18 trained on synth, exported and converted to every CPU format.

    Built once and cached in .pytest_cache (keyed by its configuration), so parity is
    measured on trained weights, not random ones."""
    torch_or_skip()
    pytest.importorskip("onnxruntime")
    import hashlib
    import json
    import shutil

    key = hashlib.sha256(json.dumps([TRAINED, BUNDLE_LAYOUT], sort_keys=True, default=str).encode()).hexdigest()[:10]
    root = request.config.cache.mkdir(f"alage-trained-{key}")
    bundle = root / "bundle"
    if not (bundle / ".complete").exists():
        from alage_edge.convert.export import export_bundle
        from alage_edge.model import load_checkpoint
        from alage_edge.train.trainer import TrainConfig, train

        if bundle.exists():
            shutil.rmtree(bundle)
        # resume: a session killed while training this picks up where it stopped (same config, same key)
        train(TrainConfig(out=str(root / "run"), progress=False, cache=str(root / "cache"), resume=True, **TRAINED))
        ckpt = root / "run" / "best.pt"
        export_bundle(load_checkpoint(ckpt), bundle, checkpoint=ckpt)
        import importlib.util

        if importlib.util.find_spec("openvino") and importlib.util.find_spec("nncf"):
            from alage_edge.convert.openvino import build as ov_build

            for prec in ("fp32", "fp16"):
                ov_build(bundle, prec, progress=False)
            ov_build(bundle, "int8", data="synth:seed=5", calib_size=128, progress=False,
                     cache=str(root / "cache"))
        from alage_edge.convert.qdq import build as qdq_build

        qdq_build(bundle, data="synth:seed=5", calib_size=128, progress=False, cache=str(root / "cache"))
        (bundle / ".complete").write_text("ok")
    return bundle


def pytest_terminal_summary(terminalreporter):
    """How many bad-input cases the catalogue tried (the count can only grow)."""
    try:
        from tests.test_bad_inputs import TRIED
    except ImportError:
        return
    if TRIED:
        terminalreporter.write_line(f"bad-input catalogue: {len(set(TRIED))} cases tried")
