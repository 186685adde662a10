"""The Q/DQ ONNX: explicit INT8 that TensorRT 10/11 (strongly typed), ONNX Runtime and OpenVINO all run.

ONNX Runtime's ``quantize_static`` in QDQ format, per-channel symmetric INT8
weights, only ``Conv`` nodes: the global stream's by default (``int8_scope="global+local"`` adds the local
CNN's, which moved real photos past parity's bound on most trained models: ``int8_scope``); the attention
stream stays float. Two variants, because their needs conflict:
  - ``s8s8`` (qdq/, for TensorRT): INT8 activations with zero point 0, the only Q/DQ
    TensorRT parses ("x_zero_point must be zero");
  - ``u8s8`` (qdq-u8/, for CPUs): unsigned 8-bit asymmetric activations (U8S8), which ONNX
    Runtime runs fast on x86 (S8S8 ran slower than fp32 there).
NVIDIA ModelOpt is used for the s8s8 variant when installed.
"""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

from alage_edge.atomic import write_with
from alage_edge.formats import QDQ_S8, QDQ_U8
from alage_edge.manifest import Artifact, Manifest
from alage_edge.system import package_versions

from .bundle import updating
from .calibration import CalibrationSet
from .int8_scope import QUANTIZED_OPS, check_int8_scope, float_convs

METHODS = ("minmax", "percentile", "modelopt")
# ONNX Runtime's quantize_static builds its entropy calibrator with 128 histogram bins for 128 quantised bins and
# passes no option that changes them: one candidate threshold, the full range, so the scales of minmax
# (identical on the demo model here). Refused rather than run as minmax under another name.
NOT_METHODS = {"entropy": "ONNX Runtime's entropy calibration here computes the min/max scales (its quantize_static "
                          "fixes 128 bins for 128 quantised bins)"}


FOLDERS = {QDQ_S8: "qdq", QDQ_U8: "qdq-u8"}
VARIANTS = {"tensorrt": (QDQ_S8,), "cpu": (QDQ_U8,), "both": (QDQ_S8, QDQ_U8)}  # what --qdq-variant builds


def _ort_quantize(src: Path, dst: Path, calib: CalibrationSet, stream: str, method: str, variant: str) -> None:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    cm = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile}[method]
    import onnx

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(src), str(pre), skip_optimization=False, skip_symbolic_shape=True)
        # the histogram calibrators stack every batch's activations into one array: equal batches only
        batch = 8 if method == "minmax" else 1
        quantize_static(str(pre), str(dst), calib.ort_reader(stream, batch_size=batch), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=list(QUANTIZED_OPS), per_channel=True,
                        nodes_to_exclude=float_convs(onnx.load(str(pre))),
                        activation_type=QuantType.QUInt8 if variant == QDQ_U8 else QuantType.QInt8,
                        weight_type=QuantType.QInt8, calibrate_method=cm,
                        extra_options={"ActivationSymmetric": variant != QDQ_U8, "WeightSymmetric": True,
                                       "CalibMovingAverage": False})


def _modelopt_quantize(src: Path, dst: Path, calib: CalibrationSet, stream: str) -> None:
    import numpy as np
    from modelopt.onnx.quantization import quantize  # NVIDIA ModelOpt, optional

    feeds = calib.feeds(stream, batch_size=len(calib))[0]
    quantize(onnx_path=str(src), quantize_mode="int8", calibration_data={k: np.asarray(v) for k, v in feeds.items()},
             op_types_to_quantize=list(QUANTIZED_OPS), output_path=str(dst))


def build(bundle, precision: str = "int8", data: Optional[str] = None, calib_size: int = 300, calib_min: int = 32,
          int8_scope: Optional[str] = None, variant: str = "both", method: Optional[str] = None,
          progress: bool = True, cache: Optional[str] = None) -> List[Artifact]:
    """Write qdq/ (s8s8, for TensorRT) and/or qdq-u8/ (u8s8, for CPUs) {global,attention}.onnx and record
    them (an fp32 copy where a stream stays float)."""
    int8_scope = check_int8_scope(int8_scope, "qdq")
    if variant not in VARIANTS:
        raise ValueError(f"--qdq-variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
    if precision != "int8":
        raise ValueError("the Q/DQ model is INT8 by definition (--precision int8)")
    if not data:
        raise ValueError("the Q/DQ model needs calibration data: --data synth (or a data set, folder or .npy)")
    if method is None:
        import importlib.util

        method = "modelopt" if importlib.util.find_spec("modelopt") else "minmax"
    if method in NOT_METHODS:
        raise ValueError(f"calibration method {method!r} is not offered: {NOT_METHODS[method]}; use one of {METHODS}")
    if method not in METHODS:
        raise ValueError(f"calibration method must be one of {METHODS}, got {method!r}")
    man = Manifest.load(bundle)
    streams = [s for s in ("global", "attention") if s in man.io]
    man.verify([man.io[s]["file"] for s in streams])
    calib = CalibrationSet.from_spec(data, man, size=calib_size, minimum=calib_min, progress=progress,
                                     cache_dir=cache)
    return [_build_variant(bundle, man, streams, calib, v, method, int8_scope) for v in VARIANTS[variant]]


def _build_variant(bundle, man: Manifest, streams, calib: CalibrationSet, variant: str, method: str,
                   int8_scope: str) -> Artifact:
    folder = FOLDERS[variant]
    method = "minmax" if (method == "modelopt" and variant == QDQ_U8) else method
    t0 = time.perf_counter()
    files: Dict[str, str] = {}
    quantized = []
    for s in streams:
        src, rel = man.path(man.io[s]["file"]), f"{folder}/{s}.onnx"
        if s == "attention" and int8_scope == "global":
            write_with(man.path(rel), lambda tmp: shutil.copyfile(src, tmp))
        else:
            quant = _modelopt_quantize if method == "modelopt" else (
                lambda a, b, c, st: _ort_quantize(a, b, c, st, method, variant))
            write_with(man.path(rel), lambda tmp: quant(src, tmp, calib, s))
            quantized.append(s if s == "global" else "attention (local CNN convolutions)")
        files[s] = rel
    versions = package_versions()
    act = "uint8 asymmetric" if variant == QDQ_U8 else "int8 symmetric (zero point 0)"
    info = {"tools": {k: versions.get(k) for k in ("onnxruntime", "onnx")},
            "calibration": {**calib.describe(), "method": method, "scope": int8_scope, "activations": act,
                            "weights": "int8 symmetric per channel", "op_types": list(QUANTIZED_OPS),
                            "float": "the stem convolutions that read pixels, the selector and the attention glue"},
            "variant": variant, "quantized_streams": quantized, "seconds": round(time.perf_counter() - t0, 2)}
    art = Artifact("qdq", "int8", files, info)
    with updating(bundle) as m:
        m.add_artifact(art)
    return art
