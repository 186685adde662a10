"""Tiny data sets written by the tests in each real on-disk format (with malformed rows)."""
from __future__ import annotations

from pathlib import Path

import numpy as np


def write_image(path: Path, seed: int = 0, size: int = 24, fmt: str = "PNG") -> Path:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path, format=fmt)
    return path


def adience(root: Path, users_per_fold: int = 3, faces_per_user: int = 4) -> Path:
    header = "user_id\toriginal_image\tface_id\tage\tgender\tx\ty\tdx\tdy\ttilt_ang\tfiducial_yaw_angle\tfiducial_score"
    ages = ["(0, 2)", "(4, 6)", "(8, 12)", "(15, 20)", "(25, 32)", "(38, 43)", "(48, 53)", "(60, 100)", "35",
            "(8, 23)"]
    n = 0
    for k in range(5):
        lines = [header]
        for u in range(users_per_fold):
            user = f"user{k}_{u}@N00"
            for f in range(faces_per_user):
                n += 1
                orig = f"img{n}.jpg"
                age = ages[n % len(ages)]
                write_image(root / "faces" / user / f"coarse_tilt_aligned_face.{n}.{orig}", n, fmt="JPEG")
                lines.append(f"{user}\t{orig}\t{n}\t{age}\tm\t0\t0\t10\t10\t0\t0\t50")
        # malformed rows: no age, missing image, garbage age
        lines.append(f"user{k}_x@N00\tmissing.jpg\t999{k}\t(25, 32)\tf\t0\t0\t1\t1\t0\t0\t1")
        lines.append(f"user{k}_0@N00\timg1.jpg\t998{k}\tNone\tf\t0\t0\t1\t1\t0\t0\t1")
        lines.append(f"user{k}_0@N00\timg1.jpg\t997{k}\tabout thirty\tf\t0\t0\t1\t1\t0\t0\t1")
        (root / f"fold_{k}_data.txt").write_text("\n".join(lines) + "\n")
    return root


def morph(root: Path, subjects: int = 20, per_subject: int = 3) -> Path:
    rows = ["file,id_num,age"]
    n = 0
    for s in range(subjects):
        for j in range(per_subject):
            n += 1
            write_image(root / "Album2" / f"{s:06d}_{j}M{20 + j}.JPG", n, fmt="JPEG")
            rows.append(f"Album2/{s:06d}_{j}M{20 + j}.JPG,{s:06d},{20 + s + j}")
    rows += ["Album2/nothere.JPG,999999,30", "Album2/000000_0M20.JPG,000000,abc", "Album2/000000_1M21.JPG,000000,150"]
    (root / "morph.csv").write_text("\n".join(rows) + "\n")
    return root / "morph.csv"


def fgnet(root: Path, subjects: int = 5) -> Path:
    n = 0
    for s in range(1, subjects + 1):
        for age in (2, 10, 25 + s):
            n += 1
            write_image(root / f"{s:03d}A{age:02d}.JPG", n, fmt="JPEG")
    write_image(root / "002A05a.JPG", 99, fmt="JPEG")  # a suffix letter, as in the real set
    write_image(root / "thumbs.png", 98)  # not an FG-NET name
    return root


def lap(root: Path, layout: str = "2016", n: int = 6) -> Path:
    names = {"2016": (("train", "train_gt.csv"), ("valid", "valid_gt.csv"), ("test", "test_gt.csv")),
             "2015": (("Train", "Train.csv"), ("Validation", "Validation.csv"), ("Test", "Test.csv"))}[layout]
    delim = "," if layout == "2016" else ";"
    k = 0
    for folder, csv_name in names:
        rows = [delim.join(["image", "mean", "stdv"])]
        for i in range(n):
            k += 1
            write_image(root / folder / f"{k:06d}.jpg", k, fmt="JPEG")
            rows.append(delim.join([f"{k:06d}.jpg", f"{20 + k + 0.5}", f"{3 + i % 3}.2"]))
        rows.append(delim.join(["nofile.jpg", "30", "4"]))
        (root / csv_name).write_text("\n".join(rows) + "\n")
    return root


def imdbwiki(root: Path) -> Path:
    """wiki.mat with rows that exercise every cleaning rule."""
    from datetime import date

    from scipy.io import savemat

    def datenum(d: date) -> float:
        return d.toordinal() + 366.0

    rows = [  # (dob, taken, face_score, second_face_score, write image?)
        (date(1980, 3, 1), 2010, 3.2, np.nan, True),   # ok, 30
        (date(1980, 9, 1), 2010, 2.5, np.nan, True),   # ok, 29 (born in the second half)
        (date(1990, 1, 1), 2015, -np.inf, np.nan, True),  # no face
        (date(1990, 1, 1), 2015, 0.5, np.nan, True),   # low score
        (date(1990, 1, 1), 2015, 4.0, 1.5, True),      # second face
        (date(2012, 1, 1), 2010, 4.0, np.nan, True),   # negative age
        (date(1980, 1, 1), 2010, 4.0, np.nan, False),  # missing file
        (date(1975, 5, 5), 2000, 5.0, np.nan, True),   # ok, 25
    ]
    paths = []
    for i, (dob, taken, fs, sfs, write) in enumerate(rows):
        rel = f"{i:02d}/{i}_{dob.isoformat()}_{taken}.jpg"
        paths.append(rel)
        if write:
            write_image(root / rel, i, fmt="JPEG")
    cell = np.empty((1, len(rows)), dtype=object)
    for i, p in enumerate(paths):
        cell[0, i] = np.array([p])
    wiki = {"dob": np.array([[datenum(r[0]) for r in rows]]), "photo_taken": np.array([[r[1] for r in rows]]),
            "full_path": cell, "face_score": np.array([[r[2] for r in rows]]),
            "second_face_score": np.array([[r[3] for r in rows]]), "gender": np.ones((1, len(rows))),
            "name": cell}
    savemat(str(root / "wiki.mat"), {"wiki": wiki})
    return root
