"""What ``AgeEstimator.predict`` returns: one ``AgeResult`` per face."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Tuple

import numpy as np

from .ages import GROUP_NAMES
from .faces import Face
from .preprocess import InputSquare


@dataclass
class AgeResult:
    age: float  # DEX expectation (a groups model: expectation over group centres)
    std: float  # spread of the predicted distribution, in years
    distribution: np.ndarray = field(repr=False)  # 101 age probabilities, or 8 group probabilities for a groups model
    group: str  # Adience group, e.g. "25-32"
    group_index: int
    group_probs: np.ndarray = field(repr=False)  # (8,)
    face_box: np.ndarray  # x1, y1, x2, y2 in picture pixels: the detector's box, else the input square
    attention_boxes: Optional[np.ndarray] = None  # (T, 4) in picture pixels (upright boxes around them)
    source: str = ""  # which input this came from
    extra: dict = field(default_factory=dict)
    face: Optional[Face] = None  # with face detection: score, landmarks, detector
    square: Optional[InputSquare] = field(default=None, repr=False)  # what the model saw (maybe turned)
    boxes: Optional[np.ndarray] = field(default=None, repr=False)  # (T, 4) as fractions of the input

    def square_corners(self) -> np.ndarray:
        """(4, 2) corners of the model's input in picture pixels (turned when the face was aligned)."""
        return self.square.to_quads(np.array([0.0, 0.0, 1.0, 1.0]))

    def attention_corners(self) -> Optional[np.ndarray]:
        """(T, 4, 2) corners of the attention boxes in picture pixels."""
        return None if self.boxes is None else self.square.to_quads(self.boxes)

    def to_dict(self, distribution: bool = False) -> dict:
        d = {"source": self.source, "age": round(float(self.age), 3), "std": round(float(self.std), 3),
             "group": self.group, "group_probs": [round(float(p), 4) for p in self.group_probs],
             "face_box": [round(float(v), 1) for v in self.face_box],
             "attention_boxes": None if self.attention_boxes is None
             else [[round(float(v), 1) for v in b] for b in self.attention_boxes]}
        if self.face is not None:
            d["face"] = self.face.to_dict()
            d["square_corners"] = [[round(float(v), 1) for v in p] for p in self.square_corners()]
        if distribution:
            d["distribution"] = [round(float(p), 6) for p in self.distribution]
        return d


def make_results(dec: dict, found: List[Tuple[Optional[Face], InputSquare]], sources: List[str]) -> List[AgeResult]:
    """Decoded outputs of one batch (``AgeEstimator.infer``'s dict) and each input's (face, input square) ->
    results, boxes in picture pixels."""
    boxes = dec.get("boxes")
    out = []
    for i, ((face, geo), src) in enumerate(zip(found, sources)):
        gi = int(dec["group"][i])
        out.append(AgeResult(
            age=float(dec["age"][i]), std=float(dec["std"][i]), distribution=dec["distribution"][i],
            group=GROUP_NAMES[gi], group_index=gi, group_probs=dec["group_probs"][i],
            face_box=np.array(face.box if face is not None else geo.box()), source=src,
            attention_boxes=None if boxes is None else geo.to_pixels(boxes[i]),
            boxes=None if boxes is None else boxes[i], face=face, square=geo))
    return out
