"""Device buffers, page-locked host buffers, streams and events for the TensorRT backend.

One small interface, two implementations: NVIDIA's ``cuda-python``
(``cuda.bindings.runtime`` on 12.x/13.x, ``cuda.cudart`` on older 12.x) and
pycuda where only that imports. Every call's error code is checked.
"""
from __future__ import annotations

import ctypes
import importlib
from typing import Any, Tuple

import numpy as np


class CudaError(RuntimeError):
    pass


def _cudart():
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


class CudaPython:
    """cuda-python runtime API: calls return ``(err, *values)``."""

    name = "cuda-python"

    def __init__(self, rt=None):
        self.rt = rt or _cudart()
        if self.rt is None:
            raise ImportError("cuda-python is not installed (pip install 'alage-edge[tensorrt]')")

    def _ok(self, result, what: str):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            name = self.rt.cudaGetErrorName(err)[1] if hasattr(self.rt, "cudaGetErrorName") else err
            raise CudaError(f"{what} failed: {name}")
        return rest[0] if len(rest) == 1 else tuple(rest)

    def device_count(self) -> int:
        try:
            return int(self._ok(self.rt.cudaGetDeviceCount(), "cudaGetDeviceCount"))
        except CudaError:
            return 0

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name.decode() if isinstance(props.name, bytes) else str(props.name)
        return name.strip("\x00 "), f"{props.major}.{props.minor}"

    def malloc(self, nbytes: int) -> int:
        return int(self._ok(self.rt.cudaMalloc(max(int(nbytes), 1)), "cudaMalloc"))

    def free(self, ptr: int) -> None:
        self._ok(self.rt.cudaFree(ptr), "cudaFree")

    def host_empty(self, shape, dtype) -> Tuple[np.ndarray, Any]:
        """A page-locked numpy array (and the handle to free it)."""
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape)) * dtype.itemsize
        ptr = int(self._ok(self.rt.cudaMallocHost(max(nbytes, 1)), "cudaMallocHost"))
        buf = (ctypes.c_byte * max(nbytes, 1)).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype, count=int(np.prod(shape))).reshape(shape), ptr

    def host_free(self, handle) -> None:
        self._ok(self.rt.cudaFreeHost(handle), "cudaFreeHost")

    def stream(self) -> Any:
        return self._ok(self.rt.cudaStreamCreate(), "cudaStreamCreate")

    def stream_handle(self, stream) -> int:
        return int(stream)

    def destroy_stream(self, stream) -> None:
        self._ok(self.rt.cudaStreamDestroy(stream), "cudaStreamDestroy")

    def h2d(self, dst: int, src: np.ndarray, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src.ctypes.data, src.nbytes, kind, stream), "cudaMemcpyAsync H2D")

    def d2h(self, dst: np.ndarray, src: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._ok(self.rt.cudaMemcpyAsync(dst.ctypes.data, src, dst.nbytes, kind, stream), "cudaMemcpyAsync D2H")

    def d2d(self, dst: int, src: int, nbytes: int, stream) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToDevice
        self._ok(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, stream), "cudaMemcpyAsync D2D")

    def sync(self, stream) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def event(self) -> Any:
        return self._ok(self.rt.cudaEventCreate(), "cudaEventCreate")

    def record(self, event, stream) -> None:
        self._ok(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def wait(self, stream, event) -> None:
        self._ok(self.rt.cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent")

    def event_sync(self, event) -> None:
        self._ok(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")


class PyCuda:
    """pycuda, for systems where only pycuda imports."""

    name = "pycuda"

    def __init__(self):
        import pycuda.autoinit  # noqa: F401  (creates the context)
        import pycuda.driver as drv

        self.drv = drv
        self._allocs = {}

    def device_count(self) -> int:
        return self.drv.Device.count()

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        d = self.drv.Device(device)
        major, minor = d.compute_capability()
        return d.name(), f"{major}.{minor}"

    def malloc(self, nbytes: int) -> int:
        alloc = self.drv.mem_alloc(max(int(nbytes), 1))
        self._allocs[int(alloc)] = alloc
        return int(alloc)

    def free(self, ptr: int) -> None:
        self._allocs.pop(int(ptr)).free()

    def host_empty(self, shape, dtype):
        arr = self.drv.pagelocked_empty(shape, dtype)
        return arr, arr

    def host_free(self, handle) -> None:
        handle.base.free() if hasattr(handle.base, "free") else None

    def stream(self):
        return self.drv.Stream()

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream) -> None:
        pass

    def h2d(self, dst: int, src: np.ndarray, stream) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def d2h(self, dst: np.ndarray, src: int, stream) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def d2d(self, dst: int, src: int, nbytes: int, stream) -> None:
        self.drv.memcpy_dtod_async(dst, src, nbytes, stream)

    def sync(self, stream) -> None:
        stream.synchronize()

    def event(self):
        return self.drv.Event()

    def record(self, event, stream) -> None:
        event.record(stream)

    def wait(self, stream, event) -> None:
        stream.wait_for_event(event)

    def event_sync(self, event) -> None:
        event.synchronize()


def cuda_api():
    """cuda-python if it imports, else pycuda; ImportError naming both otherwise."""
    try:
        return CudaPython()
    except ImportError:
        pass
    try:
        return PyCuda()
    except ImportError as e:
        raise ImportError("neither cuda-python nor pycuda is installed: pip install 'alage-edge[tensorrt]' "
                          "(cuda-python)") from e
