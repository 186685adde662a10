"""TensorRT 10/11: one engine per stream, name-based tensors, ``execute_async_v3``.

Buffers are allocated once at the profile's maximum batch: device memory per
I/O tensor, page-locked host arrays for what crosses to the host. In split
mode the global stream's ``g`` stays on the device and is bound directly as
the attention stream's input. Each engine has its own CUDA stream, so the
global stream (possibly on a DLA core) of batch i+1 overlaps the attention
stream of batch i in ``infer_many``.

NOT EXECUTED in this project's CI or development machines: TensorRT cannot be
installed there. Written against the TensorRT 10/11 Python API and cuda-python.
"""
from __future__ import annotations

import json
from typing import Dict, Iterable, Iterator, List, Optional

import numpy as np

from ..manifest import BundleError
from .base import Backend, BackendError, finish
from .engine_key import mismatches, rebuild_hint


class _Engine:
    """An engine, its context and buffers for ``slots`` batches in flight."""

    def __init__(self, trt, cuda, engine, stream_name: str, slots: int = 2):
        self.cuda, self.engine, self.name = cuda, engine, stream_name
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for the {stream_name} engine")
        self.stream = cuda.stream()
        self.inputs, self.outputs, self.dtypes, self.max_shapes = [], [], {}, {}
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
            self.dtypes[name] = np.dtype(trt.nptype(engine.get_tensor_dtype(name)))
            shape = list(engine.get_tensor_shape(name))
            if is_input and shape[0] == -1:
                shape = list(engine.get_tensor_profile_shape(name, 0)[2])  # max of profile 0
            self.max_shapes[name] = shape
        self.max_batch = min(self.max_shapes[n][0] for n in self.inputs)
        for n in self.outputs:
            if self.max_shapes[n][0] == -1:
                self.max_shapes[n][0] = self.max_batch
        self.slots = [self._alloc() for _ in range(slots)]

    def _alloc(self) -> dict:
        dev, host = {}, {}
        for n, shape in self.max_shapes.items():
            dev[n] = self.cuda.malloc(int(np.prod(shape)) * self.dtypes[n].itemsize)
            host[n] = self.cuda.host_empty(shape, self.dtypes[n])
        return {"dev": dev, "host": host, "launched": self.cuda.event(), "copied": self.cuda.event(),
                "shapes": {}}

    def _host(self, slot: int, name: str, shape) -> np.ndarray:
        return self.slots[slot]["host"][name][0].reshape(-1)[: int(np.prod(shape))].reshape(shape)

    def enqueue(self, slot: int, feeds: Dict[str, np.ndarray], device_feeds: Optional[Dict[str, int]] = None,
                batch: Optional[int] = None) -> None:
        """Copy host feeds in, bind device feeds, launch on this engine's stream."""
        s, device_feeds = self.slots[slot], device_feeds or {}
        for n in self.inputs:
            if n in device_feeds:
                ptr, shape = device_feeds[n], [batch] + self.max_shapes[n][1:]
            else:
                arr = np.ascontiguousarray(feeds[n], dtype=self.dtypes[n])
                host = self._host(slot, n, arr.shape)
                host[...] = arr
                self.cuda.h2d(s["dev"][n], host, self.stream)
                ptr, shape = s["dev"][n], list(arr.shape)
            self.context.set_tensor_address(n, ptr)
            if not self.context.set_input_shape(n, shape):
                raise BackendError(f"{self.name} engine rejected input {n} of shape {shape} "
                                   f"(profile maximum {self.max_shapes[n]})")
        for n in self.outputs:
            self.context.set_tensor_address(n, s["dev"][n])
        if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
            raise BackendError(f"TensorRT execute_async_v3 failed on the {self.name} engine")
        self.cuda.record(s["launched"], self.stream)

    def copy_out(self, slot: int, names: List[str]) -> None:
        """Queue device-to-host copies of outputs (shapes as set by the last enqueue)."""
        s = self.slots[slot]
        s["shapes"] = {n: tuple(self.context.get_tensor_shape(n)) for n in names}
        for n, shape in s["shapes"].items():
            self.cuda.d2h(self._host(slot, n, shape), s["dev"][n], self.stream)
        self.cuda.record(s["copied"], self.stream)

    def collect(self, slot: int) -> Dict[str, np.ndarray]:
        s = self.slots[slot]
        self.cuda.event_sync(s["copied"])
        return {n: np.array(self._host(slot, n, shape)) for n, shape in s["shapes"].items()}

    def close(self) -> None:
        for s in self.slots:
            for p in s["dev"].values():
                self.cuda.free(p)
            for _, handle in s["host"].values():
                self.cuda.host_free(handle)
        self.slots = []
        self.cuda.destroy_stream(self.stream)


class TensorRTBackend(Backend):
    name = "tensorrt"
    formats = ("tensorrt",)
    modules = ("tensorrt",)
    extra = "tensorrt"
    thread_safe = False  # one execution context per engine: calls are serialised

    @staticmethod
    def default_graph(artifact) -> str:
        return "split" if "global" in artifact.files else "fused"

    def _load_artifact(self) -> None:
        import tensorrt as trt

        from .cuda import cuda_api

        self.cuda = cuda_api()
        if self.cuda.device_count() == 0:
            raise BackendError("TensorRT needs a CUDA GPU and none is visible")
        device, cc = self.cuda.device_properties(0)
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        self.max_batch = None
        for stream in self.streams():
            rel = self.artifact.files.get(stream)
            if rel is None:
                raise BundleError(f"{self.manifest.root}: TensorRT artifact {self.artifact.key} has no {stream} engine")
            self.manifest.verify([rel])
            key = json.loads(self.manifest.path(rel + ".json").read_text()) \
                if self.manifest.path(rel + ".json").is_file() else self.artifact.info["keys"][stream]
            onnx_rel = self.manifest.io[stream]["file"]
            onnx_sha = self.manifest.data["files"].get(onnx_rel, {}).get("sha256")
            bad = mismatches(key, trt.__version__, device, cc, onnx_sha)
            if bad:
                raise BackendError(f"{self.manifest.path(rel)}: engine does not match this system ({'; '.join(bad)}); "
                                   + rebuild_hint(str(self.manifest.root), self.precision, key.get("dla_core")))
            if key.get("dla_core") is not None:
                self.runtime.DLA_core = int(key["dla_core"])
            engine = self.runtime.deserialize_cuda_engine(self.manifest.path(rel).read_bytes())
            if engine is None:
                raise BackendError(f"{self.manifest.path(rel)}: TensorRT could not deserialize the engine; "
                                   + rebuild_hint(str(self.manifest.root), self.precision, key.get("dla_core")))
            eng = _Engine(trt, self.cuda, engine, stream)
            self._handles[stream] = eng
            self.max_batch = min(self.max_batch or eng.max_batch, eng.max_batch)
        if "attention" in self._handles:
            glob, att = self._handles["global"], self._handles["attention"]
            for n in ("image", "g"):
                if glob.dtypes[n] != att.dtypes[n]:
                    raise BackendError(f"engines disagree on the dtype of {n!r} ({glob.dtypes[n]} vs "
                                       f"{att.dtypes[n]}); rebuild both with alage-edge convert")

    def _run(self, stream: str, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        eng = self._handles[stream]
        eng.enqueue(0, feeds)
        eng.copy_out(0, eng.outputs)
        return eng.collect(0)

    def _forward(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        return next(self._pipeline([image]))

    def _pipeline(self, images: List[np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        """Two stages on two CUDA streams: the global stream of batch i runs while the
        attention stream of batch i-1 does; ``g`` and the image never leave the device."""
        if self.graph == "fused" or not self.manifest.attention:
            for img in images:
                yield finish(self._run(self.streams()[0], {"image": img}))
            return
        glob, att = self._handles["global"], self._handles["attention"]
        nslots, prev = len(glob.slots), None
        for i, img in enumerate(images):
            slot = i % nslots
            glob.enqueue(slot, {"image": img})
            glob.copy_out(slot, ["global_logits"])
            self.cuda.wait(att.stream, glob.slots[slot]["launched"])  # attention(i) waits for global(i) only
            dev = glob.slots[slot]["dev"]
            att.enqueue(slot, {}, device_feeds={"image": dev["image"], "g": dev["g"]}, batch=img.shape[0])
            att.copy_out(slot, att.outputs)
            if prev is not None:
                yield self._collect(prev)
            prev = slot
        if prev is not None:
            yield self._collect(prev)

    def _collect(self, slot: int) -> Dict[str, np.ndarray]:
        out = self._handles["global"].collect(slot)
        out.update(self._handles["attention"].collect(slot))
        return finish(out)

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        if not self.loaded:
            self.load()
        with self._lock:
            yield from self._pipeline([self.check(b) for b in batches])

    def _close(self) -> None:
        for eng in self._handles.values():
            eng.close()
        super()._close()
