"""The global stream's fixed 2x downsample in OpenVINO: other ways to compute the same filter, timed.

At batch 8 the depthwise [1,3,3,1]^2 / 64 convolution (GroupConvolution) and the reorder of the whole
detail image it needs are about a quarter of the demo model's INT8 path (`alage-edge bench --profile`).
Each variant computes the same thing (checked against the model's ``Downsample2x``) followed by the demo's
global stem (8 x 3 x 7 x 7, stride 2, random weights), batch 1 and 8, fp32 hint, interleaved rounds:

- depthwise: the model's (GroupConvolution, groups 3);
- dense 3 -> 3: one Convolution with a block-diagonal weight;
- one channel: the image as (3B, 1, H, W), a 1 -> 1 convolution;
- separable: a 1 x 4 then a 4 x 1 depthwise convolution;
- three pools: [1,3,3,1] / 8 is [1,1] / 2 three times: Pad, AvgPool 2 (stride 1), twice, then stride 2;
- the crops' exact-copy alternative is in ``gather_variants`` below: GatherElements (the model's), Gather on
  the flattened batch.
- folded into the stem: one 16 x 16 stride-4 convolution (the stem composed with the filter; not the same at
  the border: listed for its time only).

    python experiments/downsample_variants.py --rounds 7
    python experiments/downsample_variants.py --torch    (PyTorch eager on the CPU: the depthwise convolution
                                                          against the model's separable form there)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from alage_edge.model.alnet import Downsample2x
from alage_edge.system import cpu_flags, cpu_name
from alage_edge.table import table

TAP = torch.tensor([1.0, 3.0, 3.0, 1.0])


def variants(stem: torch.Tensor) -> dict:
    k2 = torch.outer(TAP, TAP) / 64.0
    dense = torch.zeros(3, 3, 4, 4)
    for c in range(3):
        dense[c, c] = k2
    folded = torch.zeros(stem.shape[0], 3, 16, 16)
    for m in range(7):
        for n in range(7):
            folded[:, :, 2 * m:2 * m + 4, 2 * n:2 * n + 4] += stem[:, :, m, n][:, :, None, None] * k2

    def then_stem(f):
        class M(nn.Module):
            def forward(self, x):
                return F.conv2d(f(x), stem, stride=2, padding=3)
        return M()

    row = (TAP / 8).reshape(1, 1, 1, 4).expand(3, 1, 1, 4).clone()
    col = (TAP / 8).reshape(1, 1, 4, 1).expand(3, 1, 4, 1).clone()

    def pools(x):
        x = F.pad(x, (1, 1, 1, 1))
        return F.avg_pool2d(F.avg_pool2d(F.avg_pool2d(x, 2, stride=1), 2, stride=1), 2, stride=2)

    class Folded(nn.Module):
        def forward(self, x):
            return F.conv2d(x, folded, stride=4, padding=7)

    return {"depthwise (the model's)": then_stem(Downsample2x()),
            "dense 3 -> 3": then_stem(lambda x: F.conv2d(x, dense, stride=2, padding=1)),
            "one channel": then_stem(lambda x: F.conv2d(x.reshape(-1, 1, *x.shape[2:]), k2[None, None], stride=2,
                                                        padding=1).reshape(x.shape[0], 3, x.shape[2] // 2, -1)),
            "separable": then_stem(lambda x: F.conv2d(F.conv2d(x, row, stride=(1, 2), padding=(0, 1), groups=3), col,
                                                      stride=(2, 1), padding=(1, 0), groups=3)),
            "three pools": then_stem(pools),
            "folded into the stem (border differs)": Folded()}


def time_all(models: dict, side: int, rounds: int, inputs) -> dict:
    import openvino as ov

    core, reqs = ov.Core(), {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, mod) in enumerate(models.items()):
            for b in (1, 8):
                path = str(Path(tmp) / f"variant{i}-b{b}.onnx")
                args = inputs(b)
                torch.onnx.export(mod, args, path, opset_version=17, dynamo=False)
                reqs[(name, b)] = (core.compile_model(core.read_model(path), "CPU", {
                    "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}).create_infer_request(), args)
    ms = {k: [] for k in reqs}
    for _ in range(rounds):
        for k, (req, args) in reqs.items():
            feed = [a.numpy() for a in args]
            for _ in range(5):
                req.infer(feed)
            ts = []
            for _ in range(30):
                t = time.perf_counter()
                req.infer(feed)
                ts.append(time.perf_counter() - t)
            ms[k].append(float(np.median(ts)) * 1e3)
    return {k: float(np.median(v)) for k, v in ms.items()}


def gather_variants(side: int, crop: int) -> dict:
    rows, cols = torch.meshgrid(torch.arange(crop), torch.arange(crop), indexing="ij")
    offsets = (rows * side + cols).reshape(-1)

    class Elements(nn.Module):  # the model's cut (model/anchors.py: AnchorAttention.cut)
        def forward(self, image, start):
            n, c = image.shape[0], image.shape[1]
            index = (start[:, None] + offsets[None]).unsqueeze(1).expand(n, c, -1)
            return torch.gather(image.flatten(2), 2, index).reshape(n, c, crop, crop)

    class Flat(nn.Module):
        def forward(self, image, start):
            n, c = image.shape[0], image.shape[1]
            base = (torch.arange(n)[:, None] * c + torch.arange(c)[None]) * (side * side)
            index = base[:, :, None] + (start[:, None] + offsets[None])[:, None, :]
            return image.reshape(-1)[index].reshape(n, c, crop, crop)

    return {"GatherElements (the model's)": Elements(), "Gather on the flattened batch": Flat()}


def time_torch(side: int, rounds: int) -> None:
    """PyTorch eager on this CPU, batch 1 and a training batch (64): the depthwise convolution (what the model
    exports) against ``Downsample2x`` (separable on a CPU), interleaved rounds."""
    down = Downsample2x()
    fns = {"depthwise convolution": lambda x: F.conv2d(x, down.weight, stride=2, padding=1, groups=3),
           "Downsample2x (separable on a CPU)": down}
    ms = {(n, b): [] for n in fns for b in (1, 64)}
    with torch.no_grad():
        for _ in range(rounds):
            for (n, b) in ms:
                x = torch.randn(b, 3, side, side)
                fns[n](x)
                ts = []
                for _ in range(10 if b == 64 else 50):
                    t = time.perf_counter()
                    fns[n](x)
                    ts.append(time.perf_counter() - t)
                ms[(n, b)].append(float(np.median(ts)) * 1e3)
    print(f"CPU: {cpu_name()} [{cpu_flags()}]; PyTorch {torch.__version__} eager, {torch.get_num_threads()} threads, "
          f"{side} px, p50 ms, {rounds} interleaved rounds")
    print(table(["variant", "batch 1", "batch 64"],
                [[n, f"{np.median(ms[(n, 1)]):.3f}", f"{np.median(ms[(n, 64)]):.2f}"] for n in fns]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=224, help="detail image side (the demo model's: 224)")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--torch", action="store_true", help="time PyTorch eager on the CPU instead")
    args = ap.parse_args()
    torch.manual_seed(0)
    side = args.size
    if args.torch:
        return time_torch(side, args.rounds)
    models = variants(torch.randn(8, 3, 7, 7) * 0.1)
    x = torch.randn(2, 3, side, side)
    ref = models["depthwise (the model's)"](x)
    for name, m in models.items():
        err = (m(x) - ref).abs()
        if "border" not in name:
            assert float(err.max()) < 1e-4, name
    times = time_all(models, side, args.rounds, lambda b: (torch.randn(b, 3, side, side),))
    starts = torch.tensor([0, 8, 16 * side + 24, 176 * side + 176, 40 * side, 100, 3000 // 8 * 8, 100 * side + 96])
    gathers = gather_variants(side, 48)
    img = torch.randn(8, 3, side, side)
    assert torch.equal(gathers["Gather on the flattened batch"](img, starts), gathers["GatherElements (the model's)"](img, starts))
    times.update(time_all(gathers, side, args.rounds, lambda b: (torch.randn(b, 3, side, side), starts[:b])))
    print(f"CPU: {cpu_name()} [{cpu_flags()}]; OpenVINO fp32, p50 ms, {args.rounds} interleaved rounds")
    names = list(dict.fromkeys(k[0] for k in times))
    print(table(["variant", "batch 1", "batch 8"], [[n, f"{times[(n, 1)]:.3f}", f"{times[(n, 8)]:.3f}"] for n in names]))


if __name__ == "__main__":
    main()
