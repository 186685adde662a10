#!/usr/bin/env python3
"""GPU host check, under 4 minutes: proves the CUDA paths on their first real run.

    python benchmarks/gpu_check.py [--out DIR] [--bundle BUNDLE] [--global-size 224] [--dry-run]

Needs only what a bare CUDA host with torch has (torch with CUDA, numpy, onnx, onnxruntime,
cuda.bindings; no OpenVINO, no network) and this package installed from the checkout, which needs no
network either: `pip install --no-deps --no-build-isolation .` (a source tree on PYTHONPATH lacks the
export stage). It builds its own small bundle (ONNX + checkpoint) in a work folder; a --bundle is
copied there first, never written to. Sections, each with a time cap and a reason when skipped:
  1 environment   versions, the raw cudaGetDeviceCount result and error name, device, capability
  2 cuda wrapper  malloc, pinned host, H2D/D2H round trip, stream + event + cross-stream wait
  3 torch parity  CUDA fp32/fp16 against CPU fp32 on the same inputs (age drift, logits), batch 1/3/8
  4 cuda graphs   graphs against eager, fp32/fp16, batches 1,8,3,1 from two threads; memory reserved
                  and graphs cached after ten batch sizes (bucketed: bounded)
  5 latency       eager vs CUDA-graph fp16, batch 1 and 64, al_resnet18 and al_resnet34 (p50, p99, img/s)
  6 tensorrt      fp32/fp16/int8 build + parity against ONNX Runtime + latency, where tensorrt imports
Prints one table and writes gpu_check.json and gpu_check.md to --out. --dry-run runs everything up
to the first CUDA call (CI runs it on CPU).
"""
from __future__ import annotations

import argparse
import json
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

# Seconds per section; the run as a whole never starts work past BUDGET. SIGALRM interrupts Python, not a
# C++ TensorRT engine build, so the TensorRT section also checks the clock between builds, each precision
# with its own cap (TRT_CAP): a build is started only if the time left can hold one.
BUDGET = 235  # "under 4 minutes"
TRT_CAP = 30
CAPS = {"environment": 15, "cuda wrapper": 15, "torch parity": 30, "cuda graphs": 45, "latency": 40,
        "tensorrt": 3 * TRT_CAP}
assert sum(CAPS.values()) <= BUDGET


class Skip(Exception):
    pass


class Report:
    def __init__(self, budget: float = BUDGET, caps: dict = CAPS):
        self.rows, self.sections, self.t0 = [], [], time.perf_counter()
        self.deadline, self.caps = self.t0 + budget, caps
        self.section_deadline = self.deadline

    def left(self) -> float:
        """Seconds left in the running section (never past the run's budget)."""
        return min(self.section_deadline, self.deadline) - time.perf_counter()

    def row(self, section: str, check: str, result: str, ok: bool = True, **data) -> None:
        self.rows.append({"section": section, "check": check, "result": result, "ok": ok, **data})
        print(f"  [{'ok' if ok else 'FAIL'}] {section}: {check}: {result}", flush=True)

    def run(self, name: str, fn) -> None:
        t = time.perf_counter()
        cap = int(min(self.caps[name], self.deadline - t))
        print(f"== {name} (cap {cap} s)", flush=True)
        if cap < 1:
            self.sections.append({"section": name, "status": "skipped: the run's time budget is spent",
                                  "seconds": 0.0})
            return
        self.section_deadline = t + cap

        def expire(*_):
            raise TimeoutError(f"over its {cap} s cap")

        old = signal.signal(signal.SIGALRM, expire)
        signal.alarm(cap)
        status = "ok"
        try:
            fn()
        except Skip as e:
            status = f"skipped: {e}"
        except Exception as e:  # noqa: BLE001 - a failed section is reported, the next one still runs
            status = f"FAILED: {type(e).__name__}: {str(e)[:300]}"
        finally:
            signal.alarm(0)
            signal.signal(signal.SIGALRM, old)
        dt = time.perf_counter() - t
        self.sections.append({"section": name, "status": status, "seconds": round(dt, 1)})
        print(f"   -> {status} ({dt:.1f} s)", flush=True)


def versions() -> dict:
    import importlib

    out = {"python": sys.version.split()[0]}
    for mod in ("numpy", "torch", "onnx", "onnxruntime", "cuda.bindings", "tensorrt"):
        try:
            out[mod] = str(getattr(importlib.import_module(mod), "__version__", "?"))
        except Exception as e:  # noqa: BLE001
            out[mod] = f"not importable ({type(e).__name__})"
    return out


def make_bundles(work: Path, size: int, user_bundle) -> dict:
    """al_resnet18 exported with ONNX (sections 3, 4, 6) and al_resnet34 as a checkpoint (section 5)."""
    import torch

    try:
        import alage_edge.convert  # noqa: F401
    except ModuleNotFoundError as e:
        raise RuntimeError(f"{e}: the export stage comes with the installed package (`pip install --no-deps "
                           "--no-build-isolation .` in the checkout); a source tree on PYTHONPATH lacks "
                           "alage_edge.convert and alage_edge.train") from None
    from alage_edge.convert.bundle import BundleWriter
    from alage_edge.convert.export import export_bundle, stream_io
    from alage_edge.manifest import Artifact
    from alage_edge.model import build_model, save_checkpoint

    out = {}
    if user_bundle:
        out["al_resnet18"] = work / "bundle"
        shutil.copytree(user_bundle, out["al_resnet18"])
    else:
        torch.manual_seed(0)
        export_bundle(build_model("al_resnet18", global_size=size, crop_size=size // 2), work / "al_resnet18")
        out["al_resnet18"] = work / "al_resnet18"
    torch.manual_seed(0)
    model, b = build_model("al_resnet34", global_size=size, crop_size=size // 2), work / "al_resnet34"
    b.mkdir()
    save_checkpoint(b / "model.pt", model)
    man = BundleWriter.create(b, model.cfg.to_dict(), model.cfg.preprocess, stream_io(model))
    man.record_file("model.pt")
    man.add_artifact(Artifact("torch", "fp32", {"checkpoint": "model.pt"}))
    man.save()
    out["al_resnet34"] = b
    return out


def timed(fn, warmup: int = 5, iters: int = 30):
    import torch

    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return float(np.median(ts)), float(np.percentile(ts, 99))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=None, help="folder for gpu_check.json/.md (default: a temp folder)")
    p.add_argument("--bundle", default=None, help="a bundle to check (copied, never written to)")
    p.add_argument("--global-size", type=int, default=224)
    p.add_argument("--dry-run", action="store_true", help="everything up to the first CUDA call (CPU)")
    args = p.parse_args(argv)
    if args.bundle and not (Path(args.bundle) / "manifest.json").is_file():
        p.error(f"--bundle {args.bundle}: not a bundle (expected a folder with manifest.json, as "
                "`alage-edge export` writes)")
    out = Path(args.out or tempfile.mkdtemp(prefix="gpu_check-"))
    out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="gpu_check-work-"))
    rep, state = Report(), {}
    from alage_edge import AgeEstimator

    def bundles() -> dict:
        if "bundles" not in state:
            raise Skip("no bundles: the environment section did not build them")
        return state["bundles"]

    def environment():
        v = versions()
        rep.row("environment", "versions", ", ".join(f"{k} {x}" for k, x in v.items()), versions=v)
        try:
            from alage_edge.backends.cuda import CudaPython

            cp = CudaPython()
            raw = cp.rt.cudaGetDeviceCount()
            rep.row("environment", "raw cudaGetDeviceCount", f"({cp.error_name(raw[0])}, {raw[1]})",
                    ok=int(raw[0]) == 0 or args.dry_run)
            state["gpus"] = raw[1] if int(raw[0]) == 0 else 0
        except ImportError as e:
            rep.row("environment", "cuda-python", str(e), ok=False)
        state["bundles"] = make_bundles(work, args.global_size, args.bundle)
        rep.row("environment", "bundles", ", ".join(f"{k}: {sorted(f.name for f in b.iterdir())}"
                                                   for k, b in state["bundles"].items()))
        if args.dry_run:
            return
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"torch {torch.__version__} sees no CUDA GPU")
        rep.row("environment", "device", f"{torch.cuda.get_device_name(0)}, compute capability "
                f"{'.'.join(map(str, torch.cuda.get_device_capability(0)))}, torch {torch.__version__}")

    def cuda_wrapper():
        if args.dry_run:
            raise Skip("--dry-run (no CUDA call made)")
        from alage_edge.backends.cuda import cuda_api

        cuda = cuda_api()
        name, cc = cuda.device_properties(0)
        with cuda.activate():
            n = 1 << 22
            src, hs = cuda.host_empty((n,), np.float32)
            dst, hd = cuda.host_empty((n,), np.float32)
            src[:] = np.random.default_rng(0).normal(size=n).astype(np.float32)
            dev = cuda.malloc(src.nbytes)
            s1, s2, ev = cuda.stream(), cuda.stream(), cuda.event()
            t = time.perf_counter()
            cuda.h2d(dev, src, s1)
            cuda.record(ev, s1)
            cuda.wait(s2, ev)  # the copy back on another stream waits for the copy in
            cuda.d2h(dst, dev, s2)
            cuda.sync(s2)
            dt = (time.perf_counter() - t) * 1e3
            same = bool(np.array_equal(src, dst))
            for s in (s1, s2):
                cuda.destroy_stream(s)
            cuda.destroy_event(ev)
            cuda.free(dev)
            cuda.host_free(hs)
            cuda.host_free(hd)
        rep.row("cuda wrapper", f"{cuda.name} on {name} (cc {cc})",
                f"16 MB pinned H2D + event wait + D2H on 2 non-blocking streams: {'identical' if same else 'MISMATCH'}"
                f", {dt:.2f} ms", ok=same)

    def torch_parity():
        b = bundles()["al_resnet18"]
        cpu = AgeEstimator.load(b, backend="torch", precision="fp32")
        xs = {n: cpu.spec.random_input(n, seed=n) for n in (1, 3, 8)}
        state["ref"] = {n: cpu.infer(x) for n, x in xs.items()}
        state["xs"] = xs
        if args.dry_run:
            raise Skip(f"--dry-run (CPU reference computed for batches {list(xs)})")
        for prec, bound in (("fp32", 0.05), ("fp16", 0.5)):
            est = AgeEstimator.load(b, backend="torch", precision=prec, device="cuda")
            for n, x in xs.items():
                o, r = est.infer(x), state["ref"][n]
                drift = float(np.abs(o["age"] - r["age"]).max())
                logit = float(np.abs(o["fused_logits"] - r["fused_logits"]).max())
                rep.row("torch parity", f"CUDA {prec} vs CPU fp32, batch {n}",
                        f"age drift max {drift:.4f} y, logits max {logit:.4f}", ok=drift < bound,
                        drift=drift, logit=logit)
            est.close()

    def cuda_graphs():
        if args.dry_run:
            raise Skip("--dry-run (no CUDA call made)")
        import torch

        b = bundles()["al_resnet18"]
        for prec in ("fp32", "fp16"):
            eager = AgeEstimator.load(b, backend="torch", precision=prec, device="cuda")
            graphs = AgeEstimator.load(b, backend="torch", precision=prec, device="cuda", cuda_graphs=True)
            seq = [8, 3, 1]
            xs = state.get("xs") or {n: eager.spec.random_input(n, seed=n) for n in seq}  # parity may have failed
            want = {n: eager.infer(xs[n])["fused_logits"] for n in seq}
            got, errors = [{}, {}], []

            def worker(k):
                try:
                    for n in [1] + seq:
                        got[k][n] = graphs.infer(xs[n])["fused_logits"]
                except Exception as e:  # noqa: BLE001
                    errors.append(e)

            threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                raise errors[0]
            diff = max(float(np.abs(g[n] - want[n]).max()) for g in got for n in seq)
            rep.row("cuda graphs", f"{prec} graphs vs eager, batches 1,8,3,1 from 2 threads",
                    f"logits max diff {diff:.2e}", ok=diff < (1e-3 if prec == "fp32" else 5e-2), diff=diff)
            before = torch.cuda.memory_reserved()
            x = graphs.spec.random_input(10, seed=1)
            for n in range(1, 11):
                graphs.infer(x[:n])
            cached = len(graphs.backend._graphs)
            mb = (torch.cuda.memory_reserved() - before) / 2**20
            rep.row("cuda graphs", f"{prec}: ten batch sizes 1..10",
                    f"{cached} graphs cached (buckets 1,2,4,8,16 x 2 streams), +{mb:.0f} MB reserved",
                    ok=cached <= 10, graphs=cached, reserved_mb=mb)
            eager.close()
            graphs.close()

    def latency():
        if args.dry_run:
            raise Skip("--dry-run (no CUDA call made)")
        for arch, b in bundles().items():
            for mode, kw in (("eager", {}), ("CUDA graphs", {"cuda_graphs": True})):
                est = AgeEstimator.load(b, backend="torch", precision="fp16", device="cuda", **kw)
                s = est.spec.size
                for n in (1, 64):
                    x = est.spec.random_input(n)
                    p50, p99 = timed(lambda: est.backend.infer(x, check=False))
                    rep.row("latency", f"{arch} {s}px input torch fp16 {mode}, batch {n}",
                            f"p50 {p50:.2f} ms, p99 {p99:.2f} ms, {n / p50 * 1e3:.0f} img/s",
                            arch=arch, mode=mode, batch=n, p50_ms=p50, p99_ms=p99, images_per_s=n / p50 * 1e3)
                est.close()

    def tensorrt():
        import importlib.util

        if importlib.util.find_spec("tensorrt") is None:
            raise Skip("tensorrt is not installed on this host")
        if args.dry_run:
            raise Skip("--dry-run (no CUDA call made)")
        from alage_edge.convert.tensorrt import build

        b = bundles()["al_resnet18"]
        ref = AgeEstimator.load(b, backend="onnxruntime")
        x = state["xs"][8] if "xs" in state else ref.spec.random_input(8, seed=8)
        want = ref.infer(x)["age"]
        for prec, bound in (("fp32", 0.05), ("fp16", 0.5), ("int8", 3.0)):
            if rep.left() < TRT_CAP:  # an engine build cannot be interrupted: start one only with room for it
                rep.row("tensorrt", f"{prec}: not built", f"{rep.left():.0f} s left of the section, a build may "
                        f"take {TRT_CAP} s", ok=True)
                continue
            t = time.perf_counter()
            build(b, prec, batch=(1, 8, 64), progress=False,
                  **({"data": "synth", "calib_size": 64, "calib_min": 32} if prec == "int8" else {}))
            est = AgeEstimator.load(b, backend="tensorrt", precision=prec)
            drift = float(np.abs(est.infer(x)["age"] - want).max())
            p50, p99 = timed(lambda: est.backend.infer(x, check=False))
            rep.row("tensorrt", f"{prec}: build {time.perf_counter() - t:.0f} s",
                    f"age drift max {drift:.3f} y vs ONNX Runtime; batch 8 p50 {p50:.2f} ms, p99 {p99:.2f} ms",
                    ok=drift < bound, drift=drift, p50_ms=p50)
            est.close()

    for name, fn in (("environment", environment), ("cuda wrapper", cuda_wrapper), ("torch parity", torch_parity),
                     ("cuda graphs", cuda_graphs), ("latency", latency), ("tensorrt", tensorrt)):
        rep.run(name, fn)
    shutil.rmtree(work, ignore_errors=True)
    lines = ["| section | check | result | ok |", "|---|---|---|---|"]
    lines += [f"| {r['section']} | {r['check']} | {r['result']} | {'yes' if r['ok'] else 'NO'} |" for r in rep.rows]
    lines += ["", "| section | status | seconds |", "|---|---|---|"]
    lines += [f"| {s['section']} | {s['status']} | {s['seconds']} |" for s in rep.sections]
    total = time.perf_counter() - rep.t0
    text = "\n".join(lines) + f"\n\ntotal {total:.0f} s\n"
    print("\n" + text)
    (out / "gpu_check.md").write_text(text)
    (out / "gpu_check.json").write_text(json.dumps({"rows": rep.rows, "sections": rep.sections,
                                                    "seconds": round(total, 1)}, indent=2, default=str))
    print(f"wrote {out / 'gpu_check.md'} and gpu_check.json")
    failed = [r for r in rep.rows if not r["ok"]] + [s for s in rep.sections if s["status"].startswith("FAILED")]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
