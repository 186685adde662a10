"""Trial: the glimpses' exploration noise annealed to zero over training.

Training samples each step's glimpse by Gumbel-max over the selector's scores (every anchor gets read); at
test the choice is greedy. So the local CNN and the fusion learn on scattered glimpses and are read on
chosen ones, and a local CNN trained on scattered glimpses is insensitive to placement (its loss, the
ranking's teacher, hardly tells an anchor on a region from one a stride off: teacher_resolution.py). Here
the noise's scale falls linearly from 1 to 0 over ``--anneal-steps`` training steps (516 in the runs recorded;
a run is 552 steps, 12 epochs of 46 batches of 64, so its last 36 trained without noise), so the last
epochs train on the glimpses the model will take. ``--candidates`` sets the random anchors each face's
ranking also compares (4 in the model), which with less noise are the teacher's only exploration. The
claim's rows otherwise (compact preset, synth v5, 3,000 faces, 12 joint epochs); nothing of synth is read:

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/explore_anneal_trial.py --out runs/exp27/anneal --model "AL lstm" --seed 0
    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/explore_anneal_trial.py --out runs/exp27/anneal-c8 --candidates 8 --seed 0
    alage-edge eval runs/exp27/anneal/AL_lstm-s0/best.pt --data synth:n=3000,n_test=1000,seed=0,size=224,version=5
"""
from __future__ import annotations

import train.trainer as trainer
from alage_edge.model.anchors import AnchorAttention
from experiments.claim_row import parse
from train.losses import ranking_loss

STATE = {"step": 0, "total": 1}


def annealed_ranking_loss(out, age, group, head, weights, tau: float = 0.5):
    """The package's ranking loss; each call (one training step) lowers the noise the next step samples with."""
    STATE["step"] += 1
    AnchorAttention.explore_noise = max(0.0, 1.0 - STATE["step"] / STATE["total"])
    return ranking_loss(out, age, group, head, weights, tau)


def main() -> None:
    def extra(ap):
        ap.add_argument("--candidates", type=int, default=None, help="random ranking candidates per face (model's: 4)")
        ap.add_argument("--anneal-steps", type=int, default=516, help="steps over which the noise falls to zero")

    args, cfg = parse(__doc__.split("\n\n")[0], extra)
    cfg.explore_anneal = False  # this trial's own schedule (the claim's static row anneals since: train --explore-anneal)
    if args.candidates is not None:
        cfg.model = {**cfg.model, "candidates": args.candidates}
    STATE["total"] = args.anneal_steps
    trainer.ranking_loss = annealed_ranking_loss
    print(trainer.train(cfg))
    print(f"steps {STATE['step']} of the schedule's {STATE['total']}; noise at the end {AnchorAttention.explore_noise:.3f}")


if __name__ == "__main__":
    main()
