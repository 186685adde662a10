"""Faces in the wild: find them, put five landmarks on them, align them to the bundle's template.

``find_faces`` is the one call every stage uses (the runtime, ``predict``, the server, training on
in-the-wild pictures), so a face is framed the same way everywhere:

- ``hog`` (default): dlib's HOG frontal detector on the picture scaled to ~1,000 px (and upsampled
  once inside dlib, so that faces down to ~40 px there are found), detections
  scoring >= 0.3, then dlib's 5-point landmarks (CC0, from ``face-recognition-models``) and a
  similarity transform that puts the eye centres on ``PreprocessSpec.eyes``: eyes level, one scale.
- ``cnn``: dlib's MMOD CNN detector (finds profiles and tilted heads; seconds per photo on a CPU).
- ``haar``: OpenCV's Haar cascade, the fallback when dlib is absent (no landmarks: box framing).

A face whose landmarks look like a profile (eyes collapsed together, nose far off the eye midline) is
framed from its box instead of its eyes. dlib's 68-point model is never loaded (iBUG 300-W licence).
"""
from __future__ import annotations

import importlib.util
import os
import threading
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from .preprocess import InputSquare, PreprocessSpec

DETECTORS = ("hog", "cnn", "haar")
LANDMARKS_5 = "shape_predictor_5_face_landmarks.dat"
MMOD = "mmod_human_face_detector.dat"
HAAR = "haarcascade_frontalface_default.xml"
DETECT_SIDE = 1000  # HOG/CNN run on the picture scaled so that its longer side is about this
HOG_MIN_SCORE = 0.3  # true faces score >= ~0.37; round badges 0.01-0.12
# Box framing (no usable landmarks): where the eyes sit in a detector's box, measured on dlib's boxes:
# eye midline at 30% of the box height, eye distance 47% of the box width.
BOX_EYE_Y, BOX_EYE_DIST = 0.30, 0.47


class FaceError(ImportError):
    """A face detector cannot run here; the message says what to install."""


@dataclass
class Face:
    """One detected face, in the picture's pixels."""

    box: np.ndarray  # x1, y1, x2, y2
    score: float  # the detector's own score (HOG: SVM margin; CNN: confidence; Haar: 1.0)
    detector: str
    landmarks: Optional[np.ndarray] = None  # (5, 2): picture-right eye outer, inner, left eye outer, inner, nose
    aligned: bool = False  # framed from the eyes (False: from the box)

    def to_dict(self) -> dict:
        return {"box": [round(float(v), 1) for v in self.box], "score": round(float(self.score), 3),
                "detector": self.detector, "aligned": self.aligned,
                "landmarks": None if self.landmarks is None else [[round(float(v), 1) for v in p]
                                                                  for p in self.landmarks]}


def _models_dir() -> str:
    """face-recognition-models' data folder, found without importing it (its import needs pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.origin:
        raise FaceError("dlib's landmark and CNN models come from face-recognition-models: "
                        "pip install 'alage-edge[faces]'")
    return os.path.join(os.path.dirname(spec.origin), "models")


def _dlib():
    try:
        import dlib
    except ImportError as e:
        raise FaceError("the hog and cnn detectors need dlib: pip install 'alage-edge[faces]' (dlib-bin)") from e
    return dlib


class FaceFinder:
    """Detector + landmarks, loaded once; ``find(rgb)`` -> faces, largest first."""

    def __init__(self, detector: str = "hog", min_face: int = 20, min_score: Optional[float] = None):
        if detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}, got {detector!r}")
        if not isinstance(min_face, int) or isinstance(min_face, bool) or min_face < 1:
            raise ValueError(f"min_face must be a positive number of pixels, got {min_face!r}")
        self.name, self.min_face = detector, min_face
        self.min_score = HOG_MIN_SCORE if min_score is None and detector == "hog" else (min_score or 0.0)
        # dlib's detectors and shape predictor keep scratch buffers: one set per thread (predict decodes in a
        # small thread pool), built on first use; the first is built here so a missing library fails now.
        self._make = getattr(self, f"_{detector}")
        self._local = threading.local()
        self._tools()

    def _tools(self) -> Tuple[Callable[[np.ndarray], List[Tuple[np.ndarray, float]]], Optional[object]]:
        """(this thread's detector run, its landmark predictor or None)."""
        if not hasattr(self._local, "tools"):
            self._local.tools = self._make()
        return self._local.tools

    # -- detectors: rgb -> [(box, score)] in picture pixels ---------------------------------------
    def _hog(self):
        dlib = _dlib()
        det = dlib.get_frontal_face_detector()

        def run(rgb):
            small, f = _scaled(rgb)
            rects, scores, _ = det.run(small, 1, -0.5)  # upsampled once: faces down to ~40 px at DETECT_SIDE
            return [(_rect(r) / f, float(s)) for r, s in zip(rects, scores)]
        return run, dlib.shape_predictor(os.path.join(_models_dir(), LANDMARKS_5))

    def _cnn(self):
        dlib = _dlib()
        path = os.path.join(_models_dir(), MMOD)
        cnn = dlib.cnn_face_detection_model_v1(path)

        def run(rgb):
            small, f = _scaled(rgb)
            found = cnn(small, 1)  # upsampled once, as hog: the accurate mode must not miss small faces
            return [(_rect(m.rect) / f, float(m.confidence)) for m in found]
        return run, dlib.shape_predictor(os.path.join(_models_dir(), LANDMARKS_5))

    def _haar(self):
        try:
            import cv2
        except ImportError as e:
            raise FaceError("no face detector here: the haar fallback needs OpenCV "
                            "(pip install 'opencv-python-headless<5'); hog and cnn need dlib "
                            "(pip install 'alage-edge[faces]')") from e
        path = os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""), HAAR)
        if not os.path.isfile(path):
            raise FaceError(f"OpenCV's {HAAR} is not where it should be ({path}); OpenCV 5 no longer "
                            f"ships the cascades: pip install 'opencv-python-headless<5'")
        cascade = cv2.CascadeClassifier(path)

        def run(rgb):
            small, f = _scaled(rgb)  # as hog: a 12000x8000 photo took 21.7 s and 5.5 GB unscaled
            grey = cv2.equalizeHist(cv2.cvtColor(small, cv2.COLOR_RGB2GRAY))
            side = max(1, int(round(self.min_face * f)))
            found = cascade.detectMultiScale(grey, scaleFactor=1.1, minNeighbors=5, minSize=(side, side))
            return [(np.array([x, y, x + w, y + h], np.float64) / f, 1.0) for x, y, w, h in found]
        return run, None

    # -- faces ----------------------------------------------------------------------------------
    def find(self, rgb: np.ndarray) -> List[Face]:
        """Faces of an RGB uint8 picture (H, W, 3), largest first; none smaller than ``min_face`` pixels
        or scoring below ``min_score``."""
        rgb = np.ascontiguousarray(rgb)  # dlib wants contiguous uint8 RGB
        detect, shape = self._tools()
        faces = []
        for box, score in detect(rgb):
            if score < self.min_score or min(box[2] - box[0], box[3] - box[1]) < self.min_face:
                continue
            lm = None if shape is None else _landmarks(shape, rgb, box)
            faces.append(Face(box, score, self.name, lm, lm is not None and _frontal(lm, box)))
        return sorted(faces, key=lambda f: -(f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))


def _landmarks(shape, rgb: np.ndarray, box: np.ndarray) -> np.ndarray:
    import dlib

    s = shape(rgb, dlib.rectangle(*(int(round(v)) for v in box)))
    return np.array([[s.part(i).x, s.part(i).y] for i in range(5)], np.float64)


def _scaled(rgb: np.ndarray) -> Tuple[np.ndarray, float]:
    """The picture scaled down so that its longer side is about DETECT_SIDE (never up), and the factor."""
    f = min(1.0, DETECT_SIDE / max(rgb.shape[:2]))
    if f == 1.0:
        return rgb, 1.0
    from PIL import Image

    h, w = rgb.shape[:2]
    size = (max(1, round(w * f)), max(1, round(h * f)))
    return np.asarray(Image.fromarray(rgb).resize(size, Image.BILINEAR)), size[0] / w


def _rect(r) -> np.ndarray:
    return np.array([r.left(), r.top(), r.right() + 1, r.bottom() + 1], np.float64)


def eye_centres(landmarks: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """(picture-left eye, picture-right eye) centres from dlib's 5 points."""
    return landmarks[2:4].mean(0), landmarks[0:2].mean(0)


def _frontal(landmarks: np.ndarray, box: np.ndarray) -> bool:
    """False for a profile or a collapsed fit: eyes closer than a quarter of the box width, or the nose
    further from the eyes' perpendicular bisector than 0.6 eye distances."""
    left, right = eye_centres(landmarks)
    d = right - left
    dist = float(np.hypot(*d))
    if dist < 0.25 * (box[2] - box[0]):
        return False
    along = float(np.dot(landmarks[4] - (left + right) / 2, d / dist))
    return abs(along) <= 0.6 * dist


def input_square(face: Face, spec: PreprocessSpec, image_w: int, image_h: int) -> InputSquare:
    """The model's input square for a face: from its eyes when aligned, else from its box."""
    if face.aligned:
        left, right = eye_centres(face.landmarks)
    else:
        x1, y1, x2, y2 = face.box
        cx, ey, half = (x1 + x2) / 2, y1 + BOX_EYE_Y * (y2 - y1), BOX_EYE_DIST * (x2 - x1) / 2
        left, right = np.array([cx - half, ey]), np.array([cx + half, ey])
    return spec.aligned_square(left, right, image_w, image_h)


_FINDERS: Dict[Tuple[str, int], FaceFinder] = {}


def finder(detector: str = "hog", min_face: int = 20) -> FaceFinder:
    """A loaded FaceFinder (cached per detector and minimum). ``hog`` without dlib falls back to ``haar``
    with a warning that says what to install; ``cnn`` without dlib is an error."""
    key = (detector, min_face)
    if key not in _FINDERS:
        try:
            _FINDERS[key] = FaceFinder(detector, min_face)
        except FaceError as e:
            if detector != "hog":
                raise
            warnings.warn(f"{e}; falling back to OpenCV's Haar cascade (more false faces, no alignment)",
                          stacklevel=2)
            _FINDERS[key] = FaceFinder("haar", min_face)
    return _FINDERS[key]


def find_faces(rgb: np.ndarray, spec: PreprocessSpec, detector: str = "hog",
               min_face: int = 20) -> List[Tuple[Face, InputSquare]]:
    """THE face front end: every face of a picture with the input square the model reads of it, largest first."""
    h, w = rgb.shape[:2]
    return [(f, input_square(f, spec, w, h)) for f in finder(detector, min_face).find(rgb)]
