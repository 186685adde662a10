"""OpenVINO IR per stream: fp32, fp16 (compressed weights) and INT8 with NNCF.

fp32 and fp16 also get the whole model as one IR (``fused``), which the OpenVINO backend runs by
default on a CPU: one compiled model instead of two and no hand-over of ``g`` (demo model, this
project's AVX2 machine, interleaved: batch 1 2.29-2.36 ms against 2.80-2.83 split, batch 8 14.3-14.7
against 15.7-16.4). INT8 writes the fused IR too, quantised by the same scope (docs: benchmarks); bf16 keeps
the split graphs, as its hint differs per stream.

INT8 quantises the global stream and, with ``int8_scope="global+local"`` (OpenVINO's default,
``int8_scope.DEFAULT_INT8_SCOPE``; Q/DQ and TensorRT default to the global stream alone), the local CNN's
convolutions. What every quantiser keeps float
stays float here too: the convolutions that read pixels (``int8_scope.float_convs``: quantising the
local CNN's stem moved a real photo 2.07 y, 0.57 y with it float), the selector and the attention glue
(LSTM gates, scores, tables, heads). ``max_drop`` switches to NNCF's
accuracy-controlled quantisation with the DEX MAE (or group accuracy) of the
whole model as the metric.
"""
from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from alage_edge.atomic import atomic_path
from alage_edge.manifest import Artifact, Manifest
from alage_edge.system import package_versions

from .bundle import updating
from .calibration import CalibrationSet
from .int8_scope import (
    DOWNSAMPLE,
    OV_GLUE_TYPES,
    SELECTOR_PATTERNS,
    check_int8_scope,
    float_convs,
    is_local_cnn,
    is_selector,
)

# rt_info key of OpenVINO's DisableFP16Compression ("precise", version 0): save_model writes it as
# DisablePrecisionConversion, and the CPU plugin then runs the node in f32 under a bf16 (or f16) hint
PRECISE = "precise_0"


def keep_attention_float(model, stream: str) -> None:
    """Mark the attention stream's nodes, all but the local CNN's, to run in f32 under any precision hint
    (the selector, the crops, the heads): under the INT8 + bf16 hint the selector had run in bf16 and a close
    choice of glimpse changed (docs: benchmarks). OpenVINO 2026.4 drops the mark where it turns a MatMul into
    a FullyConnected, so the LSTM's gate products still run in bf16."""
    for op in model.get_ops():
        name = op.get_friendly_name()
        if (stream == "attention" or "attention_stream" in name) and not is_local_cnn(name):
            op.get_rt_info()[PRECISE] = ""


def _save(model, path: Path, compress: bool) -> List[str]:
    """save_model writes .xml + .bin: both go through temp names and are renamed together."""
    import openvino as ov

    with atomic_path(path) as tmp_xml:
        ov.save_model(model, str(tmp_xml), compress_to_fp16=compress)
        tmp_bin = tmp_xml.with_suffix(".bin")
        bin_path = path.with_suffix(".bin")
        tmp_bin.replace(bin_path)  # the .bin first: an .xml never points at a missing .bin
    return [str(path), str(bin_path)]


def _advanced():
    """Activation ranges from the calibration min/max. NNCF's default (the mean of per-sample
    min/max) clips the rare large activations that carry the fine age cues: on a model trained on
    synth it moved ages by 2.15 years on average against 0.68 with min/max ranges."""
    import nncf
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet

    return nncf.AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MINMAX)


def _quantize_stream(model, stream: str, calib: CalibrationSet, scope: str,
                     floats: Optional[List[str]] = None):
    import nncf

    return nncf.quantize(model, calib.nncf_dataset("global" if stream == "fused" else stream),
                         subset_size=len(calib), ignored_scope=ignored_scope(model, stream, scope, floats),
                         advanced_parameters=_advanced())


def ignored_scope(model, stream: str, scope: str, floats: Optional[List[str]] = None):
    """What NNCF leaves float: the fixed 2x downsample and ``floats`` (ONNX names of the convolutions every
    INT8 path keeps float) always; in the attention stream the glue (LSTM gates, scores, tables, heads:
    OV_GLUE_TYPES), and with scope "global" all of it. In the whole model as one IR (``fused``) the attention
    stream's ops are those named under ``attention_stream``."""
    import nncf

    fixed = [f".*stream/{DOWNSAMPLE}/.*"]  # not the residual downsample convs (``layerN.0/downsample``)
    keep = [op.get_friendly_name() for op in model.get_ordered_ops() if op.get_type_name() == "Convolution"
            and any(op.get_friendly_name() == f or op.get_friendly_name().startswith(f + "/") for f in floats or [])]
    if stream == "global":
        return nncf.IgnoredScope(names=keep, patterns=fixed, validate=False)
    if stream == "attention":
        return nncf.IgnoredScope(names=keep, types=OV_GLUE_TYPES if scope == "global+local" else None,
                                 patterns=fixed + (SELECTOR_PATTERNS if scope == "global+local" else [".*"]),
                                 validate=False)
    att = [op.get_friendly_name() for op in model.get_ordered_ops()
           if "attention_stream" in op.get_friendly_name()
           and (scope == "global" or op.get_type_name() in OV_GLUE_TYPES or is_selector(op.get_friendly_name()))]
    return nncf.IgnoredScope(names=att + keep, patterns=fixed, validate=False)


def _accuracy_controlled(models: Dict[str, object], calib: CalibrationSet, val_images: np.ndarray,
                         val_ages: np.ndarray, head: str, max_drop: float, floats: List[str]):
    """Accuracy-controlled INT8 of the global stream; the metric is the whole model's -MAE (higher is better)."""
    import nncf
    import openvino as ov

    from alage_edge.ages import age_to_group, decode

    core = ov.Core()
    att = core.compile_model(models["attention"], "CPU", {"INFERENCE_PRECISION_HINT": "f32"}) \
        if "attention" in models else None

    def metric(compiled, data) -> float:
        ages, groups = [], []
        for feed in data:
            g_out = compiled(feed)
            g = g_out[compiled.output("g")]
            logits = g_out[compiled.output("global_logits")]
            if att is not None:
                logits = att({"image": feed["image"], "g": g})[att.output("fused_logits")]
            d = decode(logits, head)
            ages.append(d["age"])
            groups.append(d["group"])
        ages, groups = np.concatenate(ages), np.concatenate(groups)
        if head == "dex":
            return -float(np.mean(np.abs(ages - val_ages)))
        return float(np.mean(groups == age_to_group(val_ages)))

    val = nncf.Dataset([{"image": val_images[i:i + 1]} for i in range(len(val_images))])
    return nncf.quantize_with_accuracy_control(models["global"], calib.nncf_dataset("global"), val, metric,
                                               max_drop=max_drop, drop_type=nncf.DropType.ABSOLUTE,
                                               subset_size=len(calib), advanced_quantization_parameters=_advanced(),
                                               ignored_scope=ignored_scope(models["global"], "global", "global", floats))


def build(bundle, precision: str = "fp32", data: Optional[str] = None, calib_size: int = 300, calib_min: int = 32,
          max_drop: Optional[float] = None, int8_scope: Optional[str] = None, progress: bool = True,
          cache: Optional[str] = None) -> List[Artifact]:
    """Write openvino/<precision>/{global,attention}.xml (+ .bin; fp32 / fp16 also fused.xml, the whole model)
    and record them in the manifest."""
    import openvino as ov

    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"OpenVINO IR precision must be fp32, fp16 or int8, got {precision!r}")
    int8_scope = check_int8_scope(int8_scope, "openvino")
    man = Manifest.load(bundle)
    streams = [s for s in ("global", "attention") if s in man.io]
    if "fused" in man.io and "attention" in man.io:
        streams.append("fused")
    man.verify([man.io[s]["file"] for s in streams])
    out_dir = Path("openvino") / precision
    t0 = time.perf_counter()
    # fp32/fp16: convert_model. INT8: NNCF on the graph as Core.read_model gives it; quantising the
    # convert_model graph placed quantisers differently and moved ages 2.27 y on average, 0.68 this way.
    # convert_model gets the ONNX bytes, not the path: it splits a path string on commas ("runs, v2/..."
    # failed as "runs" does not exist); the exported graphs keep their weights inside the file.
    if precision == "int8":
        models = {s: ov.Core().read_model(str(man.path(man.io[s]["file"]))) for s in streams}
        import onnx

        floats = {s: float_convs(onnx.load(str(man.path(man.io[s]["file"])))) for s in streams}
    else:
        models = {s: ov.convert_model(io.BytesIO(man.path(man.io[s]["file"]).read_bytes())) for s in streams}
    info: Dict = {"tools": {k: v for k, v in package_versions().items() if k in ("openvino", "nncf")}}
    if precision == "int8":
        if not data:
            raise ValueError("INT8 needs calibration data: --data synth (or a data set, folder or .npy)")
        calib = CalibrationSet.from_spec(data, man, size=calib_size, minimum=calib_min, progress=progress,
                                         cache_dir=cache)
        if max_drop is not None:
            from alage_edge.data import open_dataset

            val = open_dataset(data, split="val", size=man.preprocess.size, cache_dir=cache)
            vcal = CalibrationSet.from_spec(data, man, size=min(len(val), 200), split="val", minimum=1,
                                            progress=progress, cache_dir=cache)
            models["global"] = _accuracy_controlled(models, calib, vcal.images, val.ages()[:len(vcal)],
                                                    man.head, max_drop, floats["global"])
            info["accuracy_control"] = {"max_drop": max_drop, "metric": "-MAE" if man.head == "dex" else "accuracy"}
        else:
            models["global"] = _quantize_stream(models["global"], "global", calib, int8_scope, floats=floats["global"])
        if "attention" in models and int8_scope == "global+local":
            models["attention"] = _quantize_stream(models["attention"], "attention", calib, int8_scope,
                                                   floats["attention"])
        if "fused" in models and max_drop is None:  # the whole model as one INT8 IR, quantised by the same scope
            models["fused"] = _quantize_stream(models["fused"], "fused", calib, int8_scope, floats["fused"])
        else:  # accuracy control measures the split graphs: no unmeasured fused copy
            models.pop("fused", None)
        info["calibration"] = {**calib.describe(), "method": "NNCF post-training, min/max activation ranges",
                               "scope": int8_scope, "float": sorted(set().union(*floats.values()))}
        info["quantized_streams"] = ["global"] + (["attention (local CNN convolutions)"]
                                                  if int8_scope == "global+local" and "attention" in models else [])
    files, extra = {}, []
    for s, model in models.items():
        if s != "global":
            keep_attention_float(model, s)
        rel = out_dir / f"{s}.xml"
        _save(model, man.path(str(rel)), compress=(precision == "fp16"))
        files[s] = str(rel)
        extra.append(str(rel.with_suffix(".bin")))
    info["extra_files"] = extra
    info["seconds"] = round(time.perf_counter() - t0, 2)
    art = Artifact("openvino", precision, files, info)
    with updating(bundle) as m:
        for rel in extra:
            m.record_file(rel, artifact=art.key)
        m.add_artifact(art)
    return [art]
