"""ONNX export of the two streams: structure, dynamic batch, parity with PyTorch in ONNX Runtime."""
import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from alage_edge.ages import decode  # noqa: E402
from alage_edge.convert.export import ExportError, export_bundle, export_onnx  # noqa: E402
from alage_edge.convert.int8_scope import stem_convs  # noqa: E402
from alage_edge.data.synth import render  # noqa: E402
from alage_edge.manifest import Manifest  # noqa: E402
from alage_edge.model import build_model  # noqa: E402
from alage_edge.preprocess import PreprocessSpec, normalize  # noqa: E402

from .conftest import TINY, logits_close  # noqa: E402

ATTENTION_MODELS = ["al_resnet18", "al_resnet34", "al_resnet50", "al_ror18", "al_ror34", "al_resnet18-exact"]


def _inputs(batch: int, kind: str) -> np.ndarray:
    if kind == "random":
        # smooth random images (normal noise at 16x16, bilinearly upsampled): the boxes of a learned-box model
        # agree to ~1e-5 (fp32 noise in the LSTM, inside the 1e-4 box bound below), and on white noise a shift
        # that small already changes what a crop reads by ~2e-3 in the logits (al_resnet50), which says more about
        # the noise than about the export; images with a face's bandwidth test the export
        import torch.nn.functional as F

        low = torch.from_numpy(np.random.default_rng(batch).normal(size=(batch, 3, 16, 16)).astype(np.float32))
        return F.interpolate(low, size=(128, 128), mode="bilinear", align_corners=False).numpy()
    # structured: synthetic faces, a ramp and a flat image, normalised like the runtime does
    from alage_edge.preprocess import PreprocessSpec, normalize

    spec = PreprocessSpec(size=128)
    imgs = [render(3, i, 128).image for i in range(batch)]
    ramp = np.tile(np.linspace(0, 255, 128, dtype=np.uint8)[None, :, None], (128, 1, 3))
    imgs[-1] = ramp if batch > 1 else imgs[-1]
    return normalize(np.stack(imgs), spec)


LEARNED_BOXES = ("al_resnet34", "al_ror18")  # box regression with random box weights: the recurrent graph
SELECTOR = {"al_resnet18": "lstm", "al_ror34": "lstm", "al_resnet50": "static"}  # the others: box regression
FEEDBACK = {"al_ror34": "local"}  # the paper's loop on one of the LSTM rows


@pytest.fixture(scope="module", params=ATTENTION_MODELS)
def exported(request, tmp_path_factory):
    """The anchor selectors (lstm: the LSTM and a first-max per step; static: constant slices) and the box
    regression of older bundles: fixed boxes (zero box weights, as built): no LSTM, one local CNN pass over
    the T x B crops; learned boxes (random box weights): the recurrent graph."""
    torch.manual_seed(0)
    kw = dict(TINY, fusion="mean") if request.param in ("al_ror18", "al_ror34") else dict(TINY)
    kw["selector"] = SELECTOR.get(request.param, "boxes")
    if request.param in FEEDBACK:
        kw["feedback"] = FEEDBACK[request.param]
    if request.param.endswith("-exact"):  # exact crops: five slices of the detail image, no sampler
        kw.update(exact_crops=True, steps=5)
    model = build_model(request.param.replace("-exact", ""), **kw).eval()
    if request.param in LEARNED_BOXES:
        with torch.no_grad():
            for layer in model.attention_stream.box_layers:
                layer.weight.normal_(0, 0.5)
    if kw["selector"] != "boxes":  # a trained selector prefers some anchors
        with torch.no_grad():
            model.attention_stream.prior.normal_(0, 0.5)
    out = tmp_path_factory.mktemp(request.param)
    export_bundle(model, out)
    return model, out


@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize("kind", ["random", "structured"])
def test_onnxruntime_matches_pytorch(exported, batch, kind):
    model, out = exported
    x = _inputs(batch, kind)
    with torch.no_grad():
        ref = {k: v.numpy() for k, v in model(torch.from_numpy(x)).items()}
    fused = ort.InferenceSession(str(out / "alnet.onnx"), providers=["CPUExecutionProvider"])
    names = [o.name for o in fused.get_outputs()]
    got = dict(zip(names, fused.run(None, {"image": x})))
    glob = ort.InferenceSession(str(out / "global.onnx"), providers=["CPUExecutionProvider"])
    att = ort.InferenceSession(str(out / "attention.onnx"), providers=["CPUExecutionProvider"])
    g, gl = glob.run(None, {"image": x})
    boxes, ll, fl = att.run(None, {"image": x, "g": g})
    split = {"global_logits": gl, "boxes": boxes, "local_logits": ll, "fused_logits": fl}
    for outs in (got, split):
        assert np.abs(outs["boxes"] - ref["boxes"]).max() < 1e-4
        for k in ("global_logits", "local_logits", "fused_logits"):
            assert logits_close(outs[k], ref[k], atol=1e-3, rtol=1e-3), k
        age = decode(outs["fused_logits"], "dex")["age"]
        assert np.abs(age - ref["age"]).max() < 0.01


def test_graph_structure_and_manifest(exported):
    model, out = exported
    man = json.loads((out / "manifest.json").read_text())
    assert man["opset"] == 17 and man["model"]["arch"] == model.cfg.arch
    assert set(man["files"]) == {"global.onnx", "attention.onnx", "alnet.onnx", "model.pt"}
    for name in ("global.onnx", "attention.onnx", "alnet.onnx"):
        m = onnx.load(str(out / name))
        onnx.checker.check_model(m)
        ops = {n.op_type for n in m.graph.node}
        assert "AffineGrid" not in ops
        assert [o.version for o in m.opset_import if o.domain in ("", "ai.onnx")] == [17]
        for v in list(m.graph.input) + list(m.graph.output):
            assert v.type.tensor_type.shape.dim[0].dim_param == "batch"
        if name == "global.onnx":
            continue
        lstm = [n.name for n in m.graph.node if "/lstm" in n.name]
        local_stems = [c for c in stem_convs(m) if "local/" in c]
        if model.cfg.selector == "lstm":  # T steps: the LSTM scores anchors, a first-max picks, GatherElements cuts
            assert {"ReduceMax", "ReduceMin", "GatherElements"} <= ops and "GridSample" not in ops
            # feedback "map": the T glimpses read in one local CNN call; "local": one call per step
            assert lstm and len(local_stems) == (1 if model.cfg.feedback == "map" else model.cfg.steps)
        elif model.cfg.selector == "static":  # constant anchors: T slices, one local CNN pass, no LSTM
            assert "GridSample" not in ops and "ReduceMin" not in ops and "Slice" in ops
            assert not lstm and len(local_stems) == 1
        elif model.cfg.exact_crops:
            assert "GridSample" not in ops and "Slice" in ops
        else:
            assert "GridSample" in ops and "MatMul" in ops
            gs = next(n for n in m.graph.node if n.op_type == "GridSample")
            attrs = {a.name: a for a in gs.attribute}
            assert attrs["mode"].s == b"bilinear" and attrs["align_corners"].i == 0
            if model.cfg.arch in LEARNED_BOXES:  # T local CNN passes, each reading its own crop
                assert lstm and len(local_stems) == model.cfg.steps
            else:  # the boxes are constants: no LSTM, one local CNN pass over the concatenated crops
                assert not lstm and len(local_stems) == 1
    Manifest.load(out).verify()


def test_export_runs_batch_8_after_tracing_with_2(tiny_bundle):
    sess = ort.InferenceSession(str(tiny_bundle / "alnet.onnx"), providers=["CPUExecutionProvider"])
    outs = sess.run(None, {"image": np.zeros((8, 3, 128, 128), np.float32)})
    assert outs[0].shape[0] == 8


def test_export_leaves_the_model_in_eval_mode(tmp_path):
    model = build_model("al_resnet18", **TINY).eval()
    export_bundle(model, tmp_path / "b")
    assert not any(m.training for m in model.modules())


def test_global_only_baseline_exports_one_stream(tmp_path):
    model = build_model("resnet18", head="groups", **TINY).eval()
    man = export_bundle(model, tmp_path / "b")
    assert set(man.io) == {"global", "fused"}
    x = np.random.default_rng(0).normal(size=(2, 3, 128, 128)).astype(np.float32)
    sess = ort.InferenceSession(str(tmp_path / "b" / "alnet.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        ref = model(torch.from_numpy(x))["global_logits"].numpy()
    assert logits_close(sess.run(None, {"image": x})[0], ref, 1e-4, 1e-4)


def test_export_refuses_batch_1_and_bad_opsets(tmp_path):
    model = build_model("resnet18", **TINY).eval()
    with pytest.raises(ExportError, match="batch of at least 2"):
        export_onnx(model.global_stream, (torch.zeros(1, 3, 128, 128),), tmp_path / "g.onnx", ["image"], ["g", "l"])
    with pytest.raises(ExportError, match="opset"):
        export_onnx(model.global_stream, (torch.zeros(2, 3, 128, 128),), tmp_path / "g.onnx", ["image"], ["g", "l"],
                    opset=20)
    assert not (tmp_path / "g.onnx").exists()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["al_resnet34", "al_ror34"])
def test_full_size_models_at_224_match_pytorch(name, tmp_path):
    """The default configuration (224 px, width 64, T=3, hidden 512): the exported pair matches."""
    torch.manual_seed(0)
    model = build_model(name).eval()
    export_bundle(model, tmp_path / name)
    x = normalize(np.stack([render(1, i, 448).image for i in range(2)]), PreprocessSpec(size=448))
    with torch.no_grad():
        ref = model(torch.from_numpy(x))
    sess = ort.InferenceSession(str(tmp_path / name / "alnet.onnx"), providers=["CPUExecutionProvider"])
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"image": x})))
    assert np.abs(decode(got["fused_logits"], "dex")["age"] - ref["age"].numpy()).max() < 0.01
    assert np.abs(got["boxes"] - ref["boxes"].numpy()).max() < 1e-4
