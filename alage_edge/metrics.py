"""Age metrics (numpy): MAE, CS(k), LAP epsilon-error, group accuracy and 1-off, box IoU."""
from __future__ import annotations

from typing import Dict

import numpy as np


def mae(pred, true) -> float:
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64))))


def cumulative_score(pred, true, k: float = 5.0) -> float:
    """CS(k): share of predictions within k years."""
    return float(np.mean(np.abs(np.asarray(pred, np.float64) - np.asarray(true, np.float64)) <= k))


def epsilon_error(pred, mu, sigma) -> float:
    """ChaLearn LAP: mean of 1 - exp(-(x - mu)^2 / (2 sigma^2))."""
    x, mu, sigma = (np.asarray(a, np.float64) for a in (pred, mu, sigma))
    return float(np.mean(1.0 - np.exp(-((x - mu) ** 2) / (2.0 * sigma**2))))


def accuracy(pred_group, true_group) -> float:
    return float(np.mean(np.asarray(pred_group) == np.asarray(true_group)))


def one_off(pred_group, true_group) -> float:
    """Share of predicted group indices within one of the true one."""
    return float(np.mean(np.abs(np.asarray(pred_group) - np.asarray(true_group)) <= 1))


def _area(z: np.ndarray) -> np.ndarray:
    return (z[..., 2] - z[..., 0]) * (z[..., 3] - z[..., 1])


def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    ix = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    iy = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    return ix * iy


def iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of boxes (..., 4) x1,y1,x2,y2, broadcast."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    inter = _intersection(a, b)
    return inter / np.maximum(_area(a) + _area(b) - inter, 1e-12)


def box_hits(pred_boxes: np.ndarray, true_boxes: np.ndarray, threshold: float = 0.3) -> np.ndarray:
    """(N, T) booleans: attention box t of image n overlaps some true region with IoU >= threshold."""
    best = iou(pred_boxes[:, :, None, :], true_boxes[:, None, :, :]).max(axis=2)
    return best >= threshold


def regions_covered(pred_boxes: np.ndarray, true_boxes: np.ndarray, share: float = 0.9) -> np.ndarray:
    """(N, R) booleans: at least ``share`` of true region r's area lies inside one attention box (a box larger
    than its region can hold all of it at an IoU < 0.5)."""
    p, t = np.asarray(pred_boxes, np.float64)[:, :, None, :], np.asarray(true_boxes, np.float64)[:, None, :, :]
    return (_intersection(p, t) / np.maximum(_area(t), 1e-12)).max(axis=1) >= share


def attention_scores(pred_boxes: np.ndarray, true_boxes: np.ndarray, threshold: float = 0.3) -> Dict[str, float]:
    hits = box_hits(pred_boxes, true_boxes, threshold)
    out = {"regions_covered": float(regions_covered(pred_boxes, true_boxes).mean())}
    out.update({f"box{t + 1}_hit": float(hits[:, t].mean()) for t in range(hits.shape[1])})
    out["box_hit_mean"] = float(hits.mean())
    centres = (np.asarray(pred_boxes, np.float64)[..., :2] + np.asarray(pred_boxes, np.float64)[..., 2:]) / 2
    out["box_std"] = float(centres.std(axis=0).mean())  # how much a glimpse moves from face to face
    out["all_boxes_hit"] = float(hits.all(axis=1).mean())
    out["any_box_hit"] = float(hits.any(axis=1).mean())
    return out


def age_report(pred_age, true_age, pred_group=None, true_group=None, mu=None, sigma=None) -> Dict[str, float]:
    """The metrics that apply to what is known: MAE/CS(5) with ages, accuracy/1-off with
    groups, epsilon-error with vote statistics."""
    out: Dict[str, float] = {}
    true_age = np.asarray(true_age, np.float64)
    if true_age.size and np.isfinite(true_age).all():
        out["mae"] = mae(pred_age, true_age)
        out["cs5"] = cumulative_score(pred_age, true_age, 5)
    if pred_group is not None and true_group is not None and (np.asarray(true_group) >= 0).all():
        out["accuracy"] = accuracy(pred_group, true_group)
        out["one_off"] = one_off(pred_group, true_group)
    if sigma is not None and np.isfinite(np.asarray(sigma, np.float64)).all():
        out["epsilon_error"] = epsilon_error(pred_age, mu if mu is not None else true_age, sigma)
    return out
