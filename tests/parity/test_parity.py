"""Accuracy parity of every backend x precision available here against the PyTorch reference.

On a checkpoint trained on synth (built once, cached), on (a) the labelled synthetic
test split and (b) real unlabelled face photos shipped by scikit-image. The criteria
are the table in alage_edge/tools/parity.py (CRITERIA), applied here as in the CLI.
"""
import numpy as np
import pytest

from alage_edge.manifest import Manifest
from alage_edge.tools import compare
from alage_edge.tools.parity import CRITERIA, verdict
from alage_edge.tools.runs import REFERENCE, RUNS

pytest.importorskip("torch")


@pytest.fixture(scope="module")
def sets(trained_bundle):
    man = Manifest.load(trained_bundle)
    out = [compare.synth_set(man, "synth:seed=5", n=64)]
    real = compare.photo_set(man, n_lfw=20)
    if real is not None:
        out.append(real)
    return out


@pytest.fixture(scope="module")
def reference(trained_bundle, sets):
    est = compare.load(trained_bundle, REFERENCE)
    refs = [compare.outputs(est, s.images) for s in sets]
    est.close()
    return refs


@pytest.mark.parametrize("run", [r for r in RUNS if r is not REFERENCE], ids=lambda r: r.key)
def test_backend_matches_reference(run, trained_bundle, sets, reference):
    man = Manifest.load(trained_bundle)
    why = dict((r.key, w) for r, w in compare.runnable(man, [run.key]))[run.key]
    if why:
        pytest.skip(f"{run.label} {run.precision}: {why}")
    est = compare.load(trained_bundle, run)
    c = CRITERIA[run.precision]
    for s, ref in zip(sets, reference):
        m = compare.compare(ref, compare.outputs(est, s.images), s.ages, c.logit_atol or 0.0, c.logit_rtol or 0.0)
        fails = verdict(run.precision, m, photos=s.ages is None)
        assert not fails, f"{run.label} {run.precision} on {s.name}: {fails} ({m})"
        if run.precision == "fp32":
            assert m["box_max_abs"] < 1e-3 and m["group_agreement"] == 1.0 and m["glimpses_moved"] == 0.0
    est.close()


def test_photo_set_is_real_faces(trained_bundle):
    pytest.importorskip("skimage")
    s = compare.photo_set(Manifest.load(trained_bundle), n_lfw=5)
    assert s.images.shape == (6, 3, 128, 128) and s.ages is None  # the detail image: 2 x 64


def test_parity_cli_table_and_json(trained_bundle, tmp_path, capsys):
    from alage_edge.cli import main

    rc = main(["parity", str(trained_bundle), "--data", "synth:seed=5", "--n", "24", "--runs",
               "onnxruntime-fp32,onnxruntime-int8-qdq", "--out", str(tmp_path)])
    out = capsys.readouterr().out
    assert "drift mean" in out and "ONNX Runtime Q/DQ" in out and "glimpses moved" in out
    import json

    rep = json.loads((tmp_path / "parity.json").read_text())
    assert {r["run"] for r in rep["rows"]} == {"onnxruntime-fp32", "onnxruntime-int8-qdq"}
    assert next(r for r in rep["rows"] if r["run"] == "onnxruntime-fp32")["pass"]  # fp32 holds its bounds
    assert rc == (0 if all(r["pass"] for r in rep["rows"]) else 1)  # and the exit code says whether all did
    assert (tmp_path / "parity.md").read_text().startswith("parity against PyTorch eager")


def test_criteria_catch_a_drifting_backend():
    ref = {"fused_logits": np.zeros((4, 101)), "age": np.full(4, 30.0), "group": np.zeros(4, int)}
    bad = {"fused_logits": np.full((4, 101), 0.1), "age": np.array([30.0, 30.0, 30.0, 30.2]),
           "group": np.zeros(4, int)}
    m = compare.compare(ref, bad, np.full(4, 30.0), CRITERIA["fp32"].logit_atol, CRITERIA["fp32"].logit_rtol)
    fails = verdict("fp32", m)
    assert any("logits" in f for f in fails) and any("max drift" in f for f in fails)
    assert verdict("int8", m) == []
    m["drift_max"] = 1.6  # one real photo moved 1.6 years: INT8's per-image bound on the photos
    assert verdict("int8", m, photos=True) and not verdict("int8", m, photos=False)


def test_parity_counts_the_faces_whose_glimpses_went_elsewhere():
    ref = {"fused_logits": np.zeros((4, 101)), "age": np.full(4, 30.0), "group": np.zeros(4, int),
           "boxes": np.tile(np.array([0.1, 0.1, 0.3, 0.3]), (4, 2, 1))}
    got = {k: v.copy() for k, v in ref.items()}
    got["boxes"][1, 1] += 8 / 224  # face 1's second glimpse: the next anchor
    got["boxes"][2] += 1e-5  # face 2: rounding only
    m = compare.compare(ref, got, None, 0.0, 0.0)
    assert m["glimpses_moved"] == 0.25 and m["box_max_abs"] > 0.03
