"""Where an anchor model's glimpses land: how many of a face's age regions they reach, and how often a
glimpse lands in a region an earlier glimpse already reached; and how many glimpses would hit a region at
IoU >= 0.5 if each were a box of that region's size around the glimpse's centre (placement alone, the
issue's "crops sized to the regions").

Reads synth's true region boxes (evaluation only, as the claim's box hits do), on the claim's test faces.
``CKPT@IOU`` reads a checkpoint with anchors suppressed at IoU >= IOU (for checkpoints of the
suppression trial, written before the model kept ``suppress_iou`` in its config).

    python experiments/glimpse_coverage.py runs/claim-v5b/AL_lstm-s0/best.pt runs/exp27/supp25/best.pt@0.25
"""
from __future__ import annotations

import argparse

import numpy as np
import torch
from oracle_glimpses import report  # experiments/, beside this script

from alage_edge.ages import decode
from alage_edge.data import open_splits
from alage_edge.metrics import iou
from alage_edge.model import load_checkpoint
from alage_edge.model.anchors import anchor_tables

DATA = "synth:n=3000,n_test=1000,seed=0,size=224,version=5"  # the claim's (train/claim.py: data_spec)


@torch.no_grad()
def coverage(arg: str, n: int) -> dict:
    ck, _, sup = arg.partition("@")
    model = load_checkpoint(ck).eval()
    att, spec = model.attention_stream, model.cfg.preprocess
    if sup:
        model.cfg.suppress_iou = float(sup)
        att.overlap = anchor_tables(model.cfg)[2]
    faces = open_splits(DATA, size=spec.size, cache_dir="runs/claim-v5b/cache")["test"]
    n = min(n, len(faces))
    true = faces.boxes()[:n]  # (N, R, 4)
    boxes, logits = [], []
    for s in range(0, n, 50):
        x = torch.from_numpy(np.stack([spec.apply(faces.image(i)) for i in range(s, min(n, s + 50))]))
        out = model(x)
        boxes.append(out["boxes"].numpy())
        logits.append(out["fused_logits"].numpy())
    b = np.concatenate(boxes)  # (N, T, 4)
    age = decode(np.concatenate(logits), model.cfg.head)["age"]
    cx, cy = (b[..., 0] + b[..., 2]) / 2, (b[..., 1] + b[..., 3]) / 2
    inside = ((cx[..., None] >= true[:, None, :, 0]) & (cx[..., None] <= true[:, None, :, 2])
              & (cy[..., None] >= true[:, None, :, 1]) & (cy[..., None] <= true[:, None, :, 3]))  # (N, T, R)
    hit = iou(b[:, :, None, :], true[:, None, :, :]) >= 0.5
    # placement alone: each glimpse's centre with a box the size of the region it is compared with
    half = (true[:, None, :, 2:] - true[:, None, :, :2]) / 2  # (N, 1, R, 2)
    centre = np.stack([cx, cy], -1)[:, :, None, :]  # (N, T, 1, 2)
    sized = np.concatenate([centre - half, centre + half], -1)  # (N, T, R, 4)
    placed = iou(sized, true[:, None, :, :]) >= 0.5
    earlier = np.cumsum(inside, axis=1) - inside  # regions reached by the glimpses before each step
    repeat = (inside & (earlier > 0)).any(2)
    return {"checkpoint": arg, "suppress_iou": model.cfg.suppress_iou,
            "mae": round(float(np.abs(age - faces.ages()[:n]).mean()), 3),
            "regions_reached": round(float(inside.any(1).sum(1).mean()), 2),
            "regions_hit_iou_0.5": round(float(hit.any(1).sum(1).mean()), 2),
            "glimpse_centre_in_a_region": round(float(inside.any(2).mean()), 3),
            "glimpse_hits_iou_0.5": round(float(hit.any(2).mean()), 3),
            "glimpse_hits_iou_0.5_region_sized": round(float(placed.any(2).mean()), 3),
            "glimpse_repeats_a_region": round(float(repeat.mean()), 3),
            "centre_std": round(float(np.std(np.stack([cx, cy], -1), axis=0).mean()), 3), "faces": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+", help="CKPT or CKPT@IOU")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    report([coverage(a, args.n) for a in args.checkpoints], args.json)


if __name__ == "__main__":
    main()
