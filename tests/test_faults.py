"""Faults while writing: a full disk during convert and during training checkpoints, SIGKILL during convert.
Nothing torn is left or recorded, the error is one clear line, and a rerun finishes."""
from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from alage_edge.manifest import Manifest

pytest.importorskip("torch")


def _no_space(*_a, **_k):
    raise OSError(errno.ENOSPC, "No space left on device")


def _temp_files(folder):
    return [p for p in folder.rglob("*") if ".tmp" in p.name]


def test_a_full_disk_during_convert_tears_nothing_and_says_so(tiny_bundle, tmp_path, capsys, monkeypatch):
    pytest.importorskip("openvino")
    import alage_edge.atomic as atomic
    from alage_edge.cli import main

    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    before = (b / "manifest.json").read_bytes()
    monkeypatch.setattr(atomic, "_fsync_file", _no_space)  # the first file flushed finds the disk full
    assert main(["convert", str(b), "--to", "openvino", "--precision", "fp32"]) == 2
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err
    assert (b / "manifest.json").read_bytes() == before and not _temp_files(b)
    assert not Manifest.load(b).find("openvino", "fp32")
    monkeypatch.undo()  # space again: the rerun finishes
    assert main(["convert", str(b), "--to", "openvino", "--precision", "fp32"]) == 0
    m = Manifest.load(b)
    art = m.find("openvino", "fp32")[0]
    m.verify(list(art.files.values()))


def test_a_full_disk_while_checkpointing_keeps_the_last_good_checkpoint(tmp_path, monkeypatch, capsys):
    import alage_edge.atomic as atomic
    from alage_edge.model import read_checkpoint
    from alage_edge.train.trainer import TrainConfig, train

    cfg = dict(arch="al_resnet18", model=dict(global_size=64, width=8, local_width=8, crop_size=32, hidden=32),
               data="synth:n=64,n_val=16,n_test=16,seed=1", epochs=(2, 0, 0), batch_size=16, progress=False,
               cache=str(tmp_path / "cache"), out=str(tmp_path / "run"))
    real, calls = atomic._fsync_file, []

    def full_after_first_epoch(path):
        calls.append(path)
        if any(p.name.endswith("last.pt") or ".last.pt." in p.name for p in calls[:-1]) and "last.pt" in path.name:
            _no_space()
        return real(path)

    monkeypatch.setattr(atomic, "_fsync_file", full_after_first_epoch)
    with pytest.raises(OSError, match="No space left on device"):
        train(TrainConfig(**cfg))
    run = tmp_path / "run"
    assert not _temp_files(run)
    read_checkpoint(run / "last.pt")  # the epoch-1 checkpoint, whole
    assert len(json.loads((run / "metrics.json").read_text())) == 1
    monkeypatch.undo()
    train(TrainConfig(**cfg, resume=True))  # resumes from it and finishes
    assert "resuming" in capsys.readouterr().out
    assert len(json.loads((run / "metrics.json").read_text())) == 2


def test_sigkill_during_convert_records_no_half_artifact_and_a_rerun_finishes(tiny_bundle, tmp_path):
    pytest.importorskip("openvino")
    b = tmp_path / "b"
    shutil.copytree(tiny_bundle, b)
    cmd = [sys.executable, "-m", "alage_edge", "convert", str(b), "--to", "openvino", "--precision", "fp32"]
    p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while p.poll() is None and time.monotonic() < deadline and not _temp_files(b) and not (b / "openvino").exists():
        time.sleep(0.01)
    if p.poll() is None:
        os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=30)
    m = Manifest.load(b)  # whatever moment the kill hit: the manifest reads, and what it records verifies
    for art in m.artifacts():
        m.verify(list(art.files.values()))
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    m = Manifest.load(b)
    m.verify(list(m.find("openvino", "fp32")[0].files.values()))
