"""``alage-edge bench``: latency, throughput, size, memory and accuracy of every run, in one table.

Rows as users know them from Ultralytics' benchmark: format | precision |
size | MAE | drift vs PyTorch | p50 / p99 ms | images/s | peak memory, plus the
speed-up over PyTorch eager. Warm-up, then many timed repetitions; medians.
Writes bench.json, bench.md and bench.png (latency against drift).
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import List, Optional

import numpy as np

from ..argtypes import non_negative_int, positive_float, positive_int, positive_ints
from ..system import peak_gops
from .runs import RUNS


def _rss_mb(field: str = "VmHWM") -> float:
    """Peak (VmHWM) or current (VmRSS) resident memory of this process in MB."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reset_peak() -> bool:
    """Reset the process's peak RSS (Linux clear_refs 5), so each run's peak is its own."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _artifact_mb(man, est) -> float:
    """Size of the files this run loads (the streams it runs, their weights, the checkpoint)."""
    art = est.backend.artifact
    used = list(est.backend.files().values())
    rels = used + [f for f in art.info.get("extra_files", [])
                   if any(f.rsplit(".", 1)[0] == u.rsplit(".", 1)[0] for u in used)]
    return sum(man.data["files"].get(r, {}).get("bytes", 0) for r in rels) / 1e6


def time_infer(est, x: np.ndarray, warmup: int, iters: int, min_seconds: float = 0.0) -> np.ndarray:
    for _ in range(warmup):
        est.infer(x)
    times = []
    t_end = time.perf_counter() + min_seconds
    while len(times) < iters or time.perf_counter() < t_end:
        t = time.perf_counter()
        est.infer(x)
        times.append((time.perf_counter() - t) * 1e3)
        if len(times) >= 20 * iters:
            break
    return np.array(times)


def run_bench(bundle, keys: Optional[List[str]] = None, batches=(1, 8), data: str = "synth", n: int = 100,
              warmup: int = 5, iters: int = 30, progress: bool = True, cache_dir: Optional[str] = None) -> dict:
    from ..manifest import Manifest
    from ..progress import bar
    from ..system import machine_info
    from . import compare

    man = Manifest.load(bundle)
    evalset = compare.synth_set(man, data, n, cache_dir)
    ref_run = compare.reference_run()
    todo = compare.runnable(man, keys)
    todo = sorted(todo, key=lambda rw: rw[0].key != ref_run.key)  # the reference first
    rows, skipped, ref_out = [], [], None
    peak_ok = _reset_peak()
    for run, why in bar(todo, desc="bench", disable=not progress):
        if why:
            skipped.append({"run": run.key, "label": run.label, "why": why})
            continue
        _reset_peak()
        base = _rss_mb("VmRSS")
        est = compare.load(bundle, run, batch_size=max(batches))
        out = compare.outputs(est, evalset.images)
        if run.key == ref_run.key:
            ref_out = out
        acc = compare.compare(ref_out, out, evalset.ages, 0.0, 0.0) if ref_out is not None else {}
        for b in batches:
            x = np.ascontiguousarray(np.resize(evalset.images, (b,) + evalset.images.shape[1:]))
            t = time_infer(est, x, warmup, iters)
            rows.append({"run": run.key, "label": run.label, "precision": run.precision, "backend": est.describe(),
                         "batch": b, "size_mb": round(_artifact_mb(man, est), 2), "mae": acc.get("mae"),
                         "drift_mean": acc.get("drift_mean"), "drift_max": acc.get("drift_max"),
                         "p50_ms": float(np.median(t)), "p99_ms": float(np.percentile(t, 99)),
                         "mean_ms": float(t.mean()), "reps": int(len(t)), "images_per_s": float(b / np.median(t) * 1e3),
                         "peak_mb": round(_rss_mb() - base, 1)})
        est.close()
    for r in rows:
        ref = next((q for q in rows if q["run"] == ref_run.key and q["batch"] == r["batch"]), None)
        r["speedup"] = ref["p50_ms"] / r["p50_ms"] if ref else None
        if man.data.get("gflops"):  # achieved work rate against the chip's peak for what the run computes in
            peak, how = peak_gops(r["precision"] if r["precision"] in ("int8", "bf16") else "fp32")
            r["gflops_per_s"] = man.data["gflops"] * r["batch"] / (r["p50_ms"] / 1e3)
            r["peak_share"] = r["gflops_per_s"] / peak if peak else None
            r["peak_method"] = how
    return {"bundle": str(bundle), "model": {**man.model, "gflops": man.data.get("gflops")}, "reference": ref_run.label, "set": evalset.name,
            "machine": machine_info(), "warmup": warmup, "iters": iters,
            "peak_mb": "peak resident memory while loading and running, above the process before loading"
                       + ("" if peak_ok else " (the peak could not be reset: upper bound)"),
            "rows": rows, "skipped": skipped}


PROFILED = ("openvino-fp32", "openvino-int8-openvino", "openvino-int8-openvino-bf16", "onnxruntime-fp32",
            "onnxruntime-int8-qdq")


def run_profile(bundle, keys: Optional[List[str]] = None, batches=(1, 8), top: int = 8, iters: int = 10) -> dict:
    """Top operation types per run and batch size (the runs whose backend has a profiler)."""
    from ..manifest import Manifest
    from ..system import machine_info
    from . import compare

    man = Manifest.load(bundle)
    out = {"bundle": str(bundle), "machine": machine_info(), "runs": []}
    for run, why in compare.runnable(man, keys or list(PROFILED)):
        if why or run.backend not in ("openvino", "onnxruntime"):
            continue
        for b in batches:
            est = compare.load(bundle, run, batch_size=b)
            est.backend.options["profile"] = True
            est.backend.close()  # reloaded with the profiler on
            x = man.preprocess.random_input(b)
            for _ in range(iters):
                est.infer(x)
            out["runs"].append({"run": run.key, "label": run.label, "batch": b, "backend": est.describe(),
                                "top": est.backend.profile(top), "streams": stream_split(bundle, run, x, iters)})
            est.close()
    return out


def stream_split(bundle, run, x: np.ndarray, iters: int = 10) -> Optional[dict]:
    """p50 ms of each stream alone (the split graph, run stream by stream), or None for a global-only model
    or an artifact without the split graphs."""
    from . import compare

    est = compare.load(bundle, run, batch_size=len(x))
    try:
        if not est.manifest.attention or "global" not in est.backend.artifact.files:
            return None
        est.backend.close()
        est.backend.graph = "split"
        est.backend.load()
        be = est.backend
        g = be.infer_stream("global", {"image": x})["g"]
        feeds = {"global": {"image": x}, "attention": {"image": x, "g": g}}
        out = {}
        for stream, f in feeds.items():
            class One:  # time_infer's interface
                def infer(self, _, stream=stream, f=f):
                    return be.infer_stream(stream, f, check=False)
            out[stream] = float(np.median(time_infer(One(), None, 2, iters)))
        return out
    finally:
        est.close()


def run_against(bundles: List[str], batches=(1, 8), data: str = "synth", n: int = 100, rounds: int = 5,
                iters: int = 20, cache_dir: Optional[str] = None) -> dict:
    """Each bundle on its deployed path (precision "auto": the fastest run that passed parity here) and on
    OpenVINO / the default fp32 path, timed interleaved (every path once per round, the median of the round
    medians), with its MAE on the same synth test faces."""
    import warnings

    from ..estimator import AgeEstimator
    from ..manifest import Manifest
    from ..system import machine_info
    from . import compare

    paths = []
    for b, name in zip(bundles, short_names(bundles)):
        man = Manifest.load(b)
        evalset = compare.synth_set(man, data, n, cache_dir)
        def mae_of(est):
            out = compare.outputs(est, evalset.images)
            return float(np.abs(out["age"] - evalset.ages).mean()) if evalset.ages is not None else None

        for kind, prec in (("deployed (auto)", "auto"), ("fp32", "fp32")):
            ests: dict = {}
            for bb in sorted(batches, reverse=True):  # auto chooses per batch size: what a user loading
                if ests and prec != "auto":           # with that batch_size runs
                    ests[bb] = ests[max(batches)]
                    continue
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    est = AgeEstimator.load(b, precision=prec, batch_size=bb)
                same = next((e for e in ests.values() if e.describe() == est.describe()), None)
                if same is not None:
                    est.close()
                ests[bb] = same or est
            top = ests[max(batches)]
            other = {bb: (e.describe(), mae_of(e)) for bb, e in ests.items() if e is not top}
            paths.append({"bundle": str(b), "model": model_label(man, name),
                          "gflops": man.data.get("gflops"), "path": kind, "backend": top.describe(),
                          "mae": mae_of(top), "why": top.backend.why.get("auto", ""), "ests": ests,
                          "other_batches": {f"b{bb}": {"backend": d, "mae": m} for bb, (d, m) in other.items()},
                          "times": {bb: [] for bb in batches}, "x": {bb: man.preprocess.random_input(bb) for bb in batches}})
    for _ in range(rounds):
        for p in paths:
            for bb in batches:
                p["times"][bb].append(float(np.median(time_infer(p["ests"][bb], p["x"][bb], 3, iters))))
    rows = []
    for p in paths:
        for est in {id(e): e for e in p["ests"].values()}.values():
            est.close()
        row = {k: p[k] for k in ("bundle", "model", "gflops", "path", "backend", "mae", "why", "other_batches")}
        row.update({f"b{bb}_ms": float(np.median(p["times"][bb])) for bb in batches})
        rows.append(row)
    return {"machine": machine_info(), "batches": list(batches), "rounds": rounds, "rows": rows, "set": data}


def format_against(rep: dict) -> str:
    from ..table import table

    m = rep["machine"]
    head = (f"deployed paths side by side, interleaved ({rep['rounds']} rounds); {m['cpu']} ({m['cores']} cores, "
            f"flags: {m['cpu_flags'] or '-'}); MAE on {rep['set']} test faces")
    cols = ["model", "path", "backend", "GFLOPs", "MAE"] + [f"b{b} p50 ms" for b in rep["batches"]]
    rows = [(r["model"], r["path"], r["backend"], r["gflops"], r["mae"], *(r[f"b{b}_ms"] for b in rep["batches"]))
            for r in rep["rows"]]
    notes = [f"note: {r['model']}: {r['why']}" for r in rep["rows"] if r["path"].startswith("deployed") and
             "no parity record" in r["why"]]
    for r in rep["rows"]:
        for b, o in r.get("other_batches", {}).items():
            mae = "" if o["mae"] is None else f"; MAE {o['mae']:.3f}"
            notes.append(f"note: {r['model']}, {r['path']}: at {b} it runs {o['backend']} (the fastest that passed "
                         f"parity at that batch size{mae}); the backend and MAE columns are batch "
                         f"{max(rep['batches'])}'s")
    return "\n".join([head, table(cols, rows, digits=3)] + notes)


def short_names(bundles) -> List[str]:
    """Each bundle's path by its fewest last parts that tell it from the others (``demo/bundle`` beside
    ``exp/bundle``; ``r224`` beside ``r448``)."""
    parts = [Path(b).resolve().parts for b in bundles]
    out = []
    for p in parts:
        k = 1
        while k < len(p) and sum(q[-k:] == p[-k:] for q in parts) > 1:
            k += 1
        out.append("/".join(p[-k:]))
    return out


def model_label(man, name: str) -> str:
    """A short name of the bundle and what it holds, e.g. ``r224: resnet18 224px global, 448px input``: two
    models that read the same input at different global sizes (or two folders named ``bundle``) must not
    share a row label."""
    gs, size = man.model.get("global_size"), man.preprocess.size
    what = f"{man.model.get('arch')} {gs}px global, {size}px input" if gs and gs != size else \
        f"{man.model.get('arch')} {size}px"
    return f"{name}: {what}"


def plot_against(rep: dict, path) -> Path:
    """MAE against latency per face (batch 1 and the largest batch) for each model's paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import write_with

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), sharey=True)
    for ax, b in zip(axes, (rep["batches"][0], rep["batches"][-1])):
        for r in rep["rows"]:
            if r["mae"] is None:
                continue
            x = r[f"b{b}_ms"] / b
            ax.scatter(x, r["mae"], marker="o" if r["path"].startswith("deployed") else "x")
            ax.annotate(f"{r['model']}\n{r['backend'].split(' (')[0]}", (x, r["mae"]), fontsize=6,
                        xytext=(3, 3), textcoords="offset points")
        ax.set_xlabel(f"ms per face, batch {b} (p50)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("MAE (years)")
    fig.suptitle(f"deployed paths (o) and fp32 (x), {rep['machine']['cpu']}", fontsize=9)
    fig.tight_layout()
    out = write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def format_profile(prof: dict) -> str:
    from ..table import table

    m = prof["machine"]
    parts = [f"top operations per inference; {m['cpu']} ({m['cores']} cores, flags: {m['cpu_flags'] or '-'})"]
    for r in prof["runs"]:
        split = r.get("streams")
        parts.append(f"\n{r['label']} ({r['run']}), batch {r['batch']}: {r['backend']}"
                     + (f"; streams alone (split graph): global {split['global']:.3f} ms, attention "
                        f"{split['attention']:.3f} ms" if split else ""))
        parts.append(table(["op", "kernel", "ms", "share"], [(t["op"], t["kernel"], f"{t['ms']:.3f}",
                                                             f"{100 * t['share']:.1f}%") for t in r["top"]]))
    return "\n".join(parts)


def format_report(rep: dict) -> str:
    from ..table import table

    m, md = rep["machine"], rep["model"]
    head = (f"{md['arch']} {md['global_size']}px global, {md['global_size'] * md.get('detail_scale', 1)}px input, "
            f"{rep['set']}; {m['cpu']} ({m['cores']} cores, flags: {m['cpu_flags'] or '-'}); reference {rep['reference']}")
    rows = [(r["label"], r["precision"], r["batch"], r["size_mb"], r["mae"],
             f"{r['drift_mean']:.3f} / {r['drift_max']:.3f}" if r["drift_mean"] is not None else "-",
             r["p50_ms"], r["p99_ms"], round(r["images_per_s"], 1), r["peak_mb"],
             f"{r['speedup']:.2f}x" if r["speedup"] else "-",
             f"{r['gflops_per_s']:.1f}" if r.get("gflops_per_s") else "-",
             f"{100 * r['peak_share']:.1f}%" if r.get("peak_share") else "-") for r in rep["rows"]]
    out = [head, table(["format", "precision", "batch", "size (MB)", "MAE", "drift mean/max (y)", "p50 ms",
                        "p99 ms", "images/s", "peak mem (MB)", "vs eager", "GFLOP/s", "of peak"], rows, digits=2)]
    methods = sorted({r["peak_method"] for r in rep["rows"] if r.get("peak_method")})
    if methods:
        out.append(f"GFLOP/s: {rep['model'].get('gflops', '?')} GFLOPs a face x batch / p50; peak: "
                   + "; ".join(methods))
    notes = sorted({f"{r['label']} {r['precision']}: {r['backend']}" for r in rep["rows"] if "lacks" in r["backend"]})
    out += [f"note: {n}" for n in notes]
    if rep["skipped"]:
        out.append("not run here: " + "; ".join(f"{s['run']} ({s['why']})" for s in rep["skipped"]))
    return "\n".join(out)


def plot(rep: dict, path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import write_with

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for b, marker in zip(sorted({r["batch"] for r in rep["rows"]}), "os^D"):
        rs = [r for r in rep["rows"] if r["batch"] == b]
        xs = [r["p50_ms"] / b for r in rs]
        ys = [max(r["drift_mean"] or 0.0, 1e-4) for r in rs]
        ax.scatter(xs, ys, marker=marker, label=f"batch {b}")
        if b == min(r["batch"] for r in rep["rows"]):  # name the points once, staggered
            for k, (r, x, y) in enumerate(sorted(zip(rs, xs, ys), key=lambda t: t[1])):
                ax.annotate(f"{r['label']} {r['precision']}", (x, y), fontsize=7, rotation=30,
                            xytext=(2, 4 + 9 * (k % 3)), textcoords="offset points")
    top = max([max(r["drift_mean"] or 0.0, 1e-4) for r in rep["rows"]] + [1e-3])
    ax.set_ylim(7e-5, top * 8)
    ax.axhline(1e-4, ls="--", lw=0.8, color="grey")
    ax.text(ax.get_xlim()[0], 1.15e-4, " exact (drift below 1e-4 y)", fontsize=7, color="grey")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("latency per image, p50 (ms)")
    ax.set_ylabel("mean age drift vs PyTorch (years)")
    ax.set_title(f"{rep['model']['arch']} {rep['model']['global_size']}px on {rep['machine']['cpu']}", fontsize=9)
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
    return out


def write_outputs(rep: dict, out_dir) -> None:
    from ..atomic import write_json, write_text

    out = Path(out_dir)
    write_json(out / "bench.json", rep)
    write_text(out / "bench.md", format_report(rep) + "\n")
    try:
        plot(rep, out / "bench.png")
    except ImportError:
        pass


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge bench",
        description="Benchmark every backend x precision this machine can run for a bundle: size, MAE, age "
                    "drift against PyTorch, p50/p99 latency, images/s, peak memory and the speed-up over "
                    "PyTorch eager, at each batch size. Records the machine and library versions.",
        epilog="examples:\n  alage-edge bench bundle/\n  alage-edge bench bundle/ --batch 1,8,32 --out runs/bench\n"
               "  alage-edge bench bundle/ --runs torch-fp32,openvino-int8-openvino --json\n"
               "  alage-edge bench bundle/ --profile --runs openvino-fp32,openvino-int8-openvino-bf16\n"
               "  alage-edge bench bundle/ --against plain-2s-bundle/   (deployed paths side by side, interleaved)\n"
               "  alage-edge bench bundle/ --serve --serve-runs onnxruntime-fp32 --concurrency 1,4 --seconds 2",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--runs", default=None, help="comma-separated runs (default: all that can run here): "
                   + ", ".join(r.key for r in RUNS))
    p.add_argument("--batch", type=positive_ints, default=(1, 8), help="batch sizes (default 1,8)")
    p.add_argument("--data", default="synth", help="labelled set for MAE and drift (test split)")
    p.add_argument("--n", type=positive_int, default=100, help="images for MAE and drift")
    p.add_argument("--warmup", type=non_negative_int, default=5)
    p.add_argument("--iters", type=positive_int, default=30, help="timed repetitions per batch size")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="write bench.json, bench.md and bench.png here")
    p.add_argument("--cache", default=None)
    p.add_argument("--against", default=None, metavar="OTHER_BUNDLE[,...]",
                   help="instead: the deployed path (precision auto) of BUNDLE and of these bundles (e.g. a plain "
                        "network at twice the resolution), timed interleaved in one run, with their MAE")
    p.add_argument("--profile", action="store_true", help="instead of timing: the top operations of each run "
                   "(OpenVINO performance counters, ONNX Runtime's profiler) at each batch size")
    s = p.add_argument_group("--serve: through the real Triton Inference Server")
    s.add_argument("--serve", action="store_true", help="load-test the bundle served by tritonserver instead")
    s.add_argument("--serve-runs", default="onnxruntime-fp32,openvino-int8",
                   help="BACKEND-PRECISION runs to serve one after the other (default onnxruntime-fp32,openvino-int8)")
    s.add_argument("--concurrency", type=positive_ints, default=(1, 4, 16, 64), help="clients (default 1,4,16,64)")
    s.add_argument("--seconds", type=positive_float, default=5.0, help="seconds per concurrency level (default 5)")
    s.add_argument("--protocol", choices=["http", "grpc"], default="http")
    args = p.parse_args(argv)
    if args.serve:
        from .serve_bench import run_serve_bench

        return run_serve_bench(args)
    if args.against:
        rep = run_against([args.bundle] + args.against.split(","), args.batch, args.data, args.n,
                          cache_dir=args.cache)
        text = format_against(rep)
        print(json.dumps(rep, indent=2) if args.json else text)
        if args.out:
            from ..atomic import write_json, write_text

            write_json(Path(args.out) / "bench-against.json", rep)
            write_text(Path(args.out) / "bench-against.md", text + "\n")
            try:
                plot_against(rep, Path(args.out) / "bench-against.png")
            except ImportError:
                pass
        return 0
    if args.profile:
        prof = run_profile(args.bundle, args.runs.split(",") if args.runs else None, args.batch)
        print(json.dumps(prof, indent=2) if args.json else format_profile(prof))
        if args.out:
            from ..atomic import write_json, write_text

            write_json(Path(args.out) / "profile.json", prof)
            write_text(Path(args.out) / "profile.md", format_profile(prof) + "\n")
        return 0
    rep = run_bench(args.bundle, args.runs.split(",") if args.runs else None,
                    args.batch, args.data, args.n, args.warmup, args.iters,
                    cache_dir=args.cache)
    print(json.dumps(rep, indent=2) if args.json else format_report(rep))
    if args.out:
        write_outputs(rep, args.out)
        print(f"wrote {args.out}/bench.json, bench.md, bench.png")
    return 0
