"""OpenVINO: IR (or ONNX) per stream, compiled with an explicit inference precision.

AMX/AVX512-BF16 CPUs default to bf16, so the hint is always set: f32 for fp32, fp16 and int8, bf16 when
asked, for the global stream only (the attention stream's choice and crops stay f32). INT8 asked for bf16
compiles with f32 and casts the convolutions INT8 left float to bf16 (``ov_graph``). One IR (``fused``) is
the default graph where the artifact has it; bf16 keeps the split graph (its hint differs per stream).
The first STATIC_SIZES batch sizes per stream each run a model compiled for that static shape (faster:
docs, benchmarks), later sizes the dynamic one (``shapes="dynamic"``: always). Batches run on several
infer requests at once, without callbacks (one needing the GIL at teardown deadlocked).
"""
from __future__ import annotations

import threading
from typing import Dict, List

import numpy as np

from ..formats import QDQ_S8, QDQ_U8
from ..graphs import FLOAT_STREAMS
from ..manifest import first_line
from .base import Backend, BackendError, Source
from .ov_graph import cast_float_convolutions

STATIC_SIZES = 4  # batch sizes per stream compiled with a static shape
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

    preferred_graph = "fused"  # one IR (the graph plan splits where it must)
    bf16_layers: List[str] = []  # INT8 + bf16: those cast

    @property
    def hint(self) -> str:
        return self.options.get("hint") or HINTS[self.precision]

    def hint_for(self, stream: str) -> str:
        """The inference precision a stream compiles with (an explicit ``hint`` option applies to all)."""
        if not self.options.get("hint") and stream in FLOAT_STREAMS.get(self.precision, ()) or self.cast:
            return "f32"
        return self.hint

    @property
    def cast(self) -> bool:
        return self.precision == "int8" and self.hint == "bf16"

    def _load(self, stream: str, path):
        import openvino as ov

        if self.options.get("shapes", "static") not in ("static", "dynamic"):
            raise ValueError(f"OpenVINO shapes must be 'static' or 'dynamic', got {self.options['shapes']!r}")
        core = self._core = getattr(self, "_core", None) or ov.Core()
        device = (self.device or "CPU").upper()
        if device not in core.available_devices and device.split(".")[0] not in core.available_devices:
            raise BackendError(f"OpenVINO has no device {device!r} here (it has {', '.join(core.available_devices)})")
        config = {"INFERENCE_PRECISION_HINT": self.hint_for(stream), "PERFORMANCE_HINT": self.options.get("mode", "LATENCY")}
        if self.options.get("threads"):
            config["INFERENCE_NUM_THREADS"] = int(self.options["threads"])
        if self.options.get("profile"):
            config["PERF_COUNT"] = True
        compiled = self._compile(path, device, config)
        self._compile_args = {**getattr(self, "_compile_args", {}), stream: (path, device, config)}
        self._static: Dict[str, Dict[int, object]] = {**getattr(self, "_static", {}), stream: {}}
        self._compiling = threading.Lock()
        self._local = threading.local()  # infer requests per thread, stream and batch size
        eff = compiled.get_property("INFERENCE_PRECISION_HINT")  # f32 where the CPU lacks bf16
        self.effective_hints = {**getattr(self, "effective_hints", {}),
                                stream: eff.to_string() if hasattr(eff, "to_string") else str(eff)}
        return compiled

    def _compile(self, path, device: str, config: dict, batch: int = 0):
        """The model at ``path`` compiled for ``device``; with ``batch`` for that static batch size."""
        try:
            model = self._core.read_model(str(path))
            if self.cast:
                self.bf16_layers = cast_float_convolutions(model, self._core, device)
            if batch:
                model.reshape({p.get_any_name(): [batch, *p.get_partial_shape()[1:]] for p in model.inputs})
            return self._core.compile_model(model, device, config)
        except Exception as e:
            raise BackendError(f"{path}: OpenVINO cannot compile it on {device} ({first_line(e, 300)})") from e

    def _compiled_for(self, stream: str, batch: int):
        """(compiled model, key of its requests) for a batch of ``batch``."""
        static = self._static[stream]
        if batch not in static and len(static) < STATIC_SIZES and self.options.get("shapes", "static") == "static":
            with self._compiling:
                if batch not in static and len(static) < STATIC_SIZES:
                    static[batch] = self._compile(*self._compile_args[stream], batch=batch)
        if batch in static:
            return static[batch], f"{stream}@{batch}"
        return self._handles[stream], stream

    def _signature(self, stream: str, compiled):
        dims = lambda p: [d.get_length() if d.is_static else -1 for d in p.get_partial_shape()]  # noqa: E731
        return {"inputs": {p.get_any_name(): dims(p) for p in compiled.inputs},
                "outputs": {p.get_any_name(): dims(p) for p in compiled.outputs}}

    def _requests(self, stream: str, batches: List[int]) -> list:
        """One infer request per batch (this thread's, reused)."""
        reqs, used = [], {}
        pools = self._local.__dict__.setdefault("pools", {})
        for b in batches:
            compiled, key = self._compiled_for(stream, b)
            pool = pools.setdefault(key, [])
            i = used[key] = used.get(key, -1) + 1
            if i == len(pool):
                pool.append(compiled.create_infer_request())
            reqs.append(pool[i])
        self._local.__dict__.setdefault("last", {})[stream] = reqs[0]  # what ``_profile`` reads
        return reqs

    def _run(self, stream: str, feeds: Dict[str, object]) -> Dict[str, object]:
        return self._run_each(stream, [feeds])[0]

    def _run_each(self, stream: str, feeds: List[Dict[str, object]]) -> List[Dict[str, object]]:
        reqs = self._requests(stream, [len(next(iter(f.values()))) for f in feeds])
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
        for req in getattr(self, "_local", threading.local()).__dict__.get("last", {}).values():
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
        if self.cast:
            hints = f"f32, {len(self.bf16_layers)} float convolutions bf16"
        return f"openvino {self.precision} ({self.graph} graph, precision hint {hints}{ran})"

    def _close(self) -> None:
        self._local = threading.local()  # requests go before the compiled models
        self._static = {}
