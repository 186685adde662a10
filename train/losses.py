"""Cross-entropy on each head (global, local, fused) with weights, plus an optional L1 on the DEX expectation."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from alage_edge.ages import DEX_CLASSES

from .dataset import dex_target


@dataclass
class LossWeights:
    global_: float = 1.0
    local: float = 1.0
    fused: float = 1.0
    l1: float = 0.0  # weight of |E[age] - age| (years), DEX only
    l1_every_head: bool = False  # on each head trained, not only the last (the fused one in joint training)


def head_targets(head: str, age: torch.Tensor, group: torch.Tensor) -> torch.Tensor:
    return dex_target(age) if head == "dex" else group


def age_loss(out: Dict[str, torch.Tensor], age: torch.Tensor, group: torch.Tensor, head: str,
             weights: LossWeights, heads: Tuple[str, ...]) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Sum of the weighted losses of ``heads`` (a subset of global, local, fused)."""
    target = head_targets(head, age, group)
    w = {"global": weights.global_, "local": weights.local, "fused": weights.fused}
    total, parts = 0.0, {}
    for h in heads:
        logits = out[f"{h}_logits"].float()
        ce = F.cross_entropy(logits, target)
        parts[f"ce_{h}"] = float(ce.detach())
        total = total + w[h] * ce
    if head == "dex" and weights.l1 > 0:
        for h in heads if weights.l1_every_head else heads[-1:]:
            logits = out[f"{h}_logits"].float()
            expect = F.softmax(logits, dim=1) @ torch.arange(DEX_CLASSES, device=logits.device, dtype=logits.dtype)
            l1 = (expect - age).abs().mean()
            parts["l1" if h == heads[-1] else f"l1_{h}"] = float(l1.detach())
            total = total + weights.l1 * l1
    return total, parts


def _per_item(logits: torch.Tensor, age: torch.Tensor, target: torch.Tensor, head: str, l1: float) -> torch.Tensor:
    """The loss of each row of ``logits`` (N, K): cross-entropy, plus the L1 term for DEX."""
    loss = F.cross_entropy(logits, target, reduction="none")
    if head == "dex" and l1 > 0:
        expect = F.softmax(logits, dim=1) @ torch.arange(DEX_CLASSES, device=logits.device, dtype=logits.dtype)
        loss = loss + l1 * (expect - age).abs()
    return loss


def glimpse_losses(logits: torch.Tensor, age: torch.Tensor, group: torch.Tensor, head: str, l1: float) -> torch.Tensor:
    """The loss of each glimpse's logits (B, N, K) against its face's age: (B, N)."""
    b, n, k = logits.shape
    target = head_targets(head, age, group)
    return _per_item(logits.reshape(b * n, k).float(), age.repeat_interleave(n), target.repeat_interleave(n), head,
                     l1).reshape(b, n)


def ranking_loss(out: Dict[str, torch.Tensor], age: torch.Tensor, group: torch.Tensor, head: str,
                 weights: LossWeights, tau: float = 0.5) -> Tuple[torch.Tensor, Dict[str, float]]:
    """An anchor selector's two terms. The local CNN learns age from every glimpse it read (the T taken
    and the random candidates); each glimpse's loss is then the teacher, and each step's scores learn its
    order, listwise: cross-entropy of softmax(scores) against softmax(-standardised loss / tau) over the
    glimpses that step could still take (NTS-Net's navigator/teacher idea, Yang et al., ECCV 2018)."""
    per = glimpse_losses(out["glimpse_logits"], age, group, head, weights.l1)
    glimpse = per.mean()
    teacher = per.detach()
    teacher = (teacher - teacher.mean(1, keepdim=True)) / (teacher.std(1, keepdim=True) + 1e-6)
    scores = out["glimpse_scores"].float()  # (B, T, N)
    open_ = scores > -1.0e3  # not suppressed at that step
    want = torch.where(open_, -teacher[:, None, :] / tau, torch.full_like(scores, -1.0e4)).softmax(-1)
    rank = -(want * torch.where(open_, F.log_softmax(scores, dim=-1), torch.zeros_like(scores))).sum(-1).mean()
    return weights.local * glimpse + rank, {"glimpse": float(glimpse.detach()), "rank": float(rank.detach())}
