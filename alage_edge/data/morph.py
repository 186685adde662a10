"""MORPH Album 2: a CSV of file name, subject id and age; random 80/20 split by subject."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Dict

from .base import DataError, Record, RecordSet, Skips, labelled_image, require_rows, split_by_subject

FILE_COLS = ("file", "filename", "file_name", "path", "image", "photo")
SUBJECT_COLS = ("subject", "subject_id", "id", "id_num", "person")
AGE_COLS = ("age",)


def _column(fields, names, path):
    low = {f.strip().lower(): f for f in fields}
    for n in names:
        if n in low:
            return low[n]
    raise DataError(f"{path}: no column named any of {names}; columns are {list(fields)}")


def load(csv_path, images: str = "", val_fraction: float = 0.1, test_fraction: float = 0.2,
         seed: int = 0) -> Dict[str, RecordSet]:
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DataError(f"{csv_path}: MORPH-2 CSV missing (expected columns file, subject id, age)")
    root = Path(images) if images else csv_path.parent
    skips, records = Skips(), []
    with open(csv_path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f)
        fields = reader.fieldnames or []
        fcol, scol, acol = (_column(fields, FILE_COLS, csv_path), _column(fields, SUBJECT_COLS, csv_path),
                            _column(fields, AGE_COLS, csv_path))
        for line, row in enumerate(reader, start=2):
            got = labelled_image(root, row[fcol], row[acol], skips, f"{csv_path.name}:{line}")
            if got:
                records.append(Record(got[0], age=got[1], subject=str(row[scol]).strip()))
    require_rows(records, csv_path, skips)
    train, val, test = split_by_subject(records, (1 - test_fraction - val_fraction, val_fraction, test_fraction),
                                        seed)
    return {s: RecordSet(r, f"morph:{s}", skips) for s, r in (("train", train), ("val", val), ("test", test))}
