"""GoogLeNet / Inception-v1 (Szegedy et al. 2015) with BatchNorm, laid out like torchvision's model
so parameter counts compare (6.62 M at 3 channels / 1000 classes). No auxiliary heads: they only
help training very deep stacks from scratch at 224 px and would be dead weight in the export.

Differences from torchvision, both for the ONNX -> onnx2tf -> TFLite path:
- max pools use floor mode with padding=1 instead of ceil_mode=True (same output size for even
  inputs; onnx2tf handles ceil_mode poorly);
- like torchvision, the "5x5" branch uses a 3x3 conv (a long-standing torchvision quirk that its
  published parameter count reflects).
"""
from __future__ import annotations

import torch
from torch import nn

from edgebench.models.layers import ConvBNAct, init_weights


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(cin, c1, 1)
        self.branch2 = nn.Sequential(ConvBNAct(cin, c3_reduce, 1), ConvBNAct(c3_reduce, c3, 3))
        self.branch3 = nn.Sequential(ConvBNAct(cin, c5_reduce, 1), ConvBNAct(c5_reduce, c5, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     ConvBNAct(cin, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


class GoogLeNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, 64, 7, 2), _pool(),
            ConvBNAct(64, 64, 1), ConvBNAct(64, 192, 3), _pool(),
        )
        self.inception3 = nn.Sequential(
            Inception(192, 64, 96, 128, 16, 32, 32),
            Inception(256, 128, 128, 192, 32, 96, 64),
            _pool(),
        )
        self.inception4 = nn.Sequential(
            Inception(480, 192, 96, 208, 16, 48, 64),
            Inception(512, 160, 112, 224, 24, 64, 64),
            Inception(512, 128, 128, 256, 24, 64, 64),
            Inception(512, 112, 144, 288, 32, 64, 64),
            Inception(528, 256, 160, 320, 32, 128, 128),
            # 2x2/2 in floor mode: at 32 px this sees 2x2 and gives 1x1, never zero.
            nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.inception5 = nn.Sequential(
            Inception(832, 256, 160, 320, 32, 128, 128),
            Inception(832, 384, 192, 384, 48, 128, 128),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(1024, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.inception5(self.inception4(self.inception3(self.stem(x))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def googlenet(in_channels: int = 1, num_classes: int = 2) -> GoogLeNet:
    return GoogLeNet(in_channels, num_classes)
