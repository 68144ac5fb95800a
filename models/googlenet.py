"""GoogLeNet / Inception-v1 (Szegedy et al. 2015) with BatchNorm and no auxiliary heads, in two
layouts built by one class:

- ``googlenet``: the variant of Sensors 2022, 22(1):219, as its authors' code defines it (the
  seed's ``GoogLeNet``): a true 5x5 conv in the "5x5" branch, 3x3/2 max pools throughout, no
  dropout, and an extra 3x3 1024 -> 1024 conv (with bias) + ReLU after the last inception block,
  before global pooling: 15,414,818 parameters at 1 channel / 2 classes.
- ``googlenet_tv``: laid out like torchvision's model so parameter counts compare (6.62 M at
  3 channels / 1000 classes): its "5x5" branch is a 3x3 conv (a long-standing torchvision quirk
  that its published count reflects), dropout 0.2 before the classifier, no extra conv.

No auxiliary heads in either: they only help training very deep stacks from scratch at 224 px and
would be dead weight in the export. Max pools use floor mode with padding instead of
ceil_mode=True (same output size for even inputs; onnx2tf handles ceil_mode poorly).
"""
from __future__ import annotations

import torch
from torch import nn

from edgebench.models.layers import ConvBNAct, init_weights

HEAD_CHANNELS = 1024


class Inception(nn.Module):
    def __init__(self, cin: int, c1: int, c3_reduce: int, c3: int, c5_reduce: int, c5: int,
                 pool_proj: int, k5: int = 3) -> None:
        super().__init__()
        self.branch1 = ConvBNAct(cin, c1, 1)
        self.branch2 = nn.Sequential(ConvBNAct(cin, c3_reduce, 1), ConvBNAct(c3_reduce, c3, 3))
        self.branch3 = nn.Sequential(ConvBNAct(cin, c5_reduce, 1), ConvBNAct(c5_reduce, c5, k5))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, stride=1, padding=1),
                                     ConvBNAct(cin, pool_proj, 1))
        self.out_channels = c1 + c3 + c5 + pool_proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


def _pool() -> nn.MaxPool2d:
    return nn.MaxPool2d(kernel_size=3, stride=2, padding=1)


class GoogLeNet(nn.Module):
    """`paper=True` is the seed's variant, `paper=False` torchvision's layout (module docstring)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2, paper: bool = True) -> None:
        super().__init__()
        k5 = 5 if paper else 3
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, 64, 7, 2), _pool(),
            ConvBNAct(64, 64, 1), ConvBNAct(64, 192, 3), _pool(),
        )
        self.inception3 = nn.Sequential(
            Inception(192, 64, 96, 128, 16, 32, 32, k5),
            Inception(256, 128, 128, 192, 32, 96, 64, k5),
            _pool(),
        )
        self.inception4 = nn.Sequential(
            Inception(480, 192, 96, 208, 16, 48, 64, k5),
            Inception(512, 160, 112, 224, 24, 64, 64, k5),
            Inception(512, 128, 128, 256, 24, 64, 64, k5),
            Inception(512, 112, 144, 288, 32, 64, 64, k5),
            Inception(528, 256, 160, 320, 32, 128, 128, k5),
            # Both reach 1x1 from 2x2 at 32 px, never zero; torchvision's layout keeps the 2x2/2
            # pool it always had here, the seed pools 3x3/2 like everywhere else.
            _pool() if paper else nn.MaxPool2d(kernel_size=2, stride=2),
        )
        self.inception5 = nn.Sequential(
            Inception(832, 256, 160, 320, 32, 128, 128, k5),
            Inception(832, 384, 192, 384, 48, 128, 128, k5),
        )
        # The seed's extra conv: plain Conv2d with bias and no BatchNorm, then ReLU.
        self.head = (nn.Sequential(nn.Conv2d(HEAD_CHANNELS, HEAD_CHANNELS, 3, padding=1),
                                   nn.ReLU(inplace=True)) if paper else nn.Identity())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Identity() if paper else nn.Dropout(0.2)
        self.fc = nn.Linear(HEAD_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.head(self.inception5(self.inception4(self.inception3(self.stem(x)))))
        return self.fc(self.dropout(torch.flatten(self.pool(x), 1)))


def googlenet(in_channels: int = 1, num_classes: int = 2) -> GoogLeNet:
    return GoogLeNet(in_channels, num_classes, paper=True)


def googlenet_tv(in_channels: int = 1, num_classes: int = 2) -> GoogLeNet:
    return GoogLeNet(in_channels, num_classes, paper=False)
