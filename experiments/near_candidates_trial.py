"""Trial: does the ranking teach fine placement when some of its candidates sit next to the glimpses taken?

The selector's ranking compares, per face, the T glimpses taken with ``candidates`` random anchors (4 of
529 in the compact preset): it rarely sees the anchor a stride away from a glimpse, so it can learn roughly
where the age is but not where exactly (glimpse centres land in a region mostly, IoU >= 0.5 a quarter of
the time). Here ``--near K`` of the candidates are neighbours of a taken glimpse (1 or 2 strides away in x
and y); ``--candidates N`` sets the total, so 8 random against 4 random + 4 near isolates "near" from "more".
The claim's "AL lstm" row (or ``--model "AL static"``) otherwise (compact preset, synth v5, 3,000 faces, 12 joint epochs):

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/near_candidates_trial.py --out runs/exp27/near4 --candidates 8 --near 4
    python experiments/oracle_glimpses.py runs/exp27/near4/best.pt
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

import train.trainer as trainer
from alage_edge.model.anchors import AnchorAttention
from train.claim import data_spec, train_config

NEAR = {"k": 0}


def ranking_inputs(self, image, picks, scores, read):
    b, k = image.shape[0], NEAR["k"]
    grid = int(round(self.anchors ** 0.5))
    extra = torch.randint(0, self.anchors, (b, self.candidates), device=image.device)
    if k:
        base = picks.gather(1, torch.randint(0, picks.shape[1], (b, k), device=image.device))
        step = torch.randint(1, 3, (b, k, 2), device=image.device) * (torch.randint(0, 2, (b, k, 2)) * 2 - 1)
        y = (base // grid + step[..., 0]).clamp(0, grid - 1)
        x = (base % grid + step[..., 1]).clamp(0, grid - 1)
        extra[:, :k] = y * grid + x
    crops = torch.cat([self.cut(image, extra[:, j]) for j in range(self.candidates)])
    more = self.local(crops).reshape(self.candidates, b, -1).transpose(0, 1)
    cand = torch.cat([picks, extra], dim=1)
    logits = self.local_head(torch.cat([read, more], dim=1))
    return {"glimpse_logits": logits, "glimpse_scores": scores.gather(2, cand[:, None].expand(-1, self.steps, -1))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", type=int, default=8)
    ap.add_argument("--near", type=int, default=4)
    ap.add_argument("--model", default="AL lstm", choices=["AL lstm", "AL static"])
    args = ap.parse_args()
    cfg = train_config(Path(args.out).parent, args.model, args.seed, data_spec(3000, 1000, 5), (0, 0, 12),
                       "runs/claim-v5b/cache", False)
    cfg.greedy_heads = False  # as this trial ran: before the heads trained on the greedy glimpses by default
    cfg.out, cfg.model = args.out, {**cfg.model, "candidates": args.candidates}
    NEAR["k"] = args.near
    AnchorAttention._ranking_inputs = ranking_inputs
    print(trainer.train(cfg))


if __name__ == "__main__":
    main()
