"""TensorRT engines per stream, built on the target device (engines are not portable).

fp32 and fp16 (TensorRT 10: the FP16 builder flag; TensorRT 11, which removed
it: an fp16 ONNX made by ModelOpt AutoCast or onnxconverter-common, built
strongly typed). INT8 has two paths, chosen by the installed TensorRT:
  - ``calibrator`` (TensorRT 10 and older, JetPack 5/6): implicit quantisation
    with an IInt8EntropyCalibrator2 and a reusable calibration cache; the
    attention glue is pinned to fp32 with precision constraints;
  - ``qdq`` (TensorRT 10 and newer, the only one on 11): explicit quantisation
    from the Q/DQ ONNX (TensorRT flavour), strongly typed.
The global stream may go to a DLA core (static shapes, GPU fallback; the
layers that fall back are logged); the attention stream stays on the GPU.
Engines are named and stamped with a cache key (sidecar JSON + manifest).

NOT EXECUTED in this project's CI or development machines: TensorRT cannot be
installed there. Written against the TensorRT 10/11 Python API.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

from alage_edge.atomic import write_bytes, write_json
from alage_edge.backends.engine_key import engine_key, engine_name, profile_shapes
from alage_edge.formats import QDQ_S8
from alage_edge.manifest import Artifact, Manifest, sha256_file

from .bundle import updating
from .graphs import is_local_cnn

DEFAULT_BATCH = (1, 8, 32)


class BuildError(RuntimeError):
    pass


def major_version(version: str) -> int:
    return int(version.split(".")[0])


def choose_int8_path(version: str, requested: Optional[str] = None) -> str:
    """'calibrator' or 'qdq' for this TensorRT version (11 removed the calibrator API)."""
    major = major_version(version)
    if requested == "calibrator" and major >= 11:
        raise BuildError(f"TensorRT {version} has no INT8 calibrator API (removed in 11): use --int8-path qdq")
    if requested:
        return requested
    return "calibrator" if major <= 10 else "qdq"


def fp16_onnx(src: Path, dst: Path) -> str:
    """An fp16 copy of an ONNX graph with fp32 I/O for strongly typed TensorRT 11 builds."""
    import onnx

    try:
        from modelopt.onnx.autocast import convert_to_mixed_precision

        model = convert_to_mixed_precision(onnx_path=str(src), low_precision_type="fp16", keep_io_types=True)
        tool = "modelopt.autocast"
    except ImportError:
        try:
            from onnxconverter_common import float16
        except ImportError as e:
            raise BuildError("fp16 on TensorRT 11 needs an fp16 ONNX: pip install nvidia-modelopt "
                             "or onnxconverter-common") from e
        model = float16.convert_float_to_float16(onnx.load(str(src)), keep_io_types=True)
        tool = "onnxconverter_common"
    onnx.save(model, str(dst))
    return tool


def make_calibrator(trt, cuda, feeds: List[Dict[str, np.ndarray]], cache: Path):
    """An IInt8EntropyCalibrator2 over equal-sized batches, with a reusable cache file."""

    class EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self):
            trt.IInt8EntropyCalibrator2.__init__(self)
            self.i = 0
            self.stream = cuda.stream()
            self.dev = {n: cuda.malloc(a.nbytes) for n, a in feeds[0].items()}

        def get_batch_size(self):
            return int(next(iter(feeds[0].values())).shape[0])

        def get_batch(self, names):
            if self.i >= len(feeds):
                return None
            for n in names:
                cuda.h2d(self.dev[n], np.ascontiguousarray(feeds[self.i][n], dtype=np.float32), self.stream)
            cuda.sync(self.stream)
            self.i += 1
            return [int(self.dev[n]) for n in names]

        def read_calibration_cache(self):
            return cache.read_bytes() if cache.is_file() else None

        def write_calibration_cache(self, data):
            write_bytes(cache, bytes(data))

    return EntropyCalibrator()


def _profile(builder, network, batch: Tuple[int, int, int], inputs: Dict[str, list]):
    profile = builder.create_optimization_profile()
    shapes = profile_shapes(batch, inputs)
    for name, (mn, opt, mx) in shapes.items():
        profile.set_shape(name, mn, opt, mx)
    return profile, shapes


def _pin_glue_fp32(trt, network, config) -> int:
    """Implicit INT8: keep every attention layer outside the local CNN in fp32."""
    pinned = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if is_local_cnn(layer.name) or layer.num_outputs == 0:
            continue
        if layer.get_output(0).dtype != trt.float32:
            continue  # shape arithmetic (int64) is not a precision choice
        layer.precision = trt.float32
        for j in range(layer.num_outputs):
            layer.set_output_type(j, trt.float32)
        pinned += 1
    config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
    return pinned


def build_stream(trt, cuda, man: Manifest, stream: str, precision: str, source: Path, strongly_typed: bool,
                 batch: Tuple[int, int, int], workspace_gib: float, dla_core: Optional[int],
                 calib_feeds: Optional[List[Dict[str, np.ndarray]]], calib_cache: Optional[Path],
                 log: List[str]) -> bytes:
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = 0
    if strongly_typed and major_version(trt.__version__) <= 10:
        flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)  # always on in 11
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(source.read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise BuildError(f"{source}: the TensorRT {trt.__version__} ONNX parser failed: {'; '.join(errors)} "
                         f"(alage-edge check shows what it rejects)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    inputs = man.io[stream]["inputs"]
    on_dla = dla_core is not None and stream == "global"
    if on_dla:
        batch = (batch[1], batch[1], batch[1])  # DLA needs static shapes
    profile, shapes = _profile(builder, network, batch, inputs)
    config.add_optimization_profile(profile)
    if not strongly_typed:
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
        if precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)
            config.set_flag(trt.BuilderFlag.FP16)  # the non-quantised layers may use fp16 ...
            if stream == "attention":
                log.append(f"attention: {_pin_glue_fp32(trt, network, config)} glue layers pinned to fp32")
            config.int8_calibrator = make_calibrator(trt, cuda, calib_feeds, calib_cache)
            config.set_calibration_profile(profile)
    if on_dla:
        if precision == "fp32":
            raise BuildError("DLA runs fp16 or int8 only: --precision fp16|int8 with --dla-core")
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
          int8_scope: str = "global+local", dla_core: Optional[int] = None, workspace: float = 2.0,
          batch: Tuple[int, int, int] = DEFAULT_BATCH, int8_path: Optional[str] = None, progress: bool = True,
          cache: Optional[str] = None) -> List[Artifact]:
    """Build tensorrt/<stream>.<precision>[.dlaN].<key>.engine (+ .json key) for each stream."""
    import tensorrt as trt

    from alage_edge.backends.cuda import cuda_api

    if precision not in ("fp32", "fp16", "int8"):
        raise ValueError(f"TensorRT precision must be fp32, fp16 or int8, got {precision!r}")
    if not (1 <= batch[0] <= batch[1] <= batch[2]):
        raise ValueError(f"--batch must be MIN,OPT,MAX with 1 <= MIN <= OPT <= MAX, got {batch}")
    cuda = cuda_api()
    if cuda.device_count() == 0:
        raise BuildError("building TensorRT engines needs the target GPU; none is visible")
    device, cc = cuda.device_properties(0)
    man = Manifest.load(bundle)
    streams = [s for s in ("global", "attention") if s in man.io]
    major = major_version(trt.__version__)
    path = choose_int8_path(trt.__version__, int8_path) if precision == "int8" else None
    t0, log = time.perf_counter(), []
    calib_hash, calib_info = "", None
    if precision == "int8":
        if not data:
            raise ValueError("INT8 needs calibration data: --data synth (or a data set, folder or .npy)")
        from .calibration import CalibrationSet

        calib = CalibrationSet.from_spec(data, man, size=calib_size, minimum=calib_min, progress=progress,
                                         cache_dir=cache)
        calib_hash, calib_info = calib.sha256, calib.describe()
        if path == "qdq" and not man.find("qdq", "int8", variant=QDQ_S8):
            from .qdq import build as build_qdq

            build_qdq(bundle, data=data, calib_size=calib_size, calib_min=calib_min, int8_scope=int8_scope,
                      variant="tensorrt", progress=progress, cache=cache)
            man = Manifest.load(bundle)
    files, keys = {}, {}
    for s in streams:
        strongly_typed = major >= 11 or path == "qdq"
        if path == "qdq":
            source = man.path(man.find("qdq", "int8", variant=QDQ_S8)[-1].files[s])
        else:
            source = man.path(man.io[s]["file"])
        if precision == "fp16" and major >= 11:
            fp16_src = man.path(f"tensorrt/fp16-src/{s}.onnx")
            fp16_src.parent.mkdir(parents=True, exist_ok=True)
            log.append(f"{s}: fp16 ONNX by {fp16_onnx(source, fp16_src)}")
            source = fp16_src
        feeds = None
        if path == "calibrator":
            b = batch[1]
            feeds = [f for f in calib.feeds(s, batch_size=b) if len(f["image"]) == b]
        dla = dla_core if s == "global" else None
        shapes = profile_shapes((batch[1],) * 3 if dla is not None else batch, man.io[s]["inputs"])
        key = engine_key(trt.__version__, device, cc, precision, dla, shapes, sha256_file(man.path(man.io[s]["file"])),
                         calib_hash)
        rel = f"tensorrt/{engine_name(s, precision, dla, key)}"
        cache = man.path(f"tensorrt/{s}.int8.calib") if path == "calibrator" else None
        engine = build_stream(trt, cuda, man, s, precision, source, strongly_typed, batch, workspace, dla, feeds,
                              cache, log)
        write_bytes(man.path(rel), engine)
        write_json(man.path(rel + ".json"), key)
        files[s], keys[s] = rel, key
    info = {"keys": keys, "tools": {"tensorrt": trt.__version__}, "device": device, "compute_capability": cc,
            "dla_core": dla_core, "batch": list(batch), "log": log, "seconds": round(time.perf_counter() - t0, 2),
            "extra_files": [f + ".json" for f in files.values()]}
    if precision == "int8":
        info["int8_path"] = path
        info["calibration"] = {**(calib_info or {}), "method": "IInt8EntropyCalibrator2 (cache: tensorrt/*.calib)"
                               if path == "calibrator" else "explicit Q/DQ (qdq/)"}
    art = Artifact("tensorrt", precision, files, info)
    with updating(bundle) as m:
        for f in info["extra_files"]:
            m.record_file(f, artifact=art.key)
        m.add_artifact(art)
    for line in log:
        print(line)
    return [art]
