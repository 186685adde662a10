"""The real Triton Inference Server (nvidia-pytriton's tritonserver 2.51, Python backend) on a repository
written from the trained test bundle: answers equal in-process results, dynamic batching merges requests,
bad requests get errors and the server keeps serving, and stop leaves no process and no temp folder."""
from __future__ import annotations

import glob
import threading
import warnings

import numpy as np
import pytest

server_mod = pytest.importorskip("alage_edge.serving.server")
pytest.importorskip("tritonclient.http")
pytest.importorskip("tritonclient.grpc")
WHY = server_mod.why_not_runnable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"tritonserver cannot run here: {WHY}")


@pytest.fixture(scope="module")
def served(trained_bundle, tmp_path_factory):
    from alage_edge.serving.repository import RepoOptions, write_repository

    repo = write_repository(trained_bundle, tmp_path_factory.mktemp("triton") / "repo",
                            RepoOptions(backend="onnxruntime", precision="fp32", max_batch=8, max_delay_us=20000))
    before = {p for pat in server_mod.TEMP_LEFTOVERS for p in glob.glob(pat)}
    s = server_mod.TritonServer(repo).start()
    yield s
    s.stop()
    assert s.pids() == [], "processes of the server outlived stop"
    left = {p for pat in server_mod.TEMP_LEFTOVERS for p in glob.glob(pat)} - before
    assert not left and not s.workspace.exists(), left
    print(f"\ntritonserver start-up {s.startup_s:.1f} s, shutdown {s.shutdown_s:.1f} s")


@pytest.fixture(scope="module")
def local(trained_bundle):
    from alage_edge.estimator import AgeEstimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        e = AgeEstimator.load(trained_bundle, backend="onnxruntime", precision="fp32")
    yield e
    e.close()


@pytest.mark.parametrize("protocol", ["http", "grpc"])
def test_the_ensemble_answers_what_the_fused_graph_answers(served, local, protocol, synth_images):
    from alage_edge.serving.client import TritonClient

    x = np.stack([local.spec.apply(im) for im in synth_images[:6]])
    want = local.infer(x)
    with TritonClient(served.url if protocol == "http" else served.grpc_url) as c:
        got = c.infer(x)
    assert np.abs(got["age"] - want["age"]).max() < 1e-4
    assert np.abs(got["std"] - want["std"]).max() < 1e-4
    assert (got["group"] == want["group"]).all()
    assert np.abs(got["boxes"] - want["boxes"]).max() < 1e-5


def test_dynamic_batching_merges_concurrent_requests(served, local, synth_images):
    from alage_edge.serving.client import TritonClient, metrics

    x = local.spec.apply(synth_images[0])[None]
    before = metrics(served.metrics_url).get("alage_global", {})
    errors = []

    def work():
        try:
            with TritonClient(served.url) as c:
                for _ in range(20):
                    c.infer(x)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert not errors, errors
    after = metrics(served.metrics_url)["alage_global"]
    requests = after["nv_inference_request_success"] - before.get("nv_inference_request_success", 0)
    execs = after["nv_inference_exec_count"] - before.get("nv_inference_exec_count", 0)
    print(f"\n160 requests -> {execs:.0f} executions of alage_global (mean merged batch {requests / execs:.1f})")
    assert requests == 160 and execs < requests


def test_bad_requests_get_errors_and_the_server_keeps_serving(served, local, synth_images):
    import tritonclient.http as th

    from alage_edge.serving.client import TritonClient

    with TritonClient(served.url) as c:
        for arr, dtype, match in [(np.zeros((1, 3, 32, 32), np.float32), "FP32", "unexpected shape"),
                                  (np.zeros((1, 3, 32, 32), np.float64), "FP64", "data-type")]:
            i = th.InferInput("image", list(arr.shape), dtype)
            i.set_data_from_numpy(arr)
            with pytest.raises(th.InferenceServerException, match=match):
                c.client.infer("alage", [i])
        bad = th.InferInput("image", [7], "UINT8")
        bad.set_data_from_numpy(np.frombuffer(b"garbage", np.uint8))
        with pytest.raises(th.InferenceServerException, match="cannot identify|not a picture|image"):
            c.client.infer("alage_pictures", [bad])
        x = local.spec.apply(synth_images[0])[None]
        assert np.isfinite(c.infer(x)["age"]).all()  # still serving


def test_repository_configs_parse_with_tritons_own_schema(trained_bundle, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from alage_edge.serving.repository import RepoOptions, write_repository

    for platform in ("python", "onnxruntime"):
        repo = write_repository(trained_bundle, tmp_path / platform, RepoOptions(platform=platform))
        for cfg in repo.glob("*/config.pbtxt"):
            m = text_format.Parse(cfg.read_text(), model_config_pb2.ModelConfig())
            assert m.name == cfg.parent.name
        if platform == "onnxruntime":
            import onnx

            g = onnx.load(str(repo / "alage_global" / "1" / "model.onnx"))
            assert [i.name for i in g.graph.input] == ["image"]
    with pytest.raises(FileExistsError):
        write_repository(trained_bundle, tmp_path / "python")
