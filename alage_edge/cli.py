"""``alage-edge``: one command, a subcommand per stage.

A static table maps each subcommand to "module:function"; only the chosen one
is imported, so ``alage-edge --help`` and ``alage-edge predict`` work without
torch.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import List, Optional

COMMANDS = {
    "train": ("alage_edge.train.cli:train_main", "train a model on synth or a real data set (staged, resumable)"),
    "eval": ("alage_edge.train.cli:eval_main", "evaluate a checkpoint: MAE, CS(5), eps-error, accuracy, attention hits"),
    "export": ("alage_edge.convert.cli:export_main", "export a checkpoint (or a fresh model) to an ONNX bundle"),
    "convert": ("alage_edge.convert.cli:convert_main", "build OpenVINO IR, TensorRT engines or a Q/DQ ONNX in a bundle"),
    "check": ("alage_edge.convert.cli:check_main", "static check of a bundle's ONNX graphs against a TensorRT parser"),
    "predict": ("alage_edge.tools.predict:main", "estimate ages in pictures (table, JSON, drawn boxes)"),
    "parity": ("alage_edge.tools.parity:main", "compare every backend and precision with the PyTorch reference"),
    "bench": ("alage_edge.tools.bench:main", "latency/throughput benchmark table across backends"),
    "serve": ("alage_edge.tools.serve:main", "serve a bundle on Triton Inference Server (HTTP, gRPC, metrics)"),
    "demo": ("alage_edge.demo:main", "the whole pipeline on the procedural data set (runs/demo)"),
}

USAGE = """usage: alage-edge COMMAND [options]    (alage-edge COMMAND --help for each)

Fine-grained face age estimation with attention-LSTM networks, from PyTorch
training to TensorRT / OpenVINO / ONNX Runtime inference.

commands:
{rows}

Typical flow: train -> eval -> export -> convert -> check -> parity -> bench -> predict.
"""


def usage() -> str:
    return USAGE.format(rows="\n".join(f"  {k:<9} {v[1]}" for k, v in COMMANDS.items()))


def main(argv: Optional[List[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from . import __version__

        print(f"alage-edge {__version__}")
        return 0
    cmd = argv[0]
    if cmd not in COMMANDS:
        print(f"alage-edge: unknown command {cmd!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module, func = COMMANDS[cmd][0].split(":")
    try:
        fn = getattr(importlib.import_module(module), func)
    except ImportError as e:
        stage = module.split(".")[1]
        extra = stage if stage in ("train", "convert") else "all"
        print(f"alage-edge {cmd}: needs a library that is not installed ({e}); "
              f"pip install 'alage-edge[{extra}]'", file=sys.stderr)
        return 3
    try:
        return int(fn(argv[1:]) or 0)
    except KeyboardInterrupt:
        print(f"alage-edge {cmd}: interrupted (finished steps are kept; run it again to resume)", file=sys.stderr)
        return 130
    except (ValueError, RuntimeError, OSError, ImportError, KeyError) as e:
        if os.environ.get("ALAGE_DEBUG"):
            raise
        print(f"alage-edge {cmd}: error: {e}", file=sys.stderr)
        return 2
