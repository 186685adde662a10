"""The real Triton Inference Server (nvidia-pytriton's tritonserver 2.51, Python backend) on a repository
written from the trained test bundle: answers equal in-process results, dynamic batching merges requests,
bad requests get errors and the server keeps serving, and stop leaves no process and no temp folder."""
from __future__ import annotations

import glob
import threading
import time
import warnings

import numpy as np
import pytest

server_mod = pytest.importorskip("alage_edge.serving.server")
from alage_edge.serving import watchdog  # noqa: E402

pytest.importorskip("tritonclient.http")
pytest.importorskip("tritonclient.grpc")
WHY = server_mod.why_not_runnable()
pytestmark = pytest.mark.skipif(WHY is not None, reason=f"tritonserver cannot run here: {WHY}")


@pytest.fixture(scope="module")
def served(trained_bundle, tmp_path_factory):
    from alage_edge.serving.repository import RepoOptions, write_repository

    repo = write_repository(trained_bundle, tmp_path_factory.mktemp("triton") / "repo",
                            RepoOptions(backend="onnxruntime", precision="fp32", max_batch=8, max_delay_us=20000))
    before = set(glob.glob(watchdog.PYTHON_ENV))
    s = server_mod.TritonServer(repo).start()
    yield s
    s.stop()
    assert s.pids() == [], "processes of the server outlived stop"
    left = set(glob.glob(watchdog.PYTHON_ENV)) - before
    assert not left and not s.workspace.exists() and not watchdog.shm_regions(s.shm_prefix), left
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
    deadline = time.monotonic() + 10  # Triton refreshes its metrics every couple of seconds: wait for the last
    while True:
        after = metrics(served.metrics_url)["alage_global"]
        requests = after["nv_inference_request_success"] - before.get("nv_inference_request_success", 0)
        execs = after["nv_inference_exec_count"] - before.get("nv_inference_exec_count", 0)
        if requests >= 160 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
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
    for platform in ("python", "onnxruntime") + (("openvino",) if has_ir else ()):
        out = tmp_path / platform
        extra = ["--precision", "fp32"] if platform == "openvino" else []
        assert main(["convert", str(trained_bundle), "--to", "triton", "--platform", platform, "--out", str(out)]
                    + extra) == 0
        checked = check_repository(out)  # Triton's model_config protobuf; ONNX names and shapes
        assert len(checked) == 5 and (out / "README.md").is_file()
    assert (tmp_path / "onnxruntime" / "alage_global" / "1" / "model.onnx").is_file()
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:  # issue: exited 0 with empty version folders
        main(["convert", str(trained_bundle), "--to", "triton", "--platform", "tensorrt", "--out",
              str(tmp_path / "trt")])
    assert e.value.code == 2 and "no TensorRT fp16 plan for the global stream" in capsys.readouterr().err
    assert not (tmp_path / "trt").exists()
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


# -- hostile-use findings (issue: green on every CPU, safe to serve) ------------------------------------------
def _listening(ports) -> dict:
    """port -> local addresses listening on it, read from the socket table (/proc/net/tcp, tcp6)."""
    import ipaddress

    found: dict = {}
    for table, v6 in (("/proc/net/tcp", False), ("/proc/net/tcp6", True)):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for ln in lines:
            f = ln.split()
            addr, port = f[1].split(":")
            if f[3] != "0A" or int(port, 16) not in ports:  # 0A: LISTEN
                continue
            raw = bytes.fromhex(addr)
            if v6:  # four little-endian 32-bit words
                raw = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
                ip = ipaddress.IPv6Address(raw)
                ip = ip.ipv4_mapped or ip
            else:
                ip = ipaddress.IPv4Address(raw[::-1])
            found.setdefault(int(port, 16), set()).add(ip)
    return found


def test_the_server_listens_on_loopback_only_by_default(served):
    ports = {served.http_port, served.grpc_port, served.metrics_port}
    table = _listening(ports)
    assert set(table) == ports, table
    assert all(ip.is_loopback for ips in table.values() for ip in ips), table


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("value,match", [(np.nan, "contains NaN"), (np.inf, "contains infinity"),
                                         (-np.inf, "contains infinity"), (1e30, "outside the preprocessed range"),
                                         (-50.0, "outside the preprocessed range")])
def test_non_finite_or_out_of_range_tensors_are_client_errors(served, local, protocol, value, match):
    from tritonclient.utils import InferenceServerException

    from alage_edge.serving.client import TritonClient

    x = local.spec.random_input(2)
    x[1, 0, 3, 3] = value  # one bad value in the second face of the batch
    with TritonClient(served.url if protocol == "http" else served.grpc_url) as c:
        with pytest.raises(InferenceServerException, match=match) as e:
            c.infer(x)
        assert str(e.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
        assert np.isfinite(c.infer(x[:1])["age"]).all()  # still serving


def test_undecodable_pictures_and_long_detector_names_are_short_client_errors(served):
    from tritonclient.utils import InferenceServerException

    from alage_edge.serving.client import TritonClient

    for url in (served.url, served.grpc_url):
        with TritonClient(url) as c:
            with pytest.raises(InferenceServerException) as e:
                c.picture(b"\x89PNG not really")
            assert str(e.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
            assert "object at 0x" not in str(e.value) and "not a readable image" in str(e.value)
            with pytest.raises(InferenceServerException, match="is not offered by this server") as e:
                c.picture(_png(np.zeros((64, 64, 3), np.uint8)), "x" * 1_000_000)
            assert len(str(e.value)) < 400
            with pytest.raises(InferenceServerException, match="'cnn' is not offered"):  # default: hog only
                c.picture(_png(np.zeros((64, 64, 3), np.uint8)), "cnn")


def test_successful_requests_leave_no_traceback_in_the_log(served, local):
    from alage_edge.serving.client import TritonClient

    with TritonClient(served.url) as c:
        for _ in range(3):
            c.infer(local.spec.random_input(2))
    log = served.log.read_text(errors="replace")
    assert "PyCapsule_GetPointer" not in log and "Traceback" not in log


def _serve(bundle, *extra, **popen):
    import subprocess
    import sys

    ports = [server_mod.free_port() for _ in range(3)]
    cmd = [sys.executable, "-m", "alage_edge", "serve", str(bundle), "--backend", "onnxruntime",
           "--http-port", str(ports[0]), "--grpc-port", str(ports[1]), "--metrics-port", str(ports[2]), *extra]
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **popen)
    line = p.stdout.readline()
    if not line.startswith("serving in"):
        p.kill()
        raise AssertionError((line, p.stderr.read()))
    return p, ports


def _tritonservers(port: int) -> list:
    import os

    return [int(d) for d in os.listdir("/proc") if d.isdigit() and f"--http-port={port}" in _cmdline(d)
            and _cmdline(d).split(" ", 1)[0].endswith("/tritonserver")]


def _workspace_of(pid: int):
    from pathlib import Path

    arg = [a for a in _cmdline(str(pid)).split() if a.startswith("--backend-directory=")][0]
    return Path(arg.split("=", 1)[1]).parent


def _gone_within(check, seconds: float) -> bool:
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.2)
    return check()


@pytest.fixture
def serving(trained_bundle):
    """``alage-edge serve`` in a subprocess: (process, ports); killed at the end whatever the test did."""
    started = []

    def start(*extra):
        started.append(_serve(trained_bundle, *extra))
        return started[-1]
    yield start
    for p, _ in started:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=30)


def test_kill_9_of_serve_leaves_no_server_and_no_files(serving):
    import os
    import signal

    p, ports = serving()
    (pid,) = _tritonservers(ports[0])
    repo = [a for a in _cmdline(str(pid)).split() if a.startswith("--model-repository=")][0].split("=", 1)[1]
    ws = _workspace_of(pid)
    prefix = [a for a in _cmdline(str(pid)).split() if "shm-region-prefix-name=" in a][0].split("=")[-1]
    assert ws.is_dir() and watchdog.shm_regions(prefix)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(timeout=10)
    assert _gone_within(lambda: not _tritonservers(ports[0]), 40), "tritonserver outlived its killed parent"
    assert _gone_within(lambda: not ws.exists() and not watchdog.shm_regions(prefix), 20), os.listdir(ws)
    assert not os.path.exists(repo), "the temp model repository outlived its killed parent"


def test_sighup_stops_serve_cleanly(serving):
    import signal

    p, ports = serving()
    p.send_signal(signal.SIGHUP)
    assert p.wait(timeout=60) == 0, p.stderr.read()
    assert not _tritonservers(ports[0])


def test_stop_removes_only_what_its_server_made(serving, tmp_path):
    """Issue: on stop, serve removed every /tmp/folder*, /tmp/python_env_* and Triton shm region that appeared
    while it ran, whoever made them."""
    import os
    import signal
    import tempfile

    mine = [tempfile.mkdtemp(prefix="python_env_", dir="/tmp"), tempfile.mkdtemp(prefix="folder_x", dir="/tmp"),
            "/dev/shm/triton_python_backend_shm_region_someone_else"]
    try:
        p, ports = serving()
        others = [tempfile.mkdtemp(prefix="python_env_", dir="/tmp"), tempfile.mkdtemp(prefix="folder", dir="/tmp")]
        for d in mine[:2] + others:
            open(os.path.join(d, "keep.txt"), "w").write("another process's file")
        with open(mine[2], "wb") as f:
            f.write(b"another server's region")
        p.send_signal(signal.SIGTERM)
        assert p.wait(timeout=60) == 0, p.stderr.read()
        for d in mine[:2] + others:
            assert open(os.path.join(d, "keep.txt")).read() == "another process's file", d
        assert open(mine[2], "rb").read() == b"another server's region"
    finally:
        import shutil

        for d in mine[:2] + locals().get("others", []):
            shutil.rmtree(d, ignore_errors=True)
        if os.path.exists(mine[2]):
            os.unlink(mine[2])


def test_a_crashed_server_is_reported_by_serve_and_by_the_client(serving, trained_bundle, tmp_path, capsys):
    import os
    import signal

    from alage_edge.cli import main

    p, ports = serving()
    (pid,) = _tritonservers(ports[0])
    os.kill(pid, signal.SIGKILL)
    assert p.wait(timeout=30) == 1
    err = p.stderr.read()
    assert "tritonserver exited unexpectedly (exit code -9)" in err and "PyCapsule" not in err
    path = tmp_path / "face.png"
    path.write_bytes(_png(np.zeros((64, 64, 3), np.uint8)))
    assert main(["predict", str(trained_bundle), str(path), "--url", f"http://127.0.0.1:{ports[0]}"]) == 2
    msg = capsys.readouterr().err.strip()
    assert "the connection failed" in msg and len(msg.splitlines()) == 1 and "Traceback" not in msg, msg


def _with_plans(bundle, tmp_path, dla_core, profiles):
    """A copy of the bundle with a recorded TensorRT fp16 artifact (placeholder plan bytes: Triton's
    config is what is checked, the plans never run here)."""
    import shutil

    from alage_edge.convert.bundle import updating
    from alage_edge.manifest import Artifact, Manifest

    b = tmp_path / "b"
    shutil.copytree(bundle, b)
    streams = list(Manifest.load(b).io)
    files = {}
    (b / "tensorrt").mkdir()
    for st in ("global", "attention"):
        if st in streams:
            (b / "tensorrt" / f"{st}.plan").write_bytes(b"plan placeholder")
            files[st] = f"tensorrt/{st}.plan"
    with updating(b) as m:
        for f in files.values():
            m.record_file(f)
        m.add_artifact(Artifact("tensorrt", "fp16", files, {"dla_core": dla_core, "batch": [1, 8, 16],
                                                           "profiles": profiles}))
    return b


def test_triton_tensorrt_config_takes_its_batch_from_the_plans_profile(trained_bundle, tmp_path):
    from google.protobuf import text_format
    from tritonclient.grpc import model_config_pb2

    from alage_edge.serving.repository import RepoOptions, write_repository

    b = _with_plans(trained_bundle, tmp_path, None, {"global": [1, 4, 12], "attention": [1, 8, 16]})
    repo = write_repository(b, tmp_path / "repo", RepoOptions(platform="tensorrt", max_batch=32))
    for name in ("alage_global", "alage_attention", "alage"):
        cfg = text_format.Parse((repo / name / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())
        assert cfg.max_batch_size == 12, name  # the smallest profile maximum: the ensemble's too
    assert (repo / "alage_global" / "1" / "model.plan").read_bytes() == b"plan placeholder"


@pytest.mark.parametrize("dla,profiles,match", [
    (0, {"global": [8, 8, 8], "attention": [1, 8, 16]}, "built for DLA core 0 with a static batch of 8"),
    (None, {"global": [2, 8, 16], "attention": [1, 8, 16]}, "batch profile from 2 to 16"),
])
def test_triton_tensorrt_refuses_plans_triton_cannot_feed(trained_bundle, tmp_path, dla, profiles, match):
    from alage_edge.serving.repository import RepoOptions, write_repository

    b = _with_plans(trained_bundle, tmp_path, dla, profiles)
    with pytest.raises(ValueError, match=match):
        write_repository(b, tmp_path / "repo", RepoOptions(platform="tensorrt"))
    assert not (tmp_path / "repo").exists()


@pytest.mark.parametrize("argv,err", [
    (["--max-batch", "100000"], "--max-batch: expected at most 256"),
    (["--detectors", "hog,dnn"], "--detectors: expected a comma-separated list"),
    (["--detectors", ""], "--detectors: expected a comma-separated list"),
    (["--max-pixels", "0"], "--max-pixels: expected a positive integer"),
    (["--max-pixels", "200000000"], "--max-pixels: at most"),
])
def test_serve_refuses_bad_limits_before_starting(trained_bundle, capsys, argv, err):
    from alage_edge.cli import main

    with pytest.raises(SystemExit) as e:
        main(["serve", str(trained_bundle), *argv])
    assert e.value.code == 2 and err in capsys.readouterr().err


# -- the standing catalogue, over the wire ---------------------------------------------------------------------
def _bomb_png() -> bytes:
    import struct
    import zlib

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 100)) + chunk(b"IEND", b""))


TENSOR_CASES = {  # request -> text the error must hold (None: a valid request, answered)
    "fp64 tensor": ("FP64", lambda s: np.zeros((1, 3, s, s), np.float64), "data-type|datatype"),
    "int32 tensor": ("INT32", lambda s: np.zeros((1, 3, s, s), np.int32), "data-type|datatype"),
    "uint8 tensor": ("UINT8", lambda s: np.zeros((1, 3, s, s), np.uint8), "data-type|datatype"),
    "one channel": ("FP32", lambda s: np.zeros((1, 1, s, s), np.float32), "unexpected shape"),
    "half size": ("FP32", lambda s: np.zeros((1, 3, s // 2, s // 2), np.float32), "unexpected shape"),
    "NHWC": ("FP32", lambda s: np.zeros((1, s, s, 3), np.float32), "unexpected shape"),
    "batch over max": ("FP32", lambda s: np.zeros((9, 3, s, s), np.float32), "batch-size must be <= 8"),
    "all NaN": ("FP32", lambda s: np.full((1, 3, s, s), np.nan, np.float32), "contains NaN"),
    "all -inf": ("FP32", lambda s: np.full((1, 3, s, s), -np.inf, np.float32), "contains infinity"),
    "1e30": ("FP32", lambda s: np.full((1, 3, s, s), 1e30, np.float32), "outside the preprocessed range"),
    "pixels 0..255 unnormalised": ("FP32", lambda s: np.full((1, 3, s, s), 128.0, np.float32),
                                   "outside the preprocessed range"),
    "zeros": ("FP32", lambda s: np.zeros((1, 3, s, s), np.float32), None),
    "batch of 8": ("FP32", lambda s: np.zeros((8, 3, s, s), np.float32), None),
}
PICTURE_CASES = {  # (picture bytes, detector) -> error text (None: answered)
    "empty picture": (lambda: b"", "", "empty byte string"),
    "garbage": (lambda: b"\x00\x01garbage", "", "not a readable image"),
    "truncated png": (lambda: _png(np.zeros((64, 64, 3), np.uint8))[:50], "", "not a readable image"),
    "text": (lambda: b"hello, server", "", "not a readable image"),
    "1x1 png": (lambda: _png(np.zeros((1, 1, 3), np.uint8)), "", "at least 8x8"),
    "bomb header": (_bomb_png, "", "larger than the limit|too large"),
    "grey png": (lambda: _png(np.full((64, 64), 90, np.uint8)), "", None),
    "rgba png": (lambda: _png(np.full((64, 64, 4), 90, np.uint8)), "", None),
    "detector HOG": (lambda: _png(np.zeros((64, 64, 3), np.uint8)), "HOG", "not offered"),
    "detector haar not offered": (lambda: _png(np.zeros((64, 64, 3), np.uint8)), "haar", "not offered"),
    "detector unicode": (lambda: _png(np.zeros((64, 64, 3), np.uint8)), "h\u00f6g", "not offered"),
    "detector hog, no face": (lambda: _png(np.full((64, 64, 3), 90, np.uint8)), "hog", None),
}


def _still_ready(served):
    assert server_mod.TritonServer._ok(f"{served.url}/v2/models/alage/ready")
    assert server_mod.TritonServer._ok(f"{served.url}/v2/models/alage_pictures/ready")


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(TENSOR_CASES))
def test_tensor_request_catalogue(served, protocol, case):
    from tritonclient.utils import InferenceServerException

    from alage_edge.serving.client import TritonClient
    from tests.test_bad_inputs import TRIED

    TRIED.append(f"server {protocol} alage {case}")
    dtype, make, err = TENSOR_CASES[case]
    x = make(served_size(served))
    with TritonClient(served.url if protocol == "http" else served.grpc_url) as c:
        i = c.tc.InferInput("image", list(x.shape), dtype)
        i.set_data_from_numpy(x)
        if err is None:
            r = c.client.infer("alage", [i])
            assert np.isfinite(r.as_numpy("age")).all() and len(r.as_numpy("age")) == len(x)
        else:
            with pytest.raises(InferenceServerException, match=err):
                c.client.infer("alage", [i])
    _still_ready(served)


@pytest.mark.parametrize("protocol", ["http", "grpc"])
@pytest.mark.parametrize("case", list(PICTURE_CASES))
def test_picture_request_catalogue(served, protocol, case):
    from tritonclient.utils import InferenceServerException

    from alage_edge.serving.client import TritonClient
    from tests.test_bad_inputs import TRIED

    TRIED.append(f"server {protocol} alage_pictures {case}")
    make, det, err = PICTURE_CASES[case]
    with TritonClient(served.url if protocol == "http" else served.grpc_url) as c:
        if err is None:
            out = c.picture(make(), det)
            assert np.isfinite(out["age"]).all() and len(out["age"]) == (0 if det else 1)
        else:
            with pytest.raises(InferenceServerException, match=err) as e:
                c.picture(make(), det)
            assert str(e.value.status()) in ("400", "StatusCode.INVALID_ARGUMENT")
    _still_ready(served)


def served_size(served) -> int:
    from alage_edge.manifest import Manifest

    params = (served.repository / "alage_pictures" / "config.pbtxt").read_text()
    bundle = params.split('key: "bundle" value: { string_value: "', 1)[1].split('"', 1)[0]
    return Manifest.load(bundle).preprocess.size


def test_serve_that_cannot_start_leaves_no_temp_repository(trained_bundle, monkeypatch, capsys):
    import glob
    import signal

    from alage_edge.cli import main

    def missing():
        raise server_mod.ServerError("no tritonserver here (test)")

    import os
    import tempfile

    pattern = os.path.join(tempfile.gettempdir(), "alage-repo-*")  # where serve makes its temp repository
    before = set(glob.glob(pattern))
    monkeypatch.setattr(server_mod, "triton_home", missing)
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        assert main(["serve", str(trained_bundle), "--backend", "onnxruntime"]) == 2
    finally:
        for s, h in old.items():
            signal.signal(s, h)
    assert "no tritonserver here (test)" in capsys.readouterr().err
    assert set(glob.glob(pattern)) == before
