"""CLI of the conversion stage: ``export``, ``convert``, ``check``."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import List, Optional


def export_main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge export",
        description="Export a model to an ONNX bundle: global.onnx (image -> g, global logits), "
                    "attention.onnx (image, g -> boxes, local and fused logits), alnet.onnx (both) "
                    "and manifest.json (config, preprocessing, I/O, sha256 of every file).",
        epilog="examples:\n  alage-edge export --checkpoint runs/train/best.pt --out bundle/\n"
               "  alage-edge export --arch al_resnet18 --head dex --out bundle-random/   (random weights)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", type=Path, help="an alage-edge checkpoint (from `alage-edge train`)")
    src.add_argument("--arch", help="a registered model name, built with random weights (see --list)")
    src.add_argument("--list", action="store_true", help="list the registered models and exit")
    p.add_argument("--head", choices=["dex", "groups"], default="dex", help="with --arch: the head (default dex)")
    p.add_argument("--img-size", type=int, default=None, help="with --arch: input size S (default 224)")
    p.add_argument("--config", default=None,
                   help='with --arch: more model options as JSON, e.g. \'{"width": 32, "steps": 3}\'')
    p.add_argument("--out", type=Path, required=False, help="bundle folder to write")
    p.add_argument("--opset", type=int, default=17, choices=[17, 18], help="ONNX opset (default 17)")
    args = p.parse_args(argv)
    from alage_edge.model import build_model, list_models, load_checkpoint

    from .export import export_bundle

    if args.list:
        print("\n".join(list_models()))
        return 0
    if args.out is None:
        p.error("--out is required")
    if args.checkpoint:
        model = load_checkpoint(args.checkpoint)
    else:
        cfg = json.loads(args.config) if args.config else {}
        if args.img_size:
            cfg["img_size"] = args.img_size
        model = build_model(args.arch, head=args.head, **cfg)
    man = export_bundle(model, args.out, opset=args.opset, checkpoint=args.checkpoint)
    rows = [(rel, f"{e['bytes'] / 1e6:.2f} MB") for rel, e in man.data["files"].items()]
    print(f"exported {model.cfg.arch} ({model.cfg.head}, {model.cfg.img_size}px) to {args.out} "
          f"in {man.data['export_total_seconds']:.1f} s")
    for rel, size in rows:
        print(f"  {rel:<16} {size}")
    return 0
