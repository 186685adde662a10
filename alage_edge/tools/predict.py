"""``alage-edge predict``: ages in pictures, as a table, JSON or pictures with the boxes drawn on."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge predict",
        description="Estimate the age of each face in pictures with a bundle. Without --detect-faces every "
                    "picture is taken as an aligned face crop; with it, OpenCV finds the faces first.",
        epilog="examples:\n  alage-edge predict bundle/ face.jpg\n"
               "  alage-edge predict bundle/ crowd.jpg --detect-faces --draw out/\n"
               "  alage-edge predict bundle/ *.png --backend openvino --precision int8 --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("images", nargs="+", help="image files (JPEG, PNG, ...)")
    p.add_argument("--backend", default="auto", choices=["auto", "tensorrt", "openvino", "onnxruntime", "torch"])
    p.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16", "int8"])
    p.add_argument("--device", default=None, help="cuda / cpu (torch), CPU / GPU (openvino)")
    p.add_argument("--detect-faces", action="store_true", help="find faces (OpenCV Haar cascade) first")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--draw", default=None, metavar="OUT_DIR", help="write each picture with boxes and ages drawn")
    args = p.parse_args(argv)
    from ..draw import annotate, save_png
    from ..estimator import AgeEstimator
    from ..images import load_image
    from ..table import table

    est = AgeEstimator.load(args.bundle, backend=args.backend, precision=args.precision, device=args.device,
                            batch_size=args.batch_size)
    results = est.predict(args.images, detect_faces=args.detect_faces)
    if args.json:
        print(json.dumps({"backend": est.describe(), "results": [r.to_dict() for r in results]}, indent=2))
    else:
        rows = [(r.source, f"{r.age:.1f} ± {r.std:.1f}", r.group,
                 " ".join(f"{v:.0f}" for v in r.face_box),
                 "; ".join(" ".join(f"{v:.0f}" for v in b) for b in r.attention_boxes)
                 if r.attention_boxes is not None else "-") for r in results]
        print(table(["image", "age (years)", "group", "face box", "attention boxes (x1 y1 x2 y2)"], rows))
        print(f"{len(results)} face(s) in {len(args.images)} picture(s) with {est.describe()}")
    if args.draw:
        out = Path(args.draw)
        for src in args.images:
            mine = [r for r in results if r.source == src]
            rgb = load_image(src)
            scale = max(1, 256 // max(min(rgb.shape[:2]), 1))
            path = out / (Path(src).stem + ".png")
            save_png(path, annotate(rgb, mine, scale=scale))
        print(f"drawn to {out}/")
    missing = sorted(set(args.images) - {r.source for r in results})
    if missing and args.detect_faces:
        print(f"no face found in: {', '.join(missing)}")
    return 0
