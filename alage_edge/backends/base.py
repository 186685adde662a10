"""The runner base, after Polygraphy's ``BaseRunner``: backends only fill in hooks.

The base owns the public lifecycle (``load``, ``infer``, ``infer_many``,
``close``, the context manager), input checks, locking, timing, splitting a
batch over the engine's maximum, and the order of the streams:
``split`` runs global then attention (``g`` handed over as the first stream
returned it), ``fused`` runs alnet.onnx. A backend declares what it runs
(``runs``) and why it cannot run an artifact here (``can_run``), and fills in:

    _load(stream, path) -> handle     one file (a stream's graph or engine, or the checkpoint)
    _run(stream, feeds) -> outputs    one stream; values may stay on the device until ``_host``
    _run_each(stream, [feeds]) -> [outputs]   optional: one stream over several batches (async queues)
    _run_many(images) -> [outputs]    optional: the whole graph over several batches (pipelines)
    _host(value) -> np.ndarray        optional: device value -> numpy
    _close()                          optional: release what ``_load`` made

SDKs are imported inside the hooks, never at module import.
"""
from __future__ import annotations

import importlib.util
import threading
from typing import Dict, Iterable, Iterator, List, NamedTuple, Optional, Tuple

import numpy as np

from ..graphs import FUSED, GRAPHS, feeds_for, graph_for
from ..graphs import streams as graph_streams
from ..manifest import Artifact, BundleError, Manifest
from ..preprocess import BOUNDS_TOL

OUTPUTS = ("global_logits", "boxes", "local_logits", "fused_logits")
INFLIGHT = 4  # batches handed to ``_run_many`` at once by ``infer_many`` (the lock is held per group)


class BackendError(RuntimeError):
    """A backend cannot run here or cannot run this artifact; the message says what to do."""


class InputError(ValueError):
    """``infer`` got an array of the wrong shape, dtype or with NaN/inf."""


class Source(NamedTuple):
    """An artifact a backend runs: format, the artifact's precision, variant (None: any)."""

    format: str
    precision: str
    variant: Optional[str] = None


class Backend:
    name = "base"
    modules: Tuple[str, ...] = ()  # Python modules it needs
    extra = ""  # pip extra that installs them
    runs: Dict[str, List[Source]] = {}  # run precision -> artifacts, in order of preference
    preferred_graph = "split"  # taken when the artifact has its files, else the other one
    thread_safe = True  # False: calls are serialised with a lock

    def __init__(self, manifest: Manifest, artifact: Artifact, device: Optional[str] = None,
                 precision: Optional[str] = None, graph: Optional[str] = None, why: Optional[Dict[str, str]] = None,
                 **options):
        self.manifest, self.artifact, self.device, self.options = manifest, artifact, device, options
        self.precision = precision or artifact.precision
        self.why = why or {}
        self.graph = graph or self._default_graph()
        if self.graph not in GRAPHS:
            raise ValueError(f"graph must be 'split' or 'fused', got {self.graph!r}")
        self.max_batch: Optional[int] = None  # set by ``_load`` where the engine has one
        self.loaded = False
        self._handles: Dict[str, object] = {}
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

    @classmethod
    def can_run(cls, manifest: Manifest, artifact: Artifact, device: Optional[str] = None) -> Optional[str]:
        """None if this artifact can run here on ``device``; else why not (no GPU, foreign engine ...)."""
        return None

    def _default_graph(self) -> str:
        files = self.artifact.files
        split = self._plan("split")
        available = [g for g, ok in (("split", all(s in files for s in split)), (FUSED, FUSED in files)) if ok]
        return graph_for(self.precision, self.preferred_graph, available)

    def streams(self) -> List[str]:
        return self._plan(self.graph)

    def _plan(self, graph: str) -> List[str]:
        try:
            return graph_streams(self.manifest.io, graph)
        except ValueError as e:  # streams that read what no stream writes
            raise BundleError(f"{self.manifest.root}/manifest.json: field 'io': {e}") from None

    def files(self) -> Dict[str, str]:
        """What ``_load`` gets: each stream's file, or the one checkpoint that holds them all."""
        if "checkpoint" in self.artifact.files:
            return {"checkpoint": self.artifact.files["checkpoint"]}
        missing = [s for s in self.streams() if s not in self.artifact.files]
        if missing:
            raise BundleError(f"{self.manifest.root}: artifact {self.artifact.key} has no {missing} stream "
                              f"(has {sorted(self.artifact.files)})")
        return {s: self.artifact.files[s] for s in self.streams()}

    # -- lifecycle -------------------------------------------------------------------------------
    def load(self) -> "Backend":
        if self.loaded:
            return self
        ok, why = self.is_available()
        if not ok:
            raise BackendError(f"{self.name} backend unavailable: {why}")
        files = self.files()
        self.manifest.verify(list(files.values()) + list(self.artifact.info.get("extra_files", [])))
        for key, rel in files.items():
            self._handles[key] = self._load(key, self.manifest.path(rel))
            sig = self._signature(key, self._handles[key])
            if sig is not None:
                check_io(self.manifest, key, sig, self.manifest.path(rel))
        self.loaded = True
        return self

    def close(self) -> None:
        if self.loaded:
            with self._lock:
                self._close()
                self._handles.clear()
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
        if image.dtype != np.float32:
            raise InputError(f"infer expects float32, got {image.dtype}")
        # one pass for the range per channel; NaN and infinities show in it (min and max propagate NaN):
        # 0.33 ms for a batch of 8 at 224 px here, where a separate isfinite pass added 0.23 ms
        flat = image.reshape(len(image), image.shape[1], -1)
        got_lo, got_hi = flat.min(axis=(0, 2)), flat.max(axis=(0, 2))
        if not (np.isfinite(got_lo).all() and np.isfinite(got_hi).all()):
            bad = "NaN" if np.isnan(got_lo).any() or np.isnan(got_hi).any() else "infinity"
            raise InputError(f"infer input contains {bad}; expected a preprocessed face ({self._range_text()})")
        lo, hi = self.manifest.preprocess.bounds()
        out = (got_lo < lo - BOUNDS_TOL) | (got_hi > hi + BOUNDS_TOL)
        if out.any():
            c = int(np.argmax(out))
            raise InputError(f"infer input channel {c} has values in [{got_lo[c]:.4g}, {got_hi[c]:.4g}], outside the "
                             f"preprocessed range ({self._range_text()})")
        return np.ascontiguousarray(image)

    def _range_text(self) -> str:
        lo, hi = self.manifest.preprocess.bounds()
        rng = ", ".join(f"[{a:.3f}, {b:.3f}]" for a, b in zip(lo, hi))
        return (f"each channel within {rng}: pixels in [0, 1] minus the bundle's mean, divided by its std; "
                f"AgeEstimator.predict or est.spec.apply make such tensors")

    def infer(self, image: np.ndarray, check: bool = True) -> Dict[str, np.ndarray]:
        """Preprocessed (B, 3, S, S) float32 -> {global_logits, fused_logits[, boxes, local_logits]}.

        A batch over the engine's maximum is split and the outputs concatenated."""
        self.load()
        if check:
            image = self.check(image)
        parts = self._locked_run(self._chunks(image))
        return parts[0] if len(parts) == 1 else {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}

    def infer_many(self, batches: Iterable[np.ndarray], check: bool = True) -> Iterator[Dict[str, np.ndarray]]:
        """One output dict per batch, for throughput (backends may queue or pipeline a few batches).
        ``check=False`` for batches the shared preprocessing made (in range by construction).

        The lock is taken per group of at most INFLIGHT batches and released before yielding."""
        self.load()
        group: List[np.ndarray] = []
        for b in batches:
            b = self.check(b) if check else np.ascontiguousarray(b)
            if self.max_batch and len(b) > self.max_batch:
                yield from self._flush(group)
                group = []
                yield self.infer(b, check=False)
                continue
            group.append(b)
            if len(group) == INFLIGHT:
                yield from self._flush(group)
                group = []
        yield from self._flush(group)

    def _flush(self, group: List[np.ndarray]) -> Iterator[Dict[str, np.ndarray]]:
        outs = self._locked_run(group) if group else []
        yield from outs

    def _chunks(self, image: np.ndarray) -> List[np.ndarray]:
        mb = self.max_batch
        return [image] if not mb or len(image) <= mb else [image[i:i + mb] for i in range(0, len(image), mb)]

    def _locked_run(self, images: List[np.ndarray]) -> List[Dict[str, np.ndarray]]:
        if self.thread_safe:
            return [finish(self._host_all(o)) for o in self._run_many(images)]
        with self._lock:
            return [finish(self._host_all(o)) for o in self._run_many(images)]

    def infer_stream(self, stream: str, feeds: Dict[str, np.ndarray], check: bool = True) -> Dict[str, np.ndarray]:
        """One stream of a split graph on host arrays (a Triton model per stream), outputs on the host."""
        if stream not in self._handles:
            raise BackendError(f"{self.name}: stream {stream!r} is not loaded (loaded: {sorted(self._handles)})")
        if check and "image" in feeds:
            feeds = {**feeds, "image": self.check(feeds["image"])}
        if self.thread_safe:
            return {k: self._host(v) for k, v in self._run(stream, feeds).items()}
        with self._lock:
            return {k: self._host(v) for k, v in self._run(stream, feeds).items()}

    def _host_all(self, out: dict) -> Dict[str, np.ndarray]:
        return {k: self._host(v) for k, v in out.items() if k in OUTPUTS}

    # -- hooks -----------------------------------------------------------------------------------
    def _load(self, stream: str, path) -> object:
        raise NotImplementedError

    def _run(self, stream: str, feeds: Dict[str, object]) -> Dict[str, object]:
        raise NotImplementedError

    def _run_each(self, stream: str, feeds: List[Dict[str, object]]) -> List[Dict[str, object]]:
        return [self._run(stream, f) for f in feeds]

    def _run_many(self, images: List[np.ndarray]) -> List[dict]:
        """Batches through the streams of this graph (the graph plan's order), stream by stream; each
        stream's inputs are the image or an earlier stream's outputs (a backend may return its device copy
        of the image as "image" for the streams after)."""
        outs: List[dict] = [{} for _ in images]
        for stream in self.streams():
            done = self._run_each(stream, [feeds_for(self.manifest.io, stream, x, o) for x, o in zip(images, outs)])
            for o, d in zip(outs, done):
                o.update(d)
        return outs

    def _host(self, value) -> np.ndarray:
        return np.asarray(value)

    def _signature(self, stream: str, handle) -> Optional[Dict[str, Dict[str, list]]]:
        """{"inputs": {name: shape}, "outputs": {...}} of a loaded graph (-1 where dynamic), for the
        check against the manifest; None where the backend cannot say."""
        return None

    def _close(self) -> None:
        pass

    def _profile(self) -> Optional[List[Dict[str, object]]]:
        """[{"op": type, "kernel": what ran it, "ms": time per inference}] of the inferences since loading
        with ``profile=True``; None where the backend cannot say."""
        return None

    def profile(self, top: int = 10) -> Optional[List[Dict[str, object]]]:
        """The ``top`` operation types by time per inference (load with ``profile=True`` and run first), each
        with its share of the total; None where the backend has no profiler."""
        rows = self._profile()
        if rows is None:
            return None
        agg: Dict[Tuple[str, str], float] = {}
        for r in rows:
            agg[(str(r["op"]), str(r["kernel"]))] = agg.get((str(r["op"]), str(r["kernel"])), 0.0) + float(r["ms"])
        total = sum(agg.values()) or 1.0
        ranked = sorted(agg.items(), key=lambda kv: -kv[1])[:top]
        return [{"op": op, "kernel": k, "ms": ms, "share": ms / total} for (op, k), ms in ranked]

    def describe(self) -> str:
        return f"{self.name} {self.precision} ({self.graph} graph)"


def check_io(manifest: Manifest, stream: str, sig: Dict[str, Dict[str, list]], path) -> None:
    """Refuse a graph whose inputs/outputs differ from what the manifest records for its stream."""
    want = manifest.io.get(stream)
    if want is None:
        return
    for side in ("inputs", "outputs"):
        w, g = want[side], sig[side]
        if set(w) != set(g):
            raise BundleError(f"{path}: {side} {sorted(g)} do not match the manifest's {stream} stream "
                              f"{sorted(w)}; the file is not this bundle's {stream} graph")
        for name, shape in w.items():
            got = list(g[name])
            if len(got) != len(shape) or any(a != b and -1 not in (a, b) for a, b in zip(shape[1:], got[1:])):
                raise BundleError(f"{path}: {name} has shape {got}, the manifest says {shape}")


def finish(out: Dict[str, np.ndarray]) -> Dict[str, np.ndarray]:
    """Float32 outputs; a global-only model's fused logits are its global logits."""
    out = {k: np.asarray(v, dtype=np.float32) for k, v in out.items() if k in OUTPUTS}
    out.setdefault("fused_logits", out["global_logits"])
    return out
