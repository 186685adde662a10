#!/usr/bin/env python3
"""How much placement must be found on synth v4 and v5: the best static anchors against per-face ones.

    python benchmarks/synth_placement.py [--n 400] [--steps 5] [--crop 48] [--stride 16]

For each version: the T static anchors (crop x crop squares every stride pixels of the 224 px face) that
hit most age regions on n training faces (greedy, IoU >= 0.5), and their hit rate on n test faces; the
same for the best T anchors chosen per test face (the oracle a selector can at most reach); and how much
of the age cue's energy survives the 2x downsample (``synth.cue_survival``). Deterministic: no timing.
"""
from __future__ import annotations

import argparse

import numpy as np

from alage_edge.data.synth import SynthFaces, cue_survival
from alage_edge.metrics import iou
from alage_edge.table import table


def anchors(size: int, crop: int, stride: int) -> np.ndarray:
    xs = np.arange(0, size - crop + 1, stride)
    return np.array([[x, y, x + crop, y + crop] for y in xs for x in xs], np.float64) / size


def region_hits(boxes: np.ndarray, regions: np.ndarray) -> np.ndarray:
    """(faces, anchors, regions) booleans: anchor on region at IoU >= 0.5."""
    return iou(boxes[None, :, None, :], regions[:, None, :, :]) >= 0.5


def static_best(hits: np.ndarray, steps: int) -> list:
    """Greedy: the anchor that adds most (face, region) hits, T times."""
    covered, chosen = np.zeros(hits.shape[::2], bool), []
    for _ in range(steps):
        gain = (hits & ~covered[:, None, :]).sum(axis=(0, 2))
        a = int(np.argmax(gain))
        chosen.append(a)
        covered |= hits[:, a, :]
    return chosen


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--crop", type=int, default=48)
    p.add_argument("--stride", type=int, default=16)
    a = p.parse_args()
    grid = anchors(224, a.crop, a.stride)
    rows = []
    for version in (4, 5):
        train = SynthFaces(a.n, seed=0, size=224, split="train", version=version).preload(workers=2).boxes()
        test = SynthFaces(a.n, seed=0, size=224, split="test", version=version).preload(workers=2).boxes()
        chosen = static_best(region_hits(grid, train), a.steps)
        hits = region_hits(grid, test)
        static = hits[:, chosen, :].any(axis=1).mean()
        hittable = hits.any(axis=1).sum(axis=1)  # regions some anchor hits, per face
        oracle = np.mean(np.minimum(hittable, a.steps) / hits.shape[2])
        spread = np.linalg.norm(((test[:, :, :2] + test[:, :, 2:]) / 2).std(axis=0), axis=1).mean() * 224
        surv = cue_survival(20, 224, version=version)["energy_ratio"]
        rows.append((f"v{version}", f"{spread:.1f}", f"{static:.0%}", f"{oracle:.0%}", f"{surv:.0%}"))
    print(f"{a.n} test faces, {len(grid)} anchors of {a.crop} px every {a.stride} px, T = {a.steps}")
    print(table(["synth", "region centre spread (px, std)", f"regions hit by the best {a.steps} static anchors",
                 f"regions a per-face choice of {a.steps} can hit", "cue energy after the 2x downsample"], rows))


if __name__ == "__main__":
    main()
