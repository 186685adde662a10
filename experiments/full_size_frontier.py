#!/usr/bin/env python3
"""The claim at the paper's size: AL-ResNet-18 (224 px global, 448 px detail, 112 px glimpses, T = 3) with
its LSTM and with static anchors, against plain ResNet-18 at 224 px (S) and at 448 px (2S), all trained the
same way on the same synth v5 faces (drawn at 448 px), one joint stage, from scratch.

    python experiments/full_size_frontier.py --out runs/full-frontier --n 5000 --epochs 10 --device cuda

Minutes on a GPU; hours on 2 CPU cores (one row of 3,000 faces and 6 epochs took 44 min there). Every row
runs in its own process at the same time (the faces are drawn once, first, into OUT/cache); a row that
is still training at --deadline seconds is stopped and its best checkpoint so far evaluated, with the
epochs it finished named. Resumes: a row with a result in OUT/results.json is kept. Writes
OUT/results.json and OUT/results.md. The deployed latency of the same architectures does not depend on the
weights: `alage-edge export --arch ...`, `convert --to openvino`, `parity`, then `alage-edge bench AL
--against PLAIN_S,PLAIN_2S` on the CPU that will run them (docs/experiments.md has the commands).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROWS = {  # row -> (arch, model options over the paper preset)
    "AL lstm": ("al_resnet18", {}),
    "AL static": ("al_resnet18", {"selector": "static"}),
    "global@S": ("resnet18", {"detail_scale": 2}),
    "global@2S": ("resnet18", {"global_size": 448, "detail_scale": 1}),
}
RECIPE = ["--preset", "paper", "--optimizer", "adamw", "--lr", "1e-3", "--l1", "0.05", "--l1-heads", "all",
          "--joint-lr-scale", "1.0"]


def row_dir(out: Path, row: str, seed: int) -> Path:
    return out / (row.replace("@", "_at_").replace(" ", "_") + f"-s{seed}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=5000, help="training faces")
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", default=",".join(ROWS), help="comma-separated rows of " + ", ".join(ROWS))
    p.add_argument("--device", default="auto")
    p.add_argument("--workers", type=int, default=3, help="data-loader workers per row")
    p.add_argument("--threads", type=int, default=2, help="torch threads per row's process")
    p.add_argument("--deadline", type=float, default=0, help="seconds; stop rows still training then (0: none)")
    args = p.parse_args()
    rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    bad = [r for r in rows if r not in ROWS]
    if bad:
        p.error(f"--rows: unknown {bad}; expected some of {list(ROWS)}")

    import torch

    from alage_edge.atomic import write_json, write_text
    from alage_edge.data import open_splits
    from alage_edge.model import count_flops, load_checkpoint
    from alage_edge.table import table
    from alage_edge.train.evaluate import evaluate_checkpoint

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    cache = str(out / "cache")
    data = f"synth:n={args.n},n_test={args.n_test},seed=0,size=448,version=5"
    res_path = out / "results.json"
    results = json.loads(res_path.read_text()) if res_path.is_file() else {}
    t0 = time.perf_counter()
    for name, faces in open_splits(data, size=448, cache_dir=cache).items():
        faces.preload(workers=min(os.cpu_count() or 1, 16))
    print(f"faces drawn in {time.perf_counter() - t0:.0f} s: {data}", flush=True)

    todo = [r for r in rows if r not in results]
    procs = {}
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONUNBUFFERED": "1"}
    for r in todo:
        arch, opts = ROWS[r]
        d = row_dir(out, r, args.seed)
        cmd = [sys.executable, "-m", "alage_edge.train", "--arch", arch, *RECIPE, "--config", json.dumps(opts),
               "--epochs", f"0,0,{args.epochs}", "--batch-size", str(args.batch_size), "--data", data,
               "--out", str(d), "--seed", str(args.seed), "--device", args.device, "--workers", str(args.workers),
               "--cache", cache, "--no-progress"]
        if (d / "last.pt").is_file():
            cmd.append("--resume")
        d.mkdir(parents=True, exist_ok=True)
        log = open(out / f"{d.name}.log", "a")
        # cwd outside the checkout: its alage_edge/ folder would shadow the installed package (which maps in
        # the train stage) for `-m`
        procs[r] = (subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=out), time.perf_counter(), log)
        print(f"started {r}: {' '.join(cmd)}", flush=True)

    t_start = time.perf_counter()
    while any(pr.poll() is None for pr, _, _ in procs.values()):
        if args.deadline and time.perf_counter() - t_start > args.deadline:
            for r, (pr, _, _) in procs.items():
                if pr.poll() is None:
                    print(f"deadline: stopping {r}", flush=True)
                    pr.terminate()
            break
        time.sleep(2)
    for r, (pr, t, log) in procs.items():
        pr.wait()
        log.close()
        d = row_dir(out, r, args.seed)
        hist = json.loads((d / "metrics.json").read_text()) if (d / "metrics.json").is_file() else []
        epochs_done = len(hist) if isinstance(hist, list) else len(hist.get("history", []))
        if not (d / "best.pt").is_file():
            print(f"{r}: no checkpoint (exit {pr.returncode}); see {d.name}.log", flush=True)
            continue
        ev = evaluate_checkpoint(str(d / "best.pt"), data, "test", device=args.device, cache=cache)
        model = load_checkpoint(d / "best.pt").eval()
        results[r] = {**ev, "row": r, "seed": args.seed, "exit": pr.returncode, "epochs_done": epochs_done,
                      "epochs": args.epochs, "train_s": round(time.perf_counter() - t, 1),
                      "gflops": count_flops(model) / 1e9, "params_m": sum(q.numel() for q in model.parameters()) / 1e6,
                      "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"}
        write_json(res_path, results)
        print(f"{r}: MAE {ev['mae']:.3f} ({epochs_done} of {args.epochs} epochs, exit {pr.returncode})", flush=True)
    keys = [k for k in ("mae", "cs5", "box_hit_mean", "all_boxes_hit") if any(k in v for v in results.values())]
    body = [[r, v["arch"], f"{v['gflops']:.2f}", f"{v['params_m']:.1f}", f"{v['epochs_done']}/{v['epochs']}",
             *(f"{v[k]:.3f}" if isinstance(v.get(k), float) else "-" for k in keys), f"{v['train_s']:.0f}"]
            for r, v in results.items()]
    md = (f"{data}; seed {args.seed}; {args.epochs} joint epochs, batch {args.batch_size}; "
          f"{next(iter(results.values()))['device'] if results else '-'}\n\n"
          + table(["row", "arch", "GFLOPs", "params M", "epochs", *keys, "train s"], body))
    write_text(out / "results.md", md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
