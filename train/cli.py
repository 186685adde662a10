"""CLI of the training stage: ``alage-edge train`` and ``alage-edge eval``."""
from __future__ import annotations

import argparse
import json
from typing import List, Optional

from alage_edge.argtypes import json_object, non_negative_float, non_negative_int, positive_float, positive_int

from .presets import PRESETS

DATA_HELP = ("data set spec: synth[:n=2000,seed=0] | adience:ROOT[,fold=K] | morph:CSV | fgnet:DIR[,fold=K] | "
             "lap:ROOT | imdbwiki:ROOT[,meta=wiki.mat] | csv:FILE (path,age)")

def _epochs(text: str):
    try:
        parts = [int(p) for p in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected N or G,A,J epochs (global, attention, joint), got {text!r}") from None
    if len(parts) == 1:
        parts = parts * 3
    if len(parts) != 3 or min(parts) < 0:
        raise argparse.ArgumentTypeError(f"expected N or G,A,J epochs (global, attention, joint), got {text!r}")
    return tuple(parts)


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alage-edge train",
        description="Train an attention-LSTM age model (or a global-only baseline) in stages: the global "
                    "stream, then the attention stream on the frozen global stream, then both (a stage "
                    "with 0 epochs is skipped: the compact preset trains everything jointly, 0,0,12). Writes "
                    "last.pt / best.pt every epoch (atomically), metrics.csv/json and curves.png to --out.",
        epilog="examples:\n"
               "  alage-edge train --data synth --preset compact --out runs/al18\n"
               "  alage-edge train --arch resnet18 --data synth --preset compact --out runs/r18   (baseline)\n"
               "  alage-edge train --arch al_resnet34 --data imdbwiki:/data/wiki_crop --pretrained resnet34.pth\n"
               "  alage-edge train --arch al_resnet34 --data adience:/data/adience,fold=0 --head groups "
               "--init runs/imdbwiki/best.pt\n"
               "  torchrun --nproc_per_node 4 -m alage_edge.train --data morph:/data/morph.csv --out runs/morph\n"
               "  alage-edge train ... --resume          (continue a killed run where it stopped)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--arch", default="al_resnet18", help="registered model (alage-edge export --list)")
    p.add_argument("--head", choices=["dex", "groups"], default="dex",
                   help="dex: 101 ages (regression), groups: 8 Adience groups")
    p.add_argument("--data", default="synth", help=DATA_HELP)
    p.add_argument("--out", default="runs/train", help="run folder (checkpoints, metrics, curves)")
    p.add_argument("--preset", choices=sorted(PRESETS), default="paper",
                   help="model size and schedule (compact: minutes on a CPU; paper: the paper's schedule)")
    p.add_argument("--config", type=json_object, default=None, help='model options as JSON, over the preset, e.g. \'{"steps": 4}\'')
    p.add_argument("--stage", choices=["all", "global", "attention", "joint"], default="all",
                   help="run one stage only (default all three)")
    p.add_argument("--epochs", type=_epochs, default=None, help="N or G,A,J epochs per stage")
    p.add_argument("--batch-size", type=positive_int, default=None)
    p.add_argument("--optimizer", choices=["sgd", "adamw"], default=None, help="default: the preset's")
    p.add_argument("--lr", type=positive_float, default=None)
    p.add_argument("--joint-lr-scale", type=non_negative_float, default=None,
                   help="learning rate factor of the joint stage (default: the preset's)")
    p.add_argument("--box-lr-scale", type=non_negative_float, default=None,
                   help="selector 'boxes' only (the box regression of older models): learning rate factor of the "
                        "box layers (0: boxes stay where they start; default 1)")
    p.add_argument("--explore-anneal", action="store_true",
                   help="selectors 'lstm' and 'static': the noise the training glimpses are sampled with falls "
                        "linearly to zero over each stage (the claim's static anchors train so)")
    p.add_argument("--greedy-heads", choices=["auto", "on", "off"], default="auto",
                   help="selectors 'lstm' and 'static': the local and fused heads train on the glimpses taken at "
                        "test, the ranking on the sampled ones (two rollouts a batch, ~30%% more time; auto: on)")
    p.add_argument("--weight-decay", type=non_negative_float, default=1e-4)
    p.add_argument("--schedule", choices=["cosine", "step"], default="cosine")
    p.add_argument("--warmup-epochs", type=non_negative_float, default=0.5)
    p.add_argument("--loss-weights", default="1,1,1", help="cross-entropy weights of global,local,fused")
    p.add_argument("--l1", type=non_negative_float, default=None, help="weight of an L1 loss on the DEX expected age "
                                                           "(default: the preset's)")
    p.add_argument("--l1-heads", choices=["fused", "all"], default=None,
                   help="fused: the L1 term on the last head trained only; all: on the global and local heads "
                        "too (the compact preset's default). Default: the preset's")
    p.add_argument("--clip", type=non_negative_float, default=5.0, help="gradient-norm clipping (0: off)")
    p.add_argument("--ema", type=float, default=None,
                   help="decay of an average of the weights, updated every step, that validation scores and the "
                        "checkpoints hold, e.g. 0.99 (0: off). Default: the preset's")
    p.add_argument("--amp", choices=["auto", "on", "off"], default="auto", help="mixed precision (CUDA only)")
    p.add_argument("--pretrained", default=None, help="torchvision-format ImageNet checkpoint for the global backbone")
    p.add_argument("--init", default=None, help="alage-edge checkpoint to start from (e.g. trained on IMDB-WIKI)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/last.pt (same settings)")
    p.add_argument("--overwrite", action="store_true", help="replace the run already in OUT")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:1")
    p.add_argument("--workers", type=non_negative_int, default=0, help="data-loader worker processes")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--cache", default=None, help="folder for cached synth splits (default: none, or $ALAGE_CACHE)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


def config_from_args(args):
    from .trainer import TrainConfig

    model = dict(args.config or {})
    weights = tuple(float(w) for w in args.loss_weights.split(","))
    if len(weights) != 3:
        raise ValueError("--loss-weights takes three numbers: global,local,fused")
    chosen = {"epochs": args.epochs, "batch_size": args.batch_size, "optimizer": args.optimizer, "lr": args.lr,
              "joint_lr_scale": args.joint_lr_scale, "l1": args.l1, "box_lr_scale": args.box_lr_scale,
              "l1_heads": args.l1_heads, "ema": args.ema}
    return TrainConfig.from_preset(
        args.preset, arch=args.arch, head=args.head, model=model, data=args.data, out=args.out, stage=args.stage,
        weight_decay=args.weight_decay, schedule=args.schedule, warmup_epochs=args.warmup_epochs, weights=weights,
        clip=args.clip, explore_anneal=args.explore_anneal,
        greedy_heads={"auto": None, "on": True, "off": False}[args.greedy_heads], amp={"auto": None, "on": True, "off": False}[args.amp],
        seed=args.seed, workers=args.workers,
        device=args.device, pretrained=args.pretrained, init=args.init, resume=args.resume, overwrite=args.overwrite, cache=args.cache,
        progress=not args.no_progress, **{k: v for k, v in chosen.items() if v is not None})


def train_main(argv: Optional[List[str]] = None) -> int:
    args = train_parser().parse_args(argv)
    from .trainer import train

    metrics = train(config_from_args(args))
    if metrics:
        print("final validation: " + "  ".join(f"{k} {v:.4g}" for k, v in metrics.items()))
    return 0


def eval_main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge eval",
        description="Evaluate checkpoints on a data set: MAE, CS(5), epsilon-error (sets with vote statistics), "
                    "group accuracy and 1-off, and for synth the share of attention boxes on a true age region. "
                    "Several checkpoints with a folded protocol (adience, fgnet): checkpoint k is tested on "
                    "fold k and the table shows mean and std over folds.",
        epilog="examples:\n  alage-edge eval runs/al18/best.pt --data synth\n"
               "  alage-edge eval --claim --out runs/claim --jobs 2   (attention against plain networks, ~90 min)\n"
               "  alage-edge eval runs/a0/best.pt runs/a1/best.pt runs/a2/best.pt runs/a3/best.pt runs/a4/best.pt "
               "--data adience:/data/adience --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoints", nargs="*", help="alage-edge checkpoint(s)")
    p.add_argument("--claim", action="store_true",
                   help="train (resumably) the attention models and plain ResNet-18s at S, 1.5S and 2S (widths 8 "
                        "and 16) on the same faces and epochs; compare MAE and deployed latency (frontier.png)")
    p.add_argument("--out", default="runs/claim", help="with --claim: the run folder")
    p.add_argument("--seeds", default="0,1,2", help="with --claim: seeds of the rows near the frontier")
    p.add_argument("--jobs", type=positive_int, default=1,
                   help="with --claim: training runs at a time, each in its own process with a share of the cores")
    p.add_argument("--synth-version", type=int, choices=[4, 5], default=5,
                   help="with --claim: 5 (default) moves the age regions per face; 4 keeps them in place")
    p.add_argument("--no-latency", action="store_true", help="with --claim: skip the deployed-latency columns")
    p.add_argument("--retime", action="store_true",
                   help="with --claim: train nothing; evaluate the trained rows again from a fresh export (MAE and "
                        "deployed latency), e.g. after a runtime change")
    p.add_argument("--only", action="append", metavar="MODEL",
                   help="with --claim: run only this row (repeat for more), e.g. --only 'global@2S w16'; rows "
                        "already in claim.json are kept")
    p.add_argument("--data", default="synth", help=DATA_HELP)
    p.add_argument("--split", choices=["train", "val", "test"], default="test")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", default="auto")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--cache", default=None, help="folder for cached synth splits")
    args = p.parse_args(argv)
    if args.claim:
        from .claim import MODELS, run_claim

        unknown = [m for m in args.only or [] if m not in MODELS]
        if unknown:
            p.error(f"--only {unknown[0]!r} is not a claim row; choose from: " + ", ".join(MODELS))
        print(run_claim(args.out, seeds=[int(x) for x in args.seeds.split(",")], synth_version=args.synth_version,
                        latency=not args.no_latency, jobs=args.jobs, only=args.only, retime=args.retime))
        return 0
    if not args.checkpoints:
        p.error("give checkpoint(s), or --claim")
    from .evaluate import evaluate_checkpoints, format_table

    rows = evaluate_checkpoints(args.checkpoints, args.data, args.split, args.batch_size, args.device, args.cache)
    print(json.dumps(rows, indent=2) if args.json else format_table(rows))
    return 0
