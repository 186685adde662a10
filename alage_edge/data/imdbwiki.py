"""IMDB-WIKI (Rothe et al.): ``imdb.mat`` / ``wiki.mat`` metadata and the cleaning
rules that make IMDB-WIKI-101 (one clear face, a valid age in 0..100).

Fields used: ``dob`` (MATLAB datenum), ``photo_taken`` (year), ``full_path``,
``face_score`` (-inf: no face), ``second_face_score`` (NaN: no second face).
The age is the year the photo was taken minus the birth year (one less when
born in the second half of the year: photos are taken mid-year on average).
"""
from __future__ import annotations

from collections import OrderedDict
from datetime import date
from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np

from .base import DataError, Record, RecordSet, Skips, require_rows, stable_fraction

RULES = ("no face detected", "face score below threshold", "second face in the picture",
         "age outside 0..100 or no valid birth date", "image file missing")


def datenum_to_date(dn: float) -> date:
    """MATLAB datenum (days since year 0) -> date."""
    return date.fromordinal(int(dn) - 366)


def age_at(photo_taken: int, dob: float) -> float:
    try:
        birth = datenum_to_date(dob)
    except (ValueError, OverflowError):
        return float("nan")
    return float(photo_taken - birth.year - (1 if birth.month >= 7 else 0))


def read_meta(mat_path) -> Dict[str, np.ndarray]:
    try:
        from scipy.io import loadmat
    except ImportError as e:
        raise ImportError("reading IMDB-WIKI needs scipy: pip install 'alage-edge[train]'") from e
    mat_path = Path(mat_path)
    if not mat_path.is_file():
        raise DataError(f"{mat_path}: IMDB-WIKI metadata missing (imdb.mat or wiki.mat)")
    try:
        mat = loadmat(str(mat_path))
    except Exception as e:
        raise DataError(f"{mat_path}: not a readable MATLAB file ({e})") from e
    key = next((k for k in ("imdb", "wiki") if k in mat), None)
    if key is None:
        raise DataError(f"{mat_path}: expected a struct named 'imdb' or 'wiki', found {sorted(mat)}")
    s = mat[key][0, 0]
    need = ("dob", "photo_taken", "full_path", "face_score", "second_face_score")
    missing = [f for f in need if f not in s.dtype.names]
    if missing:
        raise DataError(f"{mat_path}: struct '{key}' lacks fields {missing}")
    paths = [str(np.asarray(p).reshape(-1)[0]) if np.asarray(p).size else "" for p in s["full_path"].reshape(-1)]
    return {"dob": s["dob"].reshape(-1).astype(np.float64),
            "photo_taken": s["photo_taken"].reshape(-1).astype(np.int64),
            "full_path": np.array(paths, dtype=object),
            "face_score": s["face_score"].reshape(-1).astype(np.float64),
            "second_face_score": s["second_face_score"].reshape(-1).astype(np.float64)}


def clean(meta: Dict[str, np.ndarray], root: Path, min_score: float = 1.0,
          check_files: bool = True) -> Tuple[List[Record], "OrderedDict[str, int]", Skips]:
    """Apply the IMDB-WIKI-101 rules in order; return records and how many each rule removed."""
    removed: "OrderedDict[str, int]" = OrderedDict((r, 0) for r in RULES)
    skips, out = Skips(), []
    for i in range(len(meta["dob"])):
        rel = meta["full_path"][i]
        fs, sfs = meta["face_score"][i], meta["second_face_score"][i]
        age = age_at(int(meta["photo_taken"][i]), meta["dob"][i])
        if not np.isfinite(fs):
            rule = RULES[0]
        elif fs < min_score:
            rule = RULES[1]
        elif np.isfinite(sfs):
            rule = RULES[2]
        elif not (np.isfinite(age) and 0 <= age <= 100):
            rule = RULES[3]
        elif check_files and not (root / rel).is_file():
            rule = RULES[4]
        else:
            out.append(Record(root / rel, age=age, subject=rel))
            continue
        removed[rule] += 1
        skips.add(rule, rel)
    return out, removed, skips


def load(root, meta: str = "", min_score: float = 1.0, seed: int = 0,
         val_fraction: float = 0.05, test_fraction: float = 0.05) -> Dict[str, RecordSet]:
    root = Path(root)
    mat = Path(meta) if meta else next((root / n for n in ("imdb.mat", "wiki.mat") if (root / n).is_file()),
                                       root / "wiki.mat")
    records, removed, skips = clean(read_meta(mat), root, min_score)
    require_rows(records, mat, skips)
    parts: Dict[str, list] = {"train": [], "val": [], "test": []}
    for r in records:
        u = stable_fraction(str(r.path), seed)
        parts["test" if u < test_fraction else "val" if u < test_fraction + val_fraction else "train"].append(r)
    sets = {k: RecordSet(v, f"imdbwiki:{k}", skips) for k, v in parts.items()}
    for s in sets.values():
        s.cleaning = removed  # counts per rule, for reports
    return sets
