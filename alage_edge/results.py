"""What ``AgeEstimator.predict`` returns: one ``AgeResult`` per face."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np

from .ages import GROUP_NAMES
from .preprocess import Geometry


@dataclass
class AgeResult:
    age: float  # DEX expectation (a groups model: expectation over group centres)
    std: float  # spread of the predicted distribution, in years
    distribution: np.ndarray = field(repr=False)  # 101 age probabilities, or 8 group probabilities for a groups model
    group: str  # Adience group, e.g. "25-32"
    group_index: int
    group_probs: np.ndarray = field(repr=False)  # (8,)
    face_box: np.ndarray  # x1, y1, x2, y2 in original-image pixels: the region the model saw
    attention_boxes: Optional[np.ndarray] = None  # (T, 4) in original-image pixels
    source: str = ""  # which input this came from
    extra: dict = field(default_factory=dict)

    def to_dict(self, distribution: bool = False) -> dict:
        d = {"source": self.source, "age": round(float(self.age), 3), "std": round(float(self.std), 3),
             "group": self.group, "group_probs": [round(float(p), 4) for p in self.group_probs],
             "face_box": [round(float(v), 1) for v in self.face_box],
             "attention_boxes": None if self.attention_boxes is None
             else [[round(float(v), 1) for v in b] for b in self.attention_boxes]}
        if distribution:
            d["distribution"] = [round(float(p), 6) for p in self.distribution]
        return d


def make_results(dec: dict, geometries: List[Geometry], sources: List[str]) -> List[AgeResult]:
    """Decoded outputs of one batch (``AgeEstimator.infer``'s dict) -> results, boxes in original pixels."""
    boxes = dec.get("boxes")
    out = []
    for i, (geo, src) in enumerate(zip(geometries, sources)):
        gi = int(dec["group"][i])
        out.append(AgeResult(
            age=float(dec["age"][i]), std=float(dec["std"][i]), distribution=dec["distribution"][i],
            group=GROUP_NAMES[gi], group_index=gi, group_probs=dec["group_probs"][i],
            face_box=np.array(geo.box()), source=src,
            attention_boxes=None if boxes is None else geo.to_pixels(boxes[i])))
    return out
