"""Age heads in numpy: DEX expectation, spread, Adience groups.

Shared by the runtime (post-processing), training (labels, metrics) and the
parity/benchmark tools, so every stage turns logits into ages the same way.
"""
from __future__ import annotations

import numpy as np

DEX_CLASSES = 101  # ages 0..100
GROUP_NAMES = ("0-2", "4-6", "8-13", "15-20", "25-32", "38-43", "48-53", "60+")
GROUP_RANGES = ((0, 2), (4, 6), (8, 13), (15, 20), (25, 32), (38, 43), (48, 53), (60, 100))
# An age between two Adience ranges goes to the nearer one: the cut points are the midpoints.
GROUP_BOUNDS = np.array([3.0, 7.0, 14.0, 22.5, 35.0, 45.5, 56.5])
# Age read off a `groups` model: the expectation over these centres (60+ taken as 65).
GROUP_CENTRES = np.array([1.0, 5.0, 10.5, 17.5, 28.5, 40.5, 50.5, 65.0])
HEAD_CLASSES = {"dex": DEX_CLASSES, "groups": len(GROUP_NAMES)}


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    x = np.asarray(logits, dtype=np.float64)
    x = x - x.max(axis=axis, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=axis, keepdims=True)


def age_to_group(age) -> np.ndarray:
    """Adience group index (0..7) of one or many ages."""
    return np.searchsorted(GROUP_BOUNDS, np.asarray(age, dtype=np.float64), side="left").astype(np.int64)


def _dex_to_groups(p: np.ndarray) -> np.ndarray:
    idx = age_to_group(np.arange(DEX_CLASSES))
    out = np.zeros(p.shape[:-1] + (len(GROUP_NAMES),), dtype=p.dtype)
    for g in range(len(GROUP_NAMES)):
        out[..., g] = p[..., idx == g].sum(axis=-1)
    return out


def decode(logits: np.ndarray, head: str) -> dict:
    """Logits (B, C) of a ``dex`` or ``groups`` head -> ages, spread, groups.

    Returns ``age`` (B,), ``std`` (B,), ``distribution`` (B, C),
    ``group_probs`` (B, 8) and ``group`` (B,) as numpy arrays.
    """
    if head not in HEAD_CLASSES:
        raise ValueError(f"head must be one of {sorted(HEAD_CLASSES)}, got {head!r}")
    logits = np.asarray(logits)
    if logits.ndim != 2 or logits.shape[1] != HEAD_CLASSES[head]:
        raise ValueError(f"{head} logits must have shape (B, {HEAD_CLASSES[head]}), got {logits.shape}")
    p = softmax(logits)
    values = np.arange(DEX_CLASSES, dtype=np.float64) if head == "dex" else GROUP_CENTRES
    age = p @ values
    std = np.sqrt(np.maximum(p @ values**2 - age**2, 0.0))
    group_probs = _dex_to_groups(p) if head == "dex" else p
    return {
        "age": age,
        "std": std,
        "distribution": p,
        "group_probs": group_probs,
        "group": group_probs.argmax(axis=-1),
    }
