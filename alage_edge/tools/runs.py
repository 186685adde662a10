"""The runs that parity and the benchmark evaluate: (backend, precision, artifact format, options)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass(frozen=True)
class Run:
    label: str  # what tables call it
    backend: str
    precision: str
    artifact: Optional[str] = None  # restrict to one artifact format (e.g. "qdq")
    options: Dict = field(default_factory=dict)

    @property
    def device(self) -> Optional[str]:
        return self.options.get("device")

    @property
    def key(self) -> str:
        return f"{self.backend}-{self.precision}" + (f"-{self.artifact}" if self.artifact else "") + \
            (f"-{self.device}" if self.device else "") + ("-graphs" if self.options.get("cuda_graphs") else "") + \
            (f"-{self.options['hint']}" if self.options.get("hint") else "")


REFERENCE = Run("PyTorch eager", "torch", "fp32")
RUNS: List[Run] = [
    REFERENCE,
    Run("ONNX Runtime", "onnxruntime", "fp32"),
    Run("ONNX Runtime Q/DQ", "onnxruntime", "int8", artifact="qdq"),
    Run("OpenVINO", "openvino", "fp32"),
    Run("OpenVINO", "openvino", "bf16"),
    Run("OpenVINO", "openvino", "fp16"),
    Run("OpenVINO NNCF", "openvino", "int8", artifact="openvino"),
    # the same INT8 IR with its float layers in bf16 (runs bf16 where the CPU has AMX / AVX512-BF16, f32 elsewhere)
    Run("OpenVINO NNCF + bf16", "openvino", "int8", artifact="openvino", options={"hint": "bf16"}),
    Run("OpenVINO Q/DQ", "openvino", "int8", artifact="qdq"),
    Run("TensorRT", "tensorrt", "fp32"),
    Run("TensorRT", "tensorrt", "fp16"),
    Run("TensorRT", "tensorrt", "int8"),
    Run("PyTorch CUDA", "torch", "fp32", options={"device": "cuda"}),
    Run("PyTorch CUDA", "torch", "fp16", options={"device": "cuda"}),
    Run("PyTorch CUDA graphs", "torch", "fp16", options={"device": "cuda", "cuda_graphs": True}),
]


def find_run(key: str) -> Run:
    for r in RUNS:
        if r.key == key:
            return r
    raise KeyError(f"unknown run {key!r}; known: {', '.join(r.key for r in RUNS)}")
