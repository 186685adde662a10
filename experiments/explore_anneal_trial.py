"""Trial: the glimpses' exploration noise annealed to zero over training.

Training samples each step's glimpse by Gumbel-max over the selector's scores (every anchor gets read); at
test the choice is greedy. So the local CNN and the fusion learn on scattered glimpses and are read on
chosen ones, and a local CNN trained on scattered glimpses is insensitive to placement (its loss, the
ranking's teacher, hardly tells an anchor on a region from one a stride off: teacher_resolution.py). Here
the noise's scale falls linearly from 1 at the first step to 0 at the last, so the last epochs train on the
glimpses the model will take (the schedule counts 12 epochs of 2,700 faces, 516 steps; the runs took 552, so
the last 36 trained without noise). ``--candidates`` sets the random anchors each face's ranking also
compares (4 in the model), which with less noise are the teacher's only exploration. The claim's row otherwise (compact preset, synth v5, 3,000 faces, 12 joint
epochs); nothing of synth is read:

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/explore_anneal_trial.py --out runs/exp27/anneal --model "AL lstm" --seed 0
    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/explore_anneal_trial.py --out runs/exp27/anneal-c8 --candidates 8 --seed 0
    alage-edge eval runs/exp27/anneal/AL_lstm-s0/best.pt --data synth:n=3000,n_test=1000,seed=0,size=224,version=5
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import train.trainer as trainer
from alage_edge.model.anchors import AnchorAttention
from train.claim import data_spec, train_config
from train.losses import ranking_loss

STATE = {"step": 0, "total": 1}


def annealed_ranking_loss(out, age, group, head, weights, tau: float = 0.5):
    """The package's ranking loss; each call (one training step) lowers the noise the next step samples with."""
    STATE["step"] += 1
    AnchorAttention.explore_noise = max(0.0, 1.0 - STATE["step"] / STATE["total"])
    return ranking_loss(out, age, group, head, weights, tau)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--model", default="AL lstm", choices=["AL lstm", "AL static"])
    ap.add_argument("--cache", default="runs/claim-v5e/cache")
    ap.add_argument("--candidates", type=int, default=None, help="random ranking candidates per face (model's: 4)")
    ap.add_argument("--train-faces", type=int, default=2700, help="faces in the training split (for the schedule)")
    args = ap.parse_args()
    cfg = train_config(Path(args.out), args.model, args.seed, data_spec(3000, 1000, 5), (0, 0, 12), args.cache, False)
    if args.candidates is not None:
        cfg.model = {**cfg.model, "candidates": args.candidates}
    STATE["total"] = 12 * math.ceil(args.train_faces / cfg.batch_size)
    trainer.ranking_loss = annealed_ranking_loss
    print(trainer.train(cfg))
    print(f"steps {STATE['step']} of the schedule's {STATE['total']}; noise at the end {AnchorAttention.explore_noise:.3f}")


if __name__ == "__main__":
    main()
