"""What the claim-row trials share: their command line and the claim row's training config (compact preset,
synth v5, 3,000 training and 1,000 test faces, 12 joint epochs, the claim's cached faces)."""
from __future__ import annotations

import argparse
from pathlib import Path


def parse(description: str, extra=None):
    """(arguments, the row's TrainConfig); ``extra(parser)`` adds a trial's own options."""
    from train.claim import data_spec, train_config

    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="AL lstm", choices=["AL lstm", "AL static"])
    ap.add_argument("--cache", default="runs/claim-v5e/cache")
    if extra:
        extra(ap)
    args = ap.parse_args()
    cfg = train_config(Path(args.out), args.model, args.seed, data_spec(3000, 1000, 5), (0, 0, 12), args.cache, False)
    cfg.greedy_heads = False  # as these trials ran: before the heads trained on the greedy glimpses by default
    return args, cfg
