"""Train the claim's anchor model with glimpses chosen by synth's true regions: the attention design's
ceiling on the claim's data, with a perfect selector.

Not a model anyone may ship (the glimpses come from the generator's boxes, in training and in testing);
it answers whether the attention model could reach the plain networks at 2S if its selector were
perfect. Everything else is the claim's "AL static" row: the compact preset, the same 3,000 faces, 12
joint epochs, the same augmentation (the true boxes follow each face's shift and flip). The oracle takes
the anchor of best IoU with each region, one region per step.

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/oracle_train.py --out runs/exp27/oracle-s0 --seed 0
    python experiments/oracle_glimpses.py runs/exp27/oracle-s0/best.pt   # its "oracle" row is the ceiling
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Subset

import train.evaluate as evaluate
import train.trainer as trainer
from alage_edge.metrics import iou
from alage_edge.model.anchors import AnchorAttention
from train.claim import data_spec, train_config

ORACLE = {}  # "picks": (B, T) anchors of the batch being read


def true_boxes(ds, i: int) -> np.ndarray:
    """Region boxes (R, 4) in [0, 1] of item i as the model sees it: after training's shift and flip
    (the draws of ``train.dataset.augment``, from the same generator)."""
    boxes = ds.faces.record(i).boxes.astype(np.float64).copy()
    if not ds.train:
        return boxes
    size = ds.spec.size
    rng = np.random.default_rng([ds.seed, ds.epoch, i])
    m = int(round(0.06 * size))
    dx, dy = (int(v) for v in rng.integers(-m, m + 1, size=2))
    boxes[:, [0, 2]] -= dx / size
    boxes[:, [1, 3]] -= dy / size
    if rng.random() < 0.5:
        boxes[:, [0, 2]] = 1.0 - boxes[:, [2, 0]]
    return boxes


def with_oracle(batches, ds, att: AnchorAttention):
    ds = ds.dataset if isinstance(ds, Subset) else ds
    anchors = att.anchor_boxes.numpy()
    for batch in batches:
        idx = batch[-1].tolist()
        best = np.stack([iou(true_boxes(ds, i)[:, None, :], anchors[None]).argmax(axis=1) for i in idx])
        ORACLE["picks"] = torch.from_numpy(np.stack([best[:, t % best.shape[1]] for t in range(att.steps)], 1))
        yield batch


def oracle_glimpses(self, image, g, explore):
    picks = ORACLE["picks"]
    b, steps = image.shape[0], picks.shape[1]
    crops = torch.cat([self.cut(image, picks[:, t]) for t in range(steps)])
    read = self.local(crops).reshape(steps, b, self.local_features).transpose(0, 1)
    out = dict(zip(("local_logits", "fused_logits"), self._heads(g, read.mean(dim=1))))
    out["boxes"] = self.anchor_boxes[picks]
    if self.training:
        out.update(self._ranking_inputs(image, picks, image.new_zeros(b, steps, self.anchors), read))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="AL static", choices=["AL static", "AL static 64px"],
                    help="the claim row whose model and anchors it trains")
    args = ap.parse_args()
    cfg = train_config(Path(args.out).parent, args.model, args.seed, data_spec(3000, 1000, 5), (0, 0, 12),
                       "runs/claim-v5b/cache", False)
    cfg.out = args.out
    AnchorAttention._glimpses = oracle_glimpses
    state = {}
    real_init = trainer.Trainer.__init__

    def init(self, c):
        real_init(self, c)
        state["att"] = self.model.attention_stream

    trainer.Trainer.__init__ = init
    real_bar = trainer.bar
    trainer.bar = lambda loader, **kw: with_oracle(real_bar(loader, **kw), loader.dataset, state["att"])
    real_loader = evaluate.DataLoader
    evaluate.DataLoader = lambda ds, **kw: with_oracle(real_loader(ds, **kw), ds, state["att"])
    print(trainer.train(cfg))


if __name__ == "__main__":
    main()
