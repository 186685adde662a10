#!/usr/bin/env python3
"""The three face detectors on group pictures of real faces (scikit-image's astronaut and LFW crops pasted
at several scales and in-plane rotations beside blinds and a round badge; tests/fixtures.group_picture).

    python benchmarks/face_detectors.py [--pictures 6] [--bundle runs/demo/bundle --draw docs/faces-group.jpg]

Prints faces found / false boxes / ms per picture for hog, cnn and haar, and the worst eye offset and tilt
of the aligned crops (the landmark model run again on each crop). With --bundle, draws the ages of the
first picture's faces (default detector) as the README shows them.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from alage_edge.faces import DETECTORS, eye_centres, find_faces, finder  # noqa: E402
from alage_edge.preprocess import PreprocessSpec, warp_square  # noqa: E402
from alage_edge.system import cpu_flags, cpu_name  # noqa: E402
from alage_edge.table import table  # noqa: E402
from tests.fixtures import group_picture, score_detections  # noqa: E402


def alignment_errors(pictures, spec: PreprocessSpec):
    want = np.array(spec.eyes).reshape(2, 2) * spec.size
    px, deg = [], []
    for img, _ in pictures:
        for _, region in find_faces(img, spec):
            again = finder("hog").find(warp_square(img, region, spec.size))
            if again:
                left, right = eye_centres(again[0].landmarks)
                px.append(np.hypot(*(np.stack([left, right]) - want).T).max())
                deg.append(abs(np.degrees(np.arctan2(right[1] - left[1], right[0] - left[0]))))
    return len(px), max(px), max(deg)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pictures", type=int, default=6)
    p.add_argument("--bundle", default=None)
    p.add_argument("--draw", default="faces-group.jpg")
    args = p.parse_args()
    pictures = [group_picture(s) for s in range(args.pictures)]
    total = sum(len(t) for _, t in pictures)
    rows = []
    for det in DETECTORS:
        f = finder(det)
        f.find(pictures[0][0][:64, :64])  # load the models outside the timing
        found = false = 0
        t = time.perf_counter()
        for img, truths in pictures:
            a, b = score_detections([x.box for x in f.find(img)], truths)
            found, false = found + a, false + b
        ms = (time.perf_counter() - t) * 1000 / len(pictures)
        rows.append((det, f"{found} / {total}", false, f"{ms:.0f}"))
    h, w = pictures[0][0].shape[:2]
    print(f"{len(pictures)} pictures of {w}x{h}, {total} faces; {cpu_name()} [{cpu_flags()}]")
    print(table(["detector", "faces found", "false boxes", "ms / picture"], rows))
    n, px, deg = alignment_errors(pictures, PreprocessSpec(size=224))
    print(f"alignment (hog, landmarks run again on {n} aligned 224 px crops): worst eye offset {px:.2f} px, "
          f"worst tilt {deg:.2f} deg")
    if args.bundle:
        from PIL import Image

        from alage_edge.draw import annotate
        from alage_edge.estimator import AgeEstimator

        with AgeEstimator.load(args.bundle) as est:
            res = est.predict(pictures[0][0], detect_faces=True)
        Image.fromarray(annotate(pictures[0][0], res)).save(args.draw, quality=85)
        print(f"drawn: {args.draw}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
