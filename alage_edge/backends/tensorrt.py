"""TensorRT 8.5/10/11: one engine per stream, name-based tensors, ``execute_async_v3``.

In split mode the global stream's ``image`` and ``g`` stay on the device and
are bound directly as the attention stream's inputs. Each engine has its own
non-blocking CUDA stream, so the global stream (possibly on a DLA core) of
batch i+1 overlaps the attention stream of batch i. A batch shorter than a
static profile (DLA) is padded and its outputs sliced; a longer one is split
by the base class (``max_batch``).

NOT EXECUTED on this project's development machines or CI: TensorRT cannot be
installed there. Written against the TensorRT 8.5/10/11 Python API and cuda-python.
"""
from __future__ import annotations

import json
from typing import Dict, List, Optional

import numpy as np

from ..manifest import first_line
from .base import Backend, BackendError, Source
from .engine_key import mismatches, rebuild_hint
from .trt_engine import Engine, pad_batch


class TensorRTBackend(Backend):
    name = "tensorrt"
    modules = ("tensorrt",)
    extra = "tensorrt"
    runs = {p: [Source("tensorrt", p)] for p in ("fp32", "fp16", "int8")}
    thread_safe = False  # one execution context per engine: calls are serialised

    @classmethod
    def can_run(cls, manifest, artifact, device: Optional[str] = None) -> Optional[str]:
        """TensorRT imports, the CUDA wrapper sees the GPU, and every engine was built for it."""
        try:
            import tensorrt as trt

            from .cuda import cuda_api

            if int(str(trt.__version__).split(".")[0]) < 10:
                return (f"TensorRT {trt.__version__} is not supported (JetPack 5's 8.5: system Python 3.8, "
                        f"numpy < 1.24); alage-edge supports TensorRT 10.x and 11.x")

            cuda = cuda_api(_index(device))
            if cuda.device_count() <= _index(device):
                return f"no CUDA GPU {_index(device)} visible ({cuda.device_count()} found by {cuda.name})"
            gpu, cc = cuda.device_properties(_index(device))
        except Exception as e:  # ImportError, missing driver ...
            return f"not usable here ({type(e).__name__}: {first_line(e, 160)})"
        for stream, key in _keys(manifest, artifact).items():
            onnx_sha = manifest.data["files"].get(manifest.io[stream]["file"], {}).get("sha256")
            bad = mismatches(key, trt.__version__, gpu, cc, onnx_sha)
            if bad:
                return (f"engine for {stream} does not match this system ({'; '.join(bad)}); "
                        + rebuild_hint(str(manifest.root), artifact.precision, key.get("dla_core")))
        return None

    def _load(self, stream: str, path):
        import tensorrt as trt

        from .cuda import cuda_api

        if not hasattr(self, "cuda"):
            problem = self.can_run(self.manifest, self.artifact, self.device)
            if problem:
                raise BackendError(f"{self.manifest.root}: TensorRT cannot run {self.artifact.key}: {problem}")
            self.cuda = cuda_api(_index(self.device))
            self.min_batch = 1
        with self.cuda.activate():  # every CUDA call on this backend's device: the runtime, weights, context
            return self._load_engine(trt, stream, path)

    def _load_engine(self, trt, stream: str, path):
        if not hasattr(self, "runtime"):
            self.runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
        key = _keys(self.manifest, self.artifact)[stream]
        if key.get("dla_core") is not None:
            self.runtime.DLA_core = int(key["dla_core"])
        engine = self.runtime.deserialize_cuda_engine(path.read_bytes())
        if engine is None:
            raise BackendError(f"{path}: TensorRT could not deserialize the engine; "
                               + rebuild_hint(str(self.manifest.root), self.precision, key.get("dla_core")))
        eng = Engine(trt, self.cuda, engine, stream, external=("image", "g") if stream == "attention" else ())
        self.max_batch = min(self.max_batch or eng.max_batch, eng.max_batch)
        self.min_batch = max(self.min_batch, eng.min_batch)
        if stream == "attention":
            glob = self._handles["global"]
            for n in ("image", "g"):
                if glob.dtypes[n] != eng.dtypes[n]:
                    raise BackendError(f"engines disagree on the dtype of {n!r} ({glob.dtypes[n]} vs "
                                       f"{eng.dtypes[n]}); rebuild both with alage-edge convert")
        return eng

    def _run(self, stream: str, feeds):
        """One stream on host feeds (``infer_stream``, a Triton model per stream; the fused graph): on this
        backend's device, padded to the engine's minimum batch (a static DLA profile), sliced back."""
        eng = self._handles[stream]
        n = len(next(iter(feeds.values())))
        with self.cuda.activate():
            eng.enqueue(0, {k: pad_batch(v, eng.min_batch) for k, v in feeds.items()})
            eng.copy_out(0, eng.outputs)
            out = eng.collect(0)
        return {k: v[:n] for k, v in out.items()}

    def _run_many(self, images: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        """Padded to the profiles' minimum batch, run on this thread's device, sliced back."""
        sizes = [len(x) for x in images]
        with self.cuda.activate():
            outs = self._pipeline([pad_batch(x, self.min_batch) for x in images])
        return [{k: v[:n] for k, v in o.items()} for o, n in zip(outs, sizes)]

    def _pipeline(self, images: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        """Two stages on two CUDA streams: the global stream of batch i runs while the
        attention stream of batch i-1 does; ``g`` and the image never leave the device."""
        if self.graph == "fused" or not self.manifest.attention:
            return [self._run(self.streams()[0], {"image": img}) for img in images]
        glob, att = self._handles["global"], self._handles["attention"]
        nslots, prev, outs = len(glob.slots), None, []
        for i, img in enumerate(images):
            slot = i % nslots
            glob.enqueue(slot, {"image": img})
            glob.copy_out(slot, ["global_logits"])
            self.cuda.wait(att.stream, glob.slots[slot]["launched"])  # attention(i) waits for global(i) only
            dev = glob.slots[slot]["dev"]
            att.enqueue(slot, {}, device_feeds={"image": dev["image"], "g": dev["g"]}, batch=img.shape[0])
            att.copy_out(slot, att.outputs)
            if prev is not None:
                outs.append(self._collect(prev))
            prev = slot
        if prev is not None:
            outs.append(self._collect(prev))
        return outs

    def _collect(self, slot: int) -> Dict[str, np.ndarray]:
        out = self._handles["global"].collect(slot)
        out.update(self._handles["attention"].collect(slot))
        return out

    def _close(self) -> None:
        with self.cuda.activate():
            for eng in self._handles.values():
                eng.close()


def _index(device: Optional[str]) -> int:
    """'cuda:1' / '1' / None -> 1 / 1 / 0."""
    tail = (device or "0").split(":")[-1]
    return int(tail) if tail.isdigit() else 0


def _keys(manifest, artifact) -> Dict[str, dict]:
    """Each engine's cache key: its sidecar JSON, else the copy in the manifest."""
    out = {}
    for stream, rel in artifact.files.items():
        side = manifest.path(rel + ".json")
        out[stream] = json.loads(side.read_text()) if side.is_file() else artifact.info["keys"][stream]
    return out
