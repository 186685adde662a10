"""The GPU paths' logic, tested where no GPU or TensorRT exists: the CUDA wrapper against the real
`cuda.bindings` (no driver here), the build plan per TensorRT version, calibration caches and
batches, DLA, CUDA-graph buckets, fp16 fusion, and the TensorRT engine's buffer handling against a
simulated engine (SimEngine below: it stands in for TensorRT's API surface to exercise OUR padding,
binding, error and buffer code; it proves nothing about TensorRT itself, which gpu_check runs)."""
import importlib.util
from types import SimpleNamespace

import numpy as np
import pytest

from alage_edge.backends.cuda import CudaError, CudaPython, cuda_api
from alage_edge.convert.trt_plan import (
    BuildError,
    calib_batches,
    calib_cache_name,
    dla_problem,
    network_flags,
    plan_stream,
    qdq_is_current,
)

HAS_BINDINGS = importlib.util.find_spec("cuda") is not None and importlib.util.find_spec("cuda.bindings") is not None


# -- the CUDA wrapper ------------------------------------------------------------------------------
@pytest.mark.skipif(not HAS_BINDINGS, reason="cuda-python is not installed")
def test_real_bindings_without_a_driver_name_the_error_instead_of_reporting_no_gpu():
    cuda = CudaPython()
    try:
        n = cuda.device_count()
    except CudaError as e:
        assert e.name.startswith("cudaError") and e.name != "cudaErrorNoDevice"
        assert e.name in str(e)
        with pytest.raises((ImportError, CudaError), match=e.name):  # and cuda_api says so, naming pycuda
            cuda_api()
        return
    pytest.skip(f"a CUDA driver is present here ({n} GPUs)")


def test_no_device_is_zero_gpus_and_other_errors_raise():
    class RT:
        def __init__(self, err):
            self.err = err

        def cudaGetDeviceCount(self):
            return (self.err, None)

        def cudaGetErrorName(self, err):
            return (0, {100: b"cudaErrorNoDevice", 35: b"cudaErrorInsufficientDriver"}[err])

    assert CudaPython(RT(100)).device_count() == 0
    with pytest.raises(CudaError, match="cudaErrorInsufficientDriver.*tensorrt-cu12"):
        CudaPython(RT(35)).device_count()


# -- the build plan per TensorRT version --------------------------------------------------------------
def test_fp32_engines_clear_tf32():
    for v in ("8.5.2", "10.3.0", "11.4.0"):
        assert "TF32" in plan_stream(v, "fp32", "global", None, "global+local").clear


def test_int8_non_quantised_layers_are_fp16_on_every_version():
    p10 = plan_stream("10.3.0", "int8", "global", "qdq", "global+local")
    assert p10.source == "qdq" and set(p10.flags) == {"INT8", "FP16"} and not p10.strongly_typed
    p11 = plan_stream("11.4.0", "int8", "global", "qdq", "global+local")
    assert p11.source == "qdq" and p11.strongly_typed and p11.fp16_onnx and p11.flags == ()
    assert "fp16" in p11.mixed
    f11 = plan_stream("11.4.0", "fp16", "global", None, "global+local")
    assert f11.fp16_onnx and f11.flags == ()  # the FP16 flag is gone in 11


def test_int8_scope_global_keeps_the_attention_stream_out_of_int8_on_the_calibrator_path():
    assert plan_stream("10.3.0", "int8", "attention", "calibrator", "global").precision == "fp16"
    assert plan_stream("10.3.0", "int8", "attention", "calibrator", "global+local").precision == "int8"


def test_network_flags_per_version():
    trt = SimpleNamespace(NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5))
    assert network_flags(trt, "8.5.2", False) == 1  # 8.5 parses ONNX only into explicit-batch networks
    assert network_flags(trt, "10.3.0", True) == 1 << 5
    assert network_flags(trt, "10.3.0", False) == 0
    assert network_flags(trt, "11.4.0", True) == 0  # always strongly typed
    with pytest.raises(BuildError):
        network_flags(trt, "8.5.2", True)


def test_dla_is_refused_up_front_where_tensorrt_11_has_none():
    assert "no DLA" in dla_problem("11.2.0", "fp16")
    assert "fp16-typed" in dla_problem("11.4.1", "int8")
    assert dla_problem("11.4.1", "fp16") is None
    assert dla_problem("10.3.0", "int8") is None
    assert "fp16 or int8" in dla_problem("10.3.0", "fp32")


def test_calibration_cache_is_keyed_by_onnx_and_calibration_set():
    a = calib_cache_name("global", "a" * 64, "c" * 16)
    assert a != calib_cache_name("global", "b" * 64, "c" * 16)  # retrained / re-exported
    assert a != calib_cache_name("global", "a" * 64, "d" * 16)  # other --data or --calib-size
    assert a.endswith(".calib") and a.startswith("global.int8.")


def test_calibration_set_smaller_than_the_batch_gives_one_smaller_batch():
    feeds = [{"image": np.zeros((3, 3, 8, 8), np.float32)}, {"image": np.ones((2, 3, 8, 8), np.float32)}]
    b, batches = calib_batches(feeds, 8)
    assert b == 5 and len(batches) == 1 and batches[0]["image"].shape[0] == 5
    b, batches = calib_batches(feeds, 2)
    assert b == 2 and [len(x["image"]) for x in batches] == [2, 2]  # the remainder is dropped


def test_a_qdq_model_from_other_data_is_not_reused():
    info = {"calibration": {"sha256": "abc", "scope": "global+local"}}
    assert qdq_is_current(info, "abc", "global+local")
    assert not qdq_is_current(info, "xyz", "global+local")
    assert not qdq_is_current(info, "abc", "global")


# -- torch: CUDA-graph buckets and fp16 fusion -------------------------------------------------------
def test_cuda_graph_buckets_are_powers_of_two():
    from alage_edge.backends.pytorch import bucket

    assert [bucket(n) for n in (1, 2, 3, 5, 8, 9, 64)] == [1, 2, 4, 8, 8, 16, 64]


def test_mean_fusion_is_finite_in_fp16():
    torch = pytest.importorskip("torch")
    from alage_edge.model import build_model

    m = build_model("al_resnet18", global_size=64, width=8, local_width=8, crop_size=32, hidden=32, fusion="mean")
    side = m.cfg.input_size
    with torch.no_grad():
        for head in (m.attention_stream.global_head, m.attention_stream.local_head):
            head.weight.mul_(2000.0)  # confident heads: probabilities far below fp16's smallest value
    m = m.eval().half()
    with torch.no_grad():
        out = m(torch.randn(2, 3, side, side).half())["fused_logits"]
    assert torch.isfinite(out).all()


# -- the TensorRT engine's buffer logic against a simulated engine -------------------------------------
class SimCuda:
    """Host memory standing in for device memory: lets the engine's copy/binding code run."""

    name = "sim"

    def __init__(self):
        self.mem, self.next, self.syncs, self.freed, self.events = {}, 1, 0, 0, 0

    def malloc(self, n):
        p, self.next = self.next, self.next + 1
        self.mem[p] = np.zeros(n, np.uint8)
        return p

    def free(self, p):
        del self.mem[p]
        self.freed += 1

    def host_empty(self, shape, dtype):
        a = np.zeros(shape, dtype)
        return a, a

    def host_free(self, h):
        pass

    def stream(self):
        return object()

    def stream_handle(self, s):
        return 1

    def destroy_stream(self, s):
        pass

    def h2d(self, dst, src, stream):
        self.mem[dst][: src.nbytes] = np.frombuffer(src.tobytes(), np.uint8)

    def d2h(self, dst, src, stream):
        dst[...] = np.frombuffer(self.mem[src][: dst.nbytes].tobytes(), dst.dtype).reshape(dst.shape)

    def sync(self, stream):
        self.syncs += 1

    def event(self):
        self.events += 1
        return object()

    def destroy_event(self, e):
        self.events -= 1

    def record(self, e, s):
        pass

    def wait(self, s, e):
        pass

    def event_sync(self, e):
        pass


class SimEngine:
    """A 'global' engine: image (B,3,2,2) -> global_logits (B,2) = per-image mean and B, with a static or
    dynamic batch profile. execute_async_v3 reads and writes SimCuda memory."""

    def __init__(self, cuda, lo, hi, bind_ok=True):
        self.cuda, self.lo, self.hi, self.bind_ok = cuda, lo, hi, bind_ok
        self.num_io_tensors = 2

    def create_execution_context(self):
        return SimContext(self)

    def get_tensor_name(self, i):
        return ["image", "global_logits"][i]

    def get_tensor_mode(self, n):
        return "in" if n == "image" else "out"

    def get_tensor_dtype(self, n):
        return "DataType.FLOAT"  # str(trt.DataType.FLOAT)

    def get_tensor_shape(self, n):
        return [-1, 3, 2, 2] if n == "image" else [-1, 2]

    def get_tensor_profile_shape(self, n, i):
        return [self.lo, 3, 2, 2], [self.lo, 3, 2, 2], [self.hi, 3, 2, 2]


class SimContext:
    def __init__(self, eng):
        self.eng, self.addr, self.batch = eng, {}, None

    def set_tensor_address(self, n, p):
        self.addr[n] = p
        return self.eng.bind_ok

    def set_input_shape(self, n, shape):
        ok = self.eng.lo <= shape[0] <= self.eng.hi
        self.batch = shape[0] if ok else None
        return ok

    def get_tensor_shape(self, n):
        return (self.batch, 2)

    def execute_async_v3(self, stream):
        mem, b = self.eng.cuda.mem, self.batch
        x = np.frombuffer(mem[self.addr["image"]][: b * 12 * 4].tobytes(), np.float32).reshape(b, 12)
        y = np.stack([x.mean(1), np.full(b, b, np.float32)], 1).astype(np.float32)
        mem[self.addr["global_logits"]][: y.nbytes] = np.frombuffer(y.tobytes(), np.uint8)
        return True


SIM_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in"))  # no nptype: TensorRT 8.5's fails on numpy 1.24


def _backend(engine_kw):
    from alage_edge.backends.tensorrt import TensorRTBackend
    from alage_edge.backends.trt_engine import Engine

    cuda = SimCuda()
    eng = Engine(SIM_TRT, cuda, SimEngine(cuda, **engine_kw), "global")
    be = TensorRTBackend.__new__(TensorRTBackend)
    be.cuda = cuda
    be.cuda.activate = lambda: __import__("contextlib").nullcontext()
    be.graph, be.manifest = "fused", SimpleNamespace(attention=False)
    be.streams = lambda: ["global"]
    be._handles, be.min_batch, be.max_batch = {"global": eng}, eng.min_batch, eng.max_batch
    return be, eng, cuda


def test_a_static_dla_profile_pads_short_batches_and_slices_the_outputs():
    be, eng, _ = _backend({"lo": 8, "hi": 8})
    assert (eng.min_batch, eng.max_batch) == (8, 8)
    x = np.arange(12, dtype=np.float32).reshape(1, 3, 2, 2)
    out = be._run_many([x])[0]["global_logits"]
    assert out.shape == (1, 2)
    assert out[0, 0] == pytest.approx(x.mean()) and out[0, 1] == 8  # ran at the static batch 8, sliced to 1


def test_a_rejected_binding_raises_and_resets_the_slot():
    be, eng, cuda = _backend({"lo": 1, "hi": 4, "bind_ok": False})
    with pytest.raises(Exception, match="rejected the address"):
        be._run_many([np.zeros((2, 3, 2, 2), np.float32)])
    assert cuda.syncs >= 1 and eng.slots[0]["used"] is False


def test_inputs_fed_from_another_engine_get_no_buffers_and_close_frees_everything():
    from alage_edge.backends.trt_engine import Engine

    cuda = SimCuda()
    eng = Engine(SIM_TRT, cuda, SimEngine(cuda, lo=1, hi=32), "attention", external=("image",))
    assert all("image" not in s["dev"] for s in eng.slots)  # the global engine's buffer is bound instead
    eng.close()
    assert cuda.mem == {} and cuda.events == 0


@pytest.mark.parametrize("boxes", ["fixed", "learned", "anchors"])
def test_tensorrt_11_fp16_source_graph_runs_and_stays_close(boxes, tmp_path):
    """TensorRT 11 builds fp16 from an fp16 copy of the ONNX (``fp16_onnx``, fp32 I/O). That copy is made
    here for real (onnxconverter-common, as where nvidia-modelopt is absent) from every kind of attention
    graph (box regression with fixed or learned boxes, the LSTM anchor selector), and run in ONNX Runtime:
    it must load (a graph output read back inside the graph was once mistyped) and stay finite, and near
    the fp32 graph where nothing in it is chosen by a score."""
    pytest.importorskip("onnxconverter_common")
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from alage_edge.convert.export import export_bundle
    from alage_edge.convert.tensorrt import fp16_onnx
    from alage_edge.model import build_model

    from .conftest import TINY

    torch.manual_seed(0)
    model = build_model("al_resnet18", **dict(TINY, selector="lstm" if boxes == "anchors" else "boxes")).eval()
    if boxes == "learned":
        with torch.no_grad():
            for layer in model.attention_stream.box_layers:
                layer.weight.normal_(0, 0.5)
    export_bundle(model, tmp_path / "b")
    assert fp16_onnx(tmp_path / "b" / "attention.onnx", tmp_path / "att16.onnx") == "onnxconverter_common"
    x = np.random.default_rng(0).normal(size=(3, 3, 128, 128)).astype(np.float32)
    with torch.no_grad():
        g = model.global_stream(torch.from_numpy(x))[0].numpy()
    feeds = {"image": x, "g": g}
    ref = ort.InferenceSession(str(tmp_path / "b" / "attention.onnx"), providers=["CPUExecutionProvider"])
    half = ort.InferenceSession(str(tmp_path / "att16.onnx"), providers=["CPUExecutionProvider"])
    for a, b in zip(ref.run(None, feeds), half.run(None, feeds)):
        assert b.dtype == np.float32 and np.isfinite(b).all()
        if boxes == "fixed":  # learned boxes move with fp16 rounding and read other pixels (README, low precision)
            assert np.abs(a - b).max() < 0.05 * (1 + np.abs(a).max())


def test_mean_fusion_exports_a_stable_log_sum_exp_finite_in_fp16(tmp_path):
    """Issue: the export emitted ReduceLogSumExp, which onnx-tensorrt imports as exp then log-sum without the
    max: -inf in fp16. The graph has none now, and its fp16 copy (what TensorRT 11 builds from) stays finite
    and close with confident heads, run in ONNX Runtime."""
    pytest.importorskip("onnxconverter_common")
    torch = pytest.importorskip("torch")
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from alage_edge.convert.export import export_bundle
    from alage_edge.convert.tensorrt import fp16_onnx
    from alage_edge.model import build_model
    from alage_edge.preprocess import PreprocessSpec

    from .conftest import TINY

    torch.manual_seed(0)
    m = build_model("al_resnet18", fusion="mean", **TINY).eval()
    with torch.no_grad():
        for head in (m.attention_stream.global_head, m.attention_stream.local_head):
            head.weight.mul_(2000.0)
    export_bundle(m, tmp_path / "b")
    for graph in ("alnet.onnx", "attention.onnx"):
        ops = {n.op_type for n in onnx.load(str(tmp_path / "b" / graph)).graph.node}
        assert "ReduceLogSumExp" not in ops and {"Abs", "Exp", "Log"} <= ops, graph
    fp16_onnx(tmp_path / "b" / "attention.onnx", tmp_path / "att16.onnx")
    x = PreprocessSpec(size=128).random_input(4)
    sess = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])  # noqa: E731
    g = sess(tmp_path / "b" / "global.onnx").run(["g"], {"image": x})[0]
    ref, half = sess(tmp_path / "b" / "attention.onnx"), sess(tmp_path / "att16.onnx")
    names = [o.name for o in ref.get_outputs()]
    a = dict(zip(names, ref.run(None, {"image": x, "g": g})))["fused_logits"]
    b = dict(zip(names, half.run(None, {"image": x, "g": g})))["fused_logits"]
    assert np.isfinite(b).all() and a.min() < -20  # confident: fp16's exp alone would have underflowed
    assert np.abs(np.exp(a) - np.exp(b)).max() < 0.05  # the same distribution


class SimAttention(SimEngine):
    """An 'attention' engine: image (B,3,2,2) and g (B,2) -> fused_logits (B,2) = mean(image) + g[:, 0], B."""

    def __init__(self, cuda, lo, hi):
        super().__init__(cuda, lo, hi)
        self.num_io_tensors = 3

    def create_execution_context(self):
        return SimAttentionContext(self)

    def get_tensor_name(self, i):
        return ["image", "g", "fused_logits"][i]

    def get_tensor_mode(self, n):
        return "in" if n in ("image", "g") else "out"

    def get_tensor_shape(self, n):
        return [-1, 3, 2, 2] if n == "image" else [-1, 2]

    def get_tensor_profile_shape(self, n, i):
        tail = [3, 2, 2] if n == "image" else [2]
        return [self.lo, *tail], [self.lo, *tail], [self.hi, *tail]


class SimAttentionContext(SimContext):
    def execute_async_v3(self, stream):
        mem, b = self.eng.cuda.mem, self.batch
        x = np.frombuffer(mem[self.addr["image"]][: b * 12 * 4].tobytes(), np.float32).reshape(b, 12)
        g = np.frombuffer(mem[self.addr["g"]][: b * 8].tobytes(), np.float32).reshape(b, 2)
        y = np.stack([x.mean(1) + g[:, 0], np.full(b, b, np.float32)], 1).astype(np.float32)
        mem[self.addr["fused_logits"]][: y.nbytes] = np.frombuffer(y.tobytes(), np.uint8)
        return True


class ActiveSimCuda(SimCuda):
    """Counts the calls made outside ``activate()`` (each must run on the backend's own device)."""

    def __init__(self):
        super().__init__()
        self.depth, self.outside = 0, []

    def activate(self):
        import contextlib

        @contextlib.contextmanager
        def ctx():
            self.depth += 1
            try:
                yield
            finally:
                self.depth -= 1
        return ctx()

    def __getattribute__(self, name):
        attr = object.__getattribute__(self, name)
        if name in ("malloc", "host_empty", "stream", "h2d", "d2h", "event", "record", "event_sync", "sync") \
                and object.__getattribute__(self, "depth") == 0:
            object.__getattribute__(self, "outside").append(name)
        return attr


def _stream_backend(lo, hi):
    from alage_edge.backends.base import Backend
    from alage_edge.backends.tensorrt import TensorRTBackend
    from alage_edge.backends.trt_engine import Engine

    cuda = ActiveSimCuda()
    with cuda.activate():
        glob = Engine(SIM_TRT, cuda, SimEngine(cuda, lo, hi), "global")
        att = Engine(SIM_TRT, cuda, SimAttention(cuda, lo, hi), "attention", external=("image", "g"))
    be = TensorRTBackend.__new__(TensorRTBackend)
    be.cuda, be.graph, be.manifest = cuda, "split", SimpleNamespace(attention=True, preprocess=None)
    be._handles, be.min_batch, be.max_batch = {"global": glob, "attention": att}, lo, hi
    be._lock, be.thread_safe = __import__("threading").Lock(), False
    be.check = lambda x: x  # the range check is the base's (tested elsewhere); the sim's image is 2x2
    assert Backend.infer_stream is TensorRTBackend.infer_stream  # the one public path, not overridden
    return be, cuda


@pytest.mark.parametrize("lo,hi", [(8, 8), (1, 32)], ids=["static DLA-like profile", "dynamic profile"])
def test_infer_stream_runs_both_streams_from_host_arrays(lo, hi):
    """Issue: infer_stream("attention") raised KeyError: 'image' (no buffers for host-fed inputs), batch 3 on
    a static-8 engine was rejected, and no device context was made current on that path."""
    be, cuda = _stream_backend(lo, hi)
    x = np.arange(3 * 12, dtype=np.float32).reshape(3, 3, 2, 2)
    g = np.array([[1, 0], [2, 0], [3, 0]], np.float32)
    glob = be.infer_stream("global", {"image": x})["global_logits"]
    att = be.infer_stream("attention", {"image": x, "g": g})["fused_logits"]
    assert glob.shape == att.shape == (3, 2)
    assert np.allclose(att[:, 0], x.reshape(3, 12).mean(1) + g[:, 0])
    assert att[0, 1] == max(lo, 3)  # ran at the static batch 8 (padded), or at 3
    assert cuda.outside == [], f"CUDA calls outside the device's context: {cuda.outside}"


def test_loading_does_every_cuda_call_inside_the_devices_context(tmp_path, monkeypatch):
    """Issue: the runtime was created and the engine deserialised outside activate(): on device cuda:1 the
    weights went to device 0 and the context to device 1."""
    import alage_edge.backends.cuda as cuda_mod
    from alage_edge.backends import tensorrt as trt_backend

    cuda = ActiveSimCuda()
    calls = []

    class Runtime:
        def __init__(self, logger):
            calls.append(("Runtime", cuda.depth))

        def deserialize_cuda_engine(self, data):
            calls.append(("deserialize", cuda.depth))
            return SimEngine(cuda, 1, 8)

    fake = SimpleNamespace(Runtime=Runtime, Logger=lambda level: None, TensorIOMode=SIM_TRT.TensorIOMode,
                           __version__="10.3.0")
    fake.Logger.WARNING = 0
    monkeypatch.setitem(__import__("sys").modules, "tensorrt", fake)
    monkeypatch.setattr(cuda_mod, "cuda_api", lambda device=0: cuda)
    monkeypatch.setattr(trt_backend.TensorRTBackend, "can_run", classmethod(lambda cls, m, a, d=None: None))
    plan = tmp_path / "global.plan"
    plan.write_bytes(b"engine")
    be = trt_backend.TensorRTBackend.__new__(trt_backend.TensorRTBackend)
    be.manifest, be.device, be.precision, be.max_batch = SimpleNamespace(root=tmp_path), "cuda:1", "fp16", None
    be.artifact = SimpleNamespace(files={"global": "global.plan"}, info={"keys": {"global": {}}}, key="tensorrt-fp16")
    be.manifest.path = lambda rel: tmp_path / rel
    be._handles = {}
    be._load("global", plan)
    assert calls == [("Runtime", 1), ("deserialize", 1)] and cuda.outside == []


def test_dla_gate_needs_11_4_1_on_linux():
    from unittest import mock

    import alage_edge.convert.trt_plan as plan

    with mock.patch.object(plan, "windows_on_arm", return_value=False):
        assert "Windows on ARM only; Linux needs 11.4.1" in plan.dla_problem("11.4.0", "fp16")
        assert plan.dla_problem("11.4.1", "fp16") is None
    with mock.patch.object(plan, "windows_on_arm", return_value=True):
        assert plan.dla_problem("11.4.0", "fp16") is None


def test_tensorrt_8_is_refused_with_the_supported_versions():
    from alage_edge.convert.trt_plan import version_problem

    assert "8.5.2 is not supported" in version_problem("8.5.2") and "10.x" in version_problem("8.5.2")
    assert version_problem("10.3.0") is None and version_problem("11.4.1") is None


def test_engine_dtypes_come_from_our_own_map_not_trt_nptype():
    from alage_edge.backends.base import BackendError
    from alage_edge.backends.trt_engine import numpy_dtype

    assert numpy_dtype("DataType.FLOAT") == np.float32 and numpy_dtype(SimpleNamespace(name="HALF")) == np.float16
    assert numpy_dtype("DataType.BOOL") == np.bool_
    with pytest.raises(BackendError, match="BF16, which has no numpy type"):
        numpy_dtype("DataType.BF16")


@pytest.mark.parametrize("total,opt,has,want", [(300, 8, True, 8), (5, 8, True, 5), (5, 8, False, None)])
def test_calibration_batch_never_reads_past_a_small_set(total, opt, has, want):
    from alage_edge.convert.trt_plan import BuildError, calibration_batch

    if want is None:
        with pytest.raises(BuildError, match="fewer than the profile's opt batch 8"):
            calibration_batch(total, opt, has)
    else:
        assert calibration_batch(total, opt, has) == want


class _Recorder(SimpleNamespace):
    def __getattr__(self, name):  # any other builder/config call: recorded, returns a recorder
        def call(*a, **k):
            self.calls.append((name, a))
            return _Recorder(calls=self.calls)
        return call


def test_the_calibration_profile_is_the_calibrators_batch(tmp_path):
    """Issue: calibration ran at the engine profile's opt batch (8) with buffers for 5 images: TensorRT read
    past them. The calibration profile is now exactly the calibrator's batch."""
    from alage_edge.convert.tensorrt import build_stream
    from alage_edge.convert.trt_plan import plan_stream

    calls, shapes = [], []

    class Profile:
        def set_shape(self, name, mn, opt, mx):
            shapes.append((name, tuple(mn), tuple(opt), tuple(mx)))

    builder = _Recorder(calls=calls)
    builder.create_optimization_profile = Profile
    config = _Recorder(calls=calls)
    builder.create_builder_config = lambda: config
    builder.create_network = lambda flags: SimpleNamespace(num_layers=0)
    builder.build_serialized_network = lambda net, cfg: b"plan"
    trt = SimpleNamespace(__version__="10.3.0", Logger=lambda lvl: None, Builder=lambda logger: builder,
                          OnnxParser=lambda net, logger: SimpleNamespace(parse=lambda data: True),
                          MemoryPoolType=SimpleNamespace(WORKSPACE=0), BuilderFlag=SimpleNamespace(INT8=1, FP16=2),
                          NetworkDefinitionCreationFlag=SimpleNamespace(EXPLICIT_BATCH=0, STRONGLY_TYPED=5))
    trt.Logger.WARNING = 0
    man = SimpleNamespace(io={"global": {"inputs": {"image": [-1, 3, 64, 64]}}})
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    src = tmp_path / "g.onnx"  # what the stand-in parser reads does not matter; the pinning rule reads the file
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, [None, 3, 64, 64])
    onnx.save(helper.make_model(helper.make_graph([helper.make_node("Identity", ["image"], ["y"])], "g", [x],
                                                  [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])), src)
    plan = plan_stream("10.3.0", "int8", "global", "calibrator", "global")
    build_stream(trt, man, "global", plan, src, (1, 8, 32), 1.0, None, object(), [], calib_batch=5)
    calib = [c for c in calls if c[0] == "set_calibration_profile"]
    assert len(calib) == 1 and shapes[-1] == ("image", (5, 3, 64, 64), (5, 3, 64, 64), (5, 3, 64, 64))
    assert shapes[0] == ("image", (1, 3, 64, 64), (8, 3, 64, 64), (32, 3, 64, 64))  # the engine's own profile


def test_autocast_gets_the_dla_target_where_modelopt_has_it(tmp_path, monkeypatch):
    import sys
    import types

    onnx = pytest.importorskip("onnx")
    from alage_edge.convert.tensorrt import fp16_onnx

    seen = []
    src = tmp_path / "m.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph([], "g", [], [])), str(src))
    for signature in ("with", "without"):
        autocast = types.ModuleType("modelopt.onnx.autocast")
        if signature == "with":
            def convert(onnx_path, low_precision_type="fp16", keep_io_types=False, target_dla=False):
                seen.append(target_dla)
                return onnx.load(onnx_path)
        else:
            def convert(onnx_path, low_precision_type="fp16", keep_io_types=False):
                seen.append(None)
                return onnx.load(onnx_path)
        autocast.convert_to_mixed_precision = convert
        for name, mod in (("modelopt", types.ModuleType("modelopt")), ("modelopt.onnx", types.ModuleType("x")),
                          ("modelopt.onnx.autocast", autocast)):
            monkeypatch.setitem(sys.modules, name, mod)
        tool = fp16_onnx(src, tmp_path / f"{signature}.onnx", dla=True)
        assert ("(target_dla)" in tool) == (signature == "with") and "modelopt.autocast" in tool
    assert seen == [True, None]


def test_implicit_int8_pins_the_pixel_reading_convolutions_and_the_attention_glue():
    """The layers TensorRT's implicit INT8 must keep fp32, by ONNX node name (the parser's layer names): the
    rule every quantiser follows (int8_scope.float_convs), plus everything outside the local CNN in the
    attention stream. A stand-in network: what is tested is which layers OUR code pins."""
    from alage_edge.convert.tensorrt import pin_fp32

    class Layer:
        def __init__(self, name, dtype="float32"):
            self.name, self.num_outputs, self.precision, self._dt, self.out = name, 1, None, dtype, {}

        def get_output(self, i):
            return SimpleNamespace(dtype=self._dt)

        def set_output_type(self, i, t):
            self.out[i] = t

    trt = SimpleNamespace(float32="float32", BuilderFlag=SimpleNamespace(OBEY_PRECISION_CONSTRAINTS="obey"))
    flags = []
    config = SimpleNamespace(set_flag=flags.append)
    names = ["/stream/downsample/Conv", "/stream/backbone/conv1/Conv", "/stream/backbone/layer1/layer1.0/conv1/Conv"]
    glob = [Layer(n) for n in names]
    net = SimpleNamespace(num_layers=len(glob), get_layer=lambda i: glob[i])
    assert pin_fp32(trt, net, config, "global", names[:2]) == 2 and flags == ["obey"]
    assert [lay.precision for lay in glob] == ["float32", "float32", None]
    att = [Layer("/stream/local/conv1/Conv"), Layer("/stream/local/layer1/layer1.0/conv1/Conv"),
           Layer("/stream/lstm/MatMul"), Layer("/stream/navigator/features/features.0/Conv"),
           Layer("/stream/Shape", dtype="int64")]
    net = SimpleNamespace(num_layers=len(att), get_layer=lambda i: att[i])
    assert pin_fp32(trt, net, config, "attention", ["/stream/local/conv1/Conv"]) == 3
    assert [lay.precision for lay in att] == ["float32", None, "float32", "float32", None]
