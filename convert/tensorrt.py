"""TensorRT engines per stream, built on the target device (engines are not portable).

What each stream's build does on the installed TensorRT (8.5, 10, 11: flags,
typing, fp16 source, INT8 path, DLA) is decided in ``trt_plan.py``; this module
applies it with the TensorRT Python API. The global stream may go to a DLA
core (static shapes, GPU fallback; the layers that fall back are logged); the
attention stream stays on the GPU. Engines are named and stamped with a cache
key (sidecar JSON + manifest); INT8 calibration caches are keyed by the ONNX
and the calibration set.

NOT EXECUTED on this project's development machines or CI: TensorRT cannot be
installed there. Written against the TensorRT 8.5/10/11 Python API.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Tuple

import numpy as np

from alage_edge.atomic import write_bytes, write_json
from alage_edge.backends.engine_key import engine_key, engine_name, profile_shapes
from alage_edge.formats import QDQ_S8
from alage_edge.manifest import Artifact, Manifest, sha256_file

from .bundle import updating
from .int8_scope import check_int8_scope, float_convs, is_local_cnn
from .trt_plan import (
    BuildError,
    StreamPlan,
    calib_batches,
    calib_cache_name,
    calibration_batch,
    choose_int8_path,
    dla_problem,
    major_version,
    network_flags,
    plan_stream,
    qdq_is_current,
    version_problem,
)

DEFAULT_BATCH = (1, 8, 32)
__all__ = ["BuildError", "build", "choose_int8_path", "major_version"]


def fp16_onnx(src: Path, dst: Path, dla: bool = False) -> str:
    """An fp16 copy of an ONNX graph with fp32 I/O for strongly typed TensorRT 11 builds. For a DLA build,
    AutoCast's DLA target is passed where this modelopt has it (11.4.1's; else said in the returned text)."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision

        kw = dict(onnx_path=str(src), low_precision_type="fp16", keep_io_types=True)
        tool = "modelopt.autocast"
        if dla:
            import inspect

            if "target_dla" in inspect.signature(convert_to_mixed_precision).parameters:
                kw["target_dla"] = True
                tool += " (target_dla)"
            else:
                tool += " (this modelopt has no target_dla: DLA layers may fall back to the GPU)"
        model = convert_to_mixed_precision(**kw)
    except ImportError:
        try:
            from onnxconverter_common import float16
        except ImportError as e:
            raise BuildError("fp16 on TensorRT 11 needs an fp16 ONNX: pip install nvidia-modelopt "
                             "or onnxconverter-common") from e
        model = float16.convert_float_to_float16(_outputs_not_read_back(onnx.load(str(src))), keep_io_types=True,
                                                 op_block_list=["QuantizeLinear", "DequantizeLinear"])
        tool = "onnxconverter_common"
    onnx.save(model, str(dst))
    return tool


def _outputs_not_read_back(model):
    """onnxconverter-common mistypes a graph output that other nodes also read (its fp32 output cast is read
    where the fp16 tensor was meant: a type error on load). Each such output becomes an Identity of an
    internal tensor that the readers use instead."""
    from onnx import helper

    g = model.graph
    read = {i for n in g.node for i in n.input}
    for out in [o.name for o in g.output if o.name in read]:
        inner = f"{out}__inner"
        for n in g.node:
            for k, name in enumerate(n.output):
                if name == out:
                    n.output[k] = inner
            for k, name in enumerate(n.input):
                if name == out:
                    n.input[k] = inner
        g.node.append(helper.make_node("Identity", [inner], [out], name=f"{out}__output"))
    return model


def make_calibrator(trt, cuda, feeds: List[Dict[str, np.ndarray]], cache: Path, log: List[str]):
    """An IInt8EntropyCalibrator2 over equal batches, with a cache keyed by ONNX and calibration set.
    ``free()`` releases its stream and device buffers after the build."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.i = 0
            self.stream = cuda.stream()
            self.dev = {n: cuda.malloc(a.nbytes) for n, a in feeds[0].items()}

        def get_batch_size(self):
            return int(len(feeds[0]["image"]))

        def get_batch(self, names):
            if self.i >= len(feeds):
                return None
            for n in names:
                cuda.h2d(self.dev[n], np.ascontiguousarray(feeds[self.i][n], dtype=np.float32), self.stream)
            cuda.sync(self.stream)
            self.i += 1
            return [int(self.dev[n]) for n in names]

        def read_calibration_cache(self):
            if cache.is_file():
                log.append(f"using the calibration cache {cache.name} (same ONNX, same calibration set)")
                return cache.read_bytes()
            return None

        def write_calibration_cache(self, data):
            write_bytes(cache, bytes(data))

        def free(self):
            for p in self.dev.values():
                cuda.free(p)
            cuda.destroy_stream(self.stream)
            self.dev = {}

    return EntropyCalibrator()


def _profile(builder, batch: Tuple[int, int, int], inputs: Dict[str, list]):
    profile = builder.create_optimization_profile()
    for name, (mn, opt, mx) in profile_shapes(batch, inputs).items():
        profile.set_shape(name, mn, opt, mx)
    return profile


def pin_fp32(trt, network, config, stream: str, keep: Iterable[str]) -> int:
    """Implicit INT8: keep ``keep`` (the convolutions every INT8 path keeps float: ``float_convs``) in fp32,
    and in the attention stream every layer outside the local CNN (the selector, the LSTM, the glue)."""
    keep, pinned = set(keep), 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        free = is_local_cnn(layer.name) if stream == "attention" else True
        if (free and layer.name not in keep) or layer.num_outputs == 0:
            continue
        if layer.get_output(0).dtype != trt.float32:
            continue  # shape arithmetic (int64) is not a precision choice
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    if pinned:
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def build_stream(trt, man: Manifest, stream: str, plan: StreamPlan, source: Path, batch: Tuple[int, int, int],
                 workspace_gib: float, dla_core: Optional[int], calibrator, log: List[str],
                 calib_batch: Optional[int] = None) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt, trt.__version__, plan.strongly_typed))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(source.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"{source}: the TensorRT {trt.__version__} ONNX parser failed: {'; '.join(errors)} "
                         f"(alage-edge check shows what it rejects)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    for flag in plan.flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    for flag in plan.clear:
        config.clear_flag(getattr(trt.BuilderFlag, flag))
    profile = _profile(builder, batch, man.io[stream]["inputs"])
    config.add_optimization_profile(profile)
    if calibrator is not None:
        import onnx

        keep = float_convs(onnx.load(str(source)))
        log.append(f"{stream}: {pin_fp32(trt, network, config, stream, keep)} layers pinned to fp32 (pixel-reading "
                   f"convolutions" + (", selector and glue)" if stream == "attention" else ")"))
        config.int8_calibrator = calibrator
        # TensorRT calibrates at the calibration profile's opt shape: one of exactly the calibrator's batch
        b = calib_batch or batch[1]
        config.set_calibration_profile(_profile(builder, (b, b, b), man.io[stream]["inputs"]))
    if dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = int(dla_core)
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
        fallback = [network.get_layer(i).name for i in range(network.num_layers)
                    if not config.can_run_on_DLA(network.get_layer(i))]
        log.append(f"global on DLA core {dla_core}: {len(fallback)} of {network.num_layers} layers fall back "
                   f"to the GPU" + (f" ({', '.join(fallback[:20])}{' ...' if len(fallback) > 20 else ''})"
                                    if fallback else ""))
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise BuildError(f"TensorRT {trt.__version__} could not build the {stream} engine from {source} "
                         f"(see the TensorRT log above)")
    return bytes(serialized)


def build(bundle, precision: str = "fp16", data: Optional[str] = None, calib_size: int = 300, calib_min: int = 32,
          int8_scope: Optional[str] = None, dla_core: Optional[int] = None, workspace: float = 2.0,
          batch: Tuple[int, int, int] = DEFAULT_BATCH, int8_path: Optional[str] = None, progress: bool = True,
          cache: Optional[str] = None, device: int = 0) -> List[Artifact]:
    """Build tensorrt/<stream>.<precision>[.dlaN].<key>.engine (+ .json key) for each stream."""
    import tensorrt as trt

    from alage_edge.backends.cuda import cuda_api

    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"TensorRT precision must be fp32, fp16 or int8, got {precision!r}")
    int8_scope = check_int8_scope(int8_scope, "tensorrt")
    if not (1 <= batch[0] <= batch[1] <= batch[2]):
        raise ValueError(f"--batch must be MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, got {batch}")
    version = trt.__version__
    if version_problem(version):
        raise BuildError(version_problem(version))
    if dla_core is not None and dla_problem(version, precision):
        raise BuildError(dla_problem(version, precision))
    path = choose_int8_path(version, int8_path) if precision == "int8" else None
    cuda = cuda_api(device)
    if cuda.device_count() == 0:
        raise BuildError("building TensorRT engines needs the target GPU; none is visible")
    gpu, cc = cuda.device_properties(device)
    man = Manifest.load(bundle)
    streams = [s for s in ("global", "attention") if s in man.io]
    t0, log = time.perf_counter(), []
    calib, calib_hash = None, ""
    if precision == "int8":
        if not data:
            raise ValueError("INT8 needs calibration data: --data synth (or a data set, folder or .npy)")
        from .calibration import CalibrationSet

        calib = CalibrationSet.from_spec(data, man, size=calib_size, minimum=calib_min, progress=progress,
                                         cache_dir=cache)
        calib_hash = calib.sha256
        current = [a for a in man.find("qdq", "int8", variant=QDQ_S8) if qdq_is_current(a.info, calib_hash, int8_scope)]
        if path == "qdq" and not current:  # none yet, or one calibrated on other data: build it from this set
            from .qdq import build as build_qdq

            build_qdq(bundle, data=data, calib_size=calib_size, calib_min=calib_min, int8_scope=int8_scope,
                      variant="tensorrt", progress=progress, cache=cache)
            man = Manifest.load(bundle)
    files, keys = {}, {}
    with cuda.activate():
        for s in streams:
            plan = plan_stream(version, precision, s, path, int8_scope)
            source = man.path(man.find("qdq", "int8", variant=QDQ_S8)[-1].files[s] if plan.source == "qdq"
                              else man.io[s]["file"])
            if plan.fp16_onnx:
                fp16_src = man.path(f"tensorrt/fp16-src/{s}.{plan.source}.onnx")
                fp16_src.parent.mkdir(parents=True, exist_ok=True)
                log.append(f"{s}: fp16 ONNX by {fp16_onnx(source, fp16_src, dla=dla_core is not None and s == 'global')}")
                source = fp16_src
            dla = dla_core if s == "global" else None
            prof = (batch[1],) * 3 if dla is not None else batch  # DLA needs static shapes
            onnx_sha = sha256_file(man.path(man.io[s]["file"]))
            key = engine_key(version, gpu, cc, precision, dla, profile_shapes(prof, man.io[s]["inputs"]), onnx_sha,
                             calib_hash)
            key["mixed_precision"] = plan.mixed
            calibrator = None
            calib_batch = None
            if plan.precision == "int8" and path == "calibrator":
                calib_batch = calibration_batch(len(calib), prof[1], hasattr(trt.IBuilderConfig,
                                                                             "set_calibration_profile"))
                b, feeds = calib_batches(calib.feeds(s, batch_size=calib_batch), calib_batch)
                if b < prof[1]:
                    log.append(f"{s}: calibration batch {b} (the set has fewer images than the opt batch {prof[1]}): "
                               f"calibration profile {b},{b},{b}")
                calibrator = make_calibrator(trt, cuda, feeds, man.path(f"tensorrt/{calib_cache_name(s, onnx_sha, calib_hash)}"),
                                             log)
            try:
                engine = build_stream(trt, man, s, plan, source, prof, workspace, dla, calibrator, log, calib_batch)
            finally:
                if calibrator is not None:
                    calibrator.free()
            rel = f"tensorrt/{engine_name(s, precision, dla, key)}"
            write_bytes(man.path(rel), engine)
            write_json(man.path(rel + ".json"), key)
            files[s], keys[s] = rel, key
    info = {"keys": keys, "tools": {"tensorrt": version}, "device": gpu, "compute_capability": cc,
            "dla_core": dla_core, "batch": list(batch),
            "profiles": {st: [batch[1]] * 3 if (dla_core is not None and st == "global") else list(batch)
                         for st in files},
            "log": log, "seconds": round(time.perf_counter() - t0, 2),
            "extra_files": [f + ".json" for f in files.values()]}
    if precision == "int8":
        info["int8_path"] = path
        info["calibration"] = {**calib.describe(), "scope": int8_scope,
                               "method": "IInt8EntropyCalibrator2 (cache keyed by ONNX + calibration set)"
                               if path == "calibrator" else "explicit Q/DQ (qdq/)"}
    art = Artifact("tensorrt", precision, files, info)
    with updating(bundle) as m:
        for f in info["extra_files"]:
            m.record_file(f, artifact=art.key)
        m.add_artifact(art)
    for line in log:
        print(line)
    return [art]
