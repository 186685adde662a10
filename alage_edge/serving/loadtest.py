"""The load test behind ``alage-edge bench --serve``: requests/s and latency against concurrency through the
real server, the merged batch sizes from Triton's own counters, and the in-process latency beside them."""
from __future__ import annotations

import threading
import time
from typing import Dict, List, Sequence

import numpy as np

from .client import TritonClient, metrics


def _clients_run(url: str, x: np.ndarray, clients: int, seconds: float) -> List[float]:
    """``clients`` threads, each with its own connection, sending one-image requests until the deadline."""
    lat: List[List[float]] = [[] for _ in range(clients)]
    errors: List[BaseException] = []
    start = threading.Barrier(clients + 1)

    def work(k: int) -> None:
        try:
            with TritonClient(url) as c:
                c.infer(x)  # connect and warm up outside the timing
                start.wait()
                deadline = time.perf_counter() + seconds
                while time.perf_counter() < deadline:
                    t = time.perf_counter()
                    c.infer(x)
                    lat[k].append(time.perf_counter() - t)
        except BaseException as e:  # reported below; a broken barrier must not hang the others
            errors.append(e)
            start.abort()

    threads = [threading.Thread(target=work, args=(k,), daemon=True) for k in range(clients)]
    [t.start() for t in threads]
    try:
        start.wait()
    except threading.BrokenBarrierError:
        pass
    [t.join() for t in threads]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    return [v for per in lat for v in per]


def load_test(server, x: np.ndarray, concurrency: Sequence[int] = (1, 4, 16, 64), seconds: float = 5.0,
              protocol: str = "http") -> List[Dict[str, float]]:
    """One row per concurrency level: requests/s, p50/p99 latency (ms), mean merged batch of the global stream."""
    url = server.url if protocol == "http" else server.grpc_url
    rows = []
    for n in concurrency:
        before = metrics(server.metrics_url).get("alage_global", {})
        t0 = time.perf_counter()
        lat = _clients_run(url, x, n, seconds)
        wall = time.perf_counter() - t0
        after = metrics(server.metrics_url)["alage_global"]
        reqs = after["nv_inference_request_success"] - before.get("nv_inference_request_success", 0)
        execs = after["nv_inference_exec_count"] - before.get("nv_inference_exec_count", 0)
        ms = np.array(lat) * 1000
        rows.append({"clients": n, "requests": len(lat), "requests_per_s": len(lat) / min(wall, seconds + ms.max() / 1000),
                     "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                     "mean_batch": float(reqs / execs) if execs else float("nan")})
    return rows


def in_process_ms(est, x: np.ndarray, iters: int = 50) -> float:
    """Median latency of ``est.infer`` on the same one-image batch, in this process."""
    from ..tools.bench import time_infer

    return float(np.median(time_infer(est, x, 5, iters)))


def plot(report: dict, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import write_with

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for run in report["runs"]:
        xs = [r["clients"] for r in run["rows"]]
        ax.plot(xs, [r["requests_per_s"] for r in run["rows"]], marker="o", label=run["label"])
        if run.get("in_process_ms"):
            ax.axhline(1000 / run["in_process_ms"], ls=":", lw=0.8, color=ax.lines[-1].get_color())
    ax.set_xscale("log", base=2)
    ax.set_xlabel("concurrent clients (one image per request)")
    ax.set_ylabel("requests/s through Triton")
    ax.set_title(f"{report['model']} on {report['machine']} (dotted: in-process 1/latency)", fontsize=8)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_with(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    plt.close(fig)
