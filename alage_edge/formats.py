"""The one table of artifact formats.

A *format* is an artifact kind that export or convert writes into a bundle:
its precisions, its variants (named constants that builders write and
backends ask for), the convert flags that apply to it and the function that
builds it. What each backend runs is declared by the backend itself
(``Backend.runs``). A *run* is a (backend, precision, artifact format) that
parity and bench compare with the PyTorch reference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Optional, Tuple

PRECISIONS = ("fp32", "fp16", "bf16", "int8")

# Q/DQ variants: int8 symmetric activations (the only Q/DQ TensorRT parses) and uint8 activations
# with int8 weights (U8S8, fast in ONNX Runtime on x86; S8S8 ran slower than fp32 there).
QDQ_S8 = "s8s8"
QDQ_U8 = "u8s8"


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    precisions: Tuple[str, ...]
    needs_gpu: bool
    builder: Optional[str]  # "module:function" that writes it into a bundle (None: written by export)
    flags: Tuple[str, ...] = ()  # convert options (argparse dests) that apply to it
    variants: Tuple[str, ...] = ()
    doc: str = ""


FORMATS: Dict[str, Format] = {f.name: f for f in (
    Format("torch", ".pt", ("fp32",), False, None, doc="the reference checkpoint from `alage-edge export`"),
    Format("onnx", ".onnx", ("fp32",), False, None, doc="ONNX graphs from `alage-edge export`"),
    Format("openvino", ".xml", ("fp32", "fp16", "int8"), False, "alage_edge.convert.openvino:build",
           ("data", "calib_size", "calib_min", "max_drop", "int8_scope", "cache"), doc="OpenVINO IR (INT8 by NNCF)"),
    Format("qdq", ".onnx", ("int8",), False, "alage_edge.convert.qdq:build",
           ("data", "calib_size", "calib_min", "int8_scope", "variant", "cache"), (QDQ_S8, QDQ_U8),
           "ONNX with QuantizeLinear/DequantizeLinear (explicit INT8; TensorRT 10/11, ORT, OpenVINO)"),
    Format("tensorrt", ".engine", ("fp32", "fp16", "int8"), True, "alage_edge.convert.tensorrt:build",
           ("data", "calib_size", "calib_min", "int8_scope", "dla_core", "workspace", "batch", "int8_path", "cache"),
           doc="TensorRT engines, built on the target device"),
)}


def format_of(name: str) -> Format:
    if name not in FORMATS:
        raise KeyError(f"unknown artifact format {name!r}; known: {', '.join(FORMATS)}")
    return FORMATS[name]
