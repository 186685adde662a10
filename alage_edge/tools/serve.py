"""``alage-edge serve``: a bundle on the real Triton Inference Server until SIGINT / SIGTERM."""
from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import List, Optional

from .predict import _positive


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
    p.add_argument("--backend", default="auto", choices=["auto", "openvino", "onnxruntime", "torch"],
                   help="alage-edge backend running each stream inside Triton's Python backend")
    p.add_argument("--precision", default=None, choices=["fp32", "fp16", "bf16", "int8"])
    p.add_argument("--http-port", type=_positive, default=8000)
    p.add_argument("--grpc-port", type=_positive, default=8001)
    p.add_argument("--metrics-port", type=_positive, default=8002)
    p.add_argument("--max-batch", type=_positive, default=16, help="largest merged batch (default 16)")
    p.add_argument("--max-delay-us", type=int, default=2000,
                   help="how long the dynamic batcher waits to fill a batch, microseconds (default 2000)")
    p.add_argument("--instances", type=_positive, default=1, help="model instances per stream (default 1)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads per instance (default: the backend's)")
    p.add_argument("--repository", default=None,
                   help="also keep the model repository in this new folder (default: a temp folder, removed)")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = parser().parse_args(argv)
    from ..serving.repository import RepoOptions, write_repository
    from ..serving.server import TritonServer

    if args.max_delay_us < 0:
        parser().error(f"--max-delay-us must be >= 0, got {args.max_delay_us}")
    opts = RepoOptions(backend=args.backend, precision=args.precision, max_batch=args.max_batch,
                       max_delay_us=args.max_delay_us, instances=args.instances, threads=args.threads)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with tempfile.TemporaryDirectory(prefix="alage-repo-") as tmp:
        repo = write_repository(args.bundle, Path(args.repository or Path(tmp) / "repo"), opts)
        server = TritonServer(repo, http_port=args.http_port, grpc_port=args.grpc_port,
                              metrics_port=args.metrics_port)
        print(f"starting tritonserver on {args.bundle} ({args.backend} {args.precision or ''})...", file=sys.stderr)
        with server:
            print(f"serving in {server.startup_s:.1f} s: HTTP {server.url}  gRPC {server.grpc_url}  "
                  f"metrics {server.metrics_url}\nmodels: alage (tensors), alage_pictures (picture bytes); "
                  f"Ctrl-C stops", flush=True)
            while not stop.wait(0.5):
                if server.proc.poll() is not None:
                    print(f"tritonserver exited ({server.proc.returncode}):\n{server.log_tail()}", file=sys.stderr)
                    return 1
            print("stopping...", file=sys.stderr, flush=True)
        print(f"stopped in {server.shutdown_s:.1f} s; nothing left behind", file=sys.stderr)
    return 0
