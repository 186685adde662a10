"""Issue 28: the convolutions NNCF leaves float (the two stems that read pixels) cast to bf16 in
the INT8 IR itself, everything else as NNCF quantised it or f32, compiled with the f32 hint (what the
OpenVINO backend now does for INT8 + bf16: ``alage_edge/backends/ov_graph.py``).

Under the bf16 *hint* OpenVINO also runs the selector's FullyConnected layers in bf16 (it drops their f32
mark), which moved glimpses; explicit Converts around the stems only leave the selector f32. This times a
raw infer request of the bundle's fused INT8 IR as it is and with the stems cast, interleaved, and prints
the largest output difference on one random input (no parity run: accuracy unmeasured).

    python experiments/bf16_stems.py runs/full-trained/bundle --batch 1
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from alage_edge.backends.ov_graph import cast_float_convolutions


def main() -> None:
    import openvino as ov

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("bundle")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--rounds", type=int, default=7)
    args = ap.parse_args()
    path = Path(args.bundle) / "openvino" / "int8" / "fused.xml"
    core = ov.Core()
    cfg = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": 2, "NUM_STREAMS": 1}
    models = {"INT8 as converted": core.read_model(str(path)), "INT8, stems cast to bf16": core.read_model(str(path))}
    print("cast:", ", ".join(cast_float_convolutions(models["INT8, stems cast to bf16"], core, "CPU")))
    side = models["INT8 as converted"].inputs[0].get_partial_shape()[2].get_length()
    x = np.random.default_rng(0).standard_normal((args.batch, 3, side, side)).astype(np.float32)
    reqs = {}
    for name, m in models.items():
        m.reshape({m.inputs[0].get_any_name(): [args.batch, 3, side, side]})
        reqs[name] = core.compile_model(m, "CPU", cfg).create_infer_request()
    outs = {k: r.infer({0: x}) for k, r in reqs.items()}
    a, b = outs.values()
    print("largest output difference:", max(float(np.abs(a[i] - b[i]).max()) for i in range(len(a))))
    times = {k: [] for k in reqs}
    for _ in range(args.rounds):
        for k, r in reqs.items():
            for _ in range(3):
                r.infer({0: x})
            t = time.perf_counter()
            for _ in range(20):
                r.infer({0: x})
            times[k].append((time.perf_counter() - t) / 20 * 1e3)
    for k, v in times.items():
        print(f"batch {args.batch}: {k}: {np.median(v):.3f} ms p50 of {args.rounds} rounds")


if __name__ == "__main__":
    main()
