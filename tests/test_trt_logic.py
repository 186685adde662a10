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
    assert "fp16-typed" in dla_problem("11.4.0", "int8")
    assert dla_problem("11.4.0", "fp16") is None
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

    m = build_model("al_resnet18", img_size=64, width=8, local_width=8, crop_size=32, hidden=32, fusion="mean")
    with torch.no_grad():
        for head in (m.attention_stream.global_head, m.attention_stream.local_head):
            head.weight.mul_(2000.0)  # confident heads: probabilities far below fp16's smallest value
    m = m.eval().half()
    with torch.no_grad():
        out = m(torch.randn(2, 3, 64, 64).half())["fused_logits"]
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
        return "f32"

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


SIM_TRT = SimpleNamespace(TensorIOMode=SimpleNamespace(INPUT="in"), nptype=lambda t: np.float32)


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


@pytest.mark.parametrize("boxes", ["fixed", "learned"])
def test_tensorrt_11_fp16_source_graph_runs_and_stays_close(boxes, tmp_path):
    """TensorRT 11 builds fp16 from an fp16 copy of the ONNX (``fp16_onnx``, fp32 I/O). That copy is made
    here for real (onnxconverter-common, as where nvidia-modelopt is absent) from both attention graphs,
    and run in ONNX Runtime: it must load (a graph output read back inside the graph was once mistyped)
    and stay near the fp32 graph."""
    pytest.importorskip("onnxconverter_common")
    torch = pytest.importorskip("torch")
    ort = pytest.importorskip("onnxruntime")
    from alage_edge.convert.export import export_bundle
    from alage_edge.convert.tensorrt import fp16_onnx
    from alage_edge.model import build_model

    from .conftest import TINY

    torch.manual_seed(0)
    model = build_model("al_resnet18", **TINY).eval()
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
