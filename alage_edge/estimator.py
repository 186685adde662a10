"""``AgeEstimator``: bundle -> backend -> preprocessing and post-processing.

    est = AgeEstimator.load("bundle/", backend="auto")
    results = est.predict(["face.jpg", array, pil_image])
    out = est.infer(batch)  # float32 (B, 3, S, S) -> dict of numpy arrays
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from .ages import decode
from .backends import Backend, backend_class, select
from .images import describe, load_image
from .manifest import Manifest
from .preprocess import Geometry
from .results import make_results


class AgeEstimator:
    def __init__(self, manifest: Manifest, backend: Backend, batch_size: int = 8, detect_faces: bool = False):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        self.manifest, self.backend = manifest, backend
        self.spec = manifest.preprocess
        self.head = manifest.head
        self.batch_size = batch_size
        self.detect_faces = detect_faces
        self._detector = None

    @classmethod
    def load(cls, bundle, backend: str = "auto", precision: Optional[str] = None, device: Optional[str] = None,
             batch_size: int = 8, detect_faces: bool = False, artifact: Optional[str] = None,
             **options) -> "AgeEstimator":
        """Open a bundle and load the best (or the named) backend for it.

        ``artifact`` restricts the artifact format (e.g. "qdq" to run the Q/DQ ONNX in
        OpenVINO); ``options`` go to the backend (``cuda_graphs=True`` for torch on CUDA,
        ``graph="fused"``, ``threads=2``)."""
        manifest = Manifest.load(bundle)
        sel = select(manifest, backend, precision, device, artifact)
        runner = backend_class(sel.backend)(manifest, sel.artifact, device=device, precision=sel.precision,
                                            why=sel.why, **options).load()
        return cls(manifest, runner, batch_size, detect_faces)

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
    def _detector_(self):
        if self._detector is None:
            from .faces import FaceDetector

            self._detector = FaceDetector()
        return self._detector

    def _items(self, images, detect: bool) -> Tuple[List[np.ndarray], List[Geometry], List[str]]:
        """Decode and crop every input (and face): model inputs, their geometry, their names."""
        if isinstance(images, (str, bytes, bytearray)) or (isinstance(images, np.ndarray) and images.ndim in (2, 3)) \
                or hasattr(images, "getpixel") or hasattr(images, "__fspath__"):
            images = [images]
        xs, geos, names = [], [], []
        for i, src in enumerate(images):
            name = describe(src) if isinstance(src, (str, bytes, bytearray)) or hasattr(src, "__fspath__") \
                else f"#{i} {describe(src)}"
            rgb = load_image(src, name)
            for r in (self._detector_().detect(rgb) if detect else [None]):
                geo = self.spec.region(rgb, r)
                xs.append(self.spec.apply(rgb, geo))
                geos.append(geo)
                names.append(name)
        return xs, geos, names

    def predict(self, images: Any, detect_faces: Optional[bool] = None,
                batch_size: Optional[int] = None) -> List:
        """Paths, bytes, HxWx3 uint8 arrays or PIL images (one or many) -> one result per face.

        Without face detection each input is taken as an aligned face crop.
        With it, an input with no face gives no result."""
        detect = self.detect_faces if detect_faces is None else detect_faces
        bs = self.batch_size if batch_size is None else batch_size
        if not isinstance(bs, int) or bs < 1:
            raise ValueError(f"batch_size must be a positive integer, got {bs!r}")
        xs, geos, names = self._items(images, detect)
        batches = [np.stack(xs[i:i + bs]) for i in range(0, len(xs), bs)]
        results = []
        for k, out in enumerate(self.backend.infer_many(batches)):
            out.update(decode(out["fused_logits"], self.head))
            sl = slice(k * bs, k * bs + len(batches[k]))
            results += make_results(out, geos[sl], names[sl])
        return results

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> "AgeEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
