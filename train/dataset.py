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
from alage_edge.preprocess import ImageError, PreprocessSpec, augment, centre_region, normalize, resize_region


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

    def pixels(self, i: int) -> np.ndarray:
        """uint8 (S, S, 3): augmented in training, the runtime's exact crop otherwise."""
        img = self.faces.image(i)
        if self.train:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            return augment(img, self.spec, rng)
        h, w = img.shape[:2]
        return resize_region(img, centre_region(h, w, self.spec), self.spec.size)

    def __getitem__(self, i: int):
        try:
            x = torch.from_numpy(normalize(self.pixels(i), self.spec))
            ok = True
        except (ImageError, OSError) as e:  # counted and named by the trainer, not a crash in a worker
            x = torch.zeros(3, self.spec.size, self.spec.size)
            ok = False
        age = float(self.ages[i]) if np.isfinite(self.ages[i]) else -1.0
        return x, torch.tensor(age, dtype=torch.float32), torch.tensor(int(self.groups[i])), torch.tensor(ok), i


def dex_target(age: torch.Tensor) -> torch.Tensor:
    return age.round().clamp(0, DEX_CLASSES - 1).long()


def bad_items(faces: FaceSet, idx: List[int]) -> List[str]:
    out = []
    for i in idx:
        rec = faces.record(i)
        out.append(str(rec.path) if rec.path is not None else f"{faces.name}[{i}]")
    return out
