"""``alage-edge check``: what the ONNX-TensorRT parser of a version would reject or handle
differently, node by node, without TensorRT (runs on any CPU).

Rules come from onnx-tensorrt's operator matrix (docs/operators.md for 10.x)
and from what was measured for this project (README, Limits).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, List, Optional

from alage_edge.formats import QDQ_S8
from alage_edge.manifest import Manifest

TARGETS = ("tensorrt", "tensorrt-10", "tensorrt-11")
# Operators the ONNX-TensorRT parser does not support (operators.md, TensorRT 10.x).
UNSUPPORTED = {
    "AffineGrid", "Bernoulli", "BitShift", "BitwiseAnd", "BitwiseNot", "BitwiseOr", "BitwiseXor", "Col2Im",
    "CenterCropPad", "Compress", "ConcatFromSequence", "ConvInteger", "DFT", "Det", "DynamicQuantizeLinear",
    "ImageDecoder", "MatMulInteger", "MaxRoiPool", "MaxUnpool", "MelWeightMatrix", "Multinomial",
    "NegativeLogLikelihoodLoss", "Optional", "OptionalGetElement", "OptionalHasElement", "QLinearConv",
    "QLinearMatMul", "RegexFullMatch", "SequenceAt", "SequenceConstruct", "SequenceEmpty", "SequenceErase",
    "SequenceInsert", "SequenceLength", "SequenceMap", "SoftmaxCrossEntropyLoss", "SplitToSequence", "StringConcat",
    "StringNormalizer", "StringSplit", "TfIdfVectorizer", "Unique",
}
# Layers TensorRT runs only in float: a DequantizeLinear feeding them buys nothing (a reformat at best).
FLOAT_ONLY = {"GridSample", "Sigmoid", "Tanh", "Softmax", "LogSoftmax", "LSTM", "GRU", "RNN", "Exp", "Log", "Div",
              "Sqrt", "Reciprocal", "Pow", "Erf"}
ONNX_DOUBLE = 11


@dataclass
class Finding:
    graph: str
    node: str
    op: str
    severity: str  # error | warning
    message: str


def _attrs(node) -> Dict[str, object]:
    import onnx

    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _opset(model) -> int:
    return max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=0)


def check_model(model, graph: str, target: str = "tensorrt-10") -> List[Finding]:
    """Findings for one ONNX model (an onnx.ModelProto)."""
    from onnx import numpy_helper

    major = 11 if target.endswith("11") else 10
    out: List[Finding] = []
    opset = _opset(model)
    if opset < 9:
        out.append(Finding(graph, "-", "-", "error", f"opset {opset}: TensorRT parses opset 9 and newer"))
    consts = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value":
                    consts[node.output[0]] = a.t
    consumers: Dict[str, List] = {}
    for node in model.graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)
    for node in model.graph.node:
        name, op, at = node.name or "(unnamed)", node.op_type, _attrs(node)
        if op in UNSUPPORTED:
            hint = " (build the grid by hand: base grid x theta, MatMul only)" if op == "AffineGrid" else ""
            out.append(Finding(graph, name, op, "error", f"{op} is not supported by the ONNX-TensorRT parser{hint}"))
        if op == "GridSample":
            if opset >= 20:
                out.append(Finding(graph, name, op, "error",
                                   f"GridSample at opset {opset}: its modes were renamed in opset 20 and some "
                                   f"TensorRT versions silently sample nearest (NVIDIA/TensorRT#4646); export at "
                                   f"opset 17 or 18"))
            mode = at.get("mode", b"bilinear")
            mode = mode.decode() if isinstance(mode, bytes) else mode
            if mode not in ("bilinear", "linear", "nearest", "bicubic", "cubic"):
                out.append(Finding(graph, name, op, "error", f"GridSample mode {mode!r} is unknown to TensorRT"))
        if op == "LSTM":
            if at.get("input_forget", 0) != 0:
                out.append(Finding(graph, name, op, "error", "LSTM input_forget must be 0 for TensorRT"))
            if at.get("layout", 0) != 0:
                out.append(Finding(graph, name, op, "error", "LSTM layout must be 0 for TensorRT"))
            if "clip" in at:
                out.append(Finding(graph, name, op, "warning", "LSTM clip: check TensorRT handles it as exported"))
            acts = at.get("activations")
            if at.get("direction", b"forward") in (b"bidirectional", "bidirectional") and acts and \
                    len(acts) == 6 and acts[:3] != acts[3:]:
                out.append(Finding(graph, name, op, "error",
                                   "bidirectional LSTM with different activations per direction"))
            if at.get("activation_alpha") or at.get("activation_beta"):
                out.append(Finding(graph, name, op, "warning", "LSTM activation_alpha/beta are ignored by TensorRT"))
        if op in ("QuantizeLinear", "DequantizeLinear") and len(node.input) > 2 and node.input[2] in consts:
            zp = numpy_helper.to_array(consts[node.input[2]])
            if (zp != 0).any():
                out.append(Finding(graph, name, op, "error",
                                   f"{op} with a non-zero zero point: TensorRT needs symmetric INT8 Q/DQ "
                                   f"(use the s8s8 variant of the Q/DQ model, qdq/)"))
            if zp.dtype.kind == "u":
                out.append(Finding(graph, name, op, "error",
                                   f"{op} to uint8: TensorRT quantises to int8 (uint8 is only an I/O type)"))
        if op == "DequantizeLinear":
            for c in consumers.get(node.output[0], []):
                if c.op_type in FLOAT_ONLY:
                    out.append(Finding(graph, name, op, "warning",
                                       f"Q/DQ in front of {c.op_type} ({c.name}): TensorRT runs {c.op_type} in "
                                       f"float only; keep the attention glue out of INT8"))
    for init in model.graph.initializer:
        if init.data_type == ONNX_DOUBLE:
            out.append(Finding(graph, init.name, "initializer", "warning",
                               "DOUBLE tensor: TensorRT casts it down to FLOAT"))
    for v in list(model.graph.input) + list(model.graph.output):
        if v.name in consts:
            continue
        dims = v.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            out.append(Finding(graph, v.name, "io", "error",
                               f"batch axis of {v.name!r} is fixed to {dims[0].dim_value}: the runtime batches "
                               f"dynamically (export with a batch >= 2 and a symbolic axis)"))
    if major >= 11 and graph.startswith("qdq") and not any(n.op_type == "QuantizeLinear" for n in model.graph.node):
        out.append(Finding(graph, "-", "-", "warning", "TensorRT 11 builds INT8 only from Q/DQ nodes; none here"))
    return out


def graphs_of(bundle) -> Dict[str, Path]:
    man = Manifest.load(bundle)
    found = {spec["file"]: man.path(spec["file"]) for spec in man.io.values()}
    for art in man.find("qdq", "int8", variant=QDQ_S8):  # the CPU (uint8) variant is not for TensorRT
        for rel in art.files.values():
            found[rel] = man.path(rel)
    return found


def check_bundle(bundle, target: str = "tensorrt-10", graphs: Optional[Iterable[Path]] = None) -> List[Finding]:
    import onnx

    if target not in TARGETS:
        raise ValueError(f"--target must be one of {TARGETS}, got {target!r}")
    target = "tensorrt-10" if target == "tensorrt" else target
    paths = {str(p): Path(p) for p in graphs} if graphs is not None else graphs_of(bundle)
    out: List[Finding] = []
    for rel, path in paths.items():
        out += check_model(onnx.load(str(path), load_external_data=False), rel, target)
    return out
