"""ONNX Runtime: the fused graph (one session) or the split pair; fp32 ONNX or the Q/DQ model."""
from __future__ import annotations

import os
from typing import Dict, Optional

from ..formats import QDQ_S8, QDQ_U8
from ..manifest import first_line
from .base import Backend, BackendError, Source


class ONNXRuntimeBackend(Backend):
    name = "onnxruntime"
    modules = ("onnxruntime",)
    extra = "onnxruntime"
    # One session is cheapest for fp32; a Q/DQ artifact has no fused graph. CPUs prefer the U8S8 Q/DQ.
    runs = {"fp32": [Source("onnx", "fp32")],
            "int8": [Source("qdq", "int8", QDQ_U8), Source("qdq", "int8", QDQ_S8)]}
    preferred_graph = "fused"

    @classmethod
    def can_run(cls, manifest, artifact, device: Optional[str] = None) -> Optional[str]:
        if device and device.startswith("cuda"):
            import onnxruntime as ort

            if "CUDAExecutionProvider" not in ort.get_available_providers():
                return "this onnxruntime has no CUDA provider (pip install onnxruntime-gpu)"
        return None

    def _load(self, stream: str, path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        threads = self.options.get("threads") or int(os.environ.get("OMP_NUM_THREADS", 0) or 0)
        if threads:
            so.intra_op_num_threads = threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.get("profile"):
            import tempfile

            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(tempfile.mkdtemp(prefix="alage-ort-profile-"), stream)
        cuda = bool(self.device and self.device.startswith("cuda"))
        providers = (["CUDAExecutionProvider"] if cuda else []) + ["CPUExecutionProvider"]
        try:
            return ort.InferenceSession(str(path), so, providers=providers)
        except Exception as e:  # onnxruntime raises its own exception types
            raise BackendError(f"{path}: onnxruntime cannot load it ({first_line(e, 300)})") from e

    def _signature(self, stream: str, sess):
        dims = lambda a: [d if isinstance(d, int) else -1 for d in a.shape]  # noqa: E731
        return {"inputs": {a.name: dims(a) for a in sess.get_inputs()},
                "outputs": {a.name: dims(a) for a in sess.get_outputs()}}

    def _profile(self):
        """Per-node kernel times from ONNX Runtime's profiler, averaged over the runs since loading."""
        import json
        import shutil

        rows = []
        for sess in self._handles.values():
            path = sess.end_profiling()
            events = json.loads(open(path).read())
            shutil.rmtree(os.path.dirname(path), ignore_errors=True)
            runs = max(1, sum(1 for e in events if e.get("name") == "model_run"))
            for e in events:
                if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
                    rows.append({"op": e["args"].get("op_name", "?"), "kernel": e["args"].get("provider", "CPU"),
                                 "ms": e["dur"] / 1e3 / runs})
        return rows

    def _run(self, stream: str, feeds: Dict[str, object]) -> Dict[str, object]:
        sess = self._handles[stream]
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))
