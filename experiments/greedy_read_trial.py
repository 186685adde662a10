"""Trial: a selector's heads trained on the glimpses it takes at test, its ranking on sampled ones.

Static anchors gained 0.2-0.4 y when their training glimpses' sampling noise annealed to zero (the local CNN
ends training on the crops it reads at test); the LSTM lost a little, since less noise also means fewer
anchors for its ranking to compare (explore_anneal_trial.py). Here each training batch rolls the selector out
twice: greedily, as at test, for the local and fused heads; and with the Gumbel noise, for the ranking loss
(its sampled glimpses and random candidates, as before). Twice the local CNN's crops per face.
``--model "AL static"``: the same for static anchors (the greedy pass reads their five anchors; their sampled
rollout's noise anneals, as the claim's static row trains: ``train --explore-anneal``). The claim's
rows otherwise (compact preset, synth v5, 3,000 faces, 12 joint epochs); nothing of synth is read:

    OMP_NUM_THREADS=1 PYTHONPATH=. python experiments/greedy_read_trial.py --out runs/exp27/greedy --seed 0
    alage-edge eval runs/exp27/greedy/AL_lstm-s0/best.pt --data synth:n=3000,n_test=1000,seed=0,size=224,version=5

The trial patched the two rollouts into the model (each computing the LSTM's map of the face, so the map's
BatchNorm statistics moved twice a batch); the package now has it (``TrainConfig.greedy_heads``, on by
default, ``train --greedy-heads``; one map a batch), and this script runs that.
"""
from __future__ import annotations

import train.trainer as trainer
from experiments.claim_row import parse


def main() -> None:
    _, cfg = parse(__doc__.split("\n\n")[0])
    cfg.greedy_heads = True
    print(trainer.train(cfg))


if __name__ == "__main__":
    main()
