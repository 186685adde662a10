"""``alage-edge demo``: the whole pipeline on the procedural data set, into runs/demo/.

1. draw the synth splits (v5: the age regions move per face); train the attention model and the plain
   network a user would pick instead, ResNet-18 at twice the resolution (same faces, same epochs)
2. evaluate both: MAE, CS(5), GFLOPs, attention-box hit rate
3. export the bundle; OpenVINO fp32/fp16/INT8, the Q/DQ model (TensorRT when it imports)
4. parity and latency tables
5. pictures: training curves, latency against drift, test faces with ages and attention boxes

Each step records a stamp of its inputs; a second run skips what is up to date
and says so, and an interrupted run resumes (training from its last epoch).
Every step is also a CLI command of its own (printed as it runs).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

from .atomic import write_json, write_text

PROFILES = {
    # the full demo: ~15 minutes on 2 CPU cores. The baseline is the strongest plain network of the claim:
    # ResNet-18 width 16 reading the face at the detail size (global@2S)
    "full": {"preset": "compact", "n_train": 3000, "epochs": (0, 0, 12), "calib": 300, "parity_n": 200,
             "bench_n": 100, "bench_iters": 30, "synth_version": 5,
             "baseline_config": {"width": 16, "global_size": 224, "detail_scale": 1}},
    # the CI configuration: every step and artifact, in about a minute
    "quick": {"preset": "tiny", "n_train": 192, "epochs": (1, 1, 1), "calib": 64, "parity_n": 24, "bench_n": 16,
              "bench_iters": 3, "synth_version": 5, "baseline_config": {"global_size": 128, "detail_scale": 1}},
}


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    profile: str = "full"
    arch: str = "al_resnet18"
    baseline: str = "resnet18"
    seed: int = 0
    force: bool = False
    progress: bool = True
    settings: Dict = field(default_factory=dict)

    def __post_init__(self):
        self.settings = {**PROFILES[self.profile], **self.settings}

    @property
    def data(self) -> str:
        s = self.settings
        return f"synth:n={s['n_train']},seed={self.seed},version={s['synth_version']}"


class Steps:
    """Runs steps in order; skips one whose stamp (inputs) and outputs are unchanged."""

    def __init__(self, cfg: DemoConfig):
        self.cfg, self.root = cfg, Path(cfg.out)
        self.stamps = self.root / ".steps"
        self.log: List[dict] = []
        self.t0 = time.perf_counter()

    def run(self, name: str, title: str, inputs: dict, outputs: List[Path], fn: Callable[[], None],
            command: str = "") -> None:
        stamp = hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest()[:16]
        path = self.stamps / f"{name}.json"
        done = path.is_file() and json.loads(path.read_text()).get("stamp") == stamp and all(p.exists() for p in outputs)
        n = len(self.log) + 1
        if done and not self.cfg.force:
            print(f"[{n}] {title}: up to date (skipped; --force redoes it)", flush=True)
            self.log.append({"step": name, "skipped": True, "seconds": json.loads(path.read_text()).get("seconds")})
            return
        print(f"\n[{n}] {title}" + (f"\n    same as: {command}" if command else ""), flush=True)
        t = time.perf_counter()
        fn()
        dt = time.perf_counter() - t
        write_json(path, {"stamp": stamp, "inputs": inputs, "seconds": round(dt, 1)})
        self.log.append({"step": name, "skipped": False, "seconds": round(dt, 1)})
        print(f"    done in {dt:.0f} s", flush=True)


def _train(cfg: DemoConfig, arch: str, out: Path) -> None:
    from alage_edge.train.trainer import RunMismatch, TrainConfig, train

    s = cfg.settings
    model = s.get("baseline_config") if arch == cfg.baseline else None
    try:
        train(TrainConfig.from_preset(s["preset"], arch=arch, model=model, data=cfg.data, out=str(out),
                                      epochs=tuple(s["epochs"]), seed=cfg.seed, resume=True,
                                      cache=str(Path(cfg.out) / "cache"), progress=cfg.progress))
    except RunMismatch as e:  # a run of other settings there (an older demo): kept, never overwritten
        raise RunMismatch(f"{e}. The demo keeps that run: move {out} away, or give the demo another --out") from e


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge demo",
        description="The whole pipeline on the procedural synth set: train an attention model and its "
                    "global-only baseline, compare them, export, convert (OpenVINO fp32/fp16/INT8, Q/DQ, TensorRT "
                    "when present), check parity, benchmark, and draw pictures into --out. A second run reuses "
                    "what is up to date; an interrupted one resumes.",
        epilog="examples:\n  alage-edge demo                 (~15 min on 2 CPU cores)\n"
               "  alage-edge demo --quick --out runs/quick   (every step, tiny model, ~1 min)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--quick", action="store_true", help="tiny model and few images (what CI runs)")
    p.add_argument("--arch", default="al_resnet18")
    p.add_argument("--baseline", default="resnet18")
    p.add_argument("--force", action="store_true", help="redo every step")
    p.add_argument("--no-progress", action="store_true")
    args = p.parse_args(argv)
    cfg = DemoConfig(out=args.out, profile="quick" if args.quick else "full", arch=args.arch,
                     baseline=args.baseline, force=args.force, progress=not args.no_progress)
    return run_demo(cfg)


def run_demo(cfg: DemoConfig) -> int:
    from .train.presets import PRESETS

    root = Path(cfg.out)
    root.mkdir(parents=True, exist_ok=True)
    steps = Steps(cfg)
    s = cfg.settings
    cache = str(root / "cache")
    att_dir, base_dir, bundle = root / cfg.arch, root / cfg.baseline, root / "bundle"
    # the preset's content, not only its name: a preset that changed retrains (a finished run is only checked)
    train_inputs = {"data": cfg.data, "settings": s, "seed": cfg.seed, "preset": PRESETS[s["preset"]],
                    "version": 3}  # 3: anchor selector, synth v5, the baseline at 2S
    print(f"alage-edge demo ({cfg.profile}) -> {root}/", flush=True)

    # 1. data and training ------------------------------------------------------------------------
    for arch, run_dir in ((cfg.arch, att_dir), (cfg.baseline, base_dir)):
        steps.run(f"train-{arch}", f"train {arch} on {cfg.data}",
                  {**train_inputs, "arch": arch}, [run_dir / "best.pt", run_dir / "curves.png"],
                  lambda arch=arch, run_dir=run_dir: _train(cfg, arch, run_dir),
                  f"alage-edge train --arch {arch} --preset {s['preset']} --data {cfg.data} "
                  f"--epochs {','.join(map(str, s['epochs']))} --out {run_dir} --resume"
                  + (f" --config '{json.dumps(s['baseline_config'])}'"
                     if arch == cfg.baseline and s.get("baseline_config") else ""))

    # 2. evaluation -------------------------------------------------------------------------------
    def evaluate():
        from alage_edge.data.synth import cue_survival
        from alage_edge.model import count_flops, load_checkpoint
        from alage_edge.train.claim import plot
        from alage_edge.train.evaluate import evaluate_checkpoints, format_table

        rows = evaluate_checkpoints([str(att_dir / "best.pt"), str(base_dir / "best.pt")], cfg.data,
                                    "test", cache=cache)
        for r, d in zip(rows, (att_dir, base_dir)):
            m = load_checkpoint(d / "best.pt")
            local = f", local width {m.cfg.local_width}" if m.cfg.attention else ""
            r.update(model=f"{m.cfg.arch} (detail {m.cfg.detail_scale}, width {m.cfg.width}{local})",
                     gflops=count_flops(m.eval()) / 1e9)
        plot(rows, root / "frontier.png")
        a, b = rows
        rows_out = {"attention": a, "baseline": b,
                    "mae_reduction": (b["mae"] - a["mae"]) / b["mae"] if b.get("mae") else None}
        write_json(root / "compare.json", rows_out)
        red = rows_out["mae_reduction"]
        text = format_table(rows) + f"\n\nthe attention model against a plain ResNet-18 at twice its global " \
                                    f"resolution, same faces and epochs: MAE {a['mae']:.2f} vs {b['mae']:.2f} " \
                                    f"({abs(red):.0%} {'lower' if red >= 0 else 'higher'} with attention)\n"
        text += "GFLOPs per image: " + ", ".join(f"{r['model']} {r['gflops']:.3f}" for r in rows) + "\n"
        surv = cue_survival(20, load_checkpoint(att_dir / "best.pt").cfg.input_size)
        text += (f"age cue that survives the 2x downsample to the global resolution: {surv['energy_ratio']:.0%} of "
                 f"its energy in the age regions ({surv['images']} faces)\n")
        write_text(root / "compare.md", text)

    steps.run("evaluate", "evaluate both on the synth test split", {**train_inputs, "ckpt": _mtime(att_dir, base_dir)},
              [root / "compare.md", root / "compare.json", root / "frontier.png"], evaluate,
              f"alage-edge eval {att_dir}/best.pt {base_dir}/best.pt --data {cfg.data}")
    print((root / "compare.md").read_text(), flush=True)

    # 3. export and convert -----------------------------------------------------------------------
    def export_convert():
        from alage_edge.convert.export import export_bundle
        from alage_edge.convert.openvino import build as openvino_build
        from alage_edge.convert.qdq import build as qdq_build

        from .model import load_checkpoint

        if bundle.exists():
            shutil.rmtree(bundle)
        export_bundle(load_checkpoint(att_dir / "best.pt"), bundle, checkpoint=att_dir / "best.pt")
        for prec in ("fp32", "fp16"):
            openvino_build(bundle, prec, progress=cfg.progress)
        calib = f"synth:seed={cfg.seed}"
        openvino_build(bundle, "int8", data=calib, calib_size=s["calib"], progress=cfg.progress, cache=cache)
        qdq_build(bundle, data=calib, calib_size=s["calib"], progress=cfg.progress, cache=cache)
        from .backends import backend_class

        if backend_class("tensorrt").is_available()[0]:
            from alage_edge.convert.tensorrt import build as trt_build

            for prec in ("fp16", "int8"):
                try:
                    trt_build(bundle, prec, data=calib if prec == "int8" else None, calib_size=s["calib"] if prec == "int8" else 300,
                              cache=cache)
                except Exception as e:  # a GPU host without a usable TensorRT: report, carry on
                    print(f"    TensorRT {prec}: not built ({e})")
        from alage_edge.convert.trtcheck import check_bundle
        from alage_edge.manifest import Manifest

        findings = check_bundle(bundle, "tensorrt-10")
        graphs = sorted(Manifest.load(bundle).io[s]["file"] for s in Manifest.load(bundle).io)
        write_json(root / "trtcheck.json", {"target": "tensorrt-10", "graphs": graphs,
                                            "findings": [f.__dict__ for f in findings]})

    steps.run("export", "export the bundle; convert to OpenVINO fp32/fp16/INT8 and Q/DQ",
              {**train_inputs, "ckpt": _mtime(att_dir)}, [bundle / "manifest.json"], export_convert,
              f"alage-edge export --checkpoint {att_dir}/best.pt --out {bundle}; alage-edge convert {bundle} --to "
              f"openvino --precision fp32|fp16|int8 --data synth; alage-edge convert {bundle} --to qdq --data synth")

    # 4. parity and benchmark ---------------------------------------------------------------------
    def parity():
        from .tools.parity import format_report, run_parity

        rep = run_parity(bundle, cfg.data, n=s["parity_n"], progress=cfg.progress, cache_dir=cache)
        write_json(root / "parity.json", rep)
        write_text(root / "parity.md", format_report(rep) + "\n")

    steps.run("parity", "parity of every backend and precision against PyTorch",
              {**train_inputs, "bundle": _mtime(bundle)}, [root / "parity.md"], parity,
              f"alage-edge parity {bundle}")
    print((root / "parity.md").read_text(), flush=True)

    def bench():
        from .tools.bench import run_bench, write_outputs

        rep = run_bench(bundle, data=cfg.data, n=s["bench_n"], iters=s["bench_iters"], progress=cfg.progress,
                        cache_dir=cache)
        write_outputs(rep, root)

    steps.run("bench", "latency benchmark (batch 1 and 8)", {**train_inputs, "bundle": _mtime(bundle)},
              [root / "bench.md", root / "bench.png"], bench, f"alage-edge bench {bundle} --out {root}")
    print((root / "bench.md").read_text(), flush=True)

    base_bundle = root / "baseline-bundle"

    def against():
        """The plain network's bundle too (OpenVINO fp32 + INT8, parity so that precision "auto" may pick INT8),
        then both deployed paths timed interleaved."""
        from alage_edge.convert.export import export_bundle
        from alage_edge.convert.openvino import build as openvino_build

        from .model import load_checkpoint
        from .tools.bench import format_against, plot_against, run_against
        from .tools.parity import run_parity

        if base_bundle.exists():
            shutil.rmtree(base_bundle)
        export_bundle(load_checkpoint(base_dir / "best.pt"), base_bundle, checkpoint=base_dir / "best.pt")
        openvino_build(base_bundle, "fp32", progress=False)
        openvino_build(base_bundle, "int8", data=f"synth:seed={cfg.seed}", calib_size=s["calib"], progress=False,
                       cache=cache)
        run_parity(base_bundle, cfg.data, n=s["parity_n"], progress=False, cache_dir=cache)
        rep = run_against([str(bundle), str(base_bundle)], data=cfg.data, n=s["bench_n"], cache_dir=cache)
        write_json(root / "bench-against.json", rep)
        write_text(root / "bench-against.md", format_against(rep) + "\n")
        plot_against(rep, root / "bench-against.png")

    steps.run("against", "the attention model and the plain network at 2S on their deployed paths, interleaved",
              {**train_inputs, "bundle": _mtime(bundle, base_dir)},
              [root / "bench-against.md", root / "bench-against.png"], against,
              f"alage-edge export --checkpoint {base_dir}/best.pt --out {base_bundle}; alage-edge convert "
              f"{base_bundle} --to openvino --precision fp32|int8; alage-edge parity {base_bundle}; alage-edge bench "
              f"{bundle} --against {base_bundle}")
    print((root / "bench-against.md").read_text(), flush=True)

    # 5. pictures ---------------------------------------------------------------------------------
    steps.run("pictures", "a sheet of test faces with predicted ages and attention boxes",
              {**train_inputs, "bundle": _mtime(bundle)}, [root / "faces.png"],
              lambda: face_sheet(bundle, cfg, root / "faces.png"), f"alage-edge predict {bundle} IMAGE --draw OUT")
    shutil.copyfile(att_dir / "curves.png", root / f"curves-{cfg.arch}.png")
    shutil.copyfile(base_dir / "curves.png", root / f"curves-{cfg.baseline}.png")
    write_summary(root, cfg, steps)
    print(f"\nall results in {root}/ (summary.md); {time.perf_counter() - steps.t0:.0f} s", flush=True)
    return 0


def _mtime(*paths: Path) -> List[float]:
    out = []
    for p in paths:
        f = p / "best.pt" if (p / "best.pt").exists() else p / "manifest.json"
        out.append(f.stat().st_mtime if f.exists() else 0.0)
    return out


def face_sheet(bundle: Path, cfg: DemoConfig, path: Path, n: int = 12) -> None:
    from .data.synth import SynthFaces
    from .draw import annotate, box_legend, save_png, sheet
    from .estimator import AgeEstimator

    est = AgeEstimator.load(bundle, backend="openvino" if _has("openvino") else "auto", precision="fp32")
    faces = SynthFaces(n, seed=cfg.seed, size=est.spec.size, split="test", version=cfg.settings["synth_version"])
    tiles, steps = [], 0
    for i in range(n):
        s = faces.sample(i)
        r = est.predict(s.image)
        steps = max([steps] + [len(x.attention_boxes) for x in r if x.attention_boxes is not None])
        scale = max(1, 224 // est.spec.size)
        tiles.append(annotate(s.image, r, truth=s.age, true_boxes=s.boxes, scale=scale))
    save_png(path, sheet(tiles, columns=4, title=f"predicted age ± spread (true age); {box_legend(steps)}; "
                                                  "white: the true age regions"))
    est.close()


def _has(mod: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(mod) is not None


def write_summary(root: Path, cfg: DemoConfig, steps: Steps) -> None:
    parts = [f"# alage-edge demo ({cfg.profile})", "",
             "Procedural synth faces, a stand-in that tests the mechanism, not a face data set.", ""]
    for title, name in (("Attention against the plain network at 2S (test split)", "compare.md"),
                        ("Parity", "parity.md"), ("Latency", "bench.md"),
                        ("Deployed paths side by side", "bench-against.md")):
        f = root / name
        if f.exists():
            parts += [f"## {title}", "", f.read_text().strip(), ""]
    parts += ["## Pictures", "", f"- training curves: curves-{cfg.arch}.png, curves-{cfg.baseline}.png",
              "- latency against drift: bench.png", "- accuracy against GFLOPs: frontier.png",
              "- accuracy against deployed latency, both models: bench-against.png", "- test faces with ages and attention boxes: faces.png", "",
              "## Steps", ""] + [f"- {s['step']}: " + (f"up to date ({s['seconds']} s when it ran)" if s["skipped"] and s.get("seconds") is not None
                                         else "up to date" if s["skipped"] else f"{s['seconds']} s")
                                  for s in steps.log]
    write_text(root / "summary.md", "\n".join(parts) + "\n")
