"""Anything else: a CSV of ``path,age`` (optional ``subject``, ``split``, ``std``), a plain
folder of images (unlabelled: calibration, prediction) or an ``.npy`` array."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict

import numpy as np

from ..images import to_rgb
from .base import (
    DataError,
    FaceSet,
    Record,
    RecordSet,
    Skips,
    check_file,
    labelled_image,
    require_rows,
    split_by_subject,
)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
BOX_SUFFIX = ("_x1", "_y1", "_x2", "_y2")


def load_csv(csv_path, images: str = "", val_fraction: float = 0.1, test_fraction: float = 0.1,
             seed: int = 0) -> Dict[str, RecordSet]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: CSV missing (expected a header with path,age)")
    root = Path(images) if images else csv_path.parent
    skips, rows = Skips(), []
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        cols = [c.strip() for c in (reader.fieldnames or [])]
        if "path" not in cols or "age" not in cols:
            raise DataError(f"{csv_path}: expected columns path,age; got {cols}")
        regions = [c[: -len("_x1")] for c in cols if c.endswith("_x1")]
        for line, row in enumerate(reader, start=2):
            got = labelled_image(root, row["path"], row["age"], skips, f"{csv_path.name}:{line}")
            if not got:
                continue
            path, age = got
            boxes = None
            if regions:
                try:
                    boxes = np.array([[float(row[r + s]) for s in BOX_SUFFIX] for r in regions])
                except (TypeError, ValueError, KeyError):
                    boxes = None
            std = float(row["std"]) if row.get("std") not in (None, "") else float("nan")
            rec = Record(path, age=age, subject=(row.get("subject") or str(path)).strip(), age_std=std, boxes=boxes)
            rows.append((rec, (row.get("split") or "").strip()))
    require_rows(rows, csv_path, skips)
    if any(s for _, s in rows):
        parts = {k: [r for r, s in rows if s == k] for k in ("train", "val", "test")}
    else:
        train, val, test = split_by_subject([r for r, _ in rows], (1 - val_fraction - test_fraction, val_fraction,
                                                                     test_fraction), seed)
        parts = {"train": train, "val": val, "test": test}
    return {k: _BoxedSet(v, f"csv:{csv_path.name}:{k}", skips) for k, v in parts.items()}


class _BoxedSet(RecordSet):
    def boxes(self):
        if self.records and all(r.boxes is not None for r in self.records):
            return np.stack([r.boxes for r in self.records])
        return None


def load_folder(root) -> RecordSet:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: image folder missing")
    skips = Skips()
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    records = [Record(p, subject=str(p)) for p in files if check_file(p, skips, "folder")]
    require_rows(records, f"{root} (images with suffix {sorted(IMAGE_SUFFIXES)})", skips)
    return RecordSet(records, f"folder:{root}", skips)


class ArraySet(FaceSet):
    """An ``.npy`` of uint8 images (N, H, W, 3) or preprocessed float32 (N, 3, S, S)."""

    def __init__(self, path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"{self.path}: .npy file missing")
        try:
            self.array = np.load(self.path, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError) as e:
            raise DataError(f"{self.path}: not a readable .npy array ({e})") from e
        a = self.array
        self.preprocessed = a.ndim == 4 and a.shape[1] == 3 and a.dtype == np.float32
        if not (self.preprocessed or (a.ndim == 4 and a.shape[3] in (1, 3, 4)) or a.ndim == 3):
            raise DataError(f"{self.path}: expected (N,H,W,3) images or preprocessed (N,3,S,S) float32, "
                            f"got {a.shape} {a.dtype}")
        self.name, self.skips = f"npy:{self.path.name}", Skips()

    def __len__(self) -> int:
        return int(self.array.shape[0])

    def image(self, i: int) -> np.ndarray:
        if self.preprocessed:
            raise DataError(f"{self.path}: holds preprocessed tensors, not images")
        return to_rgb(np.asarray(self.array[i]), f"{self.path}[{i}]")

    def record(self, i: int) -> Record:
        return Record(None, subject=f"{self.path.name}[{i}]")
