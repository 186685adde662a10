"""Torch view of a FaceSet: the shared numpy preprocessing, augmentation, counted skips.

Augmentation randomness is a pure function of (seed, epoch, index), so a
resumed run draws exactly what the interrupted one would have.
"""
from __future__ import annotations

from typing import List, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset

from alage_edge.ages import DEX_CLASSES
from alage_edge.data.base import FaceSet
from alage_edge.images import ImageError
from alage_edge.preprocess import Geometry, PreprocessSpec, centre_region, normalize, resize_region


class FaceDataset(Dataset):
    def __init__(self, faces: FaceSet, spec: PreprocessSpec, train: bool, seed: int = 0):
        self.faces, self.spec, self.train, self.seed = faces, spec, train, seed
        self.epoch = 0
        self.ages = faces.ages()
        self.groups = faces.groups()

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.faces)

    def tensor(self, i: int) -> np.ndarray:
        """float32 (3, S, S): augmented in training, the runtime's own preprocessing otherwise."""
        img = self.faces.image(i)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return normalize(augment(img, self.spec, rng), self.spec)
        return self.spec.apply(img)

    def __getitem__(self, i: int):
        try:
            x = torch.from_numpy(self.tensor(i))
            ok = True
        except (ImageError, OSError):  # counted and named by the trainer, not a crash in a worker
            x = torch.zeros(3, self.spec.size, self.spec.size)
            ok = False
        age = float(self.ages[i]) if np.isfinite(self.ages[i]) else -1.0
        return x, torch.tensor(age, dtype=torch.float32), torch.tensor(int(self.groups[i])), torch.tensor(ok), i


def augment(img: np.ndarray, spec: PreprocessSpec, rng: np.random.Generator,
            scale: Tuple[float, float] = (0.8, 1.0), ratio: Tuple[float, float] = (0.9, 1.1),
            flip: bool = True, jitter: float = 0.2) -> np.ndarray:
    """Training augmentation on uint8 RGB -> uint8 (S, S, 3); normalise with ``normalize``.

    Random resized crop with a mild scale range (faces are aligned: the crop
    must keep the face), horizontal flip, brightness/contrast/saturation jitter.
    """
    h, w = img.shape[:2]
    base = centre_region(h, w, spec)
    area = base.w * base.h * rng.uniform(*scale)
    aspect = np.exp(rng.uniform(np.log(ratio[0]), np.log(ratio[1])))
    cw = min(np.sqrt(area * aspect), float(w))
    ch = min(np.sqrt(area / aspect), float(h))
    x0 = rng.uniform(0, w - cw) if w > cw else 0.0
    y0 = rng.uniform(0, h - ch) if h > ch else 0.0
    out = resize_region(img, Geometry(x0, y0, cw, ch, w, h), spec.size)
    if flip and rng.random() < 0.5:
        out = out[:, ::-1]
    if jitter > 0:
        f = out.astype(np.float32)
        b, c, s = rng.uniform(1 - jitter, 1 + jitter, size=3)
        grey = f @ np.array([0.299, 0.587, 0.114], np.float32)
        f = f * b
        f = (f - grey.mean() * b) * c + grey.mean() * b
        g2 = (f @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
        f = (f - g2) * s + g2
        out = np.clip(f, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def dex_target(age: torch.Tensor) -> torch.Tensor:
    return age.round().clamp(0, DEX_CLASSES - 1).long()


def bad_items(faces: FaceSet, idx: List[int]) -> List[str]:
    out = []
    for i in idx:
        rec = faces.record(i)
        out.append(str(rec.path) if rec.path is not None else f"{faces.name}[{i}]")
    return out
