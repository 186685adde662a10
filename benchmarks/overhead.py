#!/usr/bin/env python3
"""Where batch-1 time goes besides the model: threads, OpenVINO's performance hint, a static-shape model
against the dynamic-batch one, one fused graph against two, the input check, and preprocessing a photo.
Every variant interleaved in one run.

    python benchmarks/overhead.py runs/demo/bundle [--rounds 5]

Prints a table with the CPU and its flags; compare the rows of one run, not across machines.
"""
from __future__ import annotations

import argparse
import warnings

import numpy as np


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args(argv)

    from alage_edge import AgeEstimator
    from alage_edge.system import cpu_flags, cpu_name
    from alage_edge.table import table
    from alage_edge.tools.bench import time_infer

    base = dict(backend="openvino", precision="int8", artifact="openvino")
    variants = {
        "INT8, fused, static shape, LATENCY hint, all threads": base,
        "  dynamic batch shape": {**base, "shapes": "dynamic"},
        "  bf16 hint for what is not INT8": {**base, "hint": "bf16"},
        "  one inference thread": {**base, "threads": 1},
        "  THROUGHPUT hint": {**base, "mode": "THROUGHPUT"},
        "  two graphs (split)": {**base, "graph": "split"},
        "fp32, fused": dict(backend="openvino", precision="fp32", artifact="openvino"),
        "  dynamic batch shape ": dict(backend="openvino", precision="fp32", artifact="openvino", shapes="dynamic"),
        "  one inference thread ": dict(backend="openvino", precision="fp32", artifact="openvino", threads=1),
        "  two graphs (split) ": dict(backend="openvino", precision="fp32", artifact="openvino", graph="split"),
        "ONNX Runtime fp32, one intra-op thread": dict(backend="onnxruntime", precision="fp32", threads=1),
        "ONNX Runtime fp32, all threads": dict(backend="onnxruntime", precision="fp32"),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ests = {k: AgeEstimator.load(args.bundle, **kw) for k, kw in variants.items()}
    spec = next(iter(ests.values())).spec
    x = spec.random_input(1)
    photo = np.random.default_rng(0).integers(0, 256, (768, 1024, 3), dtype=np.uint8)
    big = np.random.default_rng(1).integers(0, 256, (3000, 4000, 3), dtype=np.uint8)
    face = spec.aligned_square((1800.0, 1200.0), (2000.0, 1210.0), 4000, 3000)  # eyes 200 px apart
    times = {k: [] for k in ests}
    checked, unchecked, prep, prep_face = [], [], [], []
    first = ests["INT8, fused, static shape, LATENCY hint, all threads"]
    for _ in range(args.rounds):
        for k, est in ests.items():
            times[k].append(float(np.median(time_infer(est, x, 3, 30))))
        checked.append(float(np.median(time_infer(first.backend, x, 3, 30))))
        unchecked.append(float(np.median(time_infer(_Unchecked(first.backend), x, 3, 30))))
        prep.append(float(np.median(time_infer(_Prep(spec, photo), None, 3, 30))))
        prep_face.append(float(np.median(time_infer(_Prep(spec, big, face), None, 3, 30))))
    rows = [(k.rstrip(), f"{np.median(v):.3f}") for k, v in times.items()]
    rows += [("input check (range, NaN) of a batch-1 tensor", f"{np.median(checked) - np.median(unchecked):.3f}"),
             ("preprocessing a 1024x768 photo (crop, resize, normalise)", f"{np.median(prep):.3f}"),
             ("preprocessing a face aligned in a 4000x3000 photo", f"{np.median(prep_face):.3f}")]
    print(f"CPU: {cpu_name()} [{cpu_flags()}]; {first.manifest.model.get('arch')} {spec.size}px input; batch 1 p50 "
          f"ms, {args.rounds} interleaved rounds")
    print(table(["variant", "ms"], rows))
    for est in ests.values():
        est.close()
    return 0


class _Unchecked:
    def __init__(self, backend):
        self.backend = backend

    def infer(self, x):
        return self.backend.infer(x, check=False)


class _Prep:
    def __init__(self, spec, photo, square=None):
        self.spec, self.photo, self.square = spec, photo, square

    def infer(self, _):
        return self.spec.apply(self.photo, self.square)


if __name__ == "__main__":
    raise SystemExit(main())
