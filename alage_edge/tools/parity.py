"""``alage-edge parity``: every backend and precision of a bundle against the PyTorch reference.

The pass criteria live in ``CRITERIA``, one row per precision, so a user can
tighten them in one place.
"""
from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

from ..argtypes import positive_int
from .runs import RUNS


# Logits pass by the atol/rtol rule (an element fails only if it exceeds both);
# ages by their drift in years; labelled sets by the change in MAE.
@dataclass(frozen=True)
class Criteria:
    logit_atol: Optional[float]  # None: logits not compared elementwise at this precision
    logit_rtol: Optional[float]
    max_drift: Optional[float]  # years, every image
    mean_drift: float  # years
    mae_change: Optional[float]  # years, labelled sets only
    photo_max_drift: Optional[float] = None  # years, every image of the real photos


CRITERIA: Dict[str, Criteria] = {
    "fp32": Criteria(logit_atol=5e-3, logit_rtol=1e-2, max_drift=0.05, mean_drift=0.05, mae_change=0.05),
    "fp16": Criteria(None, None, max_drift=None, mean_drift=0.3, mae_change=0.3),
    "bf16": Criteria(None, None, max_drift=None, mean_drift=0.3, mae_change=0.3),
    "int8": Criteria(None, None, max_drift=None, mean_drift=1.0, mae_change=0.3, photo_max_drift=1.5),
}


def verdict(precision: str, m: Dict[str, float], photos: bool = False) -> List[str]:
    """The criteria this result fails (empty: it passes); ``photos``: the set is the real photos."""
    c, fails = CRITERIA[precision], []
    if photos and c.photo_max_drift is not None and m["drift_max"] > c.photo_max_drift:
        fails.append(f"max drift on a real photo {m['drift_max']:.3f} > {c.photo_max_drift} y")
    if c.logit_atol is not None and m["logits_within"] < 1.0:
        fails.append(f"logits beyond atol {c.logit_atol:g} and rtol {c.logit_rtol:g} on "
                     f"{1 - m['logits_within']:.0%} of images")
    if c.max_drift is not None and m["drift_max"] > c.max_drift:
        fails.append(f"max drift {m['drift_max']:.3f} > {c.max_drift} y")
    if m["drift_mean"] > c.mean_drift:
        fails.append(f"mean drift {m['drift_mean']:.3f} > {c.mean_drift} y")
    if c.mae_change is not None and "mae_change" in m and m["mae_change"] > c.mae_change:
        fails.append(f"MAE change {m['mae_change']:+.3f} > +{c.mae_change} y")
    return fails


def run_parity(bundle, data: str = "synth", n: int = 200, keys: Optional[List[str]] = None, photos: bool = True,
               progress: bool = True, cache_dir: Optional[str] = None, record: bool = True) -> dict:
    from ..manifest import Manifest
    from ..progress import bar
    from . import compare

    man = Manifest.load(bundle)
    sets = [compare.synth_set(man, data, n, cache_dir)]
    if photos:
        real = compare.photo_set(man)
        if real is not None:
            sets.append(real)
    ref_run = compare.reference_run()
    ref_est = compare.load(bundle, ref_run)
    refs = [compare.outputs(ref_est, s.images) for s in sets]
    ref_est.close()
    rows, skipped = [], []
    todo = [(r, why) for r, why in compare.runnable(man, keys) if r.key != ref_run.key]
    for run, why in bar(todo, desc="parity", disable=not progress):
        if why:
            skipped.append({"run": run.key, "label": run.label, "why": why})
            continue
        est = compare.load(bundle, run)
        c = CRITERIA[run.precision]
        for s, ref in zip(sets, refs):
            m = compare.compare(ref, compare.outputs(est, s.images), s.ages, c.logit_atol or 0.0,
                                c.logit_rtol or 0.0)
            fails = verdict(run.precision, m, photos=s.ages is None)
            rows.append({"run": run.key, "label": run.label, "precision": run.precision, "set": s.name,
                         "backend": est.describe(), **m, "pass": not fails, "fails": fails})
        est.close()
    rep = {"bundle": str(bundle), "reference": ref_run.label, "reference_key": ref_run.key,
           "criteria": {k: asdict(v) for k, v in CRITERIA.items()}, "rows": rows, "skipped": skipped}
    if record and rows:  # what passed here, for precision="auto" (parity-record.json in the bundle)
        import warnings

        from ..autoprecision import record_parity

        try:
            record_parity(bundle, rep)
        except OSError as e:  # a read-only bundle: the report stands, auto just has no record here
            warnings.warn(f"{bundle}: parity-record.json not written ({e.strerror or e}); precision auto will "
                          f"not know these verdicts", stacklevel=2)
    return rep


def format_report(rep: dict) -> str:
    from ..table import table

    rows = [(r["label"], r["precision"], r["set"], r["images"],
             f"{r['logits_within']:.0%}" if CRITERIA[r["precision"]].logit_atol else "-",
             r["drift_mean"], r["drift_max"], f"{r['group_agreement']:.1%}",
             f"{r['glimpses_moved']:.1%}" if "glimpses_moved" in r else "-", r.get("mae"),
             f"{r['mae_change']:+.3f}" if "mae_change" in r else "-",
             "pass" if r["pass"] else "FAIL: " + "; ".join(r["fails"])) for r in rep["rows"]]
    out = [f"parity against {rep['reference']} ({rep['bundle']})",
           table(["run", "precision", "set", "n", "logits ok", "drift mean (y)", "drift max (y)", "same group",
                  "glimpses moved", "MAE", "ΔMAE", "verdict"], rows)]
    notes = sorted({f"{r['label']} {r['precision']}: {r['backend']}" for r in rep["rows"] if "lacks" in r["backend"]})
    out += [f"note: {n}" for n in notes]
    if rep["skipped"]:
        out.append("not run here: " + "; ".join(f"{s['run']} ({s['why']})" for s in rep["skipped"]))
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="alage-edge parity",
        description="Compare every backend x precision this machine can run for a bundle with the PyTorch "
                    "reference (ONNX Runtime fp32 where torch is not installed), on a labelled synthetic test "
                    "split and on real face photos shipped by scikit-image. Criteria per precision: "
                    + "; ".join(f"{k}: mean drift <= {v.mean_drift} y" + (f", max <= {v.max_drift} y"
                                                                          if v.max_drift else "")
                                + (f", MAE change <= +{v.mae_change}" if v.mae_change else "")
                                + (f", max <= {v.photo_max_drift} y on every real photo" if v.photo_max_drift else "")
                                for k, v in CRITERIA.items()) + ". Exits 1 if any run fails.",
        epilog="examples:\n  alage-edge parity bundle/\n  alage-edge parity bundle/ --runs openvino-int8-openvino,onnxruntime-int8-qdq --json\n"
               "  alage-edge parity bundle/ --data csv:/data/faces/labels.csv --n 500",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("bundle")
    p.add_argument("--data", default="synth", help="labelled set (test split) to compare on")
    p.add_argument("--n", type=positive_int, default=200, help="images from it (default 200)")
    p.add_argument("--runs", default=None, help="comma-separated runs (default: all that can run here): "
                   + ", ".join(r.key for r in RUNS))
    p.add_argument("--no-photos", action="store_true", help="skip the real photos")
    p.add_argument("--no-record", action="store_true", help="do not record the verdicts in the bundle's "
                   "parity-record.json (what --precision auto reads)")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", default=None, help="also write parity.json and parity.md to this folder")
    p.add_argument("--cache", default=None)
    args = p.parse_args(argv)
    rep = run_parity(args.bundle, args.data, args.n, args.runs.split(",") if args.runs else None,
                     photos=not args.no_photos, cache_dir=args.cache, record=not args.no_record)
    text = format_report(rep)
    print(json.dumps(rep, indent=2) if args.json else text)
    if args.out:
        from ..atomic import write_json, write_text

        write_json(Path(args.out) / "parity.json", rep)
        write_text(Path(args.out) / "parity.md", text + "\n")
    return 0 if all(r["pass"] for r in rep["rows"]) else 1
