"""RoR-3 (Residual Networks of Residual Networks) on a pre-activation ResNet-18/34.

Three levels of shortcuts: the usual block shortcuts, a mid-level shortcut
around each stage (1x1 conv where width or stride changes) and a root shortcut
(1x1 conv, stride 8) from the stem output to the last stage's output.
Stochastic depth: block l of L drops its residual branch with probability
``l / L * drop_path`` in training (per sample) and scales it by the survival
probability in eval (deterministic), as in Huang et al.
"""
from __future__ import annotations

from typing import List

import torch
import torch.nn as nn

from .resnet import conv1x1, conv3x3, init_weights


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, planes: int, stride: int = 1, drop_prob: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = conv3x3(cin, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes)
        self.relu = nn.ReLU(inplace=False)
        self.downsample = conv1x1(cin, planes, stride) if (stride != 1 or cin != planes) else None
        self.drop_prob = float(drop_prob)

    def shortcut(self, x: torch.Tensor, pre: torch.Tensor) -> torch.Tensor:
        return x if self.downsample is None else self.downsample(pre)

    def branch(self, pre: torch.Tensor) -> torch.Tensor:
        return self.conv2(self.relu(self.bn2(self.conv1(pre))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = self.relu(self.bn1(x))
        res = self.branch(pre)
        if self.drop_prob > 0:
            keep = 1.0 - self.drop_prob
            if self.training:
                mask = torch.rand(x.shape[0], 1, 1, 1, device=x.device, dtype=res.dtype) < keep
                res = res * mask.to(res.dtype)
            else:
                res = res * keep
        return self.shortcut(x, pre) + res


class RoR(nn.Module):
    """RoR-3 pre-activation ResNet; a backbone (features + global average pool)."""

    def __init__(self, layers: List[int], width: int = 64, drop_path: float = 0.5, dropout: float = 0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        total, index = sum(layers), 0
        cin, stages, shortcuts = width, [], []
        for i, n in enumerate(layers):
            planes, stride = width * 2**i, (1 if i == 0 else 2)
            blocks = []
            for j in range(n):
                index += 1
                blocks.append(PreActBlock(cin if j == 0 else planes, planes, stride if j == 0 else 1,
                                          drop_prob=drop_path * index / total))
            stages.append(nn.Sequential(*blocks))
            shortcuts.append(nn.Identity() if (stride == 1 and cin == planes) else conv1x1(cin, planes, stride))
            cin = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.stage_shortcuts = nn.ModuleList(shortcuts)
        self.root_shortcut = conv1x1(width, cin, stride=8)
        self.bn_final = nn.BatchNorm2d(cin)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.num_features = cin
        init_weights(self)

    @property
    def stages(self) -> List[nn.Sequential]:
        return [self.layer1, self.layer2, self.layer3, self.layer4]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        stem = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = stem
        for stage, shortcut in zip(self.stages, self.stage_shortcuts):
            x = stage(x) + shortcut(x)
        x = x + self.root_shortcut(stem)
        return self.dropout(self.relu(self.bn_final(x)))

    def forward_head(self, f: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.avgpool(f), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_head(self.forward_features(x))


_DEPTHS = {"ror18": [2, 2, 2, 2], "ror34": [3, 4, 6, 3]}


def ror(name: str, width: int = 64, drop_path: float = 0.5, dropout: float = 0.0) -> RoR:
    return RoR(_DEPTHS[name], width=width, drop_path=drop_path, dropout=dropout)
