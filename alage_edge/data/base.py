"""Face sets: a list of labelled records that decode to RGB uint8 images (numpy only).

Readers of the on-disk formats build ``RecordSet``s; bad rows are skipped and
counted by reason with the file named (``skipped``), never a crash later in
a data-loader worker.
"""
from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..ages import age_to_group
from ..images import load_image


class DataError(ValueError):
    """A data set is missing, malformed or empty; the message names the file."""


@dataclass
class Record:
    path: Optional[Path]
    age: float = float("nan")  # real or apparent age (LAP: mean of the votes)
    group: int = -1  # Adience group index, -1 if unknown
    subject: str = ""
    age_std: float = float("nan")  # LAP: std of the votes
    boxes: Optional[np.ndarray] = None  # synth: true age regions (K, 4) in [0, 1]

    def __post_init__(self):
        if self.group < 0 and np.isfinite(self.age):
            self.group = int(age_to_group(self.age))


@dataclass
class Skips:
    """Rows left out while reading a set: counted by reason, with the first few files named."""

    counts: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)

    def add(self, reason: str, where: str) -> None:
        self.counts[reason] += 1
        ex = self.examples.setdefault(reason, [])
        if len(ex) < 5:
            ex.append(where)

    def __len__(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.counts:
            return "no rows skipped"
        parts = [f"{n} {reason} (e.g. {', '.join(self.examples[reason][:3])})" for reason, n in
                 self.counts.most_common()]
        return "skipped " + "; ".join(parts)


class FaceSet:
    """The interface every set offers: length, image(i), record(i), label arrays."""

    name: str = "faces"
    skips: Skips

    def __len__(self) -> int:
        raise NotImplementedError

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def record(self, i: int) -> Record:
        raise NotImplementedError

    def ages(self) -> np.ndarray:
        return np.array([self.record(i).age for i in range(len(self))], dtype=np.float64)

    def groups(self) -> np.ndarray:
        return np.array([self.record(i).group for i in range(len(self))], dtype=np.int64)

    def age_stds(self) -> np.ndarray:
        return np.array([self.record(i).age_std for i in range(len(self))], dtype=np.float64)

    def boxes(self) -> Optional[np.ndarray]:
        return None

    @property
    def has_votes(self) -> bool:
        return bool(np.isfinite(self.age_stds()).any())


class RecordSet(FaceSet):
    """Records on disk."""

    def __init__(self, records: Sequence[Record], name: str, skips: Optional[Skips] = None):
        self.records = list(records)
        self.name = name
        self.skips = skips or Skips()

    def __len__(self) -> int:
        return len(self.records)

    def image(self, i: int) -> np.ndarray:
        return load_image(self.records[i].path)

    def record(self, i: int) -> Record:
        return self.records[i]

    def subset(self, idx: Sequence[int], name: str) -> "RecordSet":
        return RecordSet([self.records[i] for i in idx], name, self.skips)


class AlignedSet(FaceSet):
    """In-the-wild pictures of a set -> the largest face of each, found and aligned by ``find_faces`` (the
    runtime's own front end) at ``size`` px. A picture without a face raises ImageError naming it."""

    def __init__(self, base: FaceSet, detector: str, size: int):
        from ..preprocess import PreprocessSpec

        self.base, self.detector, self.spec = base, detector, PreprocessSpec(size=size)
        self.name, self.skips = f"{base.name} (aligned by {detector})", base.skips

    def __len__(self) -> int:
        return len(self.base)

    def image(self, i: int) -> np.ndarray:
        from ..faces import find_faces
        from ..images import ImageError
        from ..preprocess import warp_square

        rgb = self.base.image(i)
        found = find_faces(rgb, self.spec, self.detector)
        if not found:
            raise ImageError(f"{self.base.record(i).path}: no face found by the {self.detector} detector")
        return warp_square(rgb, found[0][1], self.spec.size)

    def record(self, i: int) -> Record:
        return self.base.record(i)


def stable_fraction(key: str, seed: int = 0) -> float:
    """A deterministic number in [0, 1) per key (for splits that must not move between runs)."""
    h = hashlib.sha1(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2**64


def split_by_subject(records: Sequence[Record], fractions: Tuple[float, ...], seed: int = 0) -> List[List[Record]]:
    """Split records into len(fractions) parts so that no subject is in two parts."""
    edges = np.cumsum(fractions)
    parts: List[List[Record]] = [[] for _ in fractions]
    for r in records:
        u = stable_fraction(r.subject or str(r.path), seed)
        parts[min(int(np.searchsorted(edges, u, side="right")), len(parts) - 1)].append(r)
    return parts


def check_file(path: Path, skips: Skips, where: str) -> bool:
    if not path.is_file():
        skips.add("missing image file", f"{path} ({where})")
        return False
    if path.stat().st_size == 0:
        skips.add("empty image file", f"{path} ({where})")
        return False
    return True


def check_age(age: float, skips: Skips, where: str, lo: float = 0, hi: float = 100) -> bool:
    if not np.isfinite(age) or age < lo or age > hi:
        skips.add(f"age outside {lo:g}..{hi:g}", f"{where}: {age}")
        return False
    return True


def labelled_image(root: Path, rel: str, age_text, skips: Skips, where: str) -> Optional[Tuple[Path, float]]:
    """A CSV row's image path and age, or None (counted in ``skips``) if either is unusable."""
    try:
        age = float(age_text)
    except (TypeError, ValueError):
        skips.add("age not a number", f"{where}: {age_text!r}")
        return None
    path = root / (rel or "").strip()
    if check_age(age, skips, where) and check_file(path, skips, where):
        return path, age
    return None


def require_rows(records: Sequence, source, skips: Skips) -> None:
    if not records:
        raise DataError(f"{source}: no usable rows ({skips.summary()})")
