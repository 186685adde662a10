"""Shared by parity and bench: evaluation sets, which runs can run here, and the comparison."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..backends import BackendError, backend_class, select
from ..estimator import AgeEstimator
from ..manifest import Manifest
from .runs import REFERENCE, RUNS, Run, find_run


@dataclass
class EvalSet:
    name: str
    images: np.ndarray  # (N, 3, S, S) float32, the runtime's preprocessing
    ages: Optional[np.ndarray] = None  # labels, when the set has them


def synth_set(man: Manifest, data: str = "synth", n: int = 200, cache_dir: Optional[str] = None) -> EvalSet:
    from ..data import open_dataset
    from ..data.spec import like_training

    data = like_training(data, man.data.get("training_data", {}).get("data"))
    faces = open_dataset(data, split="test", size=man.preprocess.size, cache_dir=cache_dir)
    n = min(n, len(faces))
    images = np.stack([man.preprocess.apply(faces.image(i)) for i in range(n)])
    ages = faces.ages()[:n]
    return EvalSet(f"{faces.name.split(':n=')[0]} ({n} labelled)", images,
                   ages if np.isfinite(ages).all() else None)


def photo_set(man: Manifest, n_lfw: int = 40) -> Optional[EvalSet]:
    """Real, unlabelled face photos that scikit-image ships (astronaut, LFW crops)."""
    try:
        from skimage import data as skd
    except ImportError:
        return None
    spec = man.preprocess
    pics = [skd.astronaut()[30:230, 150:350]]  # the face region of the astronaut portrait
    lfw = skd.lfw_subset()[:n_lfw]  # 25x25 grey crops in [0, 1]
    pics += [np.repeat((f * 255).astype(np.uint8)[:, :, None], 3, axis=2) for f in lfw]
    return EvalSet(f"real photos ({len(pics)}: astronaut + LFW)", np.stack([spec.apply(p) for p in pics]))


def runnable(man: Manifest, keys: Optional[Sequence[str]] = None) -> List[Tuple[Run, Optional[str]]]:
    """Every run with None (it can run here) or the reason it cannot: the estimator's own selection
    decides, so a GPU is found the way each backend finds it (TensorRT through the CUDA wrapper)."""
    out = []
    for run in ([find_run(k) for k in keys] if keys else RUNS):
        try:
            select(man, run.backend, run.precision, run.device, run.artifact)
            out.append((run, None))
        except BackendError as e:
            out.append((run, getattr(e, "why", {}).get(run.backend, str(e))))
    return out


def load(bundle, run: Run, batch_size: int = 8, threads: Optional[int] = None) -> AgeEstimator:
    opts = dict(run.options)
    device = opts.pop("device", None)
    if threads:
        opts["threads"] = threads
    return AgeEstimator.load(bundle, backend=run.backend, precision=run.precision, device=device,
                             batch_size=batch_size, artifact=run.artifact, **opts)


def outputs(est: AgeEstimator, images: np.ndarray, batch: int = 16) -> Dict[str, np.ndarray]:
    parts = [est.infer(images[i:i + batch]) for i in range(0, len(images), batch)]
    keys = [k for k in ("fused_logits", "age", "group", "boxes") if k in parts[0]]
    return {k: np.concatenate([p[k] for p in parts]) for k in keys}


GLIMPSE_MOVED = 1e-3  # box coordinates are fractions of the input side; an anchor is pixels apart


def compare(ref: Dict[str, np.ndarray], got: Dict[str, np.ndarray], ages: Optional[np.ndarray],
            atol: float, rtol: float) -> Dict[str, float]:
    """Drift of one run against the reference on one set."""
    diff = np.abs(got["fused_logits"].astype(np.float64) - ref["fused_logits"].astype(np.float64))
    bad = (diff > atol) & (diff > rtol * np.abs(ref["fused_logits"]))
    drift = np.abs(got["age"] - ref["age"])
    out = {"images": int(len(drift)), "logits_within": float(1 - bad.any(axis=1).mean()),
           "logit_max_abs": float(diff.max()), "drift_mean": float(drift.mean()), "drift_max": float(drift.max()),
           "group_agreement": float(np.mean(got["group"] == ref["group"]))}
    if "boxes" in ref and "boxes" in got:
        moved = np.abs(got["boxes"] - ref["boxes"]).reshape(len(drift), -1).max(axis=1)
        out["box_max_abs"] = float(moved.max())
        # faces where a glimpse went elsewhere (beyond GLIMPSE_MOVED of the side: another anchor, not rounding)
        out["glimpses_moved"] = float((moved > GLIMPSE_MOVED).mean())
    if ages is not None:
        out["mae"] = float(np.mean(np.abs(got["age"] - ages)))
        out["mae_ref"] = float(np.mean(np.abs(ref["age"] - ages)))
        out["mae_change"] = out["mae"] - out["mae_ref"]
    return out


def reference_run() -> Run:
    """PyTorch when torch is installed here; else ONNX Runtime fp32 (e.g. on a Jetson without torch)."""
    if backend_class("torch").is_available()[0]:
        return REFERENCE
    return find_run("onnxruntime-fp32")
