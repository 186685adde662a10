"""The differentiable crop: box -> affine theta -> hand-built grid -> bilinear sample.

``F.affine_grid`` does not export below ONNX opset 20 and TensorRT does not
parse the opset-20 ``AffineGrid``; so the grid is a constant base grid
(R*R, 3) times theta^T (MatMul only), and sampling is
``F.grid_sample(bilinear, zeros, align_corners=False)`` exported at opset 17.

The geometry (theta, grid, sampling) is always float32, whatever the module's
dtype: in bf16 a grid coordinate moves in steps of up to 1/256 of the image's
half-width (0.44 px of a 224 px detail image), which is the size of the detail
the crops exist to read (a model's mean age moved 2.45 y with the attention
stream in bf16, 0.01 y with only the global stream; README). Half-precision
``grid_sample`` on the CPU also crashed (SIGSEGV) in torch 2.13.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def base_grid(size: int) -> torch.Tensor:
    """(R*R, 3) rows (x, y, 1) of pixel centres in [-1, 1] (align_corners=False), row-major."""
    c = (torch.arange(size, dtype=torch.float32) * 2 + 1) / size - 1
    ys, xs = torch.meshgrid(c, c, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1), torch.ones(size * size)], dim=1)


def boxes_to_theta(boxes: torch.Tensor) -> torch.Tensor:
    """Boxes (B, 4) x1,y1,x2,y2 in [0, 1] -> theta (B, 2, 3) mapping crop coords to image coords."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    zero = torch.zeros_like(x1)
    row_x = torch.stack([x2 - x1, zero, x1 + x2 - 1], dim=-1)
    row_y = torch.stack([zero, y2 - y1, y1 + y2 - 1], dim=-1)
    return torch.stack([row_x, row_y], dim=1)


class BoxSampler(nn.Module):
    """Crops ``boxes`` out of ``image`` at ``size`` x ``size`` pixels, bilinearly."""

    def __init__(self, size: int):
        super().__init__()
        self.size = int(size)
        self.register_buffer("grid", base_grid(self.size), persistent=False)

    def _apply(self, fn, recurse=True):
        super()._apply(fn, recurse)
        if self.grid.dtype != torch.float32:  # .half() / .to(bfloat16): the base grid stays exact
            self.grid = base_grid(self.size).to(self.grid.device)
        return self

    def make_grid(self, theta: torch.Tensor) -> torch.Tensor:
        base = self.grid if self.grid.dtype == theta.dtype else self.grid.to(theta.dtype)
        grid = torch.matmul(base, theta.transpose(1, 2))  # (B, R*R, 2)
        return grid.reshape(-1, self.size, self.size, 2)

    def forward(self, image: torch.Tensor, boxes: torch.Tensor) -> torch.Tensor:
        dtype = image.dtype
        if dtype != torch.float32:  # fp16/bf16 modules: the geometry stays fp32 (no Cast in the fp32 export)
            image, boxes = image.float(), boxes.float()
        grid = self.make_grid(boxes_to_theta(boxes))
        crop = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return crop if crop.dtype == dtype else crop.to(dtype)


class BoxSquash(nn.Module):
    """Raw (B, 3) -> square box (B, 4) in [0, 1] with side in [s_min, s_max], always inside the image."""

    def __init__(self, s_min: float = 0.25, s_max: float = 0.5):
        super().__init__()
        if not 0 < s_min <= s_max <= 1:
            raise ValueError(f"need 0 < s_min <= s_max <= 1, got s_min={s_min}, s_max={s_max}")
        self.s_min, self.s_max = float(s_min), float(s_max)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        s = self.s_min + (self.s_max - self.s_min) * torch.sigmoid(raw[:, 2:3])
        centre = s / 2 + (1 - s) * torch.sigmoid(raw[:, 0:2])  # (B, 2): cx, cy
        return torch.cat([centre - s / 2, centre + s / 2], dim=1)

    def inverse(self, cx: float, cy: float, s: float) -> torch.Tensor:
        """Raw values that squash to the box centred at (cx, cy) with side s (for box init)."""
        s = min(max(s, self.s_min + 1e-3), self.s_max - 1e-3) if self.s_max > self.s_min else s
        u = (s - self.s_min) / (self.s_max - self.s_min) if self.s_max > self.s_min else 0.5

        def logit(p: float) -> float:
            p = min(max(p, 1e-4), 1 - 1e-4)
            return math.log(p / (1 - p))

        return torch.tensor([logit((cx - s / 2) / (1 - s)), logit((cy - s / 2) / (1 - s)), logit(u)])
