"""TensorRT: the version logic everywhere; engines built and run where `import tensorrt` works."""
import importlib.util
import json
import shutil

import numpy as np
import pytest

from alage_edge.convert.trt_plan import BuildError, choose_int8_path, major_version

HAS_TRT = importlib.util.find_spec("tensorrt") is not None


def test_int8_path_follows_the_installed_version():
    assert choose_int8_path("8.6.2") == "calibrator"  # JetPack 5
    assert choose_int8_path("10.3.0") == "calibrator"  # JetPack 6
    assert choose_int8_path("10.3.0", "qdq") == "qdq"
    assert choose_int8_path("11.4.0") == "qdq"
    with pytest.raises(BuildError, match="removed in 11"):
        choose_int8_path("11.0.1", "calibrator")
    assert major_version("10.16.1.post1") == 10


def test_cuda_helper_checks_error_codes():
    """The cuda-python wrapper turns (err, value) tuples into values or errors (fake runtime)."""
    from alage_edge.backends.cuda import CudaError, CudaPython

    class FakeRT:
        class cudaMemcpyKind:
            cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice = 1, 2, 3

        calls = []

        def cudaMalloc(self, n):
            self.calls.append(("malloc", n))
            return (0, 4096)

        def cudaGetDeviceCount(self):
            return (100, None)  # cudaErrorNoDevice

        def cudaGetErrorName(self, err):
            return (0, "cudaErrorNoDevice")

        def cudaFree(self, p):
            return (1,)

    cuda = CudaPython(FakeRT())
    assert cuda.malloc(10) == 4096 and cuda.device_count() == 0
    with pytest.raises(CudaError, match="cudaFree failed"):
        cuda.free(4096)


tensorrt = pytest.mark.skipif(not HAS_TRT, reason="TensorRT is not installed here (it cannot be installed from "
                                                    "this project's package registry); runs where `import tensorrt` works")


@pytest.fixture()
def gpu():
    """A GPU as TensorRT finds one: through the CUDA wrapper, not torch (Jetsons rarely have a CUDA torch)."""
    from alage_edge.backends.cuda import cuda_api

    try:
        count = cuda_api().device_count()
    except Exception as e:  # no cuda-python / pycuda, no driver
        pytest.skip(f"no CUDA GPU reachable ({type(e).__name__}: {e})")
    if count == 0:
        pytest.skip("no CUDA GPU")


@tensorrt
@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_tensorrt_engine_matches_onnxruntime(gpu, device_bundle, tmp_path, precision):
    from alage_edge import AgeEstimator
    from alage_edge.convert.tensorrt import build

    b = tmp_path / "b"
    shutil.copytree(device_bundle, b)
    art = build(b, precision, batch=(1, 4, 8))[0]
    key = json.loads((b / (art.files["global"] + ".json")).read_text())
    assert key["precision"] == precision and key["onnx_sha256"]
    trt_est = AgeEstimator.load(b, backend="tensorrt", precision=precision)
    ref = AgeEstimator.load(b, backend="onnxruntime")
    x = ref.spec.random_input(6)
    d = np.abs(trt_est.infer(x)["age"] - ref.infer(x)["age"])
    assert d.max() < (0.05 if precision == "fp32" else 0.5)
    many = list(trt_est.backend.infer_many([x[:2], x[2:4], x[4:]]))  # the two-stream pipeline
    assert np.abs(np.concatenate([m["fused_logits"] for m in many]) - trt_est.infer(x)["fused_logits"]).max() < 1e-3


@tensorrt
@pytest.mark.tensorrt
@pytest.mark.gpu
def test_tensorrt_int8_and_foreign_engines(gpu, device_bundle, tmp_path):
    from alage_edge import AgeEstimator
    from alage_edge.backends import BackendError
    from alage_edge.convert.bundle import updating
    from alage_edge.convert.tensorrt import build

    b = tmp_path / "b"
    shutil.copytree(device_bundle, b)
    art = build(b, "int8", data="synth:seed=5", calib_size=64, batch=(1, 8, 8))[0]
    est = AgeEstimator.load(b, backend="tensorrt", precision="int8")
    assert est.infer(est.spec.random_input(2))["age"].shape == (2,)
    sidecar = b / (art.files["global"] + ".json")
    key = json.loads(sidecar.read_text())
    sidecar.write_text(json.dumps({**key, "tensorrt": "9.0.0"}))
    with updating(b) as m:
        m.record_file(art.files["global"] + ".json")
    with pytest.raises(BackendError, match="rebuild on this device"):
        AgeEstimator.load(b, backend="tensorrt", precision="int8")


def test_the_device_fixture_bundle_needs_no_torch(onnx_bundle):
    """The bundle the TensorRT tests use on a Jetson (no torch) loads and answers with torch blocked, and
    its split and fused graphs agree: it is a real bundle, not a stub."""
    import subprocess
    import sys

    code = f"""
import sys
sys.modules["torch"] = None  # importing torch now fails
from alage_edge import AgeEstimator
import numpy as np
a = AgeEstimator.load({str(onnx_bundle)!r}, backend="onnxruntime", graph="split")
b = AgeEstimator.load({str(onnx_bundle)!r}, backend="onnxruntime", graph="fused")
x = a.spec.random_input(3)
assert np.abs(a.infer(x)["age"] - b.infer(x)["age"]).max() < 1e-4
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
