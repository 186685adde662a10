"""Evaluation: a PyTorch model on a FaceSet (predictions, metrics, attention hits), and
``alage-edge eval``: checkpoints x data set -> metrics table (mean and std over folds)."""
from __future__ import annotations

from typing import Dict, List, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from alage_edge.ages import decode
from alage_edge.data import open_splits, parse
from alage_edge.data.base import FaceSet
from alage_edge.metrics import age_report, attention_scores
from alage_edge.model import load_checkpoint
from alage_edge.progress import bar
from alage_edge.table import table

from . import distributed as dist
from .dataset import FaceDataset


@torch.no_grad()
def predict(model, faces: FaceSet, batch_size: int = 64, device: str = "cpu", head_stream: str = "fused",
            workers: int = 0, progress: bool = False, shard: bool = False) -> Dict[str, np.ndarray]:
    """Logits of ``head_stream`` (global/local/fused), decoded ages and boxes for every image.

    ``shard``: under DDP each rank predicts its share and rank 0 gets everything."""
    model = getattr(model, "module", model)
    model.eval()
    ds = FaceDataset(faces, model.cfg.preprocess, train=False)
    idx = list(range(len(ds)))
    if shard and torch.distributed.is_initialized():
        idx = idx[torch.distributed.get_rank()::torch.distributed.get_world_size()]
    loader = DataLoader(Subset(ds, idx), batch_size=batch_size, shuffle=False, num_workers=workers)
    logits, boxes, order, valid = [], [], [], []
    it = bar(loader, desc=f"eval {faces.name}", leave=False, disable=not progress) if progress else loader
    for x, _, _, ok, i in it:
        x = x.to(device)
        if head_stream == "global":
            _, out = model.global_stream(x)
            logits.append(out.float().cpu())
        else:
            out = model(x)
            logits.append(out[f"{head_stream}_logits"].float().cpu())
            if "boxes" in out:
                boxes.append(out["boxes"].float().cpu())
        order.append(i)
        valid.append(ok)
    res = {"logits": torch.cat(logits).numpy(), "index": torch.cat(order).numpy(), "valid": torch.cat(valid).numpy()}
    if boxes:
        res["boxes"] = torch.cat(boxes).numpy()
    if shard and torch.distributed.is_initialized():
        parts = dist.gather(res)
        res = {k: np.concatenate([p[k] for p in parts]) for k in res}
        perm = np.argsort(res["index"])
        res = {k: v[perm] for k, v in res.items()}
    res.update(decode(res["logits"], model.cfg.head))
    return res


def report(pred: Dict[str, np.ndarray], faces: FaceSet) -> Dict[str, float]:
    """Metrics that apply to this set, over the images that decoded."""
    ok = pred["valid"].astype(bool)
    idx = pred["index"][ok]
    ages, groups, stds = faces.ages()[idx], faces.groups()[idx], faces.age_stds()[idx]
    out = age_report(pred["age"][ok], ages, pred["group"][ok], groups,
                     mu=ages, sigma=stds if np.isfinite(stds).all() and len(stds) else None)
    true_boxes: Optional[np.ndarray] = faces.boxes()
    if true_boxes is not None and "boxes" in pred:
        out.update(attention_scores(pred["boxes"][ok], true_boxes[idx], 0.5))  # IoU >= 0.5 with a true region
    out["images"] = int(ok.sum())
    if (~ok).any():
        out["skipped"] = int((~ok).sum())
    return out


FOLDED = ("adience", "fgnet")
COLUMNS = ("images", "mae", "cs5", "epsilon_error", "accuracy", "one_off", "box_hit_mean", "all_boxes_hit")


def _fold_spec(spec: str, k: int) -> str:
    return f"{spec},fold={k}" if ":" in spec else f"{spec}:fold={k}"


def evaluate_checkpoint(path: str, spec: str, split: str = "test", batch_size: int = 64, device: str = "auto",
                        cache: Optional[str] = None) -> Dict[str, float]:
    dev = dist.pick_device(device)
    model = load_checkpoint(path).to(dev)
    faces = open_splits(spec, size=model.cfg.input_size, cache_dir=cache)[split]
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
