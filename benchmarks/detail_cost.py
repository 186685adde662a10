#!/usr/bin/env python3
"""What the detail image costs before the model runs: bytes per image and preprocessing time.

    python benchmarks/detail_cost.py [--iters 200]

The model's one input is the face at global_size x detail_scale; this times the shared preprocessing
(``PreprocessSpec.apply``: crop, Pillow resize, normalise) of photos of a few sizes to each input
side, and prints a table with the CPU it ran on. Compare the rows of one run, not across machines.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from alage_edge.preprocess import PreprocessSpec
from alage_edge.system import cpu_flags, cpu_name
from alage_edge.table import table

SIDES = ((112, "compact global (detail 1)"), (224, "compact detail 2 / default global"), (448, "default detail 2"))
PHOTOS = ((512, 512), (1024, 768))


def p50_ms(fn, iters: int) -> float:
    for _ in range(5):
        fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iters", type=int, default=200, help="timed calls per cell (p50 reported)")
    args = ap.parse_args(argv)
    if args.iters < 1:
        ap.error(f"--iters must be a positive integer, got {args.iters}")
    rng = np.random.default_rng(0)
    photos = {f"{w}x{h}": rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for w, h in PHOTOS}
    rows = []
    for side, what in SIDES:
        spec = PreprocessSpec(size=side)
        row = [side, what, f"{3 * side * side * 4 / 1024:.0f}"]
        row += [f"{p50_ms(lambda p=p: spec.apply(p), args.iters):.2f}" for p in photos.values()]
        rows.append(row)
    print(f"CPU: {cpu_name()} [{cpu_flags()}]")
    print(table(["input px", "used as", "KB float32"] + [f"ms from {k}" for k in photos], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
