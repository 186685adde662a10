"""OpenVINO: IR (or ONNX) per stream, compiled with an explicit inference precision.

On CPUs with AMX/AVX512-BF16 OpenVINO's default is bf16 (it moved a model's age
by 1.6 years on average here), so the hint is always set: f32 for fp32, fp16 and
int8 artifacts (their non-quantised layers stay f32), bf16 only when asked, and
then for the global stream only: in bf16 the attention stream's boxes and grid
move in steps of up to 0.44 px of the detail image, the size of the detail its
crops read (mean age drift 1.49 y with both streams bf16 against 0.13 y with the
global stream alone, demo model, AVX512-BF16 CPU; README, parity).
The whole model as one IR (``fused``: fp32, fp16 and INT8 artifacts) is the default graph where the
artifact has it: one compiled model, faster on a CPU than the two streams (docs: benchmarks); bf16
keeps the split graph, as its hint differs per stream; INT8 artifacts converted before the fused INT8
IR run split.
Several batches run on several infer requests at once (``start_async`` then
``wait``), without Python callbacks: a callback that needs the GIL while the
compiled model is torn down deadlocked (``AsyncInferQueue``, seen in a
load/predict/del loop).
"""
from __future__ import annotations

import threading
from typing import Dict, List

import numpy as np

from ..formats import QDQ_S8, QDQ_U8
from ..graphs import FLOAT_STREAMS
from ..manifest import first_line
from .base import Backend, BackendError, Source

HINTS = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16"}


class OpenVINOBackend(Backend):
    name = "openvino"
    modules = ("openvino",)
    extra = "openvino"
    # bf16 = fp32 weights with a bf16 hint; CPUs prefer the U8S8 Q/DQ.
    runs = {"fp32": [Source("openvino", "fp32"), Source("onnx", "fp32")],
            "fp16": [Source("openvino", "fp16")],
            "bf16": [Source("openvino", "fp32"), Source("onnx", "fp32")],
            "int8": [Source("openvino", "int8"), Source("qdq", "int8", QDQ_U8), Source("qdq", "int8", QDQ_S8)]}

    preferred_graph = "fused"  # one IR: no hand-over between streams (the graph plan splits where it must)

    @property
    def hint(self) -> str:
        return self.options.get("hint") or HINTS[self.precision]

    def hint_for(self, stream: str) -> str:
        """The inference precision a stream compiles with (an explicit ``hint`` option applies to all)."""
        if not self.options.get("hint") and stream in FLOAT_STREAMS.get(self.precision, ()):
            return "f32"
        return self.hint

    def _load(self, stream: str, path):
        import openvino as ov

        core = ov.Core()
        device = (self.device or "CPU").upper()
        if device not in core.available_devices and device.split(".")[0] not in core.available_devices:
            raise BackendError(f"OpenVINO has no device {device!r} here (it has {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": self.hint_for(stream), "PERFORMANCE_HINT": self.options.get("mode", "LATENCY")}
        if self.options.get("threads"):
            config["INFERENCE_NUM_THREADS"] = int(self.options["threads"])
        if self.options.get("profile"):
            config["PERF_COUNT"] = True
        try:
            compiled = core.compile_model(core.read_model(str(path)), device, config)
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot compile it on {device} ({first_line(e, 300)})") from e
        self._local = threading.local()  # infer requests per thread and stream
        eff = compiled.get_property("INFERENCE_PRECISION_HINT")  # bf16 falls back to f32 without AVX512-BF16/AMX
        self.effective_hints = {**getattr(self, "effective_hints", {}),
                                stream: eff.to_string() if hasattr(eff, "to_string") else str(eff)}
        return compiled

    def _signature(self, stream: str, compiled):
        dims = lambda p: [d.get_length() if d.is_static else -1 for d in p.get_partial_shape()]  # noqa: E731
        return {"inputs": {p.get_any_name(): dims(p) for p in compiled.inputs},
                "outputs": {p.get_any_name(): dims(p) for p in compiled.outputs}}

    def _requests(self, stream: str, n: int) -> list:
        reqs = self._local.__dict__.setdefault(stream, [])
        while len(reqs) < n:
            reqs.append(self._handles[stream].create_infer_request())
        return reqs[:n]

    def _run(self, stream: str, feeds: Dict[str, object]) -> Dict[str, object]:
        return self._run_each(stream, [feeds])[0]

    def _run_each(self, stream: str, feeds: List[Dict[str, object]]) -> List[Dict[str, object]]:
        reqs = self._requests(stream, len(feeds))
        for req, f in zip(reqs, feeds):
            req.start_async(f)
        outs = []
        for req in reqs:
            req.wait()
            outs.append({k.get_any_name(): np.array(v) for k, v in req.results.items()})
        return outs

    def _profile(self):
        """Per-node times of this thread's last inference (OpenVINO performance counters)."""
        rows = []
        for reqs in getattr(self, "_local", threading.local()).__dict__.values():
            for req in reqs[:1]:
                for info in req.profiling_info:
                    if info.status == info.Status.EXECUTED:
                        rows.append({"op": info.node_type, "kernel": info.exec_type,
                                     "ms": info.real_time.total_seconds() * 1e3})
        return rows

    def describe(self) -> str:
        eff = getattr(self, "effective_hints", {})
        asked = {s: self.hint_for(s) for s in eff} or {"all": self.hint}
        hints = " / ".join(f"{h} {s}" for s, h in asked.items()) if len(set(asked.values())) > 1 else self.hint
        lacks = sorted({h for s, h in asked.items() if eff.get(s, h) != h})
        ran = (f", runs {' / '.join(f'{h} {s}' for s, h in eff.items())}: this CPU lacks {', '.join(lacks)}"
               if lacks else "")
        return f"openvino {self.precision} ({self.graph} graph, precision hint {hints}{ran})"

    def _close(self) -> None:
        self._local = threading.local()  # requests go before the compiled models
