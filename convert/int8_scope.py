"""Which parts of the exported graphs may go to INT8 (one rule, used by every quantiser).

Quantise the global stream and (OpenVINO's default) the local CNN's convolutions; keep float the
convolutions that read pixels (``float_convs``) and the attention glue: the
selector (navigator convolutions, LSTM gate MatMuls, anchor scores and tables),
the box squash, the grid MatMul, the sampler and the heads.
TensorRT has no INT8 for most of those, a quantised score can change which
glimpse is read, and quantising them moved ages the most in a trial here. In
the exported attention graph the local CNN's nodes are named
``/stream/local/...`` and the selector's ``/stream/navigator/...`` and
``/stream/summary`` (the module paths).
"""
from __future__ import annotations

from typing import Optional

LOCAL_CNN_PREFIX = "/stream/local/"
# ONNX op types that are quantised (everything else stays float).
QUANTIZED_OPS = ("Conv",)
# What --int8-scope may name, and each quantiser's default. Everything outside the global stream and the local
# CNN's convolutions stays float in every INT8 path, and so do float_convs (below).
# - OpenVINO (NNCF): "global+local", one fused IR. On the demo model NNCF INT8 of both moved the worst of 41 real
#   photos 0.60 y and the synth MAE -0.10 y (bounds 1.5 y / 0.3 y; benchmarks/int8_paths.py, docs: benchmarks);
#   on six trained LSTM models the photos' worst drift was 1.05 y (median; 1.60 y on one, which parity fails).
# - Q/DQ, and TensorRT, which builds from it: "global". The same six models with the local CNN in Q/DQ INT8 moved a
#   real photo past 1.5 y on all six in the TensorRT variant (s8s8, run by ONNX Runtime; median 2.24 y) and on two to
#   four in the CPU one; with the global stream alone all eleven models tried passed (worst photo 0.85 y;
#   experiments/qdq_scope_trial.py, docs: experiments). Percentile calibration did not change that.
INT8_SCOPES = ("global", "global+local")
DEFAULT_INT8_SCOPE = {"openvino": "global+local", "qdq": "global", "tensorrt": "global"}


# OpenVINO op types NNCF must leave alone in the attention graph (glue and residual adds).
OV_GLUE_TYPES = ["MatMul", "Add", "Multiply", "Subtract", "Divide", "GridSample", "Concat", "Sigmoid", "Tanh",
                 "Softmax", "Log", "Exp", "ReduceMean", "Maximum",  # Maximum: the selector's overlap mask
                 "ReduceMax", "ReduceMin", "GreaterEqual", "Select",  # its choice: NNCF quantised the scores
                 "Gather"]  # ReduceMax reads (every glimpse moved) and the anchor tables (boxes off by 1/256)


def check_int8_scope(scope: Optional[str], fmt: str) -> str:
    """The scope asked for, or ``fmt``'s default when none was."""
    if scope is None:
        return DEFAULT_INT8_SCOPE[fmt]
    if scope not in INT8_SCOPES:
        raise ValueError(f"--int8-scope must be one of {', '.join(INT8_SCOPES)}, got {scope!r}")
    return scope


def is_local_cnn(name: str) -> bool:
    """A node of the local CNN: ``/stream/local/...`` in the attention graph, ``/attention_stream/local/...``
    in the whole model as one graph (not ``local_head``)."""
    return LOCAL_CNN_PREFIX.lstrip("/") in name


SELECTOR_MODULES = ("navigator", "summary")  # model/anchors.py: AnchorAttention's choosing convolutions
SELECTOR_PATTERNS = [f".*{m}.*" for m in SELECTOR_MODULES]  # NNCF ignored-scope patterns


def is_selector(name: str) -> bool:
    return any(f"/{m}" in name or f".{m}" in name or name.startswith(m) for m in SELECTOR_MODULES)


def float_convs(model) -> list:
    """The convolutions every INT8 path keeps float: those that read pixels (``stem_convs``) and the
    selector's, whose scores choose what is read."""
    return stem_convs(model) + [n.name for n in model.graph.node if n.op_type == "Conv" and is_selector(n.name)]


DOWNSAMPLE = "downsample"  # the global stream's fixed 2x downsample (model/alnet.py: Downsample2x)
PIXEL_MOVES = ("Slice", "Flatten", "Reshape", "GatherElements")  # ops that move pixels without arithmetic


def stem_convs(model) -> list:
    """Names of the convolutions that read pixels: the fixed 2x downsample, the global stem (reads the
    image or its downsample) and the local CNN's stem (reads a sampled or sliced crop). Kept float in the Q/DQ
    model: quantising their input moved ages 1.10 y on average against 0.52 y without them (ONNX
    Runtime, U8S8, a model trained on synth); the downsample must stay an exact fixed filter."""
    pixels = {i.name for i in model.graph.input}
    pixels |= {o for n in model.graph.node if n.op_type == "GridSample" for o in n.output}
    out = []
    for n in model.graph.node:  # topological order: the downsample's output is pixels for the stem after it
        if n.op_type == "Concat" and all(i in pixels for i in n.input):  # fixed boxes: the T crops in one batch
            pixels |= set(n.output)
        if n.op_type in PIXEL_MOVES and n.input[0] in pixels:  # exact crops: slices or gathers of the image
            pixels |= set(n.output)
        if n.op_type == "Conv" and n.input[0] in pixels:
            out.append(n.name)
            if DOWNSAMPLE in n.name:
                pixels |= set(n.output)
    return out
