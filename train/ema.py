"""An exponential moving average of the weights (``--ema DECAY``): what validation scores and the
checkpoints hold, while the optimiser keeps stepping the raw weights."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Dict, Iterator

import torch
import torch.nn as nn


class WeightAverage:
    """Every floating-point tensor of the state dict (weights and BatchNorm statistics) averaged over
    optimiser steps; integer buffers (BatchNorm's step count) follow the raw model. The decay ramps up as
    ``min(decay, (1 + n) / (10 + n))`` after n updates, so a short run is not dominated by its first steps."""

    def __init__(self, model: nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema must be a decay in (0, 1), e.g. 0.99, or 0 for off; got {decay!r}")
        self.decay, self.updates = float(decay), int(updates)
        self.shadow: Dict[str, torch.Tensor] = {k: v.detach().clone() for k, v in model.state_dict().items()}

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.updates += 1
        d = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for k, v in model.state_dict().items():
            avg = self.shadow[k]
            if v.dtype.is_floating_point:
                avg.mul_(d).add_(v.detach(), alpha=1 - d)
            else:
                avg.copy_(v)

    @contextmanager
    def applied(self, model: nn.Module) -> Iterator[Dict[str, torch.Tensor]]:
        """The averaged weights in ``model`` for the block; yields the raw ones, put back after it."""
        raw = {k: v.detach().clone() for k, v in model.state_dict().items()}
        model.load_state_dict(self.shadow)
        try:
            yield raw
        finally:
            model.load_state_dict(raw)

    @classmethod
    def resumed(cls, model: nn.Module, decay: float, averaged: Dict[str, torch.Tensor], updates: int):
        """The average as a checkpoint stored it (its weights are the checkpoint's state dict)."""
        ema = cls(model, decay, updates)
        for k, v in averaged.items():
            ema.shadow[k].copy_(v)
        return ema
