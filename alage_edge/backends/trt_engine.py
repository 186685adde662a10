"""One TensorRT engine with its execution context, CUDA stream and buffer slots.

Buffers are allocated once at the profile's maximum batch: device memory per
I/O tensor, page-locked host arrays for what crosses to the host; inputs that
another engine's device buffers feed (the attention engine's ``image`` and
``g``) get none until they are fed from the host (``infer_stream``: a Triton model per stream). Several slots let batch i+1 be copied in while batch i runs;
a slot's host buffers are rewritten only after its last copy finished. After
any error the stream is synchronised and the slot reset.

NOT EXECUTED on this project's development machines or CI: TensorRT cannot be
installed there. Written against the TensorRT 8.5/10/11 Python API (name-based
tensors, ``set_tensor_address``, ``execute_async_v3``).
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import numpy as np

from .base import BackendError


class Engine:
    def __init__(self, trt, cuda, engine, stream_name: str, slots: int = 2, external: Sequence[str] = ()):
        self.cuda, self.engine, self.name = cuda, engine, stream_name
        self.context = engine.create_execution_context()
        if self.context is None:
            raise BackendError(f"TensorRT could not create an execution context for the {stream_name} engine")
        self.stream = cuda.stream()
        self.inputs, self.outputs, self.dtypes, self.max_shapes = [], [], {}, {}
        self.min_batch = 1
        for i in range(engine.num_io_tensors):
            name = engine.get_tensor_name(i)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            (self.inputs if is_input else self.outputs).append(name)
            self.dtypes[name] = numpy_dtype(engine.get_tensor_dtype(name))
            shape = list(engine.get_tensor_shape(name))
            if is_input:
                lo, _, hi = engine.get_tensor_profile_shape(name, 0)  # (min, opt, max) of profile 0
                self.min_batch = max(self.min_batch, int(lo[0]))
                shape = list(hi)
            self.max_shapes[name] = shape
        self.max_batch = min(self.max_shapes[n][0] for n in self.inputs)
        for n in self.outputs:
            if self.max_shapes[n][0] == -1:
                self.max_shapes[n][0] = self.max_batch
        self.external = set(external) & set(self.inputs)
        self.slots = [self._alloc() for _ in range(slots)]

    def _alloc(self) -> dict:
        dev, host = {}, {}
        slot = {"dev": dev, "host": host, "launched": self.cuda.event(), "copied": self.cuda.event(),
                "shapes": {}, "used": False}
        for n in self.max_shapes:
            if n not in self.external:  # another engine's buffer is bound instead (allocated if fed from host)
                self._alloc_buffer(slot, n)
        return slot

    def _alloc_buffer(self, slot: dict, name: str) -> None:
        shape = self.max_shapes[name]
        slot["dev"][name] = self.cuda.malloc(int(np.prod(shape)) * self.dtypes[name].itemsize)
        slot["host"][name] = self.cuda.host_empty(shape, self.dtypes[name])

    def _host(self, slot: int, name: str, shape) -> np.ndarray:
        return self.slots[slot]["host"][name][0].reshape(-1)[: int(np.prod(shape))].reshape(shape)

    def _bind(self, name: str, ptr: int) -> None:
        if not self.context.set_tensor_address(name, int(ptr)):
            raise BackendError(f"TensorRT rejected the address of {name!r} on the {self.name} engine")

    def enqueue(self, slot: int, feeds: Dict[str, np.ndarray], device_feeds: Optional[Dict[str, int]] = None,
                batch: Optional[int] = None) -> None:
        """Copy host feeds in, bind device feeds, launch on this engine's stream."""
        s, device_feeds = self.slots[slot], device_feeds or {}
        if s["used"]:
            self.cuda.event_sync(s["copied"])  # the slot's pinned buffers may still be in a copy
        s["used"] = True
        try:
            for n in self.inputs:
                if n in device_feeds:
                    ptr, shape = device_feeds[n], [batch] + self.max_shapes[n][1:]
                else:
                    if n not in feeds:
                        raise BackendError(f"the {self.name} engine needs input {n!r} (got {sorted(feeds)})")
                    if n not in s["dev"]:  # an input another engine usually feeds, fed from the host this time
                        self._alloc_buffer(s, n)
                    arr = np.ascontiguousarray(feeds[n], dtype=self.dtypes[n])
                    host = self._host(slot, n, arr.shape)
                    host[...] = arr
                    self.cuda.h2d(s["dev"][n], host, self.stream)
                    ptr, shape = s["dev"][n], list(arr.shape)
                self._bind(n, ptr)
                if not self.context.set_input_shape(n, shape):
                    raise BackendError(f"{self.name} engine rejected input {n} of shape {shape} (profile "
                                       f"batch {self.min_batch}..{self.max_batch})")
            for n in self.outputs:
                self._bind(n, s["dev"][n])
            if not self.context.execute_async_v3(self.cuda.stream_handle(self.stream)):
                raise BackendError(f"TensorRT execute_async_v3 failed on the {self.name} engine")
            self.cuda.record(s["launched"], self.stream)
        except BaseException:
            self.reset(slot)
            raise

    def copy_out(self, slot: int, names: List[str]) -> None:
        """Queue device-to-host copies of outputs (shapes as set by the last enqueue)."""
        s = self.slots[slot]
        try:
            s["shapes"] = {n: tuple(self.context.get_tensor_shape(n)) for n in names}
            for n, shape in s["shapes"].items():
                self.cuda.d2h(self._host(slot, n, shape), s["dev"][n], self.stream)
            self.cuda.record(s["copied"], self.stream)
        except BaseException:
            self.reset(slot)
            raise

    def collect(self, slot: int) -> Dict[str, np.ndarray]:
        s = self.slots[slot]
        try:
            self.cuda.event_sync(s["copied"])
        except BaseException:
            self.reset(slot)
            raise
        return {n: np.array(self._host(slot, n, shape)) for n, shape in s["shapes"].items()}

    def reset(self, slot: int) -> None:
        """After an error: wait for whatever this stream still runs, forget the slot's shapes."""
        try:
            self.cuda.sync(self.stream)
        finally:
            self.slots[slot].update(shapes={}, used=False)

    def close(self) -> None:
        self.cuda.sync(self.stream)
        for s in self.slots:
            for p in s["dev"].values():
                self.cuda.free(p)
            for _, handle in s["host"].values():
                self.cuda.host_free(handle)
            for ev in (s["launched"], s["copied"]):
                self.cuda.destroy_event(ev)
        self.slots = []
        self.cuda.destroy_stream(self.stream)
        self.context = None


# TensorRT DataType name -> numpy dtype: our own map, not ``trt.nptype`` (TensorRT 8.5's fails on numpy >= 1.24,
# where np.bool is gone; BF16 and FP8 have no numpy type and never reach the host here)
NUMPY_DTYPES = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "INT32": np.int32, "INT64": np.int64,
                "BOOL": np.bool_, "UINT8": np.uint8}


def numpy_dtype(trt_dtype) -> np.dtype:
    """``trt.DataType.FLOAT`` (or its name) -> np.float32; a clear error for a type the host cannot hold."""
    name = getattr(trt_dtype, "name", None) or str(trt_dtype).rsplit(".", 1)[-1]
    if name.upper() not in NUMPY_DTYPES:
        raise BackendError(f"an engine tensor has TensorRT type {name}, which has no numpy type; rebuild the "
                           f"engine with fp32/fp16 I/O (alage-edge convert keeps I/O fp32)")
    return np.dtype(NUMPY_DTYPES[name.upper()])


def pad_batch(x: np.ndarray, min_batch: int) -> np.ndarray:
    """A batch shorter than a static (DLA) profile's minimum, padded with zeros; outputs are sliced back."""
    if len(x) >= min_batch:
        return x
    return np.concatenate([x, np.zeros((min_batch - len(x),) + x.shape[1:], x.dtype)])
