"""One TensorRT engine with its execution context, CUDA stream and buffer slots.

Buffers are allocated once at the profile's maximum batch: device memory per
I/O tensor, page-locked host arrays for what crosses to the host. Several
slots let batch i+1 be copied in while batch i still runs.

NOT EXECUTED on this project's development machines or CI: TensorRT cannot be
installed there. Written against the TensorRT 8.5/10/11 Python API.
"""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from .base import BackendError


class Engine:
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
