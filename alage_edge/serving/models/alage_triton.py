"""Imported first by each model.py.

- Triton's Python stub embeds the interpreter without this project's environment (PYTHONPATH is
  ignored), so ``alage-edge serve`` hands it the client's import path in ALAGE_PYTHONPATH; it goes first,
  with its .pth files (an editable install is reached through one). Absent on a user's own Triton, where
  alage_edge is installed in the server's Python.
- ``tensor``: the stub of Triton 2.51 reads numpy 2 arrays as 0 bytes through ``pb_utils.Tensor(name,
  array)`` (its pybind11 predates numpy 2's dtype layout); DLPack hands the same memory over correctly
  with numpy 1 and 2.
"""
import os
import site
import sys

_paths = [p for p in os.environ.get("ALAGE_PYTHONPATH", "").split(os.pathsep) if p]
sys.path[:0] = [p for p in _paths if p not in sys.path]
for _p in _paths:
    if _p.endswith("site-packages"):
        site.addsitedir(_p)

import numpy as np  # noqa: E402
import triton_python_backend_utils as pb_utils  # noqa: E402

_CAPSULE = "PyCapsule_GetPointer called with incorrect name"
_default_hook = sys.unraisablehook


def _quiet_capsule(unraisable):
    """Drop exactly one harmless report. ``Tensor.from_dlpack`` of the 2.51 stub takes the array's DLPack
    capsule and renames it with a name numpy's capsule destructor does not know, so the destructor reports
    "incorrect name" and, rightly, frees nothing (the stub owns the tensor and frees it): a traceback in the
    server log per response, with no effect. Every other report goes to the default hook."""
    e = unraisable.exc_value
    if isinstance(e, ValueError) and str(e) == _CAPSULE:
        return
    _default_hook(unraisable)


sys.unraisablehook = _quiet_capsule


def tensor(name: str, array) -> "pb_utils.Tensor":
    a = np.array(array, order="C", copy=True)  # fresh: plain strides
    if a.size == 0:  # DLPack refuses an empty tensor; zero bytes is right for one
        return pb_utils.Tensor(name, a)
    return pb_utils.Tensor.from_dlpack(name, a)


def array(request, name: str):
    """A request's input as a numpy array of its own (None if the optional input is absent). Numbers come
    over DLPack (``as_numpy`` misreads them under numpy 2, as ``Tensor`` does). No TYPE_STRING: a request
    with one kills the 2.51 stub under numpy 2, so pictures travel as UINT8."""
    t = pb_utils.get_input_tensor_by_name(request, name)
    if t is None:
        return None
    return np.array(np.from_dlpack(t), copy=True)
