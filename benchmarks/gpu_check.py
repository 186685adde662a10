#!/usr/bin/env python3
"""GPU host check (under 5 minutes): PyTorch eager vs CUDA graphs, fp32 and fp16, batch 1/8/64,
for al_resnet18 and al_resnet34 at 224 (and TensorRT engines where tensorrt imports).

    python benchmarks/gpu_check.py [--bundle BUNDLE] [--archs al_resnet18,al_resnet34] [--out DIR]

Prints a table (p50 ms per batch, images/s, speed-up over eager fp32) and writes gpu_check.json.
Weights: the bundle's checkpoint if given, else random (latency does not depend on them).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def time_est(est, x, warmup=10, iters=50):
    import numpy as np
    import torch

    for _ in range(warmup):
        est.backend.infer(x, check=False)
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        t = time.perf_counter()
        est.backend.infer(x, check=False)  # includes the host<->device copies a pipeline pays
        times.append((time.perf_counter() - t) * 1e3)
    return float(np.median(times)), float(np.percentile(times, 99))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bundle", default=None)
    p.add_argument("--archs", default="al_resnet18,al_resnet34")
    p.add_argument("--batches", default="1,8,64")
    p.add_argument("--out", default=".")
    args = p.parse_args()
    import numpy as np
    import torch

    from alage_edge import AgeEstimator
    from alage_edge.backends import backend_class
    from alage_edge.system import machine_info
    from alage_edge.table import table

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA GPU visible", file=sys.stderr)
        return 2
    torch.backends.cudnn.benchmark = True
    rows, t_start = [], time.perf_counter()
    bundles = {}
    if args.bundle:
        from alage_edge.manifest import Manifest

        bundles[Manifest.load(args.bundle).model["arch"]] = args.bundle
    else:
        from alage_edge.convert.bundle import BundleWriter
        from alage_edge.convert.export import stream_io
        from alage_edge.manifest import Artifact
        from alage_edge.model import build_model, save_checkpoint

        tmp = Path(tempfile.mkdtemp())
        for arch in args.archs.split(","):
            torch.manual_seed(0)
            model = build_model(arch)
            b = tmp / arch
            b.mkdir()
            save_checkpoint(b / "model.pt", model)
            man = BundleWriter.create(b, model.cfg.to_dict(), model.cfg.preprocess, stream_io(model))
            man.record_file("model.pt")
            man.add_artifact(Artifact("torch", "fp32", {"checkpoint": "model.pt"}))
            man.save()
            bundles[arch] = b
    configs = [("eager", "fp32", False), ("eager", "fp16", False), ("CUDA graphs", "fp32", True),
               ("CUDA graphs", "fp16", True)]
    for arch, bundle in bundles.items():
        for mode, prec, graphs in configs:
            est = AgeEstimator.load(bundle, backend="torch", precision=prec, device="cuda", cuda_graphs=graphs)
            s = est.spec.size
            for b in (int(v) for v in args.batches.split(",")):
                x = np.random.default_rng(0).normal(size=(b, 3, s, s)).astype(np.float32)
                p50, p99 = time_est(est, x)
                rows.append({"arch": arch, "path": f"torch {mode}", "precision": prec, "batch": b, "p50_ms": p50,
                             "p99_ms": p99, "images_per_s": b / p50 * 1e3})
            est.close()
        if backend_class("tensorrt").is_available()[0]:
            from alage_edge.convert.tensorrt import build

            for prec in ("fp16",):
                try:
                    build(bundle, prec, batch=(1, 8, 64))
                    est = AgeEstimator.load(bundle, backend="tensorrt", precision=prec)
                    for b in (int(v) for v in args.batches.split(",")):
                        x = np.random.default_rng(0).normal(size=(b, 3, 224, 224)).astype(np.float32)
                        p50, p99 = time_est(est, x)
                        rows.append({"arch": arch, "path": "TensorRT", "precision": prec, "batch": b, "p50_ms": p50,
                                     "p99_ms": p99, "images_per_s": b / p50 * 1e3})
                except Exception as e:  # report and go on: the torch rows are still worth having
                    print(f"TensorRT {prec} for {arch} failed: {e}", file=sys.stderr)
    for r in rows:
        ref = next(q for q in rows if q["arch"] == r["arch"] and q["batch"] == r["batch"]
                   and q["path"] == "torch eager" and q["precision"] == "fp32")
        r["speedup"] = ref["p50_ms"] / r["p50_ms"]
    print(f"{torch.cuda.get_device_name(0)}, torch {torch.__version__}, {time.perf_counter() - t_start:.0f} s")
    print(table(["model", "path", "precision", "batch", "p50 ms", "p99 ms", "images/s", "vs eager fp32"],
                [(r["arch"], r["path"], r["precision"], r["batch"], r["p50_ms"], r["p99_ms"],
                  round(r["images_per_s"], 1), f"{r['speedup']:.2f}x") for r in rows], digits=2))
    out = Path(args.out) / "gpu_check.json"
    out.write_text(json.dumps({"device": torch.cuda.get_device_name(0), "machine": machine_info(), "rows": rows},
                              indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
