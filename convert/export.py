"""ONNX export of the two streams (and both in one graph) into a bundle folder.

``global.onnx``:    image -> g, global_logits
``attention.onnx``: image, g -> boxes, local_logits, fused_logits
``alnet.onnx``:     image -> global_logits, boxes, local_logits, fused_logits
Global-only baselines write ``global.onnx`` and ``alnet.onnx`` only.

TorchScript exporter, opset 17 (18 allowed): it folds BatchNorm and keeps the
hand-built sampling grid as MatMul; a batch of 2 is traced and the batch axis
is checked to be symbolic afterwards.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn as nn

from alage_edge.atomic import write_with
from alage_edge.manifest import Artifact, Manifest
from alage_edge.model import ALNet, count_flops, save_checkpoint
from alage_edge.system import package_versions

from .bundle import BundleWriter

OPSETS = (17, 18)
FORBIDDEN_OPS = {"AffineGrid"}
CHECKPOINT = "model.pt"


class ExportError(RuntimeError):
    pass


class _Global(nn.Module):
    def __init__(self, model: ALNet):
        super().__init__()
        self.stream = model.global_stream

    def forward(self, image):
        return self.stream(image)


class _Attention(nn.Module):
    def __init__(self, model: ALNet):
        super().__init__()
        self.stream = model.attention_stream

    def forward(self, image, g):
        return self.stream(image, g)


class _Fused(nn.Module):
    def __init__(self, model: ALNet):
        super().__init__()
        self.model = model

    def forward(self, image):
        g, global_logits = self.model.global_stream(image)
        if self.model.attention_stream is None:
            return global_logits
        boxes, local_logits, fused = self.model.attention_stream(image, g)
        return global_logits, boxes, local_logits, fused


def stream_io(model: ALNet) -> Dict[str, dict]:
    """Input/output names and shapes (-1: the batch axis) of each exported graph."""
    cfg, s = model.cfg, model.cfg.input_size
    k, c = cfg.num_classes, model.global_stream.num_features
    image = {"image": [-1, 3, s, s]}
    io = {"global": {"file": "global.onnx", "inputs": image, "outputs": {"g": [-1, c], "global_logits": [-1, k]}}}
    if model.attention_stream is not None:
        t = cfg.steps
        io["attention"] = {"file": "attention.onnx", "inputs": {**image, "g": [-1, c]},
                           "outputs": {"boxes": [-1, t, 4], "local_logits": [-1, k], "fused_logits": [-1, k]}}
        io["fused"] = {"file": "alnet.onnx", "inputs": image,
                       "outputs": {"global_logits": [-1, k], "boxes": [-1, t, 4], "local_logits": [-1, k],
                                   "fused_logits": [-1, k]}}
    else:
        io["fused"] = {"file": "alnet.onnx", "inputs": image, "outputs": {"global_logits": [-1, k]}}
    return io


def export_onnx(module: nn.Module, args: Tuple[torch.Tensor, ...], path: Path, inputs: List[str],
                outputs: List[str], opset: int = 17) -> Path:
    """Export one graph atomically and check it (checker, opset, no AffineGrid, symbolic batch)."""

    if opset not in OPSETS:
        raise ExportError(f"opset must be one of {OPSETS} (GridSample at opset 20+ samples nearest on some "
                          f"TensorRT versions; AffineGrid needs 20), got {opset}")
    if args[0].shape[0] < 2:
        raise ExportError("export with a batch of at least 2: a traced batch of 1 may fix the batch axis")
    dyn = {n: {0: "batch"} for n in inputs + outputs}
    module.eval()  # the exporter restores the wrapper's mode afterwards: a fresh wrapper would turn train on

    def write(tmp: Path) -> None:
        with torch.no_grad():
            torch.onnx.export(module, args, str(tmp), dynamo=False, opset_version=opset, input_names=inputs,
                              output_names=outputs, dynamic_axes=dyn, do_constant_folding=True)
        check_graph(tmp, inputs + outputs, opset)

    return write_with(path, write)


def check_graph(path: Path, names: List[str], opset: int) -> None:
    import onnx

    m = onnx.load(str(path))
    onnx.checker.check_model(m)
    got = {o.version for o in m.opset_import if o.domain in ("", "ai.onnx")}
    if got != {opset}:
        raise ExportError(f"{path.name}: exported opset {got}, asked for {opset}")
    bad = sorted({n.op_type for n in m.graph.node} & FORBIDDEN_OPS)
    if bad:
        raise ExportError(f"{path.name}: contains {bad}, which TensorRT cannot parse")
    for v in list(m.graph.input) + list(m.graph.output):
        if v.name not in names:
            continue
        dim0 = v.type.tensor_type.shape.dim[0]
        if dim0.HasField("dim_value") or not dim0.dim_param:
            raise ExportError(f"{path.name}: batch axis of {v.name!r} is fixed to {dim0.dim_value}, "
                              f"expected a symbolic axis")


def export_bundle(model: ALNet, out_dir, opset: int = 17, checkpoint: Optional[Path] = None,
                  batch: int = 2, progress: bool = False) -> Manifest:
    """Write global.onnx, attention.onnx, alnet.onnx, model.pt and manifest.json into ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval().cpu()
    s = model.cfg.input_size
    io = stream_io(model)
    gen = torch.Generator().manual_seed(0)
    image = torch.randn(max(batch, 2), 3, s, s, generator=gen)
    t0 = time.perf_counter()
    with torch.no_grad():
        g, _ = model.global_stream(image)
    jobs = [("global", _Global(model), (image,))]
    if model.attention_stream is not None:
        jobs.append(("attention", _Attention(model), (image, g)))
    jobs.append(("fused", _Fused(model), (image,)))
    timings = {}
    for stream, module, args in jobs:
        spec = io[stream]
        t = time.perf_counter()
        export_onnx(module, args, out / spec["file"], list(spec["inputs"]), list(spec["outputs"]), opset)
        timings[stream] = round(time.perf_counter() - t, 3)
    # the reference weights for the PyTorch backend: a slim checkpoint (no optimiser state)
    meta = dict(getattr(model, "checkpoint_meta", {}) or {})
    meta["source"] = str(checkpoint) if checkpoint is not None else "exported without a training checkpoint"
    save_checkpoint(out / CHECKPOINT, model, meta={k: v for k, v in meta.items() if k != "train"})
    versions = package_versions()
    data = str((meta.get("train") or {}).get("data") or "")
    training = {"data": data or "unknown (no training checkpoint)", "real_faces": None if not data
                else not data.startswith("synth")}
    manifest = BundleWriter.create(out, model.cfg.to_dict(), model.cfg.preprocess, io, opset=opset,
                                   training_data=training, gflops=round(count_flops(model) / 1e9, 5),
                               exporter=f"torch.onnx TorchScript (torch {torch.__version__})",
                               versions=versions, export_seconds=timings)
    manifest.record_file(CHECKPOINT, artifact="torch")
    files = {stream: spec["file"] for stream, spec in io.items()}
    manifest.add_artifact(Artifact("onnx", "fp32", files, {"tools": {"onnx": versions.get("onnx"),
                                                                     "torch": versions.get("torch")}}))
    manifest.add_artifact(Artifact("torch", "fp32", {"checkpoint": CHECKPOINT}, {}))
    manifest.data["export_total_seconds"] = round(time.perf_counter() - t0, 3)
    manifest.save()
    return manifest
