"""How much better would a trained anchor model read if it looked exactly where the age is?

An upper bound for the selector, not a model: synth's true region boxes choose the glimpses here (the
anchor of best IoU with each region, one per step), which no deployed model may know. Each checkpoint
is evaluated on the claim's test faces with its own glimpses, with static anchors' choice (for the
"lstm" selector: the learned prior alone), with random anchors, and with the oracle's; and the share of
the oracle's anchors that reach IoU >= 0.5 with their region says what the "box hits" target can reach
with square anchors of this size.

    python experiments/oracle_glimpses.py runs/claim-v5b/AL_lstm-s0/best.pt runs/claim-v5b/AL_static-s0/best.pt
"""
from __future__ import annotations

import argparse
import json

import numpy as np
import torch

from alage_edge.ages import decode
from alage_edge.data import open_splits
from alage_edge.metrics import box_hits, iou
from alage_edge.model import load_checkpoint
from alage_edge.table import table

DATA = "synth:n=3000,n_test=1000,seed=0,size=224,version=5"  # the claim's (train/claim.py: data_spec)


@torch.no_grad()
def read_with(model, x: torch.Tensor, picks: torch.Tensor) -> np.ndarray:
    """Fused logits when the T glimpses are ``picks`` (B, T) anchors."""
    att = model.attention_stream
    g, _ = model.global_stream(x)
    crops = torch.cat([att.cut(x, picks[:, t]) for t in range(picks.shape[1])])
    feats = att.local(crops).reshape(picks.shape[1], x.shape[0], -1).mean(dim=0)
    return att._heads(g, feats)[1].numpy()


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--split", default="test", choices=["train", "val", "test"],
                    help="train: are the LSTM's choices better than its prior on the faces it learned from?")
    ap.add_argument("--json", help="write the rows here")
    args = ap.parse_args()
    torch.manual_seed(0)
    rows = []
    for ck in args.checkpoints:
        model = load_checkpoint(ck).eval()
        att, spec = model.attention_stream, model.cfg.preprocess
        faces = open_splits(DATA, size=spec.size, cache_dir="runs/claim-v5b/cache")[args.split]
        n = min(args.n, len(faces))
        true = faces.boxes()[:n]  # (N, R, 4) in [0, 1]
        anchors = att.anchor_boxes.numpy()
        best = iou(true[:, :, None, :], anchors[None, None]).argmax(axis=2)  # (N, R): the anchor nearest each region
        steps = att.steps
        oracle = np.stack([best[:, t % best.shape[1]] for t in range(steps)], axis=1)
        rng = np.random.default_rng(0)
        static = np.array(att._static_picks())
        ways = {"own": None, "static (prior)": np.broadcast_to(static, (n, steps)),
                "random": rng.integers(0, att.anchors, size=(n, steps)), "oracle": oracle}
        ages = faces.ages()[:n]
        for way, picks in ways.items():
            logits, boxes = [], []
            for s in range(0, n, 50):
                x = torch.from_numpy(np.stack([spec.apply(faces.image(i)) for i in range(s, min(n, s + 50))]))
                if picks is None:
                    out = model(x)
                    logits.append(out["fused_logits"].numpy())
                    boxes.append(out["boxes"].numpy())
                else:
                    p = torch.from_numpy(np.ascontiguousarray(picks[s:s + len(x)])).long()
                    logits.append(read_with(model, x, p))
                    boxes.append(anchors[p.numpy()])
            age = decode(np.concatenate(logits), model.cfg.head)["age"]
            hits = box_hits(np.concatenate(boxes), true, 0.5)
            rows.append({"checkpoint": ck, "split": args.split, "glimpses": way, "mae": round(float(np.abs(age - ages).mean()), 3),
                         "hits_iou_0.5": round(float(hits.mean()), 3)})
            print(rows[-1], flush=True)
    report(rows, args.json)


def report(rows: list, path=None) -> None:
    """Print the rows as a table and, given ``path``, write them there as JSON."""
    keys = list(rows[0])
    print(table(keys, [[r[k] for k in keys] for r in rows]))
    if path:
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)


if __name__ == "__main__":
    main()
