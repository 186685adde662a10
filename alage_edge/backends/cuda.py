"""Device buffers, page-locked host buffers, streams and events for the TensorRT backend.

One small interface, two implementations: NVIDIA's ``cuda-python``
(``cuda.bindings.runtime``; ``cuda.cudart`` on older 12.x) and pycuda where
cuda-python cannot talk to the driver. Every call's error code is checked and
every error names the CUDA error (``cudaErrorInsufficientDriver`` is not "no
GPU": cuda-bindings 13 needs a CUDA 13 driver, which JetPack 6 and CUDA 12
hosts lack; install ``alage-edge[tensorrt-cu12]`` there). Work runs inside
``with cuda.activate():``, which makes the chosen device (cuda-python) or its
retained primary context (pycuda) current on the calling thread.
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
from typing import Any, Tuple

import numpy as np

NO_DEVICE = 100  # cudaErrorNoDevice: a working driver that sees no GPU


class CudaError(RuntimeError):
    """A CUDA call failed; ``.name`` is the CUDA error name (e.g. cudaErrorInsufficientDriver)."""

    def __init__(self, message: str, name: str = ""):
        super().__init__(message)
        self.name = name


def _cudart():
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    return None


def _bindings_version() -> str:
    for name in ("cuda.bindings", "cuda"):
        try:
            return str(getattr(importlib.import_module(name), "__version__", "?"))
        except ImportError:
            continue
    return "?"


class CudaPython:
    """cuda-python runtime API: calls return ``(err, *values)``."""

    name = "cuda-python"

    def __init__(self, rt=None, device: int = 0):
        self.rt = rt or _cudart()
        if self.rt is None:
            raise ImportError("cuda-python is not installed (pip install 'alage-edge[tensorrt-cu12]' or "
                              "'[tensorrt-cu13]', matching the driver's CUDA major)")
        self.device = int(device)

    def _ok(self, result, what: str):
        err, *rest = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            name = self.error_name(err)
            hint = ""
            if name == "cudaErrorInsufficientDriver":
                hint = (f" (cuda-python {_bindings_version()} needs a newer driver than this one: install the "
                        f"cuda-python of the driver's CUDA major, e.g. pip install 'alage-edge[tensorrt-cu12]')")
            raise CudaError(f"{what} failed: {name}{hint}", name)
        return rest[0] if len(rest) == 1 else tuple(rest)

    def error_name(self, err) -> str:
        try:
            res = self.rt.cudaGetErrorName(err)
            name = res[1] if isinstance(res, tuple) else res
            return name.decode() if isinstance(name, bytes) else str(name)
        except Exception:  # noqa: BLE001 - naming an error must not raise another
            return f"CUDA error {int(err)}"

    def device_count(self) -> int:
        """GPUs visible; 0 only for cudaErrorNoDevice. Any other error (old driver ...) raises CudaError."""
        res = self.rt.cudaGetDeviceCount()
        if int(res[0]) == NO_DEVICE:
            return 0
        return int(self._ok(res, "cudaGetDeviceCount"))

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        props = self._ok(self.rt.cudaGetDeviceProperties(device), "cudaGetDeviceProperties")
        name = props.name.decode(errors="replace") if isinstance(props.name, bytes) else str(props.name)
        return name.strip("\x00 "), f"{props.major}.{props.minor}"

    @contextlib.contextmanager
    def activate(self):
        self._ok(self.rt.cudaSetDevice(self.device), f"cudaSetDevice({self.device})")
        yield

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
        """A non-blocking stream: it does not serialise with the legacy default stream (torch, others)."""
        return self._ok(self.rt.cudaStreamCreateWithFlags(self.rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

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

    def sync(self, stream) -> None:
        self._ok(self.rt.cudaStreamSynchronize(stream), "cudaStreamSynchronize")

    def event(self) -> Any:
        return self._ok(self.rt.cudaEventCreateWithFlags(self.rt.cudaEventDisableTiming), "cudaEventCreateWithFlags")

    def destroy_event(self, event) -> None:
        self._ok(self.rt.cudaEventDestroy(event), "cudaEventDestroy")

    def record(self, event, stream) -> None:
        self._ok(self.rt.cudaEventRecord(event, stream), "cudaEventRecord")

    def wait(self, stream, event) -> None:
        self._ok(self.rt.cudaStreamWaitEvent(stream, event, 0), "cudaStreamWaitEvent")

    def event_sync(self, event) -> None:
        self._ok(self.rt.cudaEventSynchronize(event), "cudaEventSynchronize")


class PyCuda:
    """pycuda, with the device's retained primary context pushed around work (no ``pycuda.autoinit``,
    which binds a context to the importing thread only)."""

    name = "pycuda"

    def __init__(self, device: int = 0):
        import pycuda.driver as drv

        drv.init()
        self.drv, self.device = drv, int(device)
        self._ctx = None
        self._allocs = {}

    def device_count(self) -> int:
        return self.drv.Device.count()

    def device_properties(self, device: int = 0) -> Tuple[str, str]:
        d = self.drv.Device(device)
        major, minor = d.compute_capability()
        return d.name(), f"{major}.{minor}"

    @contextlib.contextmanager
    def activate(self):
        if self._ctx is None:
            self._ctx = self.drv.Device(self.device).retain_primary_context()
        self._ctx.push()
        try:
            yield
        finally:
            self.drv.Context.pop()

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
        base = getattr(handle, "base", None)
        if hasattr(base, "free"):
            base.free()

    def stream(self):
        return self.drv.Stream(flags=1)  # non-blocking

    def stream_handle(self, stream) -> int:
        return int(stream.handle)

    def destroy_stream(self, stream) -> None:
        pass  # freed with the Python object

    def h2d(self, dst: int, src: np.ndarray, stream) -> None:
        self.drv.memcpy_htod_async(dst, src, stream)

    def d2h(self, dst: np.ndarray, src: int, stream) -> None:
        self.drv.memcpy_dtoh_async(dst, src, stream)

    def sync(self, stream) -> None:
        stream.synchronize()

    def event(self):
        return self.drv.Event()

    def destroy_event(self, event) -> None:
        pass  # freed with the Python object

    def record(self, event, stream) -> None:
        event.record(stream)

    def wait(self, stream, event) -> None:
        stream.wait_for_event(event)

    def event_sync(self, event) -> None:
        event.synchronize()


def cuda_api(device: int = 0):
    """cuda-python if it imports and can talk to the driver, else pycuda; an error naming both otherwise."""
    problem = ""
    try:
        api = CudaPython(device=device)
        api.device_count()  # raises CudaError if the driver is too old for these bindings
        return api
    except ImportError as e:
        problem = str(e)
    except CudaError as e:
        problem = f"cuda-python cannot use the driver: {e}"
    try:
        return PyCuda(device=device)
    except ImportError:
        raise ImportError(f"{problem}; pycuda is not installed either") from None
    except Exception as e:  # pycuda's own driver errors
        raise CudaError(f"{problem}; pycuda: {type(e).__name__}: {e}") from e
