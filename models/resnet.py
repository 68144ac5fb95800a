"""ResNet-18/34 (BasicBlock) and ResNet-50/101 (Bottleneck), He et al. 2016, torchvision's layout
(stride on the 3x3 conv of the bottleneck, "ResNet v1.5"), so parameter counts match its models.
The seed (the paper authors' code) strides the bottleneck's first 1x1 conv instead ("v1"): the
same parameters, slightly different features; ResNet-18/34 are identical to the seed's."""
from __future__ import annotations

import torch
from torch import nn

from edgebench.models.layers import ConvBNAct, init_weights


def _downsample(cin: int, cout: int, stride: int) -> nn.Module | None:
    if stride == 1 and cin == cout:
        return None
    return nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = ConvBNAct(cin, width, 3, stride)
        self.conv2 = nn.Conv2d(width, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn2(self.conv2(self.conv1(x))) + identity)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1 = ConvBNAct(cin, width, 1)
        self.conv2 = ConvBNAct(width, width, 3, stride)
        self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(cout)
        self.downsample = _downsample(cin, cout, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(self.bn3(self.conv3(self.conv2(self.conv1(x)))) + identity)


class ResNet(nn.Module):
    def __init__(self, block: type[BasicBlock] | type[Bottleneck], depths: tuple[int, ...],
                 in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        # The stem max pool is padded (floor mode) rather than ceil_mode: the total stride is 32,
        # so 32 px reaches layer4 as 1x1 and nothing collapses to zero size.
        self.stem = nn.Sequential(
            ConvBNAct(in_channels, 64, 7, 2),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1),
        )
        stages: list[nn.Module] = []
        cin = 64
        for i, depth in enumerate(depths):
            width = 64 * 2 ** i
            blocks = []
            for j in range(depth):
                blocks.append(block(cin, width, 2 if (j == 0 and i > 0) else 1))
                cin = width * block.expansion
            stages.append(nn.Sequential(*blocks))
        self.layers = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(self.stem(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def resnet18(in_channels: int = 1, num_classes: int = 2) -> ResNet:
    return ResNet(BasicBlock, (2, 2, 2, 2), in_channels, num_classes)


def resnet34(in_channels: int = 1, num_classes: int = 2) -> ResNet:
    return ResNet(BasicBlock, (3, 4, 6, 3), in_channels, num_classes)


def resnet50(in_channels: int = 1, num_classes: int = 2) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 6, 3), in_channels, num_classes)


def resnet101(in_channels: int = 1, num_classes: int = 2) -> ResNet:
    return ResNet(Bottleneck, (3, 4, 23, 3), in_channels, num_classes)
