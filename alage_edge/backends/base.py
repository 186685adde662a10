"""The backend interface: load / infer / close, after Polygraphy's runners.

A backend runs the bundle's streams on one engine library. The base class owns
the lifecycle, input checks, the order of the streams and the timing; a
backend fills in ``_load_stream`` and ``_run`` (and ``_close``) in its own
small module, importing its SDK only inside ``_load_stream``.

Streams: ``split`` runs global.onnx then attention.onnx (the global stream
can be quantised or sit on a DLA core on its own); ``fused`` runs alnet.onnx.
"""
from __future__ import annotations

import importlib.util
import threading
import time
from typing import Dict, Iterable, Iterator, List, Optional, Tuple

import numpy as np

from ..manifest import Artifact, BundleError, Manifest

OUTPUTS = ("global_logits", "boxes", "local_logits", "fused_logits")


class BackendError(RuntimeError):
    """A backend cannot run here or cannot run this artifact; the message says what to do."""


class InputError(ValueError):
    """``infer`` got an array of the wrong shape, dtype or with NaN/inf."""


class Backend:
    name = "base"
    formats: Tuple[str, ...] = ()  # artifact formats this backend runs
    modules: Tuple[str, ...] = ()  # Python modules it needs
    extra = ""  # pip extra that installs them
    thread_safe = True  # False: calls are serialised with a lock

    def __init__(self, manifest: Manifest, artifact: Artifact, device: Optional[str] = None,
                 graph: Optional[str] = None, precision: Optional[str] = None, **options):
        self.manifest, self.artifact, self.device, self.options = manifest, artifact, device, options
        self.precision = precision or artifact.precision
        self.graph = graph or self.default_graph(artifact)
        if self.graph not in ("split", "fused"):
            raise ValueError(f"graph must be 'split' or 'fused', got {self.graph!r}")
        self._handles: Dict[str, object] = {}  # stream -> session / compiled model / engine
        self.loaded = False
        self.last_latency_ms: Optional[float] = None
        self.max_batch: Optional[int] = None
        self._lock = threading.Lock()

    # -- discovery -------------------------------------------------------------------------------
    @classmethod
    def is_available(cls) -> Tuple[bool, str]:
        """Whether the SDK is installed (find_spec only: nothing is imported)."""
        for mod in cls.modules:
            try:
                found = importlib.util.find_spec(mod) is not None
            except (ImportError, ValueError):
                found = False
            if not found:
                return False, f"{mod} is not installed (pip install 'alage-edge[{cls.extra}]')"
        return True, "installed"

    @staticmethod
    def default_graph(artifact: Artifact) -> str:
        return "split" if "attention" in artifact.files or "fused" not in artifact.files else "fused"

    def streams(self) -> List[str]:
        if self.graph == "fused":
            return ["fused"]
        return ["global", "attention"] if self.manifest.attention else ["global"]

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> "Backend":
        if self.loaded:
            return self
        ok, why = self.is_available()
        if not ok:
            raise BackendError(f"{self.name} backend unavailable: {why}")
        self._load_artifact()
        self.loaded = True
        return self

    def _load_artifact(self) -> None:
        """Verify the stream files against the manifest, then load each."""
        missing = [s for s in self.streams() if s not in self.artifact.files]
        if missing:
            raise BundleError(f"{self.manifest.root}: artifact {self.artifact.key} has no {missing} stream "
                              f"(has {sorted(self.artifact.files)})")
        self.manifest.verify([self.artifact.files[s] for s in self.streams()]
                             + list(self.artifact.info.get("extra_files", [])))
        for s in self.streams():
            self._handles[s] = self._load_stream(s, self.manifest.path(self.artifact.files[s]))

    def close(self) -> None:
        if self.loaded:
            self._close()
            self.loaded = False

    def __enter__(self) -> "Backend":
        return self.load()

    def __exit__(self, *exc) -> None:
        self.close()

    # -- inference -------------------------------------------------------------------------------
    def check(self, image: np.ndarray) -> np.ndarray:
        s = self.manifest.preprocess.size
        if not isinstance(image, np.ndarray):
            raise InputError(f"infer expects a numpy array, got {type(image).__name__}")
        if image.ndim != 4 or image.shape[1:] != (3, s, s):
            raise InputError(f"infer expects float32 (B, 3, {s}, {s}), got shape {image.shape}")
        if image.shape[0] == 0:
            raise InputError("infer got an empty batch")
        if self.max_batch and image.shape[0] > self.max_batch:
            raise InputError(f"batch {image.shape[0]} exceeds this engine's maximum of {self.max_batch}")
        if image.dtype != np.float32:
            raise InputError(f"infer expects float32, got {image.dtype}")
        if not np.isfinite(image).all():
            raise InputError("infer input contains NaN or infinity")
        return np.ascontiguousarray(image)

    def infer(self, image: np.ndarray, check: bool = True) -> Dict[str, np.ndarray]:
        """Preprocessed (B, 3, S, S) float32 -> {global_logits, fused_logits[, boxes, local_logits]}."""
        if not self.loaded:
            self.load()
        if check:
            image = self.check(image)
        t = time.perf_counter()
        if self.thread_safe:
            out = self._forward(image)
        else:
            with self._lock:
                out = self._forward(image)
        self.last_latency_ms = (time.perf_counter() - t) * 1e3
        return out

    def infer_many(self, batches: Iterable[np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        """Several batches; backends with async queues override this for throughput."""
        for b in batches:
            yield self.infer(b)

    def _forward(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        if self.graph == "fused":
            out = self._run("fused", {"image": image})
        else:
            out = self._run("global", {"image": image})
            if self.manifest.attention:
                out.update(self._run("attention", {"image": image, "g": out["g"]}))
        return finish(out)

    # -- hooks -----------------------------------------------------------------------------------
    def _load_stream(self, stream: str, path) -> object:
        """Load one stream's file; the return value is kept in ``self._handles[stream]``."""
        raise NotImplementedError

    def _run(self, stream: str, feeds: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
        raise NotImplementedError

    def _close(self) -> None:
        self._handles.clear()

    def describe(self) -> str:
        return f"{self.name} {self.precision} ({self.graph} graph)"


def finish(out: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Float32 outputs; a global-only model's fused logits are its global logits."""
    out = {k: np.asarray(v, dtype=np.float32) for k, v in out.items() if k in OUTPUTS}
    out.setdefault("fused_logits", out["global_logits"])
    return out
