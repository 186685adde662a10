"""Adience (Eidinger et al. 2014): 8 age groups, 5-fold protocol.

Files: ``fold_0_data.txt`` ... ``fold_4_data.txt`` (tab-separated, header
``user_id original_image face_id age gender x y dx dy ...``) and images at
``faces/<user_id>/coarse_tilt_aligned_face.<face_id>.<original_image>``.
Ages are ranges like ``(25, 32)``, sometimes single numbers or ``None``.
Protocol: test on fold k, train on the other four; the validation split is
carved from the training folds by subject, never from the test fold.
"""
from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Dict, List, Optional

from ..ages import GROUP_RANGES, age_to_group
from .base import DataError, Record, RecordSet, Skips, check_file, require_rows, split_by_subject

FOLDS = 5
_RANGE = re.compile(r"^\(\s*(\d+)\s*,\s*(\d+)\s*\)$")


def parse_age(text: str) -> Optional[int]:
    """Adience age text -> group index, or None. Off-protocol ranges go to the nearest group."""
    text = (text or "").strip()
    m = _RANGE.match(text)
    if m:
        lo, hi = int(m.group(1)), int(m.group(2))
        for g, (glo, ghi) in enumerate(GROUP_RANGES):
            if (lo, hi) == (glo, ghi) or (g == 7 and lo == 60):
                return g
        return int(age_to_group((lo + hi) / 2))
    if text.isdigit():
        return int(age_to_group(int(text)))
    return None


def read_fold(root: Path, k: int, skips: Skips) -> List[Record]:
    path = root / f"fold_{k}_data.txt"
    if not path.is_file():
        raise DataError(f"{path}: Adience fold file missing (expected fold_0_data.txt .. fold_4_data.txt "
                        f"and faces/ in {root})")
    out = []
    with open(path, newline="", encoding="utf-8", errors="replace") as f:
        reader = csv.DictReader(f, delimiter="\t")
        need = {"user_id", "original_image", "face_id", "age"}
        if not reader.fieldnames or not need <= {c.strip() for c in reader.fieldnames}:
            raise DataError(f"{path}: expected tab-separated columns {sorted(need)}, got {reader.fieldnames}")
        for line, row in enumerate(reader, start=2):
            row = {(k_ or "").strip(): (v or "").strip() for k_, v in row.items() if k_}
            where = f"{path.name}:{line}"
            group = parse_age(row.get("age", ""))
            if group is None:
                skips.add("no usable age (None or malformed)", f"{where}: {row.get('age')!r}")
                continue
            img = root / "faces" / row["user_id"] / f"coarse_tilt_aligned_face.{row['face_id']}.{row['original_image']}"
            if not check_file(img, skips, where):
                continue
            lo, hi = GROUP_RANGES[group]
            out.append(Record(img, age=(lo + min(hi, 70)) / 2, group=group, subject=row["user_id"]))
    return out


def load(root, fold: int = 0, val_fraction: float = 0.1, seed: int = 0) -> Dict[str, RecordSet]:
    root = Path(root)
    if not 0 <= fold < FOLDS:
        raise DataError(f"Adience fold must be 0..{FOLDS - 1}, got {fold}")
    skips = Skips()
    folds = [read_fold(root, k, skips) for k in range(FOLDS)]
    test = folds[fold]
    train_all = [r for k in range(FOLDS) if k != fold for r in folds[k]]
    require_rows(train_all, root, skips)
    train, val = split_by_subject(train_all, (1 - val_fraction, val_fraction), seed)
    name = f"adience:fold={fold}"
    return {"train": RecordSet(train, f"{name}:train", skips), "val": RecordSet(val, f"{name}:val", skips),
            "test": RecordSet(test, f"{name}:test", skips)}
