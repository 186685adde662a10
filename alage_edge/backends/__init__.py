"""Backends: a name -> "module:Class" table, and the one selection of backend and artifact.

Nothing is imported until a backend is used. Each backend declares what it
runs (``runs``: precision -> artifacts) and why it cannot run an artifact here
(``can_run``: no GPU, foreign engine ...); ``select`` only reads those.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Type

from ..formats import PRECISIONS
from ..manifest import Artifact, Manifest
from .base import Backend, BackendError, InputError, Source

TABLE: Dict[str, str] = {
    "tensorrt": "alage_edge.backends.tensorrt:TensorRTBackend",
    "openvino": "alage_edge.backends.openvino:OpenVINOBackend",
    "onnxruntime": "alage_edge.backends.onnxruntime:ONNXRuntimeBackend",
    "torch": "alage_edge.backends.pytorch:TorchBackend",
}
AUTO_ORDER: Tuple[str, ...] = ("tensorrt", "openvino", "onnxruntime", "torch")


def backend_class(name: str) -> Type[Backend]:
    if name not in TABLE:
        raise BackendError(f"unknown backend {name!r}; choose from {', '.join(TABLE)} or 'auto'")
    module, cls = TABLE[name].split(":")
    return getattr(importlib.import_module(module), cls)


@dataclass
class Selection:
    """Which backend runs which artifact at which precision, and why the others were passed over."""

    backend: str
    artifact: Artifact
    precision: str
    why: Dict[str, str] = field(default_factory=dict)
    options: Dict[str, object] = field(default_factory=dict)  # backend options the choice needs (an OpenVINO hint)


def find_artifact(manifest: Manifest, cls: Type[Backend], precision: Optional[str],
                  fmt: Optional[str] = None) -> Tuple[Optional[Artifact], Optional[str], str]:
    """(artifact, run precision, "") for what ``cls`` would run, or (None, None, why not)."""
    table = {p: [s for s in srcs if fmt is None or s.format == fmt] for p, srcs in cls.runs.items()}
    if precision and precision not in table:
        return None, None, f"{cls.name} does not run {precision} (it runs {', '.join(table)})"
    wanted = [precision] if precision else [p for p in PRECISIONS if p in table and p != "bf16"]
    for p in wanted:
        for src in table[p]:
            found = [a for a in manifest.find(src.format, src.precision)
                     if src.variant is None or a.variant == src.variant]
            if found:
                return found[-1], p, ""
    kinds = ", ".join(sorted({f"{s.format} {s.precision}" + (f" ({s.variant})" if s.variant else "")
                              for p in wanted for s in table[p]}))
    return None, None, f"no {kinds} artifact in the bundle (build one with `alage-edge convert`)"


def select(manifest: Manifest, backend: str = "auto", precision: Optional[str] = None,
           device: Optional[str] = None, fmt: Optional[str] = None) -> Selection:
    """The first backend (in AUTO_ORDER, or the one named) that can run an artifact here."""
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    why: Dict[str, str] = {}
    for name in (AUTO_ORDER if backend == "auto" else [backend]):
        cls = backend_class(name)
        ok, reason = cls.is_available()
        art, prec, missing = find_artifact(manifest, cls, precision, fmt) if ok else (None, None, reason)
        problem = missing or cls.can_run(manifest, art, device)
        if problem:
            why[name] = problem
            continue
        why[name] = f"chosen: {art.format} {art.precision} artifact" + (f", run as {prec}" if prec != art.precision else "")
        return Selection(name, art, prec, why)
    detail = "; ".join(f"{k}: {v}" for k, v in why.items())
    err = BackendError(f"no backend can run {manifest.root} here ({detail})")
    err.why = why
    raise err


__all__ = ["Backend", "BackendError", "InputError", "Selection", "Source", "TABLE", "AUTO_ORDER", "backend_class",
           "find_artifact", "select"]
