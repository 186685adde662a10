"""``precision="auto"``: the fastest artifact that passed parity for this bundle on this machine.

Two records decide, both keyed by the machine (CPU model and flags, library versions) and RUNS_REVISION:

- the bundle's ``parity-record.json``, written by ``alage-edge parity``: which runs met their bounds here;
- a short timing of each of those runs at the estimator's batch size, cached in
  ``$XDG_CACHE_HOME/alage-edge/auto`` (``~/.cache``) per bundle, machine and batch.

Without a parity record for this machine nothing unchecked is picked: the default fp32 selection runs, and
``why`` says to run ``alage-edge parity``. An INT8 path that is slower here than fp32 is never picked.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path
from typing import Callable, Dict, Optional

import numpy as np

from .backends import Selection, select
from .manifest import Manifest

RECORD = "parity-record.json"
# what a run computes, versioned: a record made before a change of what a run does is not this run's
# (2: INT8 + bf16 casts the float convolutions instead of the bf16 hint)
RUNS_REVISION = 2


def machine_key() -> str:
    from .system import cpu_flags, cpu_name, package_versions

    v = package_versions()
    parts = [cpu_name(), cpu_flags(), f"runs={RUNS_REVISION}"] + [
        f"{k}={v.get(k)}" for k in ("openvino", "onnxruntime", "torch", "tensorrt")]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def record_parity(bundle, report: dict) -> Path:
    """Merge a parity report's verdicts for this machine into the bundle's parity record."""
    from .atomic import write_json
    from .system import machine_info

    path = Path(bundle) / RECORD
    data = json.loads(path.read_text()) if path.is_file() else {}
    runs: Dict[str, dict] = {}
    for r in report["rows"]:  # a run passes only if it passed on every set (synth and the photos)
        prev = runs.get(r["run"], {"pass": True, "drift_max": 0.0})
        runs[r["run"]] = {"pass": prev["pass"] and r["pass"], "drift_max": max(prev["drift_max"], r["drift_max"])}
    m = machine_info()
    entry = data.get(machine_key(), {"cpu": m["cpu"], "cpu_flags": m["cpu_flags"], "runs": {}})
    entry["runs"].update(runs)
    entry["runs"][report.get("reference_key", "torch-fp32")] = {"pass": True, "drift_max": 0.0, "reference": True}
    entry["date"] = time.strftime("%Y-%m-%d")
    data[machine_key()] = entry
    return write_json(path, data)


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "alage-edge" / "auto"


def _time_run(bundle, sel: Selection, batch: int, device: Optional[str]) -> float:
    """p50 ms of ``infer`` at ``batch`` (a short measurement: 3 warm-up calls, 15 timed)."""
    from .backends import backend_class

    est = backend_class(sel.backend)(Manifest.load(bundle), sel.artifact, device=device,
                                     precision=sel.precision, **sel.options).load()
    try:
        from .tools.bench import time_infer

        return float(np.median(time_infer(est, est.manifest.preprocess.random_input(batch), 3, 15)))
    finally:
        est.close()


def choose(manifest: Manifest, backend: str = "auto", device: Optional[str] = None, batch: int = 8,
           timer: Callable = _time_run) -> Selection:
    """The fastest run that passed parity on this machine (see the module docstring); ``why`` explains."""
    from .tools.runs import RUNS

    rec = {}
    path = Path(manifest.root) / RECORD
    if path.is_file():
        rec = json.loads(path.read_text()).get(machine_key(), {})
    if not rec:
        sel = select(manifest, backend, None, device)
        sel.why["auto"] = (f"no parity record for this machine in {path.name}: running the default {sel.precision} "
                           f"path (alage-edge parity {manifest.root} records one; auto then picks the fastest run "
                           f"that passed)")
        return sel
    passed = rec.get("runs", {})
    cache = _cache_dir() / f"{hashlib.sha256((Path(manifest.root) / 'manifest.json').read_bytes()).hexdigest()[:16]}" \
                           f"-{machine_key()}-b{batch}.json"
    timings = json.loads(cache.read_text()) if cache.is_file() else {}
    why: Dict[str, str] = {}
    best = None
    for run in RUNS:
        if backend != "auto" and run.backend != backend or run.device not in (None, device):
            continue
        verdict = passed.get(run.key)
        if verdict is None or not verdict.get("pass"):
            why[run.key] = "no parity record here" if verdict is None else \
                f"failed parity here (max drift {verdict.get('drift_max', float('nan')):.2f} y)"
            continue
        try:
            sel = select(manifest, run.backend, run.precision, device, run.artifact)
            sel.options = {k: v for k, v in run.options.items() if k != "device"}
        except Exception as e:  # noqa: BLE001 - not runnable here: say why, go on
            why[run.key] = f"cannot run here ({str(e)[:160]})"
            continue
        if run.key not in timings:
            timings[run.key] = timer(manifest.root, sel, batch, device)
        why[run.key] = f"passed parity; p50 {timings[run.key]:.2f} ms at batch {batch}"
        if best is None or timings[run.key] < timings[best[0].key]:
            best = (run, sel)
    if timings:
        from .atomic import write_json

        write_json(cache, timings)
    if best is None:
        sel = select(manifest, backend, None, device)
        sel.why.update(why)
        sel.why["auto"] = f"no run that passed parity here can run: the default {sel.precision} path"
        return sel
    run, sel = best
    sel.why = {**why, "auto": f"chosen: {run.key}, the fastest run that passed parity on this machine "
                              f"({timings[run.key]:.2f} ms at batch {batch}; timings cached in {cache})"}
    return sel


def resolve(manifest: Manifest, backend: str = "auto", precision: Optional[str] = None,
            device: Optional[str] = None, fmt: Optional[str] = None, batch: int = 8) -> Selection:
    """``select`` for a named precision (or none: the default), ``choose`` for ``precision="auto"``."""
    if precision == "auto":
        return choose(manifest, backend, device, batch)
    return select(manifest, backend, precision, device, fmt)
