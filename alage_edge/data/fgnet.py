"""FG-NET: 1002 images of 82 subjects named like ``001A02.JPG`` (subject 001, age 2);
leave-one-person-out (fold k tests subject k of the sorted subject list)."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Dict, List, Tuple

from .base import DataError, Record, RecordSet, Skips, check_file, require_rows, split_by_subject

NAME = re.compile(r"^(\d{3})A(\d{2})[a-z]?\.(jpe?g|png|bmp)$", re.IGNORECASE)


def read(root) -> Tuple[List[Record], Skips]:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: FG-NET image folder missing (files like 001A02.JPG)")
    skips, out = Skips(), []
    for p in sorted(root.iterdir()):
        if p.is_dir():
            continue
        m = NAME.match(p.name)
        if not m:
            skips.add("file name not of the form 001A02.JPG", str(p))
            continue
        if check_file(p, skips, p.name):
            out.append(Record(p, age=float(m.group(2)), subject=m.group(1)))
    require_rows(out, root, skips)
    return out, skips


def subjects(records: List[Record]) -> List[str]:
    return sorted({r.subject for r in records})


def load(root, fold: int = 0, val_fraction: float = 0.1, seed: int = 0) -> Dict[str, RecordSet]:
    records, skips = read(root)
    subs = subjects(records)
    if not 0 <= fold < len(subs):
        raise DataError(f"FG-NET leave-one-person-out fold must be 0..{len(subs) - 1}, got {fold}")
    held = subs[fold]
    test = [r for r in records if r.subject == held]
    train, val = split_by_subject([r for r in records if r.subject != held], (1 - val_fraction, val_fraction), seed)
    name = f"fgnet:fold={fold}(subject {held})"
    return {"train": RecordSet(train, f"{name}:train", skips), "val": RecordSet(val, f"{name}:val", skips),
            "test": RecordSet(test, f"{name}:test", skips)}
