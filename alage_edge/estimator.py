"""``AgeEstimator``: bundle -> backend -> preprocessing and post-processing.

    est = AgeEstimator.load("bundle/", backend="auto")
    results = est.predict(["face.jpg", array, pil_image])
    out = est.infer(batch)  # float32 (B, 3, S, S) -> dict of numpy arrays
"""
from __future__ import annotations

import itertools
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Dict, Iterable, Iterator, List, Optional, Union

import numpy as np

from .ages import decode
from .backends import Backend, backend_class
from .images import ImageError, describe, load_image
from .manifest import Manifest
from .results import AgeResult, make_results


@dataclass
class ItemError:
    """An input that could not be read (``errors="skip"``)."""

    source: str
    error: str

    def to_dict(self) -> dict:
        return {"source": self.source, "error": self.error}


@dataclass
class NoFace:
    """A picture in which face detection found no face."""

    source: str

    def to_dict(self) -> dict:
        return {"source": self.source, "faces": 0}


class Results(list):
    """predict's results; ``.errors`` lists the inputs skipped with ``errors="skip"``, ``.no_face`` the
    pictures where face detection found none."""

    def __init__(self, *a):
        super().__init__(*a)
        self.errors: List[ItemError] = []
        self.no_face: List[NoFace] = []


def detector_name(detect_faces: Union[bool, str]) -> Optional[str]:
    """``detect_faces`` argument -> detector name (True: the default, hog) or None."""
    if detect_faces is True:
        return "hog"
    if detect_faces is False or detect_faces is None:
        return None
    from .faces import DETECTORS

    if detect_faces not in DETECTORS:
        raise ValueError(f"detect_faces must be True, False or one of {', '.join(DETECTORS)}, got {detect_faces!r}")
    return detect_faces


def as_inputs(images: Any) -> Iterable:
    """One input or many -> an iterable of inputs; refuses what is neither, naming what it got."""
    if isinstance(images, (str, bytes, bytearray, memoryview)) or hasattr(images, "__fspath__") \
            or hasattr(images, "getpixel"):
        return [images]
    if isinstance(images, np.ndarray):
        if images.ndim in (2, 3):
            return [images]
        if images.ndim == 4:
            return list(images)
        raise ImageError(f"<array {images.shape} {images.dtype}>: expected one image (HxW or HxWxC) or a stack "
                         f"(NxHxWxC), got {images.ndim} dimension(s)")
    if images is None or isinstance(images, (dict, int, float, bool)) or not isinstance(images, Iterable):
        raise ImageError(f"expected a path, bytes, an image array, a PIL image or a list of them, "
                         f"got {type(images).__name__}")
    return images


class AgeEstimator:
    def __init__(self, manifest: Manifest, backend: Backend, batch_size: int = 8,
                 detect_faces: Union[bool, str] = False, min_face: int = 20):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.manifest, self.backend = manifest, backend
        self.spec = manifest.preprocess
        self.head = manifest.head
        self.batch_size = batch_size
        self.detect_faces = detector_name(detect_faces)
        self.min_face = min_face

    @classmethod
    def load(cls, bundle, backend: str = "auto", precision: Optional[str] = None, device: Optional[str] = None,
             batch_size: int = 8, detect_faces: Union[bool, str] = False, artifact: Optional[str] = None,
             min_face: int = 20, **options) -> "AgeEstimator":
        """Open a bundle and load the best (or the named) backend for it.

        ``artifact`` restricts the artifact format (e.g. "qdq" to run the Q/DQ ONNX in
        OpenVINO); ``options`` go to the backend (``cuda_graphs=True`` for torch on CUDA,
        ``graph="fused"``, ``threads=2``; OpenVINO: ``shapes="dynamic"`` to skip the static-shape model
        compiled per batch size). ``detect_faces``: True (dlib HOG), "hog", "cnn" or "haar";
        ``min_face``: the smallest face box side kept, in picture pixels. ``precision="auto"``: the fastest
        artifact that passed ``alage-edge parity`` for this bundle on this machine (``est.backend.why``)."""
        from .autoprecision import resolve

        manifest = Manifest.load(bundle)
        sel = resolve(manifest, backend, precision, device, artifact, batch_size if isinstance(batch_size, int) else 8)
        runner = backend_class(sel.backend)(manifest, sel.artifact, device=device, precision=sel.precision,
                                            why=sel.why, **{**sel.options, **options}).load()
        return cls(manifest, runner, batch_size, detect_faces, min_face)

    def describe(self) -> str:
        return self.backend.describe()

    # -- arrays in, arrays out -------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Preprocessed float32 (B, 3, S, S) -> backend outputs plus ``age``, ``std``, ``distribution``,
        ``group_probs``, ``group`` (boxes as fractions of the input)."""
        out = self.backend.infer(batch)
        out.update(decode(out["fused_logits"], self.head))
        return out

    # -- pictures in, results out ----------------------------------------------------------------
    def _read_input(self, item, detector: Optional[str]):
        """One input -> (model inputs, [(face or None, geometry)], name) or the ImageError it raised."""
        i, src = item
        name = describe(src) if isinstance(src, (str, bytes, bytearray, memoryview)) or hasattr(src, "__fspath__") \
            else f"#{i} {describe(src)}"
        try:
            rgb = load_image(src, name)
            if detector:
                from .faces import find_faces

                found = find_faces(rgb, self.spec, detector, self.min_face)
            else:
                found = [(None, self.spec.square(rgb))]
            return [self.spec.apply(rgb, g) for _, g in found], found, name
        except ImageError as e:
            return e, None, name

    def predict_iter(self, images: Any, detect_faces: Optional[bool] = None, batch_size: Optional[int] = None,
                     errors: str = "raise") -> Iterator[Union[AgeResult, ItemError, NoFace]]:
        """Results one by one, in input order, in bounded memory: inputs are decoded by a small thread pool
        a few batches ahead of inference. ``errors="skip"`` yields an ``ItemError`` for an input that cannot
        be read and goes on; ``"raise"`` raises its ImageError. With face detection, a picture without a
        face yields a ``NoFace``."""
        detect = self.detect_faces if detect_faces is None else detector_name(detect_faces)
        bs = self.batch_size if batch_size is None else batch_size
        if not isinstance(bs, int) or isinstance(bs, bool) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer, got {bs!r}")
        if errors not in ("raise", "skip"):
            raise ValueError(f"errors must be 'raise' or 'skip', got {errors!r}")
        items = enumerate(as_inputs(images))
        self._warn_if_synthetic()
        with ThreadPoolExecutor(max_workers=2) as pool:
            def submit():  # the next few batches' inputs, decoding in the pool while this chunk is inferred
                chunk = list(itertools.islice(items, bs * 4))
                return pool.map(lambda it: self._read_input(it, detect), chunk) if chunk else None

            pending = submit()
            while pending is not None:
                decoded = list(pending)
                pending = submit()
                xs, geos, names, order = [], [], [], []
                for out, g, name in decoded:
                    if isinstance(out, ImageError):
                        if errors == "raise":
                            raise out
                        order.append(ItemError(name, str(out)))
                        continue
                    if detect and not out:
                        order.append(NoFace(name))
                        continue
                    order += [None] * len(out)
                    xs += out
                    geos += g
                    names += [name] * len(out)
                results = iter(self._infer_results(xs, geos, names, bs))
                for o in order:
                    yield o if o is not None else next(results)

    def _infer_results(self, xs, geos, names, bs: int) -> List[AgeResult]:
        batches = [np.stack(xs[i:i + bs]) for i in range(0, len(xs), bs)]
        results: List[AgeResult] = []
        for k, out in enumerate(self.backend.infer_many(batches, check=False)):  # spec.apply made them
            out.update(decode(out["fused_logits"], self.head))
            sl = slice(k * bs, k * bs + len(batches[k]))
            results += make_results(out, geos[sl], names[sl])
        return results

    def predict(self, images: Any, detect_faces: Union[bool, str, None] = None, batch_size: Optional[int] = None,
                errors: str = "raise") -> "Results":
        """Paths, bytes, HxWx3 uint8 arrays or PIL images (one or many) -> one result per face.

        Without face detection each input is taken as an aligned face crop; with it (True or a detector
        name), faces are found and aligned first, and a picture with no face is listed in ``.no_face``.
        ``errors="skip"``: unreadable inputs are listed in ``.errors`` instead."""
        out = Results()
        for r in self.predict_iter(images, detect_faces, batch_size, errors):
            (out.errors if isinstance(r, ItemError) else out.no_face if isinstance(r, NoFace) else out).append(r)
        return out

    def _warn_if_synthetic(self) -> None:
        t = self.manifest.data.get("training_data") or {}
        if t.get("real_faces") is False and not getattr(self, "_warned", False):
            self._warned = True
            warnings.warn(f"{self.manifest.root} was trained on {t.get('data')}, procedurally drawn faces, not "
                          f"photos: its 'ages' on real pictures measure line density, not age", stacklevel=3)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "AgeEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
