"""``alage-edge eval --claim``: is the attention model worth deploying? The fair protocol on synth.

Every row trains on the same faces (drawn at the detail size 2S) with the same augmentation and the
same number of epochs, all in one joint stage. The attention rows are compared with the plain networks a
user would pick instead, ResNet-18 global-only at S, 1.5S and 2S, widths 8 and 16, on accuracy and on
the deployed path's latency (each model at the fastest precision whose MAE stays within
``PARITY_MAE`` of its fp32 IR, batch 1 and 8, interleaved on one machine), not only on GFLOPs.

``--synth-version 5`` (the default) draws faces whose age regions move per face (shape, yaw, alignment
error: ``synth.placement``), so no set of static boxes covers them; version 4 keeps them in place.
Runs resume; a row already in claim.json is kept (drop it to redo it). Writes claim.json, claim.md and
frontier.png into --out. Rows measured with earlier models are data in ``experiments/``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np

from alage_edge.atomic import write_json, write_text
from alage_edge.table import table

PRESET = "compact"
S = 112  # the compact preset's global size
EPOCHS = (0, 0, 12)  # every row: 12 joint epochs (a global-only row trains them as its one stage)
DEFAULT = "AL lstm"  # the row the compact preset trains
PARITY_MAE = 0.3  # y: a precision is deployable when its MAE on the test faces moves at most this much
MODELS = {  # name -> (arch, model options over the preset)
    "global@S w8": ("resnet18", {"width": 8, "detail_scale": 2}),
    "global@S w16": ("resnet18", {"width": 16, "detail_scale": 2}),
    "global@1.5S w8": ("resnet18", {"width": 8, "global_size": 3 * S // 2, "detail_scale": 1}),
    "global@1.5S w16": ("resnet18", {"width": 16, "global_size": 3 * S // 2, "detail_scale": 1}),
    "global@2S w8": ("resnet18", {"width": 8, "global_size": 2 * S, "detail_scale": 1}),
    "global@2S w16": ("resnet18", {"width": 16, "global_size": 2 * S, "detail_scale": 1}),
    # the same anchors on every face, learned from the data (no LSTM, no map of the face)
    "AL static": ("al_resnet18", {"selector": "static"}),
    "AL lstm": ("al_resnet18", {}),  # the default: the LSTM chooses per face
    # both selectors with 64 px anchors (48 px in the preset): the trials read them ~1.5 y better
    "AL static 64px": ("al_resnet18", {"selector": "static", "crop_size": 64}),
    "AL lstm 64px": ("al_resnet18", {"crop_size": 64}),
}
# training options over the preset, per row: static anchors read 0.2 y better over five seeds when their glimpses'
# sampling noise anneals to zero (their local CNN then learns on the anchors they take); the LSTM did not (docs)
TRAINING = {"AL static": {"explore_anneal": True}, "AL static 64px": {"explore_anneal": True}}
# rows over every seed: the two selectors and the plain networks around them (1.5S and 2S, both widths); the
# others (the plain networks at S, far from the frontier, and the 64 px trials) on the first seed only
EVERY_SEED = ("AL lstm", "AL static", "global@1.5S w8", "global@1.5S w16", "global@2S w8", "global@2S w16")


def plan(seeds: Sequence[int], only: Optional[Sequence[str]] = None) -> List[tuple]:
    """(model, seed): every row on the first seed (the whole frontier), then the other seeds of EVERY_SEED."""
    jobs = [(m, seeds[0]) for m in MODELS] + [(m, s) for s in seeds[1:] for m in EVERY_SEED]
    return [j for j in jobs if not only or j[0] in only]


def data_spec(n_train: int, n_test: int, version: int) -> str:
    """Every row sees the same faces drawn at 2S; a model with a smaller input reads them through the shared
    preprocessing (synth would otherwise draw its 1-px lines at that model's size: a different task)."""
    return f"synth:n={n_train},n_test={n_test},seed=0,size={2 * S},version={version}"


def run_dir(out: Path, model: str, seed: int) -> Path:
    return out / (model.replace("@", "_at_").replace(" ", "_").replace(".", "_") + f"-s{seed}")


def train_config(out: Path, model: str, seed: int, data: str, epochs, cache: str, progress: bool,
                 preset: str = PRESET):
    from .trainer import TrainConfig

    arch, opts = MODELS[model]
    return TrainConfig.from_preset(preset, arch=arch, model=opts, data=data, out=str(run_dir(out, model, seed)),
                                   epochs=tuple(epochs), seed=seed, resume=True, cache=cache, progress=progress,
                                   **TRAINING.get(model, {}))


def train_one(out: Path, model: str, seed: int, data: str, epochs, cache: str, progress: bool,
              preset: str = PRESET) -> float:
    from .trainer import train

    t = time.perf_counter()
    train(train_config(out, model, seed, data, epochs, cache, progress, preset))
    return time.perf_counter() - t


def deployed(ckpt: Path, work: Path, data: str, cache: str, n_check: int = 300) -> Dict[str, object]:
    """The deployed path: OpenVINO fp32, and NNCF INT8 of every convolution the scope allows (global+local),
    INT8 kept when its MAE on ``n_check`` test faces is within PARITY_MAE of fp32's. Batch 1 and 8 p50 ms,
    the candidates interleaved (7 rounds of 20 calls, the median of the round medians); {} without OpenVINO."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None:
        return {}
    from alage_edge import AgeEstimator
    from alage_edge.convert.export import export_bundle
    from alage_edge.convert.openvino import build
    from alage_edge.data import open_splits
    from alage_edge.manifest import Manifest
    from alage_edge.model import load_checkpoint

    bundle = work / "bundle"
    if not (bundle / "manifest.json").is_file():
        export_bundle(load_checkpoint(ckpt), bundle, checkpoint=ckpt)
    man = Manifest.load(bundle)
    have = {a.key for a in man.artifacts()}  # an interrupted run built only some of them
    if "openvino-fp32" not in have:
        build(bundle, "fp32", progress=False)
    if "openvino-int8" not in have:
        build(bundle, "int8", data=data, calib_size=300, progress=False, cache=cache, int8_scope="global+local")
    faces = open_splits(data, size=man.preprocess.size, cache_dir=cache)["test"]
    n = min(n_check, len(faces))
    images = np.stack([man.preprocess.apply(faces.image(i)) for i in range(n)])
    ages = faces.ages()[:n]
    ests = {p: AgeEstimator.load(bundle, backend="openvino", precision=p, artifact="openvino") for p in ("fp32", "int8")}
    mae = {p: float(np.mean(np.abs(np.concatenate([e.infer(images[i:i + 50])["age"] for i in range(0, n, 50)])
                                   - ages))) for p, e in ests.items()}
    ok = [p for p in ests if abs(mae[p] - mae["fp32"]) <= PARITY_MAE]
    rounds: Dict[str, List[float]] = {f"{p}_b{b}": [] for p in ok for b in (1, 8)}
    for _ in range(7):
        for key in rounds:
            p, b = key.split("_b")
            x = images[:int(b)]
            for _ in range(3):
                ests[p].infer(x)
            ts = []
            for _ in range(20):
                t = time.perf_counter()
                ests[p].infer(x)
                ts.append((time.perf_counter() - t) * 1e3)
            rounds[key].append(float(np.median(ts)))
    for est in ests.values():
        est.close()
    ms = {k: float(np.median(v)) for k, v in rounds.items()}
    row: Dict[str, object] = {f"{k}_ms": v for k, v in ms.items()}
    row["timed_on"] = timed_on()
    row.update({f"mae_ov_{p}": v for p, v in mae.items()})
    for b in (1, 8):
        best = min(ok, key=lambda p: ms[f"{p}_b{b}"])
        row[f"deployed_b{b}_ms"], row[f"deployed_b{b}"] = ms[f"{best}_b{b}"], best
    return row


def timed_on() -> str:
    """The machine a row's latency was measured on: CPU name, its vector flags and the cores used."""
    import os

    from alage_edge.system import cpu_flags, cpu_name

    return f"{cpu_name()} [{cpu_flags()}], {os.cpu_count()} cores"


def same_machine(a: dict, b: dict) -> bool:
    """Whether two timed rows can be compared: measured on one machine class (rows from before the stamp
    carry none, and count as one machine among themselves only)."""
    return a.get("timed_on") == b.get("timed_on")


def evaluate(out: Path, model: str, seed: int, data: str, cache: str, with_latency: bool) -> dict:
    from alage_edge.model import count_flops, load_checkpoint

    from .evaluate import evaluate_checkpoint

    d = run_dir(out, model, seed)
    row = evaluate_checkpoint(str(d / "best.pt"), data, "test", cache=cache)
    row.update(model=model, seed=seed, gflops=count_flops(load_checkpoint(d / "best.pt").eval()) / 1e9)
    if with_latency:
        row.update(deployed(d / "best.pt", d, data, cache))
    return row


def _cell(rs: List[dict], k: str, fmt: str = "{:.2f}") -> str:
    v = [r[k] for r in rs if isinstance(r.get(k), (int, float))]
    if not v:
        return "-"
    return fmt.format(np.mean(v)) + (f" ± {np.std(v):.2f}" if len(v) > 1 else "")


def summarise(rows: List[dict]) -> str:
    by: Dict[str, List[dict]] = {}
    for r in rows:
        by.setdefault(r["model"], []).append(r)
    head = ["model", "seeds", "MAE", "CS(5)", "GFLOPs", "deployed b1 ms", "deployed b8 ms", "precision b1/b8",
            "box hit IoU>=0.5", "box std"]
    body = [(m, ",".join(str(r["seed"]) for r in rs), _cell(rs, "mae"), _cell(rs, "cs5", "{:.3f}"),
             _cell(rs, "gflops", "{:.3f}"), _cell(rs, "deployed_b1_ms"), _cell(rs, "deployed_b8_ms"),
             "/".join(str(next((r[k] for r in rs if k in r), "-")) for k in ("deployed_b1", "deployed_b8")),
             _cell(rs, "box_hit_mean"), _cell(rs, "box_std", "{:.3f}"))
            for m, rs in by.items()]
    lines = []
    mine = by.get(DEFAULT, [])
    timed = [r for r in mine if "deployed_b1_ms" in r]
    for m, rs in by.items():
        if m == DEFAULT or not mine:
            continue
        acc = np.mean([r["mae"] for r in rs]) <= np.mean([r["mae"] for r in mine])
        t = next((r for r in rs if "deployed_b1_ms" in r), None)
        if t is None or not timed:
            lines.append(f"{m}: MAE {np.mean([r['mae'] for r in rs]):.2f} vs {DEFAULT} "
                         f"{np.mean([r['mae'] for r in mine]):.2f} (no deployed latency measured)")
            continue
        if not same_machine(t, timed[0]):
            lines.append(f"{m}: MAE {np.mean([r['mae'] for r in rs]):.2f} vs {np.mean([r['mae'] for r in mine]):.2f}; "
                         f"latency timed on {t.get('timed_on', 'an unrecorded machine')}, {DEFAULT}'s on "
                         f"{timed[0].get('timed_on', 'an unrecorded machine')}: not compared")
            continue
        fast = all(t[f"deployed_b{b}_ms"] <= timed[0][f"deployed_b{b}_ms"] for b in (1, 8))
        verdict = "DOMINATES the default" if acc and fast else "does not dominate"
        lines.append(f"{m}: MAE {np.mean([r['mae'] for r in rs]):.2f} vs {np.mean([r['mae'] for r in mine]):.2f}, "
                     f"deployed b1 {t['deployed_b1_ms']:.2f} vs {timed[0]['deployed_b1_ms']:.2f} ms, b8 "
                     f"{t['deployed_b8_ms']:.2f} vs {timed[0]['deployed_b8_ms']:.2f} ms: {verdict}")
    static = by.get("AL static", [])
    if mine and static:
        ratio = np.mean([r["mae"] for r in mine]) / np.mean([r["mae"] for r in static])
        lines.append(f"{DEFAULT} / AL static MAE: {ratio:.3f} (target <= 0.95: {'met' if ratio <= 0.95 else 'NOT met'})")
    hits = [r["box_hit_mean"] for r in mine if "box_hit_mean" in r]
    if hits:
        lines.append(f"{DEFAULT}: glimpses on a true region at IoU >= 0.5: {np.mean(hits):.0%} (target >= 70%: "
                     f"{'met' if np.mean(hits) >= 0.70 else 'NOT met'})")
    return table(head, body) + ("\n\n" + "\n".join(lines) if lines else "") + "\n"


def one_machine(rows: List[dict]) -> tuple:
    """(rows, machine): the rows with the latency of those timed on another machine than the default's (or,
    without a timed default, the first timed row's) left out, and that machine (None if unrecorded)."""
    ref = next((r for r in rows if r["model"] == DEFAULT and "deployed_b1_ms" in r), None) or \
        next((r for r in rows if "deployed_b1_ms" in r), None)
    if ref is None:
        return rows, None
    return [r if same_machine(r, ref) else {k: v for k, v in r.items() if not k.startswith("deployed_")}
            for r in rows], ref.get("timed_on")


def plot(rows: List[dict], path: Path) -> None:
    """frontier.png: MAE against the deployed latency at batch 1 and at batch 8 (GFLOPs where no latency)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, where = one_machine(rows)
    timed = any("deployed_b1_ms" in r for r in rows)
    keys = [("deployed_b1_ms", "deployed path, batch 1 (ms)"), ("deployed_b8_ms", "deployed path, batch 8 (ms)")] \
        if timed else [("gflops", "GFLOPs per image")]
    fig, axes = plt.subplots(1, len(keys), figsize=(6.0 * len(keys), 4.2), dpi=120, squeeze=False)
    for ax, (key, label) in zip(axes[0], keys):
        points = []
        for m in dict.fromkeys(r["model"] for r in rows):
            rs = [r for r in rows if r["model"] == m]
            xs = [r[key] for r in rs if key in r]
            if not xs:
                continue
            y, err = np.mean([r["mae"] for r in rs]), np.std([r["mae"] for r in rs]) if len(rs) > 1 else 0
            ax.errorbar(np.mean(xs), y, yerr=err, fmt="s" if m.startswith("AL") else "o", capsize=3,
                        color="tab:red" if m == DEFAULT else None)
            points.append((float(np.mean(xs)), float(y), m))
        (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
        placed = []
        for x, y, m in points:  # a label near an earlier one goes below its point, not over the other label
            near = any(abs(x - px) < 0.08 * (x1 - x0) and abs(y - py) < 0.05 * (y1 - y0) for px, py in placed)
            ax.annotate(m, (x, y), textcoords="offset points", xytext=(5, -11 if near else 4), fontsize=7)
            placed.append((x, y))
        ax.set_xlabel(label)
        ax.set_ylabel("MAE on synth test (years)")
        ax.grid(alpha=0.3)
    fig.suptitle("accuracy / latency frontier (synth, compact preset)" + (f"\nlatency timed on {where}" if where else ""),
                 fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _train_job(job) -> float:
    """One training run in a worker process with its share of the cores (runs in parallel; each resumes)."""
    import torch

    root, model, seed, data, epochs, cache, threads, preset = job
    torch.set_num_threads(threads)
    return train_one(Path(root), model, seed, data, epochs, cache, progress=False, preset=preset)


def run_claim(out: str = "runs/claim", seeds=(0, 1, 2), n_train: int = 3000, n_test: int = 1000,
              epochs: Optional[tuple] = None, synth_version: int = 5, latency: bool = True, progress: bool = True,
              only: Optional[List[str]] = None, jobs: int = 1, preset: str = PRESET, retime: bool = False) -> str:
    """Train every (model, seed) of the plan (``jobs`` at a time, in worker processes with a core share
    each), then evaluate them one by one on an otherwise idle machine (the latency columns must not share
    the CPU with training); the first seed of each row gets the deployed latency. ``retime``: train
    nothing; evaluate the plan's trained rows again, each from a fresh export (after a runtime change)."""
    import os
    import shutil
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    epochs = tuple(epochs or EPOCHS)
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    data, cache = data_spec(n_train, n_test, synth_version), str(root / "cache")
    old = json.loads((root / "claim.json").read_text()) if (root / "claim.json").is_file() else {}
    if old and old.get("data") != data:
        raise ValueError(f"{root / 'claim.json'} holds rows of {old.get('data')}, not {data}: use another --out")
    rows = old.get("rows", [])
    if retime:
        wanted = plan(list(seeds), only)
        missing = [f"{m} seed {s}" for m, s in wanted if not (run_dir(root, m, s) / "best.pt").is_file()]
        if missing:
            raise ValueError(f"--retime: {', '.join(missing)} not trained in {root}: run the claim without --retime")
        rows = [r for r in rows if (r["model"], r["seed"]) not in wanted]
        for m, s in wanted:  # this claim's own exports, made again by the code of today
            shutil.rmtree(run_dir(root, m, s) / "bundle", ignore_errors=True)
    done = {(r["model"], r["seed"]) for r in rows}
    todo = [j for j in plan(list(seeds), only) if j not in done]  # evaluated rows are kept as they are
    times = dict(old.get("train_seconds", {}))

    def save():
        write_json(root / "claim.json", {"rows": rows, "train_seconds": times, "data": data,
                                         "epochs": list(epochs), "jobs": jobs})

    if jobs > 1 and not retime:  # synth caches are written atomically: two workers drawing the same split is only waste
        threads = max(1, (os.cpu_count() or 1) // jobs)
        work = [(str(root), m, s, data, epochs, cache, threads, preset) for m, s in todo]
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            for (m, s), secs in zip(todo, pool.map(_train_job, work)):
                print(f"[claim] trained {m} seed {s} in {secs:.0f} s ({threads} thread(s), {jobs} at a time)",
                      flush=True)
                times[f"{m} s{s}"] = round(secs, 1)
                save()
    for model, seed in todo:
        print(f"[claim] {model} seed {seed}", flush=True)
        if jobs == 1 and not retime:
            times[f"{model} s{seed}"] = round(train_one(root, model, seed, data, epochs, cache, progress, preset), 1)
        rows.append(evaluate(root, model, seed, data, cache, latency and seed == seeds[0]))
        save()
    text = summarise(rows)
    write_text(root / "claim.md", text)
    plot(rows, root / "frontier.png")
    return text
