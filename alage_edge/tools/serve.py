"""``alage-edge serve``: a bundle on the real Triton Inference Server until SIGINT / SIGTERM."""
from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import List, Optional

from ..argtypes import non_negative_int, port, positive_int
from ..backends import TABLE as BACKENDS
from ..formats import PRECISIONS
from ..images import MAX_PIXELS
from ..serving.repository import DEFAULT_MAX_PIXELS, MAX_BATCH


def _batch(text: str) -> int:
    v = positive_int(text)
    if v > MAX_BATCH:
        raise argparse.ArgumentTypeError(f"expected at most {MAX_BATCH}, got {v}")
    return v


def _detectors(text: str) -> tuple:
    from ..faces import DETECTORS

    names = tuple(d.strip() for d in text.split(",") if d.strip())
    bad = [d for d in names if d not in DETECTORS]
    if bad or not names:
        raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(DETECTORS)}, got {text!r}")
    return names


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alage-edge serve",
        description="Serve a bundle on Triton Inference Server (the tritonserver of nvidia-pytriton's wheel), "
                    "HTTP, gRPC and Prometheus metrics, dynamic batching on. Models: 'alage' (preprocessed "
                    "float32 image [B, 3, S, S] -> age, std, group, group_probs, boxes) and 'alage_pictures' "
                    "(a picture file's bytes as UINT8, optional detector name as UINT8 -> one row per face, "
                    "boxes in picture pixels). Stops cleanly on Ctrl-C / SIGTERM.",
        epilog="examples:\n  alage-edge serve bundle/\n"
               "  alage-edge serve bundle/ --backend openvino --precision int8 --max-batch 16 --instances 2\n"
               "  alage-edge predict bundle/ crowd.jpg --url http://localhost:8000 --detect-faces\n\n"
               "Another Triton of your own: alage-edge convert bundle/ --to triton --platform onnxruntime",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--backend", default="auto", choices=["auto", *(b for b in BACKENDS if b != "tensorrt")],
                   help="alage-edge backend running each stream inside Triton's Python backend")
    p.add_argument("--precision", default=None, choices=[*PRECISIONS, "auto"],
                   help="auto: the fastest artifact that passed `alage-edge parity` on this machine")
    p.add_argument("--host", default="127.0.0.1",
                   help="address HTTP, gRPC and metrics listen on (default 127.0.0.1: this machine only; "
                        "0.0.0.0 or :: to serve the network, which has no authentication: put a proxy in front)")
    p.add_argument("--detectors", default="hog", type=_detectors, metavar="LIST",
                   help="face detectors alage_pictures offers, comma-separated from hog, cnn, haar (default hog; "
                        "cnn costs ~20 s a photo on a CPU: offer it only to trusted clients)")
    p.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                   help=f"largest picture a request may send, in pixels (default {DEFAULT_MAX_PIXELS:,})")
    p.add_argument("--http-port", type=port, default=8000)
    p.add_argument("--grpc-port", type=port, default=8001)
    p.add_argument("--metrics-port", type=port, default=8002)
    p.add_argument("--max-batch", type=_batch, default=16, help=f"largest merged batch, 1 to {MAX_BATCH} (default 16)")
    p.add_argument("--max-delay-us", type=non_negative_int, default=2000,
                   help="how long the dynamic batcher waits to fill a batch, microseconds (default 2000)")
    p.add_argument("--instances", type=positive_int, default=1, help="model instances per stream (default 1)")
    p.add_argument("--threads", type=non_negative_int, default=0, help="intra-op threads per instance (default: the backend's)")
    p.add_argument("--repository", default=None,
                   help="also keep the model repository in this new folder (default: a temp folder, removed)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    from ..serving.repository import RepoOptions, write_repository
    from ..serving.server import LOOPBACK, TritonServer

    if args.max_pixels > MAX_PIXELS:
        parser().error(f"--max-pixels: at most {MAX_PIXELS:,}, got {args.max_pixels:,}")
    opts = RepoOptions(backend=args.backend, precision=args.precision, max_batch=args.max_batch,
                       max_delay_us=args.max_delay_us, instances=args.instances, threads=args.threads,
                       detectors=args.detectors, max_pixels=args.max_pixels)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # SIGHUP: the terminal closed
        signal.signal(sig, lambda *_: stop.set())
    tmp = None if args.repository else tempfile.mkdtemp(prefix="alage-repo-")
    try:
        repo = write_repository(args.bundle, Path(args.repository or Path(tmp) / "repo"), opts)
    except BaseException:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        raise
    # the temp repository goes with the server, removed by its watchdog even if this process is killed
    server = TritonServer(repo, http_port=args.http_port, grpc_port=args.grpc_port, metrics_port=args.metrics_port,
                          host=args.host, remove_on_stop=[tmp] if tmp else [])
    if args.host not in LOOPBACK:
        print(f"alage-edge serve: listening on {args.host}: reachable from the network, with no "
              f"authentication (--host 127.0.0.1 keeps it to this machine)", file=sys.stderr)
    print(f"starting tritonserver on {args.bundle} ({args.backend} {args.precision or ''})...", file=sys.stderr)
    try:
        with server:
            print(f"serving in {server.startup_s:.1f} s: HTTP {server.url}  gRPC {server.grpc_url}  "
                  f"metrics {server.metrics_url}\nmodels: alage (tensors), alage_pictures (picture bytes); "
                  f"Ctrl-C stops", flush=True)
            while not stop.wait(0.5):
                if not server.alive():
                    time.sleep(0.3)  # the watchdog reports the exit code
                    print(f"alage-edge serve: tritonserver exited unexpectedly (exit code {server.returncode}); "
                          f"its log ends:\n{server.log_tail()}", file=sys.stderr)
                    return 1
            print("stopping...", file=sys.stderr, flush=True)
    finally:  # the watchdog removes the temp repository; this covers a server that never started
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"stopped in {server.shutdown_s:.1f} s; nothing left behind", file=sys.stderr)
    return 0
