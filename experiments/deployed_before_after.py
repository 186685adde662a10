#!/usr/bin/env python3
"""The default's deployed path before and after the 2026-12-03 evening changes, interleaved in one run.

    python experiments/deployed_before_after.py BEFORE_BUNDLE AFTER_BUNDLE [--rounds 7]

BEFORE_BUNDLE: a demo bundle exported and converted by commit c6d7791 (ArgMax, the LSTM reading its whole
input each step, INT8 of the global stream only), run with OpenVINO's dynamic-batch model as that runtime
did. AFTER_BUNDLE: the same architecture exported and converted now, with the static-shape models. Both at
OpenVINO fp32 and at each INT8 artifact (with and without the bf16 hint), batch 1 and 8, p50 ms: every path
once per round, the median of the round medians. Prints a table with the CPU and its flags.
"""
import argparse
import warnings

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("before")
    ap.add_argument("after")
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args(argv)

    from alage_edge import AgeEstimator
    from alage_edge.manifest import Manifest
    from alage_edge.system import cpu_flags, cpu_name
    from alage_edge.table import table
    from alage_edge.tools.bench import time_infer

    ov = dict(backend="openvino", artifact="openvino", graph="fused")
    paths = {}
    for name, bundle, shapes in (("before", args.before, "dynamic"), ("after", args.after, "static")):
        scope = Manifest.load(bundle).find("openvino", "int8")[0].info["calibration"]["scope"]
        paths[f"{name}: OpenVINO fp32"] = (bundle, dict(ov, precision="fp32", shapes=shapes))
        paths[f"{name}: NNCF INT8 ({scope})"] = (bundle, dict(ov, precision="int8", shapes=shapes))
        paths[f"{name}: NNCF INT8 ({scope}) + bf16 hint"] = (bundle, dict(ov, precision="int8", hint="bf16",
                                                                          shapes=shapes))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ests = {k: AgeEstimator.load(b, **kw) for k, (b, kw) in paths.items()}
    xs = {b: Manifest.load(args.after).preprocess.random_input(b) for b in (1, 8)}
    times = {k: {1: [], 8: []} for k in ests}
    for _ in range(args.rounds):
        for k, est in ests.items():
            for b, x in xs.items():
                times[k][b].append(float(np.median(time_infer(est, x, 3, 20))))
    ms = {k: {b: float(np.median(v)) for b, v in t.items()} for k, t in times.items()}
    base = ms["before: OpenVINO fp32"]
    rows = [(k, f"{m[1]:.2f}", f"{m[8]:.2f}", f"{base[1] / m[1]:.2f}x", f"{base[8] / m[8]:.2f}x") for k, m in ms.items()]
    print(f"CPU: {cpu_name()} [{cpu_flags()}]; p50 ms, {args.rounds} interleaved rounds; speed-up against before's fp32")
    print(table(["path", "b1 ms", "b8 ms", "b1 vs before fp32", "b8 vs before fp32"], rows))
    for est in ests.values():
        est.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
