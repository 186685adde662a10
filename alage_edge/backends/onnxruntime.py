"""ONNX Runtime: the fused graph (one session) or the split pair; fp32 ONNX or the Q/DQ model."""
from __future__ import annotations

import os
from typing import Dict

import numpy as np

from .base import Backend, BackendError


class ONNXRuntimeBackend(Backend):
    name = "onnxruntime"
    formats = ("onnx", "qdq")
    modules = ("onnxruntime",)
    extra = "onnxruntime"

    @staticmethod
    def default_graph(artifact) -> str:
        # One session is cheapest for fp32; a Q/DQ artifact quantises the streams apart.
        return "fused" if "fused" in artifact.files and artifact.format == "onnx" else "split"

    def _load_stream(self, stream: str, path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        threads = self.options.get("threads") or int(os.environ.get("OMP_NUM_THREADS", 0) or 0)
        if threads:
            so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if self.device and self.device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise BackendError("onnxruntime here has no CUDA provider (pip install onnxruntime-gpu)")
            providers.insert(0, "CUDAExecutionProvider")
        try:
            sess = ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: onnxruntime cannot load it ({str(e).splitlines()[0][:300]})") from e
        return sess

    def _run(self, stream: str, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        sess = self._handles[stream]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))
