#!/usr/bin/env python3
"""The preprocessing call now against an earlier commit's, interleaved: a 1024x768 photo (centre square)
and a face aligned in it, and the same in a 4000x3000 photo, at the demo's 224 px input. Prints p50 ms and
how many output values differ (the part-of-picture resample rounds shifted coordinates: one level at most).

    python experiments/preprocess_speed.py --before 6dc1877 --rounds 5
"""
from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from alage_edge import preprocess as now
from alage_edge.table import table
from alage_edge.tools.bench import time_infer


def load_at(rev: str):
    src = subprocess.run(["git", "show", f"{rev}:alage_edge/preprocess.py"], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parent.parent).stdout
    path = Path(tempfile.mkdtemp()) / "preprocess_before.py"
    path.write_text(src.replace("from .images import", "from alage_edge.images import"))
    spec = importlib.util.spec_from_file_location("preprocess_before", path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


class _Call:  # what time_infer times: .infer(x)
    def __init__(self, fn):
        self.fn = fn

    def infer(self, _):
        return self.fn()


def p50(fn, n: int = 20) -> float:
    return float(np.median(time_infer(_Call(fn), None, 1, n)))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", required=True, help="git revision whose alage_edge/preprocess.py to compare")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--size", type=int, default=224)
    args = p.parse_args()
    before = load_at(args.before)
    rng = np.random.default_rng(0)
    cases = []
    for h, w in ((768, 1024), (3000, 4000)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        eyes = ((0.45 * w, 0.4 * h), (0.45 * w + 0.05 * w, 0.4 * h + 0.01 * h))
        cases.append((f"{w}x{h} photo, centre square", img, None))
        cases.append((f"{w}x{h} photo, aligned face", img, eyes))
    specs = {m: m.PreprocessSpec(size=args.size) for m in (before, now)}
    times = {(c[0], m.__name__): [] for c in cases for m in (before, now)}
    diffs = {}
    for _ in range(args.rounds):
        for name, img, eyes in cases:
            for m, spec in specs.items():
                sq = spec.aligned_square(*eyes, img.shape[1], img.shape[0]) if eyes else None
                times[(name, m.__name__)].append(p50(lambda: spec.apply(img, sq)))
                if m is now:
                    sqb = specs[before].aligned_square(*eyes, img.shape[1], img.shape[0]) if eyes else None
                    diffs[name] = float((spec.apply(img, sq) != specs[before].apply(img, sqb)).mean())
    rows = []
    for name, _, _ in cases:
        b, n = (np.median(times[(name, m.__name__)]) for m in (before, now))
        rows.append((name, f"{b:.3f}", f"{n:.3f}", f"{b / n:.2f}x", f"{100 * diffs[name]:.3f}%"))
    from alage_edge.system import cpu_flags, cpu_name

    print(f"CPU: {cpu_name()} [{cpu_flags()}]; {args.size} px input; p50 ms, {args.rounds} interleaved rounds; "
          f"before = {args.before}")
    print(table(["picture", "before", "now", "speed-up", "values differing"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
