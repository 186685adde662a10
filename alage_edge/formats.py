"""One table of formats and one table of runs, read by the CLI, parity, bench and the tests.

A *format* is an artifact kind in a bundle and the function that builds it;
a *run* is a (backend, precision, artifact format) combination that parity
and the benchmark evaluate against the PyTorch reference.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple


@dataclass(frozen=True)
class Format:
    name: str
    suffix: str
    precisions: Tuple[str, ...]
    needs_gpu: bool
    builder: Optional[str]  # "module:function" that writes it into a bundle (None: written by export)
    flags: Tuple[str, ...] = ()  # convert flags that apply
    doc: str = ""


FORMATS: Dict[str, Format] = {f.name: f for f in (
    Format("onnx", ".onnx", ("fp32",), False, None, (), "ONNX graphs from `alage-edge export`"),
    Format("openvino", ".xml", ("fp32", "fp16", "int8"), False, "convert.openvino:build",
           ("--data", "--calib-size", "--max-drop", "--int8-scope"), "OpenVINO IR (INT8 by NNCF)"),
    Format("qdq", ".onnx", ("int8",), False, "convert.qdq:build", ("--data", "--calib-size", "--int8-scope"),
           "ONNX with QuantizeLinear/DequantizeLinear (explicit INT8; TensorRT 10/11, ORT, OpenVINO)"),
    Format("tensorrt", ".engine", ("fp32", "fp16", "int8"), True, "convert.tensorrt:build",
           ("--data", "--calib-size", "--dla-core", "--workspace", "--batch"),
           "TensorRT engines, built on the target device"),
)}


@dataclass(frozen=True)
class Run:
    label: str  # what tables call it
    backend: str
    precision: str
    artifact: Optional[str] = None  # restrict to one artifact format (e.g. "qdq")
    options: Dict = field(default_factory=dict)
    needs_gpu: bool = False

    @property
    def key(self) -> str:
        return f"{self.backend}-{self.precision}" + (f"-{self.artifact}" if self.artifact else "") + \
            (f"-{self.options['device']}" if self.options.get("device") else "") + \
            ("-graphs" if self.options.get("cuda_graphs") else "")


REFERENCE = Run("PyTorch eager", "torch", "fp32")
RUNS: List[Run] = [
    REFERENCE,
    Run("ONNX Runtime", "onnxruntime", "fp32"),
    Run("ONNX Runtime Q/DQ", "onnxruntime", "int8", artifact="qdq"),
    Run("OpenVINO", "openvino", "fp32"),
    Run("OpenVINO", "openvino", "bf16"),
    Run("OpenVINO", "openvino", "fp16"),
    Run("OpenVINO NNCF", "openvino", "int8", artifact="openvino"),
    Run("OpenVINO Q/DQ", "openvino", "int8", artifact="qdq"),
    Run("TensorRT", "tensorrt", "fp32", needs_gpu=True),
    Run("TensorRT", "tensorrt", "fp16", needs_gpu=True),
    Run("TensorRT", "tensorrt", "int8", needs_gpu=True),
    Run("PyTorch CUDA", "torch", "fp32", options={"device": "cuda"}, needs_gpu=True),
    Run("PyTorch CUDA", "torch", "fp16", options={"device": "cuda"}, needs_gpu=True),
    Run("PyTorch CUDA graphs", "torch", "fp16", options={"device": "cuda", "cuda_graphs": True}, needs_gpu=True),
]


assert len({r.key for r in RUNS}) == len(RUNS), "run keys must be unique"


def find_run(key: str) -> Run:
    for r in RUNS:
        if r.key == key:
            return r
    raise KeyError(f"unknown run {key!r}; known: {', '.join(r.key for r in RUNS)}")
