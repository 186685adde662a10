"""``AgeEstimator``: bundle -> backend -> preprocessing and post-processing.

    est = AgeEstimator.load("bundle/", backend="auto")
    results = est.predict(["face.jpg", array, pil_image])
    out = est.infer(batch)  # float32 (B, 3, S, S) -> dict of numpy arrays
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

from .ages import decode
from .backends import AUTO_ORDER, Backend, BackendError, backend_class
from .manifest import Artifact, BundleError, Manifest
from .preprocess import Geometry, ImageError, centre_region, describe, load_image, normalize, resize_region
from .results import AgeResult, make_results

PRECISIONS = ("fp32", "fp16", "bf16", "int8")
# Which artifacts a backend runs for a precision, in order of preference: (format, precision, variant);
# variant None takes any. OpenVINO bf16 = fp32 weights with a bf16 hint; CPUs prefer the U8S8 Q/DQ.
SOURCES = {
    "openvino": {"fp32": [("openvino", "fp32", None), ("onnx", "fp32", None)],
                 "fp16": [("openvino", "fp16", None)],
                 "bf16": [("openvino", "fp32", None), ("onnx", "fp32", None)],
                 "int8": [("openvino", "int8", None), ("qdq", "int8", "u8s8"), ("qdq", "int8", None)]},
    "onnxruntime": {"fp32": [("onnx", "fp32", None)], "int8": [("qdq", "int8", "u8s8"), ("qdq", "int8", None)]},
    "torch": {"fp32": [("torch", "fp32", None)], "fp16": [("torch", "fp32", None)]},
    "tensorrt": {p: [("tensorrt", p, None)] for p in ("fp32", "fp16", "int8")},
}


class Choice(str):
    """The backend's name (compares as a string) with ``.why``: why the others were passed over."""

    why: Dict[str, str]
    precision: str

    def __new__(cls, name: str, precision: str, why: Dict[str, str]):
        obj = super().__new__(cls, name)
        obj.why, obj.precision = why, precision
        return obj


def find_artifact(manifest: Manifest, backend: str, precision: Optional[str],
                  fmt: Optional[str] = None) -> Tuple[Optional[Artifact], str]:
    """The artifact ``backend`` would run at ``precision`` (None: the most accurate one present),
    optionally only of artifact format ``fmt``."""
    table = {p: [(f, q, v) for f, q, v in src if fmt is None or f == fmt]
             for p, src in SOURCES.get(backend, {}).items()}
    wanted = [precision] if precision else [p for p in PRECISIONS if p in table and p != "bf16"]
    if precision and precision not in table:
        return None, f"{backend} does not run {precision} (it runs {', '.join(table)})"
    for p in wanted:
        for f, prec, variant in table[p]:
            found = [a for a in manifest.find(f, prec) if variant is None or a.info.get("variant") == variant]
            if found:
                return found[-1], p
    kinds = ", ".join(sorted({f"{f} {q}" for p in wanted for f, q, _ in table[p]}))
    return None, f"no {kinds} artifact in the bundle (build one with `alage-edge convert`)"


def _tensorrt_ready(manifest: Manifest, artifact: Artifact) -> Optional[str]:
    """None if TensorRT, a GPU and an engine built for them are all here; else why not."""
    try:
        import tensorrt as trt

        from .backends.cuda import cuda_api
        from .backends.engine_key import mismatches

        cuda = cuda_api()
        if cuda.device_count() == 0:
            return "no CUDA GPU visible"
        device, cc = cuda.device_properties(0)
    except Exception as e:  # ImportError, missing driver ...
        return f"not usable here ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})"
    for stream, key in artifact.info.get("keys", {}).items():
        bad = mismatches(key, trt.__version__, device, cc)
        if bad:
            return f"engine for {stream} was built elsewhere ({'; '.join(bad)})"
    return None


def choose(manifest: Manifest, backend: str = "auto", precision: Optional[str] = None,
           device: Optional[str] = None, fmt: Optional[str] = None) -> Tuple[type, Artifact, Choice]:
    if precision is not None and precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    names = list(AUTO_ORDER) if backend == "auto" else [backend]
    why: Dict[str, str] = {}
    for name in names:
        cls = backend_class(name)
        ok, reason = cls.is_available()
        if not ok:
            why[name] = reason
            continue
        art, prec = find_artifact(manifest, name, precision, fmt)
        if art is None:
            why[name] = prec
            continue
        if name == "tensorrt":
            problem = _tensorrt_ready(manifest, art)
            if problem:
                why[name] = problem
                continue
        why[name] = f"chosen: {art.format} {art.precision} artifact" + (f", run as {prec}" if prec != art.precision else "")
        return cls, art, Choice(name, prec, why)
    detail = "; ".join(f"{k}: {v}" for k, v in why.items())
    raise BackendError(f"no backend can run {manifest.root} here ({detail})")


class AgeEstimator:
    def __init__(self, manifest: Manifest, backend: Backend, choice: Choice, batch_size: int = 8,
                 detect_faces: bool = False):
        self.manifest, self.runner, self.backend = manifest, backend, choice
        self.spec = manifest.preprocess
        self.head = manifest.head
        self.batch_size = max(1, min(batch_size, backend.max_batch or batch_size))
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
        klass, artifact, choice = choose(manifest, backend, precision, device, artifact)
        runner = klass(manifest, artifact, device=device, precision=choice.precision, **options).load()
        return cls(manifest, runner, choice, batch_size, detect_faces)

    def describe(self) -> str:
        return self.runner.describe()

    # -- arrays in, arrays out -------------------------------------------------------------------
    def infer(self, batch: np.ndarray) -> Dict[str, np.ndarray]:
        """Preprocessed float32 (B, 3, S, S) -> backend outputs plus ``age``, ``std``, ``distribution``,
        ``group_probs``, ``group`` (boxes as fractions of the input)."""
        mb = self.runner.max_batch
        if mb and isinstance(batch, np.ndarray) and batch.ndim == 4 and len(batch) > mb:
            parts = [self.runner.infer(batch[i:i + mb]) for i in range(0, len(batch), mb)]
            out = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        else:
            out = self.runner.infer(batch)
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
            h, w = rgb.shape[:2]
            regions = self._detector_().detect(rgb) if detect else [centre_region(h, w, self.spec)]
            for r in regions:
                xs.append(resize_region(rgb, r, self.spec.size))
                geos.append(r)
                names.append(name)
        return xs, geos, names

    def predict(self, images: Any, detect_faces: Optional[bool] = None,
                batch_size: Optional[int] = None) -> List[AgeResult]:
        """Paths, bytes, HxWx3 uint8 arrays or PIL images (one or many) -> one result per face.

        Without face detection each input is taken as an aligned face crop.
        With it, an input with no face gives no result."""
        detect = self.detect_faces if detect_faces is None else detect_faces
        xs, geos, names = self._items(images, detect)
        bs = max(1, min(batch_size or self.batch_size, self.runner.max_batch or 1 << 30))
        batches = [normalize(np.stack(xs[i:i + bs]), self.spec) for i in range(0, len(xs), bs)]
        results: List[AgeResult] = []
        for k, out in enumerate(self.runner.infer_many(batches)):
            sl = slice(k * bs, k * bs + len(batches[k]))
            results += make_results(out, self.head, geos[sl], names[sl])
        return results

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "AgeEstimator":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
