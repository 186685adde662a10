"""``alage-edge bench --serve``: each run served by tritonserver in turn, loaded at each concurrency."""
from __future__ import annotations

import json
import tempfile
import warnings
from pathlib import Path


def run_serve_bench(args) -> int:
    from ..estimator import AgeEstimator
    from ..serving.loadtest import in_process_ms, load_test, plot
    from ..serving.repository import RepoOptions, write_repository
    from ..serving.server import TritonServer
    from ..system import cpu_flags, cpu_name
    from ..table import table

    machine = f"{cpu_name()} [{cpu_flags()}]"
    report = {"machine": machine, "runs": [], "seconds": args.seconds, "protocol": args.protocol}
    for run in args.serve_runs.split(","):
        backend, _, precision = run.partition("-")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = AgeEstimator.load(args.bundle, backend=backend, precision=precision or None)
        x = est.spec.random_input(1)
        local = in_process_ms(est, x)
        report["model"] = f"{est.manifest.model.get('arch')} {est.spec.size}px"
        est.close()
        with tempfile.TemporaryDirectory(prefix="alage-bench-") as tmp:
            repo = write_repository(args.bundle, Path(tmp) / "repo",
                                    RepoOptions(backend=backend, precision=precision or None))
            with TritonServer(repo) as server:
                rows = load_test(server, x, args.concurrency, args.seconds, args.protocol)
            report["runs"].append({"label": run, "in_process_ms": local, "rows": rows,
                                   "startup_s": server.startup_s, "shutdown_s": server.shutdown_s})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(f"{report['model']} served by tritonserver 2.51 ({args.protocol}, one image per request, "
              f"{args.seconds:g} s per level) on {machine}")
        print(table(["run", "clients", "requests/s", "p50 ms", "p99 ms", "mean merged batch", "in-process ms",
                     "start-up s", "shutdown s"],
                    [(r["label"], row["clients"], f"{row['requests_per_s']:.1f}", f"{row['p50_ms']:.1f}",
                      f"{row['p99_ms']:.1f}", f"{row['mean_batch']:.2f}", f"{r['in_process_ms']:.1f}",
                      f"{r['startup_s']:.1f}", f"{r['shutdown_s']:.1f}") for r in report["runs"] for row in r["rows"]]))
    if args.out:
        from ..atomic import write_json

        write_json(Path(args.out) / "serve.json", report)
        try:
            plot(report, Path(args.out) / "serve.png")
        except ImportError:
            pass
        print(f"wrote {args.out}/serve.json, serve.png")
    return 0
