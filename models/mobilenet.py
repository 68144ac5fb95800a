"""MobileNetV2 (Sandler et al. 2018), width 1.0: the edge baseline. Inverted residuals with linear
bottlenecks and ReLU6, laid out like torchvision's model (3.50 M parameters at 3 channels / 1000
classes). ReLU6 exports as Clip(0, 6), which TFLite fuses into the conv."""
from __future__ import annotations

import torch
from torch import nn

from edgebench.models.layers import ConvBNAct, init_weights

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
INVERTED_RESIDUALS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = cin * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(ConvBNAct(cin, hidden, 1, relu6=True))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, relu6=True),
            # Linear bottleneck: no activation after the projection.
            nn.Conv2d(hidden, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        ]
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x) if self.residual else self.block(x)


class MobileNetV2(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2, dropout: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = [ConvBNAct(in_channels, STEM_CHANNELS, 3, 2, relu6=True)]
        cin = STEM_CHANNELS
        for t, c, n, s in INVERTED_RESIDUALS:
            for i in range(n):
                layers.append(InvertedResidual(cin, c, s if i == 0 else 1, t))
                cin = c
        layers.append(ConvBNAct(cin, LAST_CHANNELS, 1, relu6=True))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(LAST_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.fc(self.dropout(x))


def mobilenet_v2(in_channels: int = 1, num_classes: int = 2) -> MobileNetV2:
    return MobileNetV2(in_channels, num_classes)
