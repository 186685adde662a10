"""CLI of the conversion stage: ``export``, ``convert``, ``check``."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import List, Optional

from alage_edge.argtypes import json_object, non_negative_float, non_negative_int, positive_float, positive_int
from alage_edge.serving.repository import PLATFORMS

from .int8_scope import INT8_SCOPES
from .trtcheck import TARGETS


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
    p.add_argument("--global-size", type=positive_int, default=None, help="with --arch: the global size S (default 224); the model reads the face at S x detail_scale")
    p.add_argument("--config", type=json_object, default=None,
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
        cfg = dict(args.config or {})
        if args.global_size:
            cfg["global_size"] = args.global_size
        model = build_model(args.arch, head=args.head, **cfg)
    man = export_bundle(model, args.out, opset=args.opset, checkpoint=args.checkpoint)
    rows = [(rel, f"{e['bytes'] / 1e6:.2f} MB") for rel, e in man.data["files"].items()]
    print(f"exported {model.cfg.arch} ({model.cfg.head}, {model.cfg.input_size}px input) to {args.out} "
          f"in {man.data['export_total_seconds']:.1f} s")
    for rel, size in rows:
        print(f"  {rel:<16} {size}")
    return 0


def _batch(text: str):
    from alage_edge.argtypes import positive_ints

    parts = positive_ints(text)
    if len(parts) != 3 or not parts[0] <= parts[1] <= parts[2]:
        raise argparse.ArgumentTypeError(f"expected MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, got {text!r}")
    return parts


# convert options that belong to some formats only (argparse dest -> flag); FORMATS says which format takes which
FORMAT_FLAGS = {"data": "--data", "calib_size": "--calib-size", "calib_min": "--calib-min", "max_drop": "--max-drop",
                "int8_scope": "--int8-scope", "variant": "--qdq-variant", "dla_core": "--dla-core",
                "workspace": "--workspace", "batch": "--batch", "int8_path": "--int8-path", "cache": "--cache"}


TRITON_FLAGS = {"platform": "--platform", "out": "--out", "max_batch": "--max-batch",
                "max_delay_us": "--max-delay-us", "instances": "--instances"}


def _triton(p: argparse.ArgumentParser, args, given: dict) -> int:
    from alage_edge.serving.repository import RepoOptions, check_repository, write_repository

    wrong = [FORMAT_FLAGS[k] for k in FORMAT_FLAGS if getattr(args, k) is not None]
    if wrong:
        p.error(f"{', '.join(wrong)} do not apply to --to triton")
    platform = given.pop("platform", "python")
    out = Path(given.pop("out", None) or f"{str(args.bundle).rstrip('/')}-triton-{platform}")
    try:
        opts = RepoOptions(platform=platform, precision=args.precision, **given)
        repo = write_repository(args.bundle, out, opts)
    except (ValueError, FileExistsError) as e:
        p.error(str(e))
    checked = check_repository(repo)
    print(f"Triton model repository ({platform}) written to {repo}: {', '.join(checked)}")
    print(f"  see {repo / 'README.md'}; run it with: tritonserver --model-repository {repo.resolve()}")
    return 0


def converted_precisions() -> List[str]:
    """The precisions some format's builder writes (the one table: ``formats.FORMATS``)."""
    from alage_edge.formats import FORMATS, PRECISIONS

    return [p for p in PRECISIONS if any(p in f.precisions for f in FORMATS.values() if f.builder)]


def convert_main(argv: Optional[List[str]] = None) -> int:
    from alage_edge.formats import FORMATS

    p = argparse.ArgumentParser(
        prog="alage-edge convert",
        description="Build deployable artifacts into a bundle (written by `alage-edge export`) and record each "
                    "in manifest.json with its precision, sha256, tool versions and calibration.\n\n"
                    + "\n".join(f"  {f.name:<9} {', '.join(f.precisions):<16} {f.doc}\n"
                                f"  {'':<9} {'':<16} options: {' '.join(FORMAT_FLAGS[k] for k in f.flags)}"
                                for f in FORMATS.values() if f.builder),
        epilog="examples:\n"
               "  alage-edge convert bundle/ --to openvino --precision fp32\n"
               "  alage-edge convert bundle/ --to openvino --precision int8 --data synth --calib-size 300\n"
               "  alage-edge convert bundle/ --to openvino --precision int8 --data synth --max-drop 0.3\n"
               "  alage-edge convert bundle/ --to qdq --data synth          (on any machine)\n"
               "  alage-edge convert bundle/ --to tensorrt --precision fp16 --dla-core 0   (on the Jetson)\n"
               "  alage-edge convert bundle/ --to tensorrt --precision int8 --data calib_faces/\n"
               "  alage-edge convert bundle/ --to triton --platform onnxruntime --out triton-repo/   (your own Triton)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", help="bundle folder with manifest.json")
    p.add_argument("--to", required=True, choices=[f.name for f in FORMATS.values() if f.builder] + ["triton"],
                   help="an artifact format, or triton: a Triton model repository written beside the bundle")
    p.add_argument("--precision", choices=converted_precisions(), default=None,
                   help="default: fp32 (int8 for qdq)")
    p.add_argument("--no-progress", action="store_true")
    # format options: default None, so that one given to a format it does not apply to is an error
    p.add_argument("--data", help="calibration data: synth, a data set spec, an image folder or .npy")
    p.add_argument("--calib-size", type=positive_int, help="calibration images (default 300; warns below 300)")
    p.add_argument("--calib-min", type=positive_int, help="refuse a calibration set smaller than this (default 32)")
    p.add_argument("--max-drop", type=non_negative_float,
                   help="openvino int8: accuracy-controlled quantisation, largest allowed MAE increase (years)")
    p.add_argument("--int8-scope", choices=INT8_SCOPES,
                   help="what goes to INT8: the global stream and the local CNN's convolutions (openvino's "
                        "default; the selector, LSTM and glue stay float), or the global stream only (qdq's and "
                        "tensorrt's default: Q/DQ INT8 of the local CNN failed parity on real photos)")
    p.add_argument("--qdq-variant", dest="variant", choices=["both", "tensorrt", "cpu"],
                   help="qdq: s8s8 for TensorRT, u8s8 for CPUs, or both (default)")
    p.add_argument("--dla-core", type=non_negative_int, help="tensorrt: run the global stream on this DLA core")
    p.add_argument("--workspace", type=positive_float, help="tensorrt: builder workspace in GiB (default 2)")
    p.add_argument("--batch", type=_batch, help="tensorrt: optimisation profile MIN,OPT,MAX (default 1,8,32)")
    p.add_argument("--int8-path", choices=["calibrator", "qdq"],
                   help="tensorrt int8: implicit calibrator (TensorRT <= 10) or explicit Q/DQ (default by version)")
    p.add_argument("--cache", help="folder for cached synth splits")
    t = p.add_argument_group("--to triton")
    t.add_argument("--platform", choices=PLATFORMS,
                   help="what runs each stream: Triton's Python backend with alage-edge (default), or Triton's "
                        "onnxruntime / openvino / tensorrt backend on the bundle's files")
    t.add_argument("--out", help="the new repository folder (default: BUNDLE-triton-PLATFORM beside the bundle)")
    t.add_argument("--max-batch", type=positive_int, help="largest merged batch (default 16)")
    t.add_argument("--max-delay-us", type=non_negative_int, help="dynamic batcher delay in microseconds (default 2000)")
    t.add_argument("--instances", type=positive_int, help="instances per model (default 1)")
    args = p.parse_args(argv)
    triton = {k: getattr(args, k) for k in TRITON_FLAGS if getattr(args, k) is not None}
    if args.to == "triton":
        return _triton(p, args, triton)
    if triton:
        p.error(f"{', '.join(TRITON_FLAGS[k] for k in triton)} apply to --to triton only")
    fmt = FORMATS[args.to]
    precision = args.precision or ("int8" if args.to == "qdq" else "fp32")
    if precision not in fmt.precisions:
        p.error(f"{args.to} builds {', '.join(fmt.precisions)}, not {precision}")
    given = {k: getattr(args, k) for k in FORMAT_FLAGS if getattr(args, k) is not None}
    for k in given:
        if k not in fmt.flags:
            takers = [f.name for f in FORMATS.values() if k in f.flags]
            p.error(f"{FORMAT_FLAGS[k]} does not apply to --to {args.to} (it applies to: {', '.join(takers)})")
    import importlib

    module, func = fmt.builder.split(":")
    build = getattr(importlib.import_module(module), func)
    for art in build(args.bundle, precision=precision, progress=not args.no_progress, **given):
        print(f"{art.key}: " + ", ".join(f"{k}={v}" for k, v in art.files.items())
              + f"  ({art.info.get('seconds', 0):.1f} s)")
        if "calibration" in art.info:
            c = art.info["calibration"]
            print(f"  calibrated on {c.get('images')} images of {c.get('source')} ({c.get('method')})")
            if c.get("scope"):
                print(f"  INT8: {', '.join(art.info.get('quantized_streams', [])) or c['scope']}"
                      + ("; the attention stream stays float (--int8-scope global+local also quantises its local CNN)"
                         if c["scope"] == "global" and "attention" in art.files else ""))
    return 0


def check_main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge check",
        description="Read a bundle's ONNX graphs (and its Q/DQ graphs) and report, node by node, what the "
                    "ONNX-TensorRT parser of a version would reject (error) or handle differently (warning): "
                    "unsupported ops such as AffineGrid, GridSample at opset 20+, LSTM attributes, Q/DQ with "
                    "non-zero zero points or in front of float-only layers, fixed batch axes. No TensorRT "
                    "needed; exits 1 on an error.",
        epilog="examples:\n  alage-edge check bundle/ --target tensorrt-10\n"
               "  alage-edge check bundle/ --target tensorrt-11 --graph other.onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle", nargs="?", help="bundle folder")
    p.add_argument("--target", choices=TARGETS, default="tensorrt-10")
    p.add_argument("--graph", action="append", default=None, help="check these ONNX files instead of a bundle")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not args.bundle and not args.graph:
        p.error("give a bundle or --graph FILE")
    from dataclasses import asdict

    from alage_edge.table import table

    from .trtcheck import check_bundle

    findings = check_bundle(args.bundle, args.target, graphs=args.graph)
    errors = [f for f in findings if f.severity == "error"]
    if args.json:
        print(json.dumps([asdict(f) for f in findings], indent=2))
    else:
        if findings:
            print(table(["graph", "node", "op", "severity", "message"],
                        [(f.graph, f.node, f.op, f.severity, f.message) for f in findings]))
        print(f"{args.target}: {len(errors)} error(s), {len(findings) - len(errors)} warning(s)"
              + ("" if errors else " - the graphs should parse"))
    return 1 if errors else 0
