"""The staged trainer: global stream -> attention stream (global frozen) -> joint fine-tune.

Every epoch writes ``last.pt`` (model, optimiser, scheduler, scaler, RNG,
stage and epoch) and, when validation improves, ``best.pt``, atomically; a
killed run resumes with ``resume=True`` exactly where the last epoch ended.
With ``ema`` > 0 an average of the weights (``train/ema.py``) is what validation
scores and both checkpoints hold; ``last.pt`` keeps the stepped weights beside it.
Under ``torchrun`` the model is wrapped in DistributedDataParallel, data is
sharded with a DistributedSampler, losses and metrics are reduced across
ranks and only rank 0 writes.
"""
from __future__ import annotations

import csv
import io
import json
import math
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torch.utils.data.distributed import DistributedSampler

from alage_edge.atomic import write_json, write_text
from alage_edge.data import open_splits
from alage_edge.model import ALNet, ALNetConfig, build_model, load_pretrained, read_checkpoint, save_checkpoint
from alage_edge.model.registry import is_global_only, options_it_reads
from alage_edge.progress import bar

from . import distributed as dist
from .dataset import FaceDataset, bad_items
from .ema import WeightAverage
from .evaluate import predict, report
from .losses import LossWeights, age_loss, ranking_loss

STAGES = ("global", "attention", "joint")
STAGE_HEADS = {"global": ("global",), "attention": ("local", "fused"), "joint": ("global", "local", "fused")}


class RunMismatch(ValueError):
    """--resume found a run of other settings in the folder (it is kept, never overwritten)."""


@dataclass
class TrainConfig:
    arch: str = "al_resnet18"
    head: str = "dex"
    model: Dict = field(default_factory=dict)  # extra model config (global_size, width, ...)
    data: str = "synth"
    out: str = "runs/train"
    stage: str = "all"  # all | global | attention | joint
    epochs: Tuple[int, int, int] = (6, 4, 2)  # per stage
    batch_size: int = 32
    optimizer: str = "sgd"  # sgd (Nesterov) | adamw
    lr: float = 0.05
    joint_lr_scale: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "cosine"  # cosine | step
    warmup_epochs: float = 0.5
    step_size: int = 3  # epochs, for the step schedule
    step_gamma: float = 0.1
    weights: Tuple[float, float, float] = (1.0, 1.0, 1.0)  # global, local, fused
    l1: float = 0.0
    l1_heads: str = "fused"  # fused: the L1 term on the last head trained; all: on every head trained
    clip: float = 5.0
    ema: float = 0.0  # decay of an average of the weights that validation scores and checkpoints hold (0: off)
    amp: Optional[bool] = None  # None: on for CUDA
    seed: int = 0
    workers: int = 0
    device: str = "auto"
    pretrained: Optional[str] = None  # torchvision-format ImageNet checkpoint for the global backbone
    warm_start: bool = True  # attention stage starts from the trained global stream (see warm_start_attention)
    box_lr_scale: float = 1.0  # learning-rate factor of the LSTM's box layers (0: boxes stay where they start)
    # an anchor selector samples its training glimpses with Gumbel noise; with this the noise falls linearly to
    # zero over each stage, so the last steps train on the glimpses the model takes (static anchors: docs)
    explore_anneal: bool = False
    # an anchor selector's local and fused heads train on the glimpses it takes at test (greedy), its ranking on
    # the sampled ones: two rollouts a batch, about 30% more training time (docs). None: on for anchor selectors
    greedy_heads: Optional[bool] = None
    init: Optional[str] = None  # an alage-edge checkpoint to start from (e.g. trained on IMDB-WIKI)
    resume: bool = False
    overwrite: bool = False  # replace another run's files in ``out`` (else that is refused)
    max_train_images: Optional[int] = None
    cache: Optional[str] = None  # where synth splits are cached as .npz
    progress: bool = True

    def to_dict(self) -> dict:
        return asdict(self)

    def __post_init__(self):
        if self.l1_heads not in ("fused", "all"):
            raise ValueError(f"l1_heads must be 'fused' or 'all', got {self.l1_heads!r}")
        if not (isinstance(self.ema, (int, float)) and (self.ema == 0 or 0 < self.ema < 1)):
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, or 0 for off; got {self.ema!r}")

    @classmethod
    def from_preset(cls, preset: str, model: Optional[Dict] = None, **overrides) -> "TrainConfig":
        """A preset's model and schedule (``train/presets.py``), ``model`` options and ``overrides`` on top.
        Another optimiser than the preset's, without ``lr``, takes that optimiser's default rate."""
        from .presets import DEFAULT_LR, PRESETS

        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}; choose from {', '.join(sorted(PRESETS))}")
        p = PRESETS[preset]
        fields = {k: p[k] for k in ("epochs", "batch_size", "optimizer", "lr", "l1", "joint_lr_scale")}
        fields["box_lr_scale"] = p.get("box_lr_scale", 1.0)
        fields["l1_heads"] = p.get("l1_heads", "fused")
        fields["ema"] = p.get("ema", 0.0)
        if overrides.get("optimizer", p["optimizer"]) != p["optimizer"] and "lr" not in overrides:
            fields["lr"] = DEFAULT_LR[overrides["optimizer"]]
        return cls(model={**p["model"], **(model or {})}, **{**fields, **overrides})


class StageModule(nn.Module):
    """What one stage trains: the global stream alone, the attention stream on frozen
    global features, or both; DDP wraps this so unused parameters never appear."""

    def __init__(self, model: ALNet, stage: str):
        super().__init__()
        self.model, self.stage = model, stage

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        m = self.model
        if self.stage == "global":
            g, gl = m.global_stream(x)
            return {"global_logits": gl}
        if self.stage == "attention":
            with torch.no_grad():
                g, gl = m.global_stream(x)
            return {"global_logits": gl, **m.attention_stream.outputs(x, g)}
        return m(x)


class Trainer:
    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.rank, self.world, self.device = dist.init(dist.pick_device(cfg.device))
        self.main = self.rank == 0
        self.out = Path(cfg.out)
        self.amp = (cfg.amp if cfg.amp is not None else self.device.startswith("cuda")) and \
            self.device.startswith("cuda")
        torch.manual_seed(cfg.seed)
        self.model = build_model(cfg.arch, head=cfg.head, **cfg.model)
        if cfg.pretrained:
            load_pretrained(self.model.global_stream.backbone, cfg.pretrained)
        if cfg.init:
            init = read_checkpoint(cfg.init)
            missing, unexpected = self.model.load_state_dict(init["state_dict"], strict=False)
            shapes_ok = all(self.model.state_dict()[k].shape == v.shape for k, v in init["state_dict"].items()
                            if k in self.model.state_dict())
            if not shapes_ok:
                raise ValueError(f"{cfg.init}: its weights do not fit {cfg.arch} with this config")
            self.log(f"initialised from {cfg.init} ({len(missing)} new tensors, {len(unexpected)} unused)")
        self.model.to(self.device)
        splits = open_splits(cfg.data, size=self.model.cfg.input_size, cache_dir=cfg.cache)
        for name in ("train", "val"):
            if hasattr(splits[name], "preload"):
                splits[name].preload(progress=cfg.progress and self.main)
        self.train_set, self.val_set = splits["train"], splits["val"]
        if cfg.max_train_images:
            from alage_edge.data.base import RecordSet

            if isinstance(self.train_set, RecordSet):
                self.train_set = self.train_set.subset(range(min(cfg.max_train_images, len(self.train_set))),
                                                       self.train_set.name)
        if len(self.train_set) == 0 or len(self.val_set) == 0:
            raise ValueError(f"{cfg.data}: empty train or validation split "
                             f"({len(self.train_set)} / {len(self.val_set)} images)")
        if self.train_set.skips and len(self.train_set.skips):
            self.log(f"data: {self.train_set.skips.summary()}")
        self.stages = [s for s in STAGES if (cfg.stage in ("all", s))] if self.model.cfg.attention else ["global"]
        if not self.model.cfg.attention and cfg.stage not in ("all", "global", "joint"):
            raise ValueError(f"{cfg.arch} has no attention stream: --stage {cfg.stage} does not apply")
        if not (isinstance(cfg.box_lr_scale, (int, float)) and cfg.box_lr_scale >= 0):
            raise ValueError(f"box_lr_scale must be a number >= 0, got {cfg.box_lr_scale!r}")
        if cfg.box_lr_scale != 1.0 and self.model.cfg.attention and self.model.cfg.selector != "boxes":
            raise ValueError(f"box_lr_scale applies to selector 'boxes' (box layers); selector "
                             f"{self.model.cfg.selector!r} learns its choice by ranking, got box_lr_scale "
                             f"{cfg.box_lr_scale}")
        anchors = self.model.cfg.attention and self.model.cfg.selector in ("lstm", "static")
        for name in ("explore_anneal", "greedy_heads"):
            if getattr(cfg, name) and not anchors:
                raise ValueError(f"{name} applies to the anchor selectors 'lstm' and 'static' (their sampled "
                                 f"training glimpses); {cfg.arch} has "
                                 + (f"selector {self.model.cfg.selector!r}" if self.model.cfg.attention
                                    else "no attention"))
        if anchors:
            self.model.attention_stream.greedy_heads = cfg.greedy_heads is not False
        self.history: List[dict] = []
        self.best = math.inf
        self.skipped: List[str] = []
        self.ema: Optional[WeightAverage] = None  # the average of this stage's weights (cfg.ema > 0)

    # -- helpers ---------------------------------------------------------------------------------
    def log(self, msg: str) -> None:
        if self.main:
            print(msg, flush=True)

    def epochs_of(self, stage: str) -> int:
        if not self.model.cfg.attention:  # a baseline trains as long as the whole schedule
            return int(sum(self.cfg.epochs))
        return int(self.cfg.epochs[STAGES.index(stage)])

    def metric_key(self) -> Tuple[str, float]:
        """(metric, sign): lower is better after multiplying by sign."""
        return ("mae", 1.0) if self.cfg.head == "dex" else ("accuracy", -1.0)

    def set_trainable(self, stage: str) -> List[nn.Parameter]:
        m = self.model
        for p in m.parameters():
            p.requires_grad_(False)
        groups = m.parameter_groups()
        train = groups["global"] if stage == "global" else groups["attention"] if stage == "attention" \
            else groups["global"] + groups.get("attention", [])
        if self.cfg.box_lr_scale == 0:
            fixed = {id(p) for p in box_parameters(m)}
            train = [p for p in train if id(p) not in fixed]
        for p in train:
            p.requires_grad_(True)
        return train

    def make_optimizer(self, params, stage: str, steps_per_epoch: int):
        lr = self.cfg.lr * (self.cfg.joint_lr_scale if stage == "joint" else 1.0)
        boxes = {id(p) for p in box_parameters(self.model)} if self.cfg.box_lr_scale != 1 \
            else set()  # at scale 1: the two groups of runs from before the option (their optimiser states load)
        groups = []
        for scale, ps in ((1.0, [p for p in params if id(p) not in boxes]),
                          (self.cfg.box_lr_scale, [p for p in params if id(p) in boxes])):
            groups += [{"params": [p for p in ps if p.ndim > 1], "weight_decay": self.cfg.weight_decay,
                        "lr": lr * scale},
                       {"params": [p for p in ps if p.ndim <= 1], "weight_decay": 0.0, "lr": lr * scale}]
        groups = [g for g in groups if g["params"]]
        if self.cfg.optimizer == "sgd":
            opt = torch.optim.SGD(groups, lr=lr, momentum=self.cfg.momentum, nesterov=True)
        elif self.cfg.optimizer == "adamw":
            opt = torch.optim.AdamW(groups, lr=lr)
        else:
            raise ValueError(f"optimizer must be sgd or adamw, got {self.cfg.optimizer!r}")
        total = max(1, self.epochs_of(stage) * steps_per_epoch)
        warm = int(self.cfg.warmup_epochs * steps_per_epoch)

        def factor(step: int) -> float:
            if step < warm:
                return (step + 1) / warm
            if self.cfg.schedule == "cosine":
                return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))
            return self.cfg.step_gamma ** ((step // steps_per_epoch) // self.cfg.step_size)

        return opt, torch.optim.lr_scheduler.LambdaLR(opt, factor)

    # -- the run folder --------------------------------------------------------------------------
    RUN_FILES = ("last.pt", "best.pt", "metrics.json", "metrics.csv", "config.json", "curves.png")
    # settings that may change between a run and its --resume (they do not change what is trained)
    RESUMABLE = ("resume", "overwrite", "progress", "workers", "device", "cache", "out")

    def prepare_out(self) -> None:
        """Refuse to mix two runs in one folder; clean this run's interrupted temp files."""
        self.out.mkdir(parents=True, exist_ok=True)
        for tmp in self.out.glob(".*.tmp*"):  # atomic writes killed midway (alage_edge.atomic)
            if any(tmp.name.startswith(f".{f}.") for f in self.RUN_FILES):
                tmp.unlink()
        present = [f for f in self.RUN_FILES if (self.out / f).exists()]
        if not present:
            return
        if self.cfg.overwrite:
            for f in present:
                (self.out / f).unlink()
            return
        if not self.cfg.resume:
            raise ValueError(f"{self.out} holds another run ({', '.join(present)}); use --resume to continue it, "
                             f"--overwrite to replace it, or another --out")
        stored_path = self.out / "config.json"
        if stored_path.is_file():
            stored, now = json.loads(stored_path.read_text()), _jsonable(self.cfg)
            # a key a run's config lacks was added since: it ran with the default, or as ADDED_OFF says
            before = {**_jsonable(TrainConfig()), **ADDED_OFF}
            then = {k: stored.get(k, before.get(k)) for k in set(stored) | set(now)}
            for d in (then, now):
                d.update(settings_it_reads(d))
            diff = sorted(k for k in then if k not in self.RESUMABLE
                          and json.dumps(then[k], sort_keys=True) != json.dumps(now.get(k), sort_keys=True))
            if diff:
                raise RunMismatch(f"--resume: {self.out} was trained with other settings: "
                                 + "; ".join(f"{k}: {then[k]!r} then, {now.get(k)!r} now" for k in diff)
                                 + " (use the same settings, or --overwrite to start over)")

    # -- checkpoints -----------------------------------------------------------------------------
    def save(self, name: str, stage: str, epoch: int, opt, sched, scaler, metrics: dict,
             raw: Optional[dict] = None) -> None:
        """The model's weights (the average, with --ema) and what resuming needs; ``raw``: the weights the
        optimiser steps, when the model holds the average."""
        if not self.main:
            return
        rng = {"torch": torch.get_rng_state()}
        if torch.cuda.is_available():
            rng["cuda"] = torch.cuda.get_rng_state_all()
        save_checkpoint(self.out / name, self.model,
                        meta={"stage": stage, "epoch": epoch, "metrics": metrics, "train": _jsonable(self.cfg)},
                        optimizer=opt.state_dict(), scheduler=sched.state_dict(),
                        scaler=scaler.state_dict() if scaler is not None else {}, rng=rng, best=self.best,
                        history=json.dumps(self.history),
                        **({"ema": {"updates": self.ema.updates, "raw_state_dict": {k: v.cpu() for k, v in raw.items()}}}
                           if raw is not None and self.ema is not None else {}))

    def restore(self) -> Tuple[int, int, Optional[dict]]:
        """(stage index, next epoch, optimiser state) from last.pt, or a fresh start."""
        path = self.out / "last.pt"
        if not (self.cfg.resume and path.is_file()):
            return 0, 0, None
        ck = read_checkpoint(path, map_location="cpu")
        self.model.load_state_dict(ck["ema"]["raw_state_dict"] if "ema" in ck else ck["state_dict"])
        meta = ck["meta"]
        self.best = float(ck.get("best", math.inf))
        self.history = json.loads(ck.get("history", "[]"))
        self.write_history()  # a kill after last.pt but before metrics.json lost the last row: rewrite it
        torch.set_rng_state(ck["rng"]["torch"])
        if "cuda" in ck["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(ck["rng"]["cuda"])
        si, epoch = self.stages.index(meta["stage"]), int(meta["epoch"]) + 1
        self.log(f"resuming {path}: stage {meta['stage']}, epoch {epoch} of {self.epochs_of(meta['stage'])}")
        if epoch >= self.epochs_of(meta["stage"]):
            return si + 1, 0, None
        return si, epoch, ck

    # -- the loop --------------------------------------------------------------------------------
    def fit(self) -> Dict[str, float]:
        cfg = self.cfg
        if self.main:
            self.prepare_out()
            write_json(self.out / "config.json", _jsonable(cfg))
        spec = self.model.cfg.preprocess
        train_ds = FaceDataset(self.train_set, spec, train=True, seed=cfg.seed)
        sampler = DistributedSampler(train_ds, num_replicas=self.world, rank=self.rank, shuffle=True,
                                     seed=cfg.seed, drop_last=True)
        per_rank = max(1, cfg.batch_size // self.world)
        loader = DataLoader(train_ds, batch_size=per_rank, sampler=sampler, num_workers=cfg.workers,
                            drop_last=True, pin_memory=self.device.startswith("cuda"),
                            persistent_workers=cfg.workers > 0)
        if len(loader) == 0:
            raise ValueError(f"{cfg.data}: {len(train_ds)} training images is less than one batch of {cfg.batch_size}")
        start_stage, start_epoch, ck = self.restore()
        last_metrics: Dict[str, float] = {}
        for si in range(start_stage, len(self.stages)):
            stage = self.stages[si]
            if stage == "attention" and cfg.warm_start and not (ck is not None and si == start_stage):
                self.log("warm start: " + ", ".join(warm_start_attention(self.model)))
            params = self.set_trainable(stage)
            opt, sched = self.make_optimizer(params, stage, len(loader))
            scaler = torch.amp.GradScaler("cuda") if self.amp else None
            if ck is not None and si == start_stage:
                opt.load_state_dict(ck["optimizer"])
                sched.load_state_dict(ck["scheduler"])
                if scaler is not None and ck.get("scaler"):
                    scaler.load_state_dict(ck["scaler"])
            self.ema = self.start_average(ck if si == start_stage else None)
            module: nn.Module = StageModule(self.model, stage)
            if self.world > 1:
                module = nn.parallel.DistributedDataParallel(
                    module, device_ids=[int(self.device.split(":")[1])] if self.device.startswith("cuda") else None)
            for epoch in range(start_epoch if si == start_stage else 0, self.epochs_of(stage)):
                stats = self.train_epoch(module, loader, sampler, train_ds, opt, sched, scaler, stage, epoch)
                with self.scored_weights() as raw:
                    val = self.validate(stage)
                    key, sign = self.metric_key()
                    row = {"stage": stage, "epoch": epoch + 1, **stats, **{f"val_{k}": v for k, v in val.items()}}
                    self.history.append(row)
                    scored = stage != "global" or not self.model.cfg.attention
                    improved = scored and key in val and sign * val[key] < self.best
                    if improved:
                        self.best = sign * val[key]
                    # best, then last, then metrics: a kill between any two leaves last.pt at the previous epoch
                    # (the epoch is redone exactly, rewriting best) or the history in last.pt (restore rewrites it)
                    if improved:
                        self.save("best.pt", stage, epoch, opt, sched, scaler, val)
                    self.save("last.pt", stage, epoch, opt, sched, scaler, val, raw=raw)
                self.write_history()
                last_metrics = val
                self.log(f"[{stage} {epoch + 1}/{self.epochs_of(stage)}] loss {stats['loss']:.3f}  "
                         + "  ".join(f"val {k} {v:.3f}" for k, v in val.items() if k in ("mae", "cs5", "accuracy",
                                                                                        "box_hit_mean"))
                         + f"  {stats['images_per_s']:.0f} img/s" + ("  (best)" if improved else ""))
        if self.skipped:
            self.log(f"skipped {len(self.skipped)} unreadable images, e.g. {', '.join(self.skipped[:5])}")
        if self.main and not (self.out / "best.pt").exists() and (self.out / "last.pt").exists():
            import shutil

            from alage_edge.atomic import write_with

            write_with(self.out / "best.pt", lambda tmp: shutil.copyfile(self.out / "last.pt", tmp))
        dist.barrier()
        return last_metrics

    def train_epoch(self, module, loader, sampler, ds, opt, sched, scaler, stage: str, epoch: int) -> Dict[str, float]:
        cfg = self.cfg
        gepoch = STAGES.index(stage) * 1000 + epoch  # distinct data order and augmentation per stage and epoch
        sampler.set_epoch(gepoch)
        ds.set_epoch(gepoch)
        module.train()
        if stage == "attention":
            self.model.global_stream.eval()  # frozen: BatchNorm statistics stay as trained
        weights = LossWeights(*cfg.weights, l1=cfg.l1, l1_every_head=cfg.l1_heads == "all")
        heads = STAGE_HEADS[stage] if self.model.cfg.attention else ("global",)
        total, n, t0 = 0.0, 0, time.perf_counter()
        it = bar(loader, desc=f"{stage} {epoch + 1}/{self.epochs_of(stage)}", leave=False,
                 disable=not (cfg.progress and self.main))
        steps = self.epochs_of(stage) * len(loader)
        for step, (x, age, group, ok, idx) in enumerate(it):
            if cfg.explore_anneal:  # a function of the step alone: a resumed run samples as the uninterrupted one
                self.model.attention_stream.explore_noise = max(0.0, 1.0 - (epoch * len(loader) + step + 1) / steps)
            if not bool(ok.all()):
                self.skipped += bad_items(ds.faces, idx[~ok].tolist())
                keep = ok.nonzero().flatten()
                if keep.numel() == 0:
                    continue
                x, age, group = x[keep], age[keep], group[keep]
            x, age, group = (t.to(self.device, non_blocking=True) for t in (x, age, group))
            with torch.autocast("cuda", dtype=torch.float16, enabled=self.amp):
                out = module(x)
            loss, parts = age_loss(out, age, group, cfg.head, weights, heads)
            if "glimpse_logits" in out:  # an anchor selector: its glimpses teach its ranking
                extra, more = ranking_loss(out, age, group, cfg.head, weights)
                loss, parts = loss + extra, {**parts, **more}
            opt.zero_grad(set_to_none=True)
            if scaler is not None:
                scaler.scale(loss).backward()
                scaler.unscale_(opt)
            else:
                loss.backward()
            if cfg.clip > 0:
                nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], cfg.clip)
            if scaler is not None:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            if self.ema is not None:
                self.ema.update(self.model)
            sched.step()
            total += float(loss.detach()) * len(x)
            n += len(x)
            if hasattr(it, "set_postfix"):
                it.set_postfix(loss=f"{total / max(n, 1):.3f}", lr=f"{sched.get_last_lr()[0]:.2g}")
        dt = time.perf_counter() - t0
        return {"loss": dist.mean(total / max(n, 1), self._red()),
                "images_per_s": dist.total(n / max(dt, 1e-9), self._red()), "seconds": round(dt, 2),
                "lr": sched.get_last_lr()[0]}

    def start_average(self, ck: Optional[dict]) -> Optional[WeightAverage]:
        """A fresh average at a stage's start (after its warm start), or the one ``ck`` stored mid-stage."""
        if not self.cfg.ema:
            return None
        if ck is not None and "ema" in ck:
            return WeightAverage.resumed(self.model, self.cfg.ema, ck["state_dict"], ck["ema"]["updates"])
        return WeightAverage(self.model, self.cfg.ema)

    @contextmanager
    def scored_weights(self):
        """The weights validation scores and checkpoints hold: the average with --ema (yields the raw ones)."""
        if self.ema is None:
            yield None
            return
        with self.ema.applied(self.model) as raw:
            yield raw

    def _red(self) -> str:
        return self.device if self.device.startswith("cuda") else "cpu"

    def validate(self, stage: str) -> Dict[str, float]:
        head = "global" if (stage == "global" or not self.model.cfg.attention) else "fused"
        pred = predict(self.model, self.val_set, batch_size=max(self.cfg.batch_size, 64), device=self.device,
                       head_stream=head, shard=True)
        return report(pred, self.val_set)

    def write_history(self) -> None:
        if not self.main or not self.history:
            return
        write_json(self.out / "metrics.json", self.history)
        keys = list(dict.fromkeys(k for row in self.history for k in row))
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=keys)
        w.writeheader()
        w.writerows(self.history)
        write_text(self.out / "metrics.csv", buf.getvalue())
        try:
            from .plots import training_curves

            training_curves(self.history, self.out / "curves.png", title=f"{self.cfg.arch} on {self.cfg.data}")
        except ImportError:
            pass


def box_parameters(model: ALNet) -> List[nn.Parameter]:
    """The box regression's layers (selector "boxes"): what ``box_lr_scale`` scales; none for anchors."""
    layers = getattr(model.attention_stream, "box_layers", None)
    return list(layers.parameters()) if layers is not None else []


@torch.no_grad()
def warm_start_attention(model: ALNet) -> List[str]:
    """Start the attention stage from what the global stage learnt, so the fused output begins
    exactly where the global one ends and the local stream only has to add to it: the fused head
    reads g through the global head's weights with zero weight on the local features. The local CNN
    (and its head) start as copies of the global backbone only where they read pixels at the global
    stream's resolution (detail_scale 1, same shape): with a detail image the crops hold detail the
    global backbone never saw (compact claim, seeds 0/1/2, MAE: 11.31/11.32/8.73 with the copy,
    11.36/8.51/11.19 without it; the worst seed's ratio to global-only went from 1.29 to 0.97)."""
    att, glob, done = model.attention_stream, model.global_stream, []
    if att is None:
        return done
    if model.cfg.local_backbone == model.cfg.backbone and model.cfg.local_width == model.cfg.width \
            and model.cfg.detail_scale == 1:
        att.local.load_state_dict(glob.backbone.state_dict())
        att.local_head.load_state_dict(glob.head.state_dict())
        done += ["local CNN <- global backbone", "local head <- global head"]
    if model.cfg.fusion == "concat":
        c = glob.num_features
        att.fused_head.weight.zero_()
        att.fused_head.weight[:, :c] = glob.head.weight
        att.fused_head.bias.copy_(glob.head.bias)
        done.append("fused head <- [global head, 0]")
    return done


# settings added with a default that changed what runs train: a stored config without the key ran with it off
ADDED_OFF = {"greedy_heads": False}


def settings_it_reads(cfg: dict) -> dict:
    """The model options and loss settings of a stored or current config that change what a run trains: a
    global-only model has one head, so the attention options and ``l1_heads`` change nothing in it (a preset
    moving them must not make its finished runs look different)."""
    arch = str(cfg.get("arch"))
    model = options_it_reads(arch, cfg.get("model") or {})
    anchors = not is_global_only(arch) and model.get("selector", ALNetConfig.selector) in ("lstm", "static")
    return {"model": model, "l1_heads": "fused" if is_global_only(arch) else cfg.get("l1_heads"),
            "greedy_heads": anchors and cfg.get("greedy_heads") is not False}  # auto as what it resolves to


def _jsonable(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(cfg.to_dict(), default=str))


def train(cfg: TrainConfig) -> Dict[str, float]:
    trainer = Trainer(cfg)
    try:
        return trainer.fit()
    finally:
        dist.shutdown()
