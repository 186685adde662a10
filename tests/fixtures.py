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


# -- pictures with faces (scikit-image's astronaut and LFW crops) ----------------------------------------
def _face_patches():
    """Real face patches centred on the face, with their face size (px): Eileen Collins' face from the
    astronaut portrait, and LFW crops (25 px, x4 and padded by edge replication)."""
    from PIL import Image
    from skimage import data

    patches = [(data.astronaut()[27:227, 123:323], 90.0)]
    lfw = data.lfw_subset()[:100]
    for k in (3, 11, 27, 42, 58, 64, 77, 91):
        g = np.asarray(Image.fromarray((lfw[k] * 255).astype(np.uint8)).resize((100, 100), Image.BICUBIC))
        patches.append((np.repeat(np.pad(g, 30, mode="edge")[..., None], 3, axis=2), 100.0))
    return patches


def group_picture(seed: int, width: int = 1400, height: int = 900):
    """A multi-face picture: real faces pasted at several scales and in-plane rotations on a background
    with stripes (blinds) and a round badge, and the truth: (centre x, centre y, face size, angle) each."""
    from PIL import Image, ImageDraw

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    bg = (120 + 60 * np.sin(xx / 240.0 + seed) * np.cos(yy / 310.0))[..., None] * np.array([0.9, 1.0, 0.8])
    canvas = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
    d = ImageDraw.Draw(canvas)
    for y in range(40, 260, 14):  # blinds
        d.rectangle([width - 330, y, width - 40, y + 7], fill=(230, 230, 220))
    d.ellipse([60, height - 160, 160, height - 60], fill=(200, 40, 40), outline=(250, 250, 250), width=6)
    patches = _face_patches()
    order = rng.permutation(len(patches))[:6]
    truths = []
    cells = [(x, y) for y in (230, 640) for x in (230, 620, 1010)]
    for (cx, cy), k in zip(cells, order):
        patch, face = patches[k]
        scale = float(rng.choice([0.8, 1.2, 1.6]))
        angle = float(rng.choice([0, 0, 12, -18, 28]))
        im = Image.fromarray(patch).convert("RGBA")
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.BICUBIC)
        im = im.rotate(angle, resample=Image.BICUBIC, expand=True)
        canvas.paste(im, (cx - im.width // 2, cy - im.height // 2), im)
        truths.append((float(cx), float(cy), face * scale, angle))
    return np.asarray(canvas), truths


def score_detections(boxes, truths):
    """(faces found, false boxes): a box is a found face when its centre lies within half a face size of an
    unclaimed truth's centre."""
    claimed, found, false = set(), 0, 0
    for x1, y1, x2, y2 in boxes:
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        hit = [i for i, (tx, ty, size, _) in enumerate(truths)
               if i not in claimed and np.hypot(cx - tx, cy - ty) < size / 2]
        if hit:
            claimed.add(hit[0])
            found += 1
        else:
            false += 1
    return found, false
