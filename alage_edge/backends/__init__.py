"""Backends: a name -> "module:Class" table; nothing is imported until one is used."""
from __future__ import annotations

import importlib
from typing import Dict, List, Tuple, Type

from .base import Backend, BackendError, InputError

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


def available() -> List[str]:
    return [n for n in TABLE if backend_class(n).is_available()[0]]


__all__ = ["Backend", "BackendError", "InputError", "TABLE", "AUTO_ORDER", "backend_class", "available"]
