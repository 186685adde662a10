"""Faces in the wild: OpenCV's Haar cascade (its weights ship inside opencv-python-headless 4.x).

Each detection becomes an aligned crop in the sense of the training sets:
a square centred on the face, ``margin`` of the face width added on every
side, shifted (not padded) to stay inside the picture. No in-plane rotation
is corrected.
"""
from __future__ import annotations

import os
from typing import List, Optional

import numpy as np

from .preprocess import Geometry

CASCADE = "haarcascade_frontalface_default.xml"


class FaceDetector:
    def __init__(self, margin: float = 0.25, min_size: float = 0.06, scale_factor: float = 1.1,
                 min_neighbors: int = 5, cascade: Optional[str] = None):
        try:
            import cv2
        except ImportError as e:
            raise ImportError("face detection needs OpenCV with its Haar cascades: "
                              "pip install 'alage-edge[faces]' (opencv-python-headless<5)") from e
        path = cascade or os.path.join(getattr(getattr(cv2, "data", None), "haarcascades", ""), CASCADE)
        if not os.path.isfile(path):
            raise ImportError(f"OpenCV's {CASCADE} is not where it should be ({path}); OpenCV 5 no longer "
                              f"ships the cascades: pip install 'opencv-python-headless<5'")
        self.cv2 = cv2
        self.cascade = cv2.CascadeClassifier(path)
        if self.cascade.empty():
            raise ImportError(f"{path}: OpenCV could not load the face cascade")
        self.margin, self.min_size = margin, min_size
        self.scale_factor, self.min_neighbors = scale_factor, min_neighbors

    def detect(self, rgb: np.ndarray) -> List[Geometry]:
        """Face regions (largest first) of an RGB uint8 picture."""
        h, w = rgb.shape[:2]
        grey = self.cv2.equalizeHist(self.cv2.cvtColor(rgb, self.cv2.COLOR_RGB2GRAY))
        side = max(int(self.min_size * min(h, w)), 16)
        found = self.cascade.detectMultiScale(grey, scaleFactor=self.scale_factor, minNeighbors=self.min_neighbors,
                                              minSize=(side, side))
        regions = []
        for x, y, fw, fh in sorted((tuple(map(int, f)) for f in found), key=lambda f: -f[2] * f[3]):
            s = max(fw, fh) * (1 + 2 * self.margin)
            s = min(s, float(min(w, h)))
            cx, cy = x + fw / 2.0, y + fh / 2.0
            x0 = min(max(cx - s / 2, 0.0), w - s)
            y0 = min(max(cy - s / 2, 0.0), h - s)
            regions.append(Geometry(x0, y0, s, s, w, h))
        return regions
