#!/usr/bin/env python3
"""Peak memory and throughput of streaming prediction: the same files predicted N times over.

    python benchmarks/stream_memory.py BUNDLE [--n 100,10000] [--backend onnxruntime]

Each N runs in a fresh process (so each peak RSS is its own) that decodes, batches and infers
through ``AgeEstimator.predict_iter`` and keeps only a running sum. Prints a table.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import itertools, json, sys, time
from alage_edge import AgeEstimator
bundle, backend, n, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
from pathlib import Path
files = sorted(str(p) for p in Path(folder).glob("*.png"))
est = AgeEstimator.load(bundle, backend=backend)
t, total, count = time.perf_counter(), 0.0, 0
for r in est.predict_iter(itertools.islice(itertools.cycle(files), n), batch_size=8):
    total += r.age
    count += 1
dt = time.perf_counter() - t
peak = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) / 1024
print(json.dumps({"n": count, "seconds": dt, "peak_mb": peak}))
"""


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--n", default="100,10000")
    p.add_argument("--backend", default="onnxruntime")
    args = p.parse_args(argv)
    import numpy as np
    from PIL import Image

    from alage_edge.system import machine_info
    from alage_edge.table import table

    folder = Path(tempfile.mkdtemp(prefix="stream-"))
    rng = np.random.default_rng(0)
    for i in range(100):  # 100 distinct 512x512 pictures on disk
        Image.fromarray(rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)).save(folder / f"{i:03d}.png")
    rows = []
    for n in (int(x) for x in args.n.split(",")):
        out = subprocess.run([sys.executable, "-c", CHILD, args.bundle, args.backend, str(n), str(folder)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append((r["n"], f"{r['seconds']:.1f}", f"{r['n'] / r['seconds']:.0f}", f"{r['peak_mb']:.0f}"))
    m = machine_info()
    print(f"{args.backend}, {args.bundle}; {m.get('cpu')} ({m.get('cores')} cores, flags: {m.get('cpu_flags')})")
    print(table(["images", "seconds", "images/s", "peak RSS (MB)"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
