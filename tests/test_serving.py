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


def test_convert_to_triton_writes_repositories_that_parse_and_match_their_graphs(trained_bundle, tmp_path, capsys):
    from alage_edge.cli import main
    from alage_edge.manifest import Manifest
    from alage_edge.serving.repository import check_repository

    has_ir = bool(Manifest.load(trained_bundle).find("openvino", "fp32"))
    for platform in ("python", "onnxruntime", "tensorrt") + (("openvino",) if has_ir else ()):
        out = tmp_path / platform
        extra = ["--precision", "fp32"] if platform == "openvino" else []
        assert main(["convert", str(trained_bundle), "--to", "triton", "--platform", platform, "--out", str(out)]
                    + extra) == 0
        checked = check_repository(out)  # Triton's model_config protobuf; ONNX names and shapes
        assert len(checked) == 5 and (out / "README.md").is_file()
    assert (tmp_path / "onnxruntime" / "alage_global" / "1" / "model.onnx").is_file()
    assert "build the TensorRT plans on the target device" in (tmp_path / "tensorrt" / "README.md").read_text()
    capsys.readouterr()
    with pytest.raises(SystemExit):  # never over an existing folder
        main(["convert", str(trained_bundle), "--to", "triton", "--out", str(tmp_path / "python")])
    assert "exists" in capsys.readouterr().err
    bad = tmp_path / "onnxruntime" / "alage_global" / "config.pbtxt"
    bad.write_text(bad.read_text().replace("dims: [ 128 ]", "dims: [ 64 ]"))
    with pytest.raises(ValueError, match="does not match model.onnx"):
        check_repository(tmp_path / "onnxruntime")


def test_pictures_with_face_detection_answer_what_predict_answers(served, local):
    import io

    from PIL import Image

    from alage_edge.serving.client import TritonClient
    from tests.fixtures import group_picture

    rgb, _ = group_picture(0)
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want = local.predict(rgb, detect_faces="hog")
    with TritonClient(served.grpc_url) as c:
        got = c.predict([buf.getvalue()], detect_faces="hog")
        blank = c.predict([_png(np.full((300, 300, 3), 90, np.uint8))], detect_faces="hog")
    assert len(got) == len(want) >= 4
    for g, w in zip(got, want):
        assert abs(g.age - w.age) < 1e-4 and np.abs(g.face_box - w.face_box).max() < 1e-3
        assert np.abs(g.attention_boxes - w.attention_boxes).max() < 1e-2
    assert len(blank) == 0 and len(blank.no_face) == 1


def _png(rgb) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format="PNG")
    return buf.getvalue()


def test_predict_url_prints_what_local_predict_prints(served, trained_bundle, tmp_path, capsys, synth_images):
    import json

    from alage_edge.cli import main

    path = tmp_path / "face.png"
    path.write_bytes(_png(synth_images[0]))
    assert main(["predict", str(trained_bundle), str(path), "--json", "--backend", "onnxruntime"]) == 0
    here = json.loads(capsys.readouterr().out)
    assert main(["predict", str(trained_bundle), str(path), "--json", "--url", served.url]) == 0
    there = json.loads(capsys.readouterr().out)
    assert len(here["results"]) == len(there["results"]) == 1
    a, b = here["results"][0], there["results"][0]
    assert abs(a["age"] - b["age"]) < 1e-3 and a["group"] == b["group"] and a["face_box"] == b["face_box"]


def test_an_empty_batch_is_refused(served):
    import tritonclient.http as th

    from alage_edge.serving.client import TritonClient

    with TritonClient(served.url) as c:
        empty = th.InferInput("image", [0, 3, 8, 8], "FP32")
        empty.set_data_from_numpy(np.zeros((0, 3, 8, 8), np.float32))
        with pytest.raises(th.InferenceServerException):
            c.client.infer("alage", [empty])


def test_serve_command_starts_and_stops_cleanly_on_sigint(trained_bundle):
    import os
    import signal
    import subprocess
    import sys
    import time

    ports = [server_mod.free_port() for _ in range(3)]
    cmd = [sys.executable, "-m", "alage_edge", "serve", str(trained_bundle), "--backend", "onnxruntime",
           "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2])]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        assert line.startswith("serving in"), (line, p.stderr.read() if p.poll() is not None else "")
        assert server_mod.TritonServer._ok(f"http://127.0.0.1:{ports[0]}/v2/models/alage/ready")
        t = time.perf_counter()
        p.send_signal(signal.SIGINT)
        assert p.wait(timeout=60) == 0, p.stderr.read()
        print(f"\nalage-edge serve stopped {time.perf_counter() - t:.1f} s after SIGINT")
    finally:
        if p.poll() is None:
            p.kill()
    left = [d for d in os.listdir("/proc") if d.isdigit() and _cmdline(d).find(f"--http-port={ports[0]}") >= 0]
    assert not left, "a tritonserver of the command outlived it"


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
