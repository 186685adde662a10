"""benchmarks/gpu_check.py --dry-run on CPU: everything up to the first CUDA call (bundle with ONNX,
environment with the raw CUDA result, CPU reference), and it never writes into a user's bundle."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run(tiny_bundle, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("onnx")
    before = {p.name: p.stat().st_mtime_ns for p in tiny_bundle.iterdir()}
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--global-size", "64",
                        "--bundle", str(tiny_bundle), "--out", str(tmp_path)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    rep = json.loads((tmp_path / "gpu_check.json").read_text())
    status = {s["section"]: s["status"] for s in rep["sections"]}
    assert status["environment"] == "ok"
    assert status["torch parity"].startswith("skipped: --dry-run (CPU reference computed")
    assert all(s != "ok" or k in ("environment",) for k, s in status.items())
    checks = {row["check"] for row in rep["rows"]}
    assert {"versions", "bundles"} <= checks
    assert {p.name: p.stat().st_mtime_ns for p in tiny_bundle.iterdir()} == before  # the user's bundle untouched
    assert "| section | check | result | ok |" in (tmp_path / "gpu_check.md").read_text()


def test_gpu_check_names_a_bundle_that_is_not_one(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run",
                        "--bundle", str(tmp_path / "missing"), "--out", str(tmp_path / "out")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "--bundle" in r.stderr and "missing" in r.stderr and "manifest.json" in r.stderr
    assert not (tmp_path / "out").exists()


def test_gpu_check_caps_add_up_to_its_budget_and_a_spent_budget_skips_sections():
    """Issue: SIGALRM cannot interrupt a C++ engine build, and the caps added up to 330 s against 'under 4
    minutes'. Now they add up to the budget, each section gets what is left, and the TensorRT section checks
    the time left before each build."""
    import importlib.util
    import time

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gc)
    assert sum(gc.CAPS.values()) <= gc.BUDGET < 240
    rep = gc.Report(budget=1.5, caps={"a": 1, "b": 5, "c": 5})
    rep.run("a", lambda: time.sleep(0.2))
    rep.run("b", lambda: rep.row("b", "left", f"{rep.left():.1f}", ok=rep.left() <= 1.4))
    time.sleep(1.4)
    rep.run("c", lambda: None)
    status = {s["section"]: s["status"] for s in rep.sections}
    assert status == {"a": "ok", "b": "ok", "c": "skipped: the run's time budget is spent"}
    assert rep.rows[0]["ok"]  # b was given what was left of the budget, not its own 5 s
