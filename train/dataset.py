"""Torch view of a FaceSet: the shared numpy preprocessing, augmentation, counted skips.

Augmentation randomness is a pure function of (seed, epoch, index), so a
resumed run draws exactly what the interrupted one would have.
"""
from __future__ import annotations

from typing import List

import numpy as np
import torch
from torch.utils.data import Dataset

from alage_edge.ages import DEX_CLASSES
from alage_edge.data.base import FaceSet
from alage_edge.images import ImageError
from alage_edge.preprocess import PreprocessSpec, normalize, warp_square


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


def augment(img: np.ndarray, spec: PreprocessSpec, rng: np.random.Generator, shift: float = 0.06,
            flip: bool = True, jitter: float = 0.2) -> np.ndarray:
    """Training augmentation on uint8 RGB -> uint8 (S, S, 3); normalise with ``normalize``.

    The face is brought to the model's input exactly as at run time (one resampling of the picture, none
    when it already is S x S), then moved by a whole number of pixels (up to ``shift`` of the side, edges
    repeated), flipped, and colour-jittered. No second resampling: a bilinear random-resized crop blurred
    1-px detail in training images only, so the detail image of a test face looked sharper than anything
    the model had been trained on (issue 11).
    """
    out = warp_square(img, spec.square(img), spec.size)
    if shift > 0:
        m = int(round(shift * spec.size))
        dx, dy = (int(v) for v in rng.integers(-m, m + 1, size=2))
        padded = np.pad(out, ((m, m), (m, m), (0, 0)), mode="edge")
        out = padded[m + dy:m + dy + spec.size, m + dx:m + dx + spec.size]
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
