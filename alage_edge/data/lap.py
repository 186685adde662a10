"""ChaLearn LAP apparent age (2015 and 2016): image folders with CSVs of the mean and
standard deviation of the human votes (``image,mean,stdv``; comma or semicolon).

2016 layout: ``train/ valid/ test/`` + ``train_gt.csv valid_gt.csv test_gt.csv``;
2015 layout: ``Train/ Validation/ Test/`` + ``Train.csv Validation.csv Test.csv``.
Protocol: train + valid -> training (a validation split carved from it), test -> test;
the metric is the epsilon-error.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict, List, Optional

from .base import DataError, Record, RecordSet, Skips, check_age, check_file, require_rows, split_by_subject

LAYOUT = {
    "train": (("train_gt.csv", "Train.csv", "train.csv"), ("train", "Train")),
    "valid": (("valid_gt.csv", "Validation.csv", "valid.csv", "validation.csv"), ("valid", "Validation", "validation")),
    "test": (("test_gt.csv", "Test.csv", "test.csv"), ("test", "Test")),
}


def _find(root: Path, names) -> Optional[Path]:
    for n in names:
        if (root / n).exists():
            return root / n
    return None


def read_split(root: Path, split: str, skips: Skips) -> List[Record]:
    csv_names, dir_names = LAYOUT[split]
    csv_path, img_dir = _find(root, csv_names), _find(root, dir_names)
    if csv_path is None or img_dir is None:
        return []
    text = csv_path.read_text(encoding="utf-8", errors="replace")
    delim = ";" if text.split("\n", 1)[0].count(";") > text.split("\n", 1)[0].count(",") else ","
    rows = list(csv.reader(text.splitlines(), delimiter=delim))
    start = 1 if rows and not _is_number(rows[0][1] if len(rows[0]) > 1 else "") else 0
    out = []
    for line, row in enumerate(rows[start:], start=start + 1):
        where = f"{csv_path.name}:{line}"
        if len(row) < 3:
            skips.add("row without image,mean,stdv", where)
            continue
        try:
            mean, std = float(row[1]), float(row[2])
        except ValueError:
            skips.add("mean or stdv not a number", f"{where}: {row[1:3]}")
            continue
        path = img_dir / row[0].strip()
        if check_age(mean, skips, where) and check_file(path, skips, where):
            out.append(Record(path, age=mean, age_std=max(std, 1e-3), subject=row[0].strip()))
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def load(root, val_fraction: float = 0.1, seed: int = 0) -> Dict[str, RecordSet]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: ChaLearn LAP folder missing")
    skips = Skips()
    train_all = read_split(root, "train", skips) + read_split(root, "valid", skips)
    test = read_split(root, "test", skips)
    require_rows(train_all, f"{root} (train_gt.csv/train or Train.csv/Train)", skips)
    train, val = split_by_subject(train_all, (1 - val_fraction, val_fraction), seed)
    return {"train": RecordSet(train, "lap:train", skips), "val": RecordSet(val, "lap:val", skips),
            "test": RecordSet(test, "lap:test", skips)}
