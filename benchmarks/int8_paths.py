#!/usr/bin/env python3
"""Which low-precision path pays on this CPU, and what it costs in accuracy: every OpenVINO and ONNX Runtime
path of a trained bundle, interleaved in one run, against OpenVINO fp32.

    python benchmarks/int8_paths.py runs/demo/bundle [--rounds 5] [--calib 300]

Works on a copy of the bundle (the bundle itself is never written): builds the OpenVINO INT8 IR with
``--int8-scope global`` and ``global+local`` (each as one fused IR and as two streams) and the Q/DQ model,
then times each path at batch 1 and 8 (rounds interleaved: every path once per round, the median of the
round medians), and measures the age drift against OpenVINO fp32 on the synth test split and on the real
photos parity uses (``alage-edge parity``'s criteria: INT8 within 1.5 y on every photo, bf16 within 0.5 y),
and the share of synth faces whose glimpses went to another anchor than fp32's.
Prints a table with the CPU and its flags; compare the rows of one run, not across machines.
"""
from __future__ import annotations

import argparse
import shutil
import tempfile
from pathlib import Path

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calib", type=int, default=300, help="calibration images (synth train split)")
    ap.add_argument("--n", type=int, default=200, help="synth test faces for the drift")
    args = ap.parse_args(argv)

    from alage_edge import AgeEstimator
    from alage_edge.convert.openvino import build as ov_build
    from alage_edge.convert.qdq import build as qdq_build
    from alage_edge.manifest import Manifest
    from alage_edge.system import cpu_flags, cpu_name, peak_gops
    from alage_edge.table import table
    from alage_edge.tools import compare
    from alage_edge.tools.bench import time_infer

    work = Path(tempfile.mkdtemp(prefix="int8-paths-"))
    try:
        copies = {}
        for scope in ("global", "global+local"):
            b = work / scope.replace("+", "-")
            shutil.copytree(args.bundle, b, ignore=shutil.ignore_patterns("parity-record.json"))
            have = {a.key for a in Manifest.load(b).artifacts()}
            if "openvino-fp32" not in have:
                ov_build(b, "fp32", progress=False)
            ov_build(b, "int8", data="synth", calib_size=args.calib, int8_scope=scope, progress=False,
                     cache=str(work / "cache"))
            qdq_build(b, data="synth", calib_size=args.calib, int8_scope=scope, variant="cpu", progress=False,
                      cache=str(work / "cache"))
            copies[scope] = b
        g = copies["global"]
        paths = {  # label -> (bundle, AgeEstimator.load options)
            "OpenVINO fp32 (fused)": (g, dict(backend="openvino", precision="fp32", artifact="openvino")),
            "OpenVINO bf16 (split, attention f32)": (g, dict(backend="openvino", precision="bf16",
                                                             artifact="openvino")),
            "ONNX Runtime fp32": (g, dict(backend="onnxruntime", precision="fp32")),
        }
        for scope, b in copies.items():
            for graph in ("split", "fused"):
                paths[f"OpenVINO INT8 {scope} ({graph})"] = (b, dict(backend="openvino", precision="int8",
                                                                     artifact="openvino", graph=graph))
            paths[f"OpenVINO INT8 {scope} (fused) + bf16 float convolutions"] = (
                b, dict(backend="openvino", precision="int8", artifact="openvino", graph="fused", hint="bf16"))
            paths[f"ONNX Runtime Q/DQ {scope}"] = (b, dict(backend="onnxruntime", precision="int8", artifact="qdq"))
        ests = {k: AgeEstimator.load(b, **kw) for k, (b, kw) in paths.items()}
        man = Manifest.load(g)
        sets = [compare.synth_set(man, "synth", args.n, str(work / "cache"))]
        photos = compare.photo_set(man)
        if photos is not None:
            sets.append(photos)
        ref = [compare.outputs(ests["OpenVINO fp32 (fused)"], s.images) for s in sets]
        drift, moved = {}, {}
        for k, est in ests.items():
            outs = [compare.outputs(est, s.images) for s in sets]
            moved[k] = compare.compare(ref[0], outs[0], None, 0.0, 0.0).get("glimpses_moved")
            drift[k] = [float(np.abs(o["age"] - r["age"]).max()) for o, r in zip(outs, ref)] + \
                [float(np.abs(outs[0]["age"] - sets[0].ages).mean() - np.abs(ref[0]["age"] - sets[0].ages).mean())]
        times = {k: {1: [], 8: []} for k in ests}
        xs = {b: man.preprocess.random_input(b) for b in (1, 8)}
        for _ in range(args.rounds):
            for k, est in ests.items():
                for b, x in xs.items():
                    times[k][b].append(float(np.median(time_infer(est, x, 3, 20))))
        base = {b: float(np.median(times["OpenVINO fp32 (fused)"][b])) for b in (1, 8)}
        gf = man.data.get("gflops")
        rows = []
        for k in ests:
            t1, t8 = (float(np.median(times[k][b])) for b in (1, 8))
            prec = "int8" if "INT8" in k or "Q/DQ" in k else ("bf16" if "bf16" in k else "fp32")
            peak = peak_gops(prec)[0]
            rate = gf * 8 / (t8 / 1e3) if gf else None
            rows.append((k, f"{t1:.2f}", f"{t8:.2f}", f"{base[1] / t1:.2f}x", f"{base[8] / t8:.2f}x",
                         f"{rate:.0f}" if rate else "-", f"{100 * rate / peak:.1f}%" if rate and peak else "-",
                         f"{drift[k][0]:.3f}", f"{drift[k][1]:.3f}" if len(sets) > 1 else "-", f"{drift[k][-1]:+.3f}",
                         "-" if moved[k] is None else f"{moved[k]:.1%}"))
            ests[k].close()
        print(f"CPU: {cpu_name()} [{cpu_flags()}]; {man.model.get('arch')} {man.preprocess.size}px input, "
              f"{gf} GFLOPs a face; {args.rounds} interleaved rounds; drift against OpenVINO fp32")
        print(table(["path", "b1 p50 ms", "b8 p50 ms", "b1 vs fp32", "b8 vs fp32", "b8 GFLOP/s", "of peak",
                     "synth max drift (y)", "photos max drift (y)", "MAE change (y)", "synth glimpses moved"], rows))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
