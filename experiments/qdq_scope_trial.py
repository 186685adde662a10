"""INT8 with and without the local CNN, on several trained attention models: which scope holds parity.

For every checkpoint: `alage-edge export`, then one copy of the bundle per variant and scope, each with one
INT8 model built from 300 synth calibration faces (the demo's calibration): the Q/DQ model (`convert --to qdq
--qdq-variant cpu|tensorrt --int8-scope global|global+local`), run by `alage-edge parity --runs
onnxruntime-int8-qdq,openvino-int8-qdq`, or the OpenVINO IR by NNCF (`nncf`: `convert --to openvino
--precision int8`), run by `openvino-int8-openvino[-bf16]`; parity on 200 synth test faces and the 41 real
photos. The s8s8 (TensorRT) variant runs in ONNX Runtime and OpenVINO here: the nearest a CPU gets to
TensorRT's explicit INT8, not TensorRT itself.

    python experiments/qdq_scope_trial.py runs/claim-v5g/AL_lstm-s{0,1,2,3,4}/best.pt \
        runs/demo/al_resnet18/best.pt runs/claim-v5g/AL_static-s{0,1,2,3,4}/best.pt --out runs/qdq-scope
    python experiments/qdq_scope_trial.py runs/claim-v5g/AL_lstm-s{0,1,2,3,4}/best.pt \
        runs/demo/al_resnet18/best.pt --out runs/qdq-scope --variants tensorrt,cpu --scopes global+local \
        --method percentile

Appends to OUT/qdq-scope.json (one row per checkpoint x variant x scope x calibration x run x set; a
combination already there is skipped, so an interrupted run resumes) and prints the rows as a table.
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from alage_edge.convert.export import export_bundle
from alage_edge.convert.openvino import build as openvino_build
from alage_edge.convert.qdq import build as qdq_build
from alage_edge.model import load_checkpoint
from alage_edge.tools.parity import run_parity

VARIANTS = ("cpu", "tensorrt", "nncf")  # Q/DQ u8s8, Q/DQ s8s8, OpenVINO IR by NNCF
SCOPES = ("global+local", "global")
RUNS = {"cpu": ["onnxruntime-int8-qdq", "openvino-int8-qdq"], "tensorrt": ["onnxruntime-int8-qdq", "openvino-int8-qdq"],
        "nncf": ["openvino-int8-openvino", "openvino-int8-openvino-bf16"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoints", nargs="+")
    ap.add_argument("--data", default="synth:n=3000,n_test=1000,seed=0,size=224,version=5",
                    help="the test split parity reads (the checkpoints' own data)")
    ap.add_argument("--calib", default="synth:seed=0", help="calibration data (the demo's)")
    ap.add_argument("--n", type=int, default=200)
    ap.add_argument("--out", default="runs/qdq-scope")
    ap.add_argument("--method", default="minmax", choices=("minmax", "percentile"),
                    help="Q/DQ calibration (ONNX Runtime's calibrators; NNCF keeps its own)")
    ap.add_argument("--scopes", default=",".join(SCOPES))
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {', '.join(VARIANTS)}")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    result_file = out / "qdq-scope.json"
    rows = json.loads(result_file.read_text())["rows"] if result_file.exists() else []
    done = {(r["checkpoint"], r["variant"], r["scope"], r.get("method", "minmax")) for r in rows}
    for ck in a.checkpoints:
        name = "-".join(Path(ck).parts[-3:-1])
        base = out / name / "fp32"
        if not (base / "manifest.json").exists():
            shutil.rmtree(base, ignore_errors=True)
            export_bundle(load_checkpoint(ck), base, checkpoint=Path(ck))
        for variant in a.variants.split(","):
            for scope in a.scopes.split(","):
                method = "nncf" if variant == "nncf" else a.method
                if (ck, variant, scope, method) in done:
                    continue
                t0 = time.perf_counter()
                b = out / name / f"{variant}-{scope.replace('+', '_')}"
                shutil.rmtree(b, ignore_errors=True)
                shutil.copytree(base, b)
                if variant == "nncf":
                    openvino_build(b, "int8", data=a.calib, calib_size=300, int8_scope=scope, progress=False,
                                   cache=str(out / "cache"))
                else:
                    qdq_build(b, data=a.calib, calib_size=300, int8_scope=scope, variant=variant, method=method,
                              progress=False, cache=str(out / "cache"))
                rep = run_parity(b, a.data, n=a.n, keys=RUNS[variant], progress=False, cache_dir=str(out / "cache"),
                                 record=False)
                for r in rep["rows"]:
                    rows.append({"checkpoint": ck, "variant": variant, "scope": scope, "method": method, "run": r["run"],
                                 "set": r["set"], "drift_mean": r.get("drift_mean"), "drift_max": r.get("drift_max"),
                                 "delta_mae": r.get("mae_change"), "glimpses_moved": r.get("glimpses_moved"),
                                 "pass": r["pass"], "fails": r["fails"]})
                result_file.write_text(json.dumps({"data": a.data, "calib": a.calib, "n": a.n, "rows": rows},
                                                  indent=1))
                print(f"{name} {variant} {scope} {method}: {time.perf_counter() - t0:.0f} s", flush=True)
                shutil.rmtree(b)
    print("| checkpoint | variant | scope | calibration | run | set | drift mean / max (y) | ΔMAE | verdict |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        dm = "-" if r["delta_mae"] is None else f"{r['delta_mae']:+.3f}"
        print(f"| {r['checkpoint']} | {r['variant']} | {r['scope']} | {r.get('method', 'minmax')} | {r['run']} | {r['set']} | "
              f"{r['drift_mean']:.3f} / {r['drift_max']:.3f} | {dm} | {'pass' if r['pass'] else '; '.join(r['fails'])} |")


if __name__ == "__main__":
    main()
