"""Calibration data: one protocol, thin adapters (after ORT's CalibrationDataReader and NNCF's Dataset).

``CalibrationSet`` turns ``--data`` (synth, a dataset spec, a folder of
images, an .npy) into float32 NCHW batches through the runtime's own
preprocessing, and computes the global stream's ``g`` (with ONNX Runtime,
fp32) for the attention stream. Adapters feed ONNX Runtime, NNCF and a
TensorRT calibrator from the same arrays.
"""
from __future__ import annotations

import hashlib
import warnings
from typing import Dict, Iterator, List, Optional

import numpy as np

from alage_edge.data import open_dataset
from alage_edge.data.spec import like_training
from alage_edge.images import ImageError
from alage_edge.manifest import Manifest
from alage_edge.progress import bar

WARN_BELOW = 300


class CalibrationError(ValueError):
    pass


class CalibrationSet:
    """Preprocessed calibration images (N, 3, S, S) float32, plus g (N, C) for the attention stream."""

    def __init__(self, images: np.ndarray, source: str, manifest: Manifest):
        self.images, self.source, self.manifest = images, source, manifest
        self._g: Optional[np.ndarray] = None

    @classmethod
    def from_spec(cls, spec: str, manifest: Manifest, size: Optional[int] = None, split: str = "train",
                  minimum: int = 32, progress: bool = True, cache_dir: Optional[str] = None) -> "CalibrationSet":
        """``minimum``: refuse a set smaller than this (``convert --calib-min``)."""
        pre = manifest.preprocess
        spec = like_training(spec, manifest.data.get("training_data", {}).get("data"))
        if spec == "synth" or spec.startswith("synth:"):
            # calibration must not see the test images: it draws from the training split
            spec = spec if "n=" in spec else (spec + (":" if spec == "synth" else ",") + f"n={size or WARN_BELOW}")
        faces = open_dataset(spec, split=split, size=pre.size, cache_dir=cache_dir)
        n = len(faces) if size is None else min(size, len(faces))
        if n < minimum:
            raise CalibrationError(f"calibration set {spec!r} has {n} images; at least {minimum} are needed "
                                   f"(--calib-size, or more data)")
        if n < WARN_BELOW:
            warnings.warn(f"calibration set {spec!r} has only {n} images; {WARN_BELOW}+ give steadier INT8 scales",
                          stacklevel=2)
        if getattr(faces, "preprocessed", False):
            arr = np.asarray(faces.array[:n], dtype=np.float32)
            if arr.shape[1:] != (3, pre.size, pre.size):
                raise CalibrationError(f"{spec}: preprocessed arrays must be (N, 3, {pre.size}, {pre.size}), "
                                       f"got {arr.shape}")
            return cls(arr, spec, manifest)
        out, skipped = [], []
        it = bar(range(n), desc="calibration images", disable=not progress)
        for i in it:
            try:
                img = faces.image(i)
            except (ImageError, OSError) as e:
                skipped.append(str(e))
                continue
            out.append(pre.apply(img))
        if len(out) < minimum:
            raise CalibrationError(f"calibration set {spec!r}: only {len(out)} readable images "
                                   f"({len(skipped)} unreadable, e.g. {skipped[:2]}); at least {minimum} needed")
        return cls(np.stack(out).astype(np.float32), spec, manifest)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def sha256(self) -> str:
        """Identifies the calibration set (goes into engine cache keys and the manifest)."""
        return hashlib.sha256(np.ascontiguousarray(self.images).tobytes()).hexdigest()[:16]

    def g(self) -> np.ndarray:
        """The fp32 global stream's features, computed once with ONNX Runtime."""
        if self._g is None:
            import onnxruntime as ort

            sess = ort.InferenceSession(str(self.manifest.path(self.manifest.io["global"]["file"])),
                                        providers=["CPUExecutionProvider"])
            self._g = np.concatenate([sess.run(["g"], feed)[0] for feed in self.batches(32, "image")])
        return self._g

    def batches(self, batch_size: int, *names: str) -> Iterator[Dict[str, np.ndarray]]:
        for i in range(0, len(self.images), batch_size):
            feed = {"image": self.images[i:i + batch_size]}
            if "g" in names:
                feed["g"] = self.g()[i:i + batch_size]
            yield {k: feed[k] for k in names}

    def feeds(self, stream: str, batch_size: int = 1) -> List[Dict[str, np.ndarray]]:
        names = list(self.manifest.io[stream]["inputs"])
        return list(self.batches(batch_size, *names))

    # -- adapters ---------------------------------------------------------------------------------
    def ort_reader(self, stream: str, batch_size: int = 1):
        from onnxruntime.quantization import CalibrationDataReader

        feeds = self.feeds(stream, batch_size)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter(feeds)

            def get_next(self):
                return next(self.it, None)

            def rewind(self):
                self.it = iter(feeds)

        return Reader()

    def nncf_dataset(self, stream: str, batch_size: int = 1):
        import nncf

        return nncf.Dataset(self.feeds(stream, batch_size))

    def describe(self) -> dict:
        return {"source": self.source, "images": len(self), "sha256": self.sha256}
