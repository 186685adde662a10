"""OpenVINO: IR (or ONNX) per stream, compiled with an explicit inference precision.

On CPUs with AMX/AVX512-BF16 OpenVINO's default is bf16 (it moved a model's age
by 1.6 years on average here), so the hint is always set: f32 for fp32, fp16 and
int8 artifacts (their non-quantised layers stay f32), bf16 only when asked.
``infer_many`` runs batches through an ``AsyncInferQueue`` per stream.
"""
from __future__ import annotations

import threading
from typing import Dict, Iterable, Iterator, List

import numpy as np

from .base import Backend, BackendError, finish

HINTS = {"fp32": "f32", "fp16": "f32", "int8": "f32", "bf16": "bf16"}


class OpenVINOBackend(Backend):
    name = "openvino"
    formats = ("openvino", "onnx", "qdq")
    modules = ("openvino",)
    extra = "openvino"

    @staticmethod
    def default_graph(artifact) -> str:
        return "split" if "global" in artifact.files else "fused"

    @property
    def hint(self) -> str:
        return self.options.get("hint") or HINTS[self.precision]

    def _load_stream(self, stream: str, path):
        import openvino as ov

        core = ov.Core()
        device = (self.device or "CPU").upper()
        config = {"INFERENCE_PRECISION_HINT": self.hint, "PERFORMANCE_HINT": self.options.get("mode", "LATENCY")}
        if self.options.get("threads"):
            config["INFERENCE_NUM_THREADS"] = int(self.options["threads"])
        try:
            compiled = core.compile_model(core.read_model(str(path)), device, config)
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot compile it on {device} ({str(e).splitlines()[0][:300]})") from e
        self._local = threading.local()  # one infer request per thread and stream
        eff = compiled.get_property("INFERENCE_PRECISION_HINT")  # bf16 falls back to f32 without AVX512-BF16/AMX
        self.effective_hint = eff.to_string() if hasattr(eff, "to_string") else str(eff)
        return compiled

    def _request(self, stream: str):
        reqs = self._local.__dict__.setdefault("requests", {})
        if stream not in reqs:
            reqs[stream] = self._handles[stream].create_infer_request()
        return reqs[stream]

    def _run(self, stream: str, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        req = self._request(stream)
        res = req.infer(feeds)
        return {k.get_any_name(): np.array(v) for k, v in res.items()}

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        """Throughput: each stream runs all batches through an AsyncInferQueue, one stream after the other."""
        import openvino as ov

        if not self.loaded:
            self.load()
        images: List[np.ndarray] = [self.check(b) for b in batches]
        results: List[Dict[str, np.ndarray]] = [dict() for _ in images]
        for stream in self.streams():
            queue = ov.AsyncInferQueue(self._handles[stream], self.options.get("jobs", 0))

            def done(req, i):
                results[i].update({k.get_any_name(): np.array(req.get_tensor(k).data)
                                   for k in req.model_outputs})

            queue.set_callback(done)
            for i, img in enumerate(images):
                feeds = {"image": img} if stream != "attention" else {"image": img, "g": results[i]["g"]}
                queue.start_async(feeds, i)
            queue.wait_all()
        for r in results:
            yield finish(r)

    def describe(self) -> str:
        eff = getattr(self, "effective_hint", None)
        ran = f", runs {eff}: this CPU lacks {self.hint}" if eff and eff != self.hint else ""
        return f"openvino {self.precision} ({self.graph} graph, precision hint {self.hint}{ran})"

    def _close(self) -> None:
        super()._close()
        self._local = threading.local()
