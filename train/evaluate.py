"""Evaluation of a PyTorch model on a FaceSet: predictions, metrics, attention hits."""
from __future__ import annotations

from typing import Dict, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset

from alage_edge.ages import decode
from alage_edge.data.base import FaceSet
from alage_edge.metrics import age_report, attention_scores
from alage_edge.progress import bar

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
        out.update(attention_scores(pred["boxes"][ok], true_boxes[idx], 0.3))
    out["images"] = int(ok.sum())
    if (~ok).any():
        out["skipped"] = int((~ok).sum())
    return out
