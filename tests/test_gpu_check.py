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
    r = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--dry-run", "--img-size", "64",
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
