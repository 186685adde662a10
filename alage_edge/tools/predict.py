"""``alage-edge predict``: ages in pictures, as a table, JSON or pictures with the boxes drawn on."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional, Tuple

from ..argtypes import positive_int
from ..backends import TABLE as BACKENDS
from ..faces import DETECTORS
from ..formats import PRECISIONS


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge predict",
        description="Estimate the age of each face in pictures with a bundle. Without --detect-faces every "
                    "picture is taken as an aligned face crop; with it, faces are found (dlib HOG by default) and "
                    "aligned by their eyes first.",
        epilog="exit codes: 0 all read, 2 error, 4 some inputs unreadable (their errors in --json / on stderr)\n\n"
               "examples:\n  alage-edge predict bundle/ face.jpg\n"
               "  alage-edge predict bundle/ crowd.jpg --detect-faces --draw out/\n"
               "  alage-edge predict bundle/ crowd.jpg --detect-faces --detector cnn --min-face 40 --json\n"
               "  alage-edge predict bundle/ *.png --backend openvino --precision int8 --json\n"
               "  alage-edge predict bundle/ crowd.jpg --detect-faces --url http://localhost:8000   (alage-edge serve)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    p.add_argument("--backend", default="auto", choices=["auto", *BACKENDS])
    p.add_argument("--precision", default=None, choices=[*PRECISIONS, "auto"],
                   help="auto: the fastest artifact that passed `alage-edge parity` on this machine")
    p.add_argument("--device", default=None, help="cuda / cpu (torch), CPU / GPU (openvino)")
    p.add_argument("--detect-faces", action="store_true", help="find and align the faces first")
    p.add_argument("--detector", default=None, choices=DETECTORS,
                   help="hog: dlib HOG + 5 landmarks (default); cnn: dlib CNN, finds more, seconds per photo on "
                        "a CPU; haar: OpenCV, no alignment (the fallback when dlib is absent)")
    p.add_argument("--min-face", type=positive_int, default=20, metavar="PX",
                   help="smallest face box side kept, in picture pixels (default 20)")
    p.add_argument("--batch-size", type=positive_int, default=8)
    p.add_argument("--url", default=None, help="send the pictures to a running `alage-edge serve` (http://host:8000 or "
                   "grpc://host:8001) instead of running the bundle here")
    p.add_argument("--json", action="store_true", help="print one JSON document (results and per-file errors)")
    p.add_argument("--draw", default=None, metavar="OUT_DIR", help="write each picture with boxes and ages drawn "
                   "(new files only: an input or an existing file is never overwritten)")
    args = p.parse_args(argv)
    if args.detector and not args.detect_faces:
        p.error(f"--detector {args.detector} needs --detect-faces (without it every picture is taken as an "
                f"aligned face and no detector runs)")
    args.detector = args.detector or "hog"
    if args.draw:
        _check_writable(p, Path(args.draw))
    from ..draw import annotate, save_png
    from ..estimator import AgeEstimator
    from ..images import load_image
    from ..table import table

    if args.url:
        from ..serving.client import ServerGone, TritonClient

        est = TritonClient(args.url)
        try:
            results = est.predict(args.images, detect_faces=args.detect_faces and args.detector, errors="skip")
        except ServerGone as e:
            print(f"alage-edge predict: {e}", file=sys.stderr)
            return 2
        finally:
            est.close()
    else:
        est = AgeEstimator.load(args.bundle, backend=args.backend, precision=args.precision, device=args.device,
                                batch_size=args.batch_size, min_face=args.min_face)
        results = est.predict(args.images, detect_faces=args.detect_faces and args.detector, errors="skip")
    for e in results.errors:
        print(f"alage-edge predict: {e.source}: {e.error}", file=sys.stderr)
    found = {r.source for r in results}
    no_face = [n.source for n in results.no_face]
    drawn, draw_error = [], None
    if args.draw:
        try:
            for src, path in draw_targets([i for i in args.images if i in found], args.images, Path(args.draw)):
                rgb = load_image(src)
                save_png(path, annotate(rgb, [r for r in results if r.source == src],
                                        scale=max(1, 256 // max(min(rgb.shape[:2]), 1))))
                drawn.append(str(path))
        except OSError as e:  # the results are printed all the same, then this error
            draw_error = f"--draw {args.draw}: cannot write the drawn pictures ({e})"
    if args.json:
        print(json.dumps({"backend": est.describe(), "results": [r.to_dict() for r in results],
                          "errors": [e.to_dict() for e in results.errors], "no_face": no_face, "drawn": drawn},
                         indent=2))
    else:
        rows = [(r.source, f"{r.age:.1f} ± {r.std:.1f}", r.group, " ".join(f"{v:.0f}" for v in r.face_box),
                 "; ".join(" ".join(f"{v:.0f}" for v in b) for b in r.attention_boxes)
                 if r.attention_boxes is not None else "-") for r in results]
        print(table(["image", "age (years)", "group", "face box", "attention boxes (x1 y1 x2 y2)"], rows))
        print(f"{len(results)} face(s) in {len(args.images)} picture(s) with {est.describe()}")
    if no_face:
        print(f"no face found in: {', '.join(no_face)}", file=sys.stderr)
    if drawn:
        print(f"drawn: {', '.join(drawn)}", file=sys.stderr)
    if draw_error:
        print(f"alage-edge predict: {draw_error}", file=sys.stderr)
        return 2
    return EXIT_SOME_FAILED if results.errors else 0


EXIT_SOME_FAILED = 4  # some inputs could not be read; the others' results were printed


def _check_writable(p: argparse.ArgumentParser, out: Path) -> None:
    """--draw's folder must be writable before any work is done (else the results would be lost)."""
    import os

    probe = out
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        p.error(f"--draw {out}: {probe} is a file, expected a folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        p.error(f"--draw {out}: {probe} is not writable")


def draw_targets(sources: List[str], inputs: List[str], out: Path) -> List[Tuple[str, Path]]:
    """A new file for each drawn picture: OUT/<stem>.ages.png, suffixed -2, -3 ... when that name is taken
    by an input, an existing file or another picture of this run (a/face.jpg and b/face.png)."""
    taken = {Path(i).resolve() for i in inputs}
    pairs = []
    for src in sources:
        stem, k = Path(src).stem, 1
        while True:
            path = out / (f"{stem}.ages.png" if k == 1 else f"{stem}.ages-{k}.png")
            if path.resolve() not in taken and not path.exists():
                break
            k += 1
        taken.add(path.resolve())
        pairs.append((src, path))
    return pairs
