"""Can the ranking's teacher tell a glimpse on a region from one a stride or two away?

The selector learns from each glimpse's error under the local CNN alone. For a trained checkpoint and each
true region of each test face (synth's boxes: an analysis, not a model), the error of the local head on the
anchor of best IoU with the region, on anchors shifted from it by 1, 2 or 4 strides, and on a random
anchor; and how often the on-region anchor has the smaller error (the teacher's ranking accuracy).

    python experiments/teacher_resolution.py runs/claim-v5b/AL_lstm-s0/best.pt
"""
from __future__ import annotations

import argparse

import numpy as np
import torch

from alage_edge.ages import decode
from alage_edge.data import open_splits
from alage_edge.metrics import iou
from alage_edge.model import load_checkpoint
from alage_edge.table import table

DATA = "synth:n=3000,n_test=1000,seed=0,size=224,version=5"  # the claim's (train/claim.py: data_spec)


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint")
    ap.add_argument("--n", type=int, default=300)
    args = ap.parse_args()
    model = load_checkpoint(args.checkpoint).eval()
    att, spec = model.attention_stream, model.cfg.preprocess
    faces = open_splits(DATA, size=spec.size, cache_dir="runs/claim-v5b/cache")["test"]
    n, grid = min(args.n, len(faces)), int(round(att.anchors ** 0.5))
    anchors, ages = att.anchor_boxes.numpy(), faces.ages()[:n]
    rng = np.random.default_rng(0)
    errors = {k: [] for k in ("on region", "1 stride off", "2 strides off", "4 strides off", "random")}
    for i in range(n):
        x = torch.from_numpy(spec.apply(faces.image(i)))[None]
        best = iou(faces.boxes()[i][:, None, :], anchors[None]).argmax(axis=1)
        picks = {"on region": best, "random": rng.integers(0, att.anchors, size=len(best))}
        for k, name in ((1, "1 stride off"), (2, "2 strides off"), (4, "4 strides off")):
            step = rng.choice([-k, k], size=(len(best), 2))
            picks[name] = (best // grid + step[:, 0]).clip(0, grid - 1) * grid + (best % grid + step[:, 1]).clip(0, grid - 1)
        for name, p in picks.items():
            crops = torch.cat([att.cut(x, torch.tensor([int(a)])) for a in p])
            age = decode(att.local_head(att.local(crops)).numpy(), model.cfg.head)["age"]
            errors[name].append(np.abs(age - ages[i]))
    on = np.array(errors["on region"])
    rows = [[name, round(float(np.mean(e)), 2), "-" if name == "on region" else
             f"{float(np.mean(on < np.array(e)) + 0.5 * np.mean(on == np.array(e))):.0%}"] for name, e in errors.items()]
    print(f"{args.checkpoint}: local head alone, {n} test faces x {on.shape[1]} regions")
    print(table(["glimpse", "mean error of that glimpse alone (y)", "on-region glimpse has the smaller error"], rows))


if __name__ == "__main__":
    main()
