"""``alage-edge eval``: checkpoints x data set -> metrics table (mean and std over folds)."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np

from alage_edge.data import open_splits, parse
from alage_edge.model import load_checkpoint
from alage_edge.table import table

from .evaluate import predict, report
from .trainer import _device

FOLDED = ("adience", "fgnet")
COLUMNS = ("images", "mae", "cs5", "epsilon_error", "accuracy", "one_off", "box_hit_mean", "all_boxes_hit")


def _fold_spec(spec: str, k: int) -> str:
    return f"{spec},fold={k}" if ":" in spec else f"{spec}:fold={k}"


def evaluate_checkpoint(path: str, spec: str, split: str = "test", batch_size: int = 64, device: str = "auto",
                        cache: Optional[str] = None) -> Dict[str, float]:
    dev = _device(device)
    model = load_checkpoint(path).to(dev)
    faces = open_splits(spec, size=model.cfg.img_size, cache_dir=cache)[split]
    if hasattr(faces, "preload"):
        faces.preload()
    out = report(predict(model, faces, batch_size=batch_size, device=dev), faces)
    return {"checkpoint": str(path), "arch": model.cfg.arch, "data": f"{faces.name}", **out}


def evaluate_checkpoints(paths: List[str], spec: str, split: str = "test", batch_size: int = 64,
                         device: str = "auto", cache: Optional[str] = None) -> List[dict]:
    name, _, opts = parse(spec)
    if len(paths) > 1 and name in FOLDED and "fold" not in opts:
        rows = [evaluate_checkpoint(p, _fold_spec(spec, k), split, batch_size, device, cache)
                for k, p in enumerate(paths)]
        summary = {"checkpoint": f"mean of {len(rows)} folds", "arch": rows[0]["arch"], "data": spec}
        for c in COLUMNS:
            vals = [r[c] for r in rows if c in r]
            if vals:
                summary[c] = float(np.mean(vals))
                if c != "images":
                    summary[c + "_std"] = float(np.std(vals))
        return rows + [summary]
    return [evaluate_checkpoint(p, spec, split, batch_size, device, cache) for p in paths]


def format_table(rows: List[dict]) -> str:
    cols = [c for c in COLUMNS if any(c in r for r in rows)]

    def cell(r, c):
        v = r.get(c)
        if v is not None and f"{c}_std" in r:
            return f"{v:.3f} ± {r[c + '_std']:.3f}"
        return v

    return table(["checkpoint", "arch"] + cols, [[r["checkpoint"], r["arch"]] + [cell(r, c) for c in cols]
                                                 for r in rows])
