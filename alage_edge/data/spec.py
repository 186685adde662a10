"""Dataset specs: one string names a set and its options, for every CLI.

    synth[:n=2000,seed=0,size=224,pose=1,version=4]   the procedural set (no download); version=5 moves
                                          the age regions per face (shape, yaw, alignment error)
    adience:ROOT[,fold=0]                 fold_k_data.txt + faces/
    morph:CSV[,images=DIR]                MORPH-2 CSV (file, subject id, age)
    fgnet:DIR[,fold=0]                    001A02.JPG files, leave-one-person-out
    lap:ROOT                              ChaLearn LAP 2015/2016
    imdbwiki:ROOT[,meta=wiki.mat,min_score=1.0]
    csv:FILE[,images=DIR]                 path,age[,subject,split,std]
    folder:DIR  or just DIR               unlabelled images (calibration, prediction)
    any on-disk set, align=hog|cnn|haar   in-the-wild pictures: the largest face, found and aligned
                                          by alage_edge.faces.find_faces (as predict does)
    npy:FILE    or just FILE.npy          uint8 images or preprocessed float32
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Dict, Optional, Tuple

from .base import DataError, FaceSet

FORMATS = ("synth", "adience", "morph", "fgnet", "lap", "imdbwiki", "csv", "folder", "npy")
SPLITS = ("train", "val", "test")
SYNTH_SIZES = {"train": 2000, "val": 300, "test": 500}


def parse(spec: str) -> Tuple[str, Optional[str], Dict[str, str]]:
    """``"adience:/data/a,fold=2"`` -> ("adience", "/data/a", {"fold": "2"})."""
    spec = spec.strip()
    if not spec:
        raise DataError("empty dataset spec; e.g. synth, adience:/data/adience,fold=0, or a folder")
    name, _, rest = spec.partition(":")
    if name not in FORMATS:  # a bare path
        p = Path(spec)
        return ("npy" if p.suffix == ".npy" else "csv" if p.suffix == ".csv" else "folder"), spec, {}
    path, opts = None, {}
    for item in (rest.split(",") if rest else []):
        if "=" in item:
            k, v = item.split("=", 1)
            opts[k.strip()] = v.strip()
        elif path is None:
            path = item.strip()
        else:
            raise DataError(f"dataset spec {spec!r}: more than one path ({path!r}, {item!r})")
    if name not in ("synth",) and not path:
        raise DataError(f"dataset spec {spec!r}: {name} needs a path, e.g. {name}:/data/{name}")
    return name, path, opts


def _int(opts, key, default):
    try:
        return int(opts.pop(key, default))
    except ValueError as e:
        raise DataError(f"dataset option {key} must be an integer") from e


def open_splits(spec: str, size: int = 224, cache_dir: Optional[str] = None) -> Dict[str, FaceSet]:
    """All splits of a labelled set (train/val/test by the format's protocol)."""
    name, path, opts = parse(spec)
    align = opts.pop("align", None)
    if align is not None:
        if name == "synth":
            raise DataError(f"dataset spec {spec!r}: synth faces are drawn aligned; align= is for photos")
        from ..faces import DETECTORS
        from .base import AlignedSet

        if align not in DETECTORS:
            raise DataError(f"dataset spec {spec!r}: align must be one of {', '.join(DETECTORS)}, got {align!r}")
        plain = ",".join([f"{name}:{path}"] + [f"{k}={v}" for k, v in opts.items()])
        return {s: AlignedSet(fs, align, size) for s, fs in open_splits(plain, size, cache_dir).items()}
    seed = _int(opts, "seed", 0)
    if name == "synth":
        from .synth import SynthFaces

        n = {s: _int(opts, f"n_{s}", SYNTH_SIZES[s]) for s in SPLITS}
        if "n" in opts:  # n= sets the training size; val/test keep theirs unless given
            n["train"] = _int(opts, "n", n["train"])
        px = _int(opts, "size", size)
        pose = float(opts.pop("pose", 1.0))
        version = _int(opts, "version", 4)
        if version not in (4, 5):
            raise DataError(f"dataset spec {spec!r}: synth version must be 4 or 5, got {version}")
        cache = opts.pop("cache", cache_dir or os.environ.get("ALAGE_CACHE") or None)
        _no_more(spec, opts)
        return {s: SynthFaces(n[s], seed, px, s, pose, cache, version) for s in SPLITS}
    if name == "adience":
        from . import adience

        fold = _int(opts, "fold", 0)
        _no_more(spec, opts)
        return adience.load(path, fold=fold, seed=seed)
    if name == "morph":
        from . import morph

        images = opts.pop("images", "")
        _no_more(spec, opts)
        return morph.load(path, images=images, seed=seed)
    if name == "fgnet":
        from . import fgnet

        fold = _int(opts, "fold", 0)
        _no_more(spec, opts)
        return fgnet.load(path, fold=fold, seed=seed)
    if name == "lap":
        from . import lap

        _no_more(spec, opts)
        return lap.load(path, seed=seed)
    if name == "imdbwiki":
        from . import imdbwiki

        meta, min_score = opts.pop("meta", ""), float(opts.pop("min_score", 1.0))
        _no_more(spec, opts)
        return imdbwiki.load(path, meta=meta, min_score=min_score, seed=seed)
    if name == "csv":
        from .folder import load_csv

        images = opts.pop("images", "")
        _no_more(spec, opts)
        return load_csv(path, images=images, seed=seed)
    raise DataError(f"dataset spec {spec!r}: {name} has no labels and no splits; "
                    f"use it for calibration or prediction")


def open_dataset(spec: str, split: str = "test", size: int = 224, cache_dir: Optional[str] = None) -> FaceSet:
    """One split of a set; unlabelled sources (folder, npy) return themselves."""
    name, path, opts = parse(spec)
    if name == "folder":
        from .folder import load_folder

        return load_folder(path)
    if name == "npy":
        from .folder import ArraySet

        return ArraySet(path)
    if split not in SPLITS:
        raise DataError(f"split must be one of {SPLITS}, got {split!r}")
    return open_splits(spec, size=size, cache_dir=cache_dir)[split]


def like_training(spec: str, trained_on: Optional[str]) -> str:
    """``spec`` with the synth version of the data a model was trained on, where ``spec`` names synth
    without a version: calibration and drift checks must read the faces the model learned (a v5 model
    calibrated on v4 faces got INT8 scales from faces it never saw)."""
    name, _, opts = parse(spec)
    if name != "synth" or "version" in opts or not trained_on:
        return spec
    tname, _, topts = parse(trained_on)
    if tname != "synth" or topts.get("version", "4") == "4":
        return spec
    return spec + (":" if spec == "synth" else ",") + f"version={topts['version']}"


def _no_more(spec: str, opts: Dict[str, str]) -> None:
    if opts:
        raise DataError(f"dataset spec {spec!r}: unknown options {sorted(opts)}")
