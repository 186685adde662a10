"""The runtime core: one table of what runs what, backends that only fill in hooks, one
preprocessing call, one package name."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from alage_edge.backends import TABLE, Backend, backend_class, select
from alage_edge.formats import FORMATS
from alage_edge.manifest import Manifest
from alage_edge.tools.runs import RUNS

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = [n for n, v in vars(Backend).items() if not n.startswith("_") and callable(v) and n not in ("can_run",)]


@pytest.mark.parametrize("name", sorted(TABLE))
def test_backends_override_no_public_method(name):
    cls = backend_class(name)
    overridden = [n for n in PUBLIC if n in vars(cls) and n != "describe"]
    assert not overridden, f"{name} overrides {overridden}; fill in a hook instead"
    assert all(src.format in FORMATS for srcs in cls.runs.values() for src in srcs)
    for srcs in cls.runs.values():
        for src in srcs:
            assert src.variant is None or src.variant in FORMATS[src.format].variants, src


def test_backend_modules_are_small():
    for target in TABLE.values():
        path = ROOT / (target.split(":")[0].replace(".", "/") + ".py")
        assert path.stat().st_size < 8192, f"{path.name} is {path.stat().st_size} bytes"


def test_the_runs_are_what_the_backends_declare():
    """parity and bench runs: unique keys, each a (backend, precision, artifact format) that the backend's own
    ``runs`` table declares, and every precision every backend declares (but bf16 outside OpenVINO) has a run:
    the hand-written labels cannot drift from what the backends run."""
    from alage_edge.backends import backend_class

    assert len({r.key for r in RUNS}) == len(RUNS)
    assert all(r.backend in TABLE and (r.artifact is None or r.artifact in FORMATS) for r in RUNS)
    for r in RUNS:
        declared = backend_class(r.backend).runs
        assert r.precision in declared, r.key
        assert r.artifact is None or r.artifact in {s.format for s in declared[r.precision]}, r.key
    for name in TABLE:
        for precision, sources in backend_class(name).runs.items():
            formats = {s.format for s in sources}
            assert any(r.backend == name and r.precision == precision for r in RUNS), (name, precision)
            restricted = {r.artifact for r in RUNS if r.backend == name and r.precision == precision and r.artifact}
            assert restricted <= formats, (name, precision)


def test_infer_many_holds_no_lock_while_the_caller_iterates(tiny_bundle):
    """A generator holding the backend lock across ``yield`` would deadlock a second caller."""
    from alage_edge import AgeEstimator

    est = AgeEstimator.load(tiny_bundle, backend="onnxruntime")
    est.backend.thread_safe = False  # force the locking path
    x = np.zeros((1, 3, 128, 128), np.float32)
    it = est.backend.infer_many([x, x])
    next(it)
    assert not est.backend._lock.locked()
    assert est.backend.infer(x)["fused_logits"].shape[0] == 1  # another call gets through
    est.close()


def test_a_batch_over_the_engine_maximum_is_split(tiny_bundle):
    from alage_edge import AgeEstimator

    est = AgeEstimator.load(tiny_bundle, backend="onnxruntime")
    x = est.spec.random_input(5)
    whole = est.infer(x)["fused_logits"]
    est.backend.max_batch = 2
    assert np.abs(est.infer(x)["fused_logits"] - whole).max() < 1e-5
    assert [len(o["fused_logits"]) for o in est.backend.infer_many([x, x[:1]])] == [5, 1]
    est.close()


FAKE_TRT = '''"""A stand-in `tensorrt` module for the SELECTION logic only (test_core): it has a version and
nothing else, so any attempt to build or run an engine with it fails. It fakes no result."""
__version__ = "10.3.0"
'''


def test_parity_offers_tensorrt_where_cuda_sees_a_gpu_without_a_cuda_torch(tiny_bundle, tmp_path, monkeypatch):
    """On a Jetson, TensorRT and a GPU are there while torch is absent or CPU-only. The selection must ask
    the CUDA wrapper, never torch. A tiny fake `tensorrt` (version only) and a fake CUDA wrapper that
    reports one GPU drive the selection logic; no result is faked (nothing is run)."""
    import shutil

    from alage_edge.backends import cuda as cuda_mod
    from alage_edge.backends.engine_key import engine_key
    from alage_edge.convert.bundle import updating
    from alage_edge.manifest import Artifact
    from alage_edge.tools import compare

    (tmp_path / "mods").mkdir()
    (tmp_path / "mods" / "tensorrt.py").write_text(FAKE_TRT)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    sys.modules.pop("tensorrt", None)

    class OneGPU:
        def device_count(self):
            return 1

        def device_properties(self, device=0):
            return "Orin", "8.7"

    monkeypatch.setattr(cuda_mod, "cuda_api", lambda device=0: OneGPU())
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    man = Manifest.load(b)
    files, keys = {}, {}
    for s in ("global", "attention"):
        sha = man.data["files"][man.io[s]["file"]]["sha256"]
        keys[s] = engine_key("10.3.0", "Orin", "8.7", "fp16", None, {}, sha)
        files[s] = f"tensorrt/{s}.fp16.engine"
        (b / "tensorrt").mkdir(exist_ok=True)
        (b / files[s]).write_bytes(b"not an engine")
    with updating(b) as m:
        m.add_artifact(Artifact("tensorrt", "fp16", files, {"keys": keys}))
    man = Manifest.load(b)
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU-only torch
    why = dict((r.key, w) for r, w in compare.runnable(man))
    assert why["tensorrt-fp16"] is None, why["tensorrt-fp16"]
    assert "no tensorrt int8" in why["tensorrt-int8"]
    assert "sees no CUDA GPU" in why["torch-fp32-cuda"]
    assert select(man, "auto", "fp16").backend == "tensorrt"
    # an engine built for another GPU is refused with the rebuild command, in the same place
    monkeypatch.setattr(OneGPU, "device_properties", lambda self, d=0: ("Xavier", "7.2"))
    why = dict((r.key, w) for r, w in compare.runnable(man))
    assert "rebuild on this device: alage-edge convert" in why["tensorrt-fp16"]
    sys.modules.pop("tensorrt", None)


def test_one_preprocessing_through_the_paths_each_stage_takes(tmp_path):
    """Runtime (AgeEstimator._items), calibration (CalibrationSet on a folder), training's eval
    transform (FaceDataset) and parity (compare.synth_set) give the same tensors to 1e-6."""
    pytest.importorskip("torch")
    from PIL import Image

    from alage_edge.convert.calibration import CalibrationSet
    from alage_edge.data import open_dataset
    from alage_edge.estimator import AgeEstimator
    from alage_edge.preprocess import PreprocessSpec
    from alage_edge.tools.compare import synth_set
    from alage_edge.train.dataset import FaceDataset

    spec = PreprocessSpec(size=48, crop_fraction=0.9)
    faces = open_dataset("synth:n=8,n_test=4,seed=3", split="test", size=64)
    imgs = [faces.image(i) for i in range(4)]
    want = np.stack([spec.apply(im) for im in imgs])

    man = Manifest(tmp_path, {"preprocess": spec.to_dict(), "io": {}, "model": {"head": "dex"}})
    est = AgeEstimator.__new__(AgeEstimator)
    est.spec = spec
    xs = [est._read_input((i, im), None)[0][0] for i, im in enumerate(imgs)]
    assert np.abs(np.stack(xs) - want).max() < 1e-6

    folder = tmp_path / "calib"
    folder.mkdir()
    for i, im in enumerate(imgs):
        Image.fromarray(im).save(folder / f"{i}.png")
    calib = CalibrationSet.from_spec(str(folder), man, minimum=1, progress=False)
    assert np.abs(calib.images - want).max() < 1e-6

    ds = FaceDataset(faces, spec, train=False)
    assert np.abs(np.stack([ds[i][0].numpy() for i in range(4)]) - want).max() < 1e-6

    drawn = open_dataset("synth:n=8,n_test=4,seed=3", split="test", size=spec.size)  # parity draws at model size
    want = np.stack([spec.apply(drawn.image(i)) for i in range(4)])
    assert np.abs(synth_set(man, "synth:n=8,n_test=4,seed=3", n=4).images - want).max() < 1e-6


def test_training_augmentation_moves_whole_pixels_of_the_runtime_preprocessing():
    """Training images hold the same pixels as the runtime's (no second resampling to blur 1-px detail):
    without colour jitter, an augmented face is the preprocessed face moved by whole pixels (maybe flipped)."""
    pytest.importorskip("torch")
    from alage_edge.data import open_dataset
    from alage_edge.preprocess import PreprocessSpec, warp_square
    from alage_edge.train.dataset import augment

    spec = PreprocessSpec(size=64, crop_fraction=0.9)
    img = open_dataset("synth:n=8,n_test=4,seed=3", split="test", size=80).image(0)
    ref = warp_square(img, spec.square(img), spec.size)
    m = round(0.06 * spec.size)
    moves = set()
    for k in range(12):
        out = augment(img, spec, np.random.default_rng(k), jitter=0.0)
        found = [(dx, dy, f) for f in (False, True) for dx in range(-m, m + 1) for dy in range(-m, m + 1)
                 if np.array_equal((out[:, ::-1] if f else out)[m:-m, m:-m], np.roll(ref, (-dy, -dx), (0, 1))[m:-m, m:-m])]
        assert found, f"augmented image {k} is not a whole-pixel move of the preprocessed face"
        moves.add(found[0])
    assert len(moves) > 6  # and it does move


def test_convert_refuses_a_flag_of_another_format(tiny_bundle, capsys):
    from alage_edge.cli import main

    with pytest.raises(SystemExit) as e:
        main(["convert", str(tiny_bundle), "--to", "openvino", "--dla-core", "0"])
    assert e.value.code == 2
    assert "--dla-core does not apply to --to openvino (it applies to: tensorrt)" in capsys.readouterr().err


def test_formats_table_lists_every_artifact_export_writes(tiny_bundle):
    assert {a.format for a in Manifest.load(tiny_bundle).artifacts()} <= set(FORMATS)


@pytest.mark.slow  # builds a wheel (make test-all)
def test_wheel_installs_one_top_level_package(tmp_path):
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    wheel = next(tmp_path.glob("alage_edge-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top == {"alage_edge"}, top
    assert "alage_edge/train/trainer.py" in names and "alage_edge/convert/tensorrt.py" in names
    assert "alage_edge/serving/models/alage_triton.py" in names  # the Triton model files a repository copies


def test_a_users_train_py_does_not_shadow_ours(tmp_path):
    (tmp_path / "train.py").write_text("raise SystemExit('the user file ran')\n")
    (tmp_path / "convert.py").write_text("raise SystemExit('the user file ran')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-m", "alage_edge", "train", "--help"], cwd=tmp_path, capture_output=True,
                       text=True, env=env, timeout=120)
    assert r.returncode == 0 and "alage-edge train" in r.stdout, r.stdout + r.stderr
    r = subprocess.run([sys.executable, "-c", "import importlib.util as u; print(u.find_spec('train'))"],
                       cwd=ROOT.parent, capture_output=True, text=True, env=env, timeout=60)
    assert r.stdout.strip() == "None", "an installed top-level `train` package exists"


def test_detail_cost_benchmark_prints_its_table(capsys, monkeypatch):
    import runpy
    import sys
    from pathlib import Path

    monkeypatch.setattr(sys, "argv", ["detail_cost.py", "--iters", "1"])
    with pytest.raises(SystemExit) as e:
        runpy.run_path(str(Path(__file__).parents[1] / "benchmarks" / "detail_cost.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert e.value.code == 0 and "CPU:" in out and "| 448 " in out and "2352" in out


@pytest.mark.parametrize("made_with,jetson,kept", [("false", "", True), ("true", "1", True),
                                                  ("false", "1", False), ("true", "", False)])
def test_make_remakes_a_venv_made_with_other_flags(tmp_path, made_with, jetson, kept):
    """Issue: `make test JETSON=1` silently reused a venv made without --system-site-packages (JetPack's
    TensorRT invisible, its tests skipped)."""
    import shutil
    import subprocess

    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    venv.mkdir()
    (venv / "pyvenv.cfg").write_text(f"home = /usr/bin\ninclude-system-site-packages = {made_with}\n")
    root = Path(__file__).resolve().parents[1]
    r = subprocess.run(["make", "-s", "-C", str(root), "venv-check", f"VENV={venv}", f"JETSON={jetson}"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert venv.exists() == kept, r.stdout


def test_peak_is_computed_from_the_units_the_cpu_reports():
    from alage_edge.system import peak_gops

    assert peak_gops("fp32", "avx2 avx512f", cores=2, mhz=2000)[0] == pytest.approx(2 * 2.0 * 64)
    assert peak_gops("int8", "avx2 avx512f avx512_vnni amx_int8", cores=2, mhz=2000)[0] == pytest.approx(8192)
    assert peak_gops("int8", "avx2", cores=1, mhz=1000)[0] == pytest.approx(128)
    bf16, how = peak_gops("bf16", "avx2 avx512f", cores=1, mhz=1000)  # no bf16 unit: it runs fp32
    assert bf16 == pytest.approx(64) and "avx512f" in how
    assert peak_gops("fp32", "sse4_2", cores=1, mhz=1000)[0] is None


def test_bench_reports_achieved_gflops_and_share_of_peak(tiny_bundle, tmp_path):
    from alage_edge.manifest import Manifest
    from alage_edge.tools.bench import format_report, run_bench

    gflops = Manifest.load(tiny_bundle).data["gflops"]
    assert gflops > 0  # recorded at export
    rep = run_bench(tiny_bundle, keys=["onnxruntime-fp32"], batches=(1, 2), n=8, warmup=1, iters=3,
                    progress=False, cache_dir=str(tmp_path))
    for r in rep["rows"]:
        assert r["gflops_per_s"] == pytest.approx(gflops * r["batch"] / (r["p50_ms"] / 1e3))
        assert r["peak_share"] is None or 0 < r["peak_share"] < 1
    assert "GFLOP/s" in format_report(rep) and "ops/cycle" in format_report(rep)


def test_bench_profile_names_the_operations_that_take_the_time(tiny_bundle, tmp_path):
    """`alage-edge bench --profile`: OpenVINO's performance counters and ONNX Runtime's profiler, top ops."""
    import shutil

    pytest.importorskip("openvino")
    from alage_edge.convert.openvino import build
    from alage_edge.tools.bench import format_profile, run_profile

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    build(b, "fp32", progress=False)
    prof = run_profile(b, ["onnxruntime-fp32", "openvino-fp32"], batches=(2,), iters=3)
    assert [r["run"] for r in prof["runs"]] == ["onnxruntime-fp32", "openvino-fp32"]
    for r in prof["runs"]:
        ops = [t["op"] for t in r["top"]]
        assert any(op in ("Conv", "Convolution") for op in ops), ops  # a CNN's time is in its convolutions
        assert 0 < sum(t["share"] for t in r["top"]) <= 1.0 + 1e-9 and all(t["ms"] >= 0 for t in r["top"])
    assert "top operations per inference" in format_profile(prof)
    for r in prof["runs"]:  # each stream timed alone on the split graph
        assert r["streams"]["global"] > 0 and r["streams"]["attention"] > 0
    assert "streams alone (split graph): global" in format_profile(prof)


def test_bench_against_times_deployed_paths_side_by_side(tiny_bundle, tmp_path, monkeypatch):
    import shutil

    from alage_edge.estimator import AgeEstimator
    from alage_edge.tools.bench import format_against, run_against

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    other = tmp_path / "other"
    shutil.copytree(tiny_bundle, other)
    asked, load = [], AgeEstimator.load.__func__

    def spy(cls, bundle, **kw):
        asked.append((Path(bundle).name, kw.get("precision"), kw.get("batch_size")))
        return load(cls, bundle, **kw)

    monkeypatch.setattr(AgeEstimator, "load", classmethod(spy))
    rep = run_against([str(tiny_bundle), str(other)], batches=(1, 2), n=8, rounds=2, iters=3,
                      cache_dir=str(tmp_path / "c"))
    # auto chooses per batch size (what a user loading with that batch_size runs); fp32 is one path
    assert asked[:3] == [(tiny_bundle.name, "auto", 2), (tiny_bundle.name, "auto", 1), (tiny_bundle.name, "fp32", 2)]
    assert rep["rows"][0]["other_batches"] == {}  # no parity record: the default path at both sizes, loaded once
    assert [(r["bundle"], r["path"]) for r in rep["rows"]] == [
        (str(tiny_bundle), "deployed (auto)"), (str(tiny_bundle), "fp32"), (str(other), "deployed (auto)"),
        (str(other), "fp32")]
    assert all(r["b1_ms"] > 0 and r["b2_ms"] > 0 and r["mae"] is not None for r in rep["rows"])
    gs = json.loads((tiny_bundle / "manifest.json").read_text())["model"]["global_size"]
    assert rep["rows"][0]["model"].startswith(f"{tiny_bundle.name}: ") and f"{gs}px" in rep["rows"][0]["model"]
    assert rep["rows"][2]["model"].startswith("other: ")  # two bundles of one architecture stay apart
    from alage_edge.tools.bench import short_names

    assert short_names(["runs/demo/bundle", "runs/exp/bundle", "r224"]) == ["demo/bundle", "exp/bundle", "r224"]
    assert rep["rows"][0]["mae"] == pytest.approx(rep["rows"][2]["mae"])  # the same model, the same faces
    text = format_against(rep)
    assert "interleaved" in text and "no parity record" in text  # auto says why it ran the default
    from PIL import Image

    from alage_edge.tools.bench import plot_against

    with Image.open(plot_against(rep, tmp_path / "against.png")) as im:
        im.verify()
