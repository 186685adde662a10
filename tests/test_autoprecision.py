"""precision="auto": the fastest run that passed parity on this machine, never an unchecked one, never a
slower INT8; the choice is explained in backend.why and the timings are cached per machine."""
import json
import shutil

import pytest

from alage_edge import AgeEstimator
from alage_edge.autoprecision import RECORD, choose, machine_key, record_parity
from alage_edge.manifest import Manifest

pytest.importorskip("onnxruntime")


@pytest.fixture()
def bundle(tiny_bundle, tmp_path, monkeypatch):
    """A copy with ONNX fp32 and a Q/DQ INT8 model (ONNX Runtime runs both), the timing cache in tmp."""
    from alage_edge.convert.qdq import build

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    build(b, data="synth", calib_size=16, calib_min=16, variant="cpu", progress=False, cache=str(tmp_path / "c"))
    return b


def _report(**passes):
    return {"reference_key": "torch-fp32", "rows": [{"run": k, "pass": v, "drift_max": 0.1 if v else 2.0}
                                                    for k, v in passes.items()]}


def _timer(ms):
    calls = []

    def timer(root, sel, batch, device):
        key = f"{sel.backend}-{sel.precision}" + ("-qdq" if sel.artifact.format == "qdq" else "")
        calls.append(key)
        return ms[key]
    return timer, calls


def test_without_a_parity_record_auto_runs_the_default_and_says_why(bundle):
    sel = choose(Manifest.load(bundle), backend="onnxruntime")
    assert sel.precision == "fp32" and "no parity record for this machine" in sel.why["auto"]


def test_auto_picks_the_fastest_run_that_passed_and_caches_its_timings(bundle):
    record_parity(bundle, _report(**{"onnxruntime-fp32": True, "onnxruntime-int8-qdq": True}))
    assert machine_key() in json.loads((bundle / RECORD).read_text())
    timer, calls = _timer({"onnxruntime-fp32": 2.0, "onnxruntime-int8-qdq": 1.0, "torch-fp32": 9.0})
    sel = choose(Manifest.load(bundle), timer=timer)
    assert (sel.backend, sel.precision, sel.artifact.format) == ("onnxruntime", "int8", "qdq")
    assert "chosen: onnxruntime-int8-qdq" in sel.why["auto"] and "failed" not in " ".join(sel.why.values())
    again = choose(Manifest.load(bundle), timer=timer)
    assert again.artifact.format == "qdq" and sorted(calls) == ["onnxruntime-fp32", "onnxruntime-int8-qdq",
                                                                "torch-fp32"]  # measured once, then cached


def test_a_record_made_before_a_run_changed_what_it_computes_is_not_read(bundle, monkeypatch):
    """INT8 + bf16 once meant the bf16 hint and now casts the float convolutions: a parity record of the old
    run says nothing about the new one, so auto falls back to the default and says why."""
    import alage_edge.autoprecision as ap

    record_parity(bundle, _report(**{"onnxruntime-fp32": True, "onnxruntime-int8-qdq": True}))
    monkeypatch.setattr(ap, "RUNS_REVISION", ap.RUNS_REVISION + 1)
    sel = choose(Manifest.load(bundle), backend="onnxruntime")
    assert sel.precision == "fp32" and "no parity record for this machine" in sel.why["auto"]


def test_auto_never_picks_a_slower_int8_or_one_that_failed_parity(bundle):
    record_parity(bundle, _report(**{"onnxruntime-fp32": True, "onnxruntime-int8-qdq": True}))
    timer, _ = _timer({"onnxruntime-fp32": 1.0, "onnxruntime-int8-qdq": 3.0, "torch-fp32": 9.0})
    assert choose(Manifest.load(bundle), timer=timer).precision == "fp32"  # INT8 loses here
    shutil.rmtree(bundle.parent / "cache")
    (bundle / RECORD).unlink()
    record_parity(bundle, _report(**{"onnxruntime-fp32": True, "onnxruntime-int8-qdq": False}))
    timer, _ = _timer({"onnxruntime-fp32": 2.0, "onnxruntime-int8-qdq": 0.5, "torch-fp32": 9.0})
    sel = choose(Manifest.load(bundle), timer=timer)
    assert sel.precision == "fp32" and "failed parity here" in sel.why["onnxruntime-int8-qdq"]


def test_auto_through_the_estimator_measures_for_real(bundle):
    record_parity(bundle, _report(**{"onnxruntime-fp32": True, "onnxruntime-int8-qdq": True}))
    est = AgeEstimator.load(bundle, backend="onnxruntime", precision="auto")
    try:
        assert est.backend.name == "onnxruntime" and "the fastest run that passed parity" in est.backend.why["auto"]
        assert "ms at batch 8" in est.backend.why["onnxruntime-fp32"]
    finally:
        est.close()


def test_parity_on_a_read_only_bundle_reports_and_warns(bundle, monkeypatch):
    import alage_edge.autoprecision as auto
    from alage_edge.tools.parity import run_parity

    def refuse(b, rep):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(auto, "record_parity", refuse)
    with pytest.warns(UserWarning, match="parity-record.json not written"):
        rep = run_parity(bundle, n=8, keys=["onnxruntime-fp32"], photos=False, progress=False,
                         cache_dir=str(bundle.parent / "c"))
    assert rep["rows"] and not (bundle / RECORD).exists()
