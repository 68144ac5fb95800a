"""VGG16 as modified in Sensors 2022, 22(1):219 for breast-ultrasound classification.

The 13-conv VGG16 stack (with BatchNorm) with its first four max pools, one extra 3x3 conv
512 -> 1024 on the last block's output, global average pooling and a single Linear layer, as the
authors' code (the seed's `ConvNet`, trained as `conv`) builds it: the fifth pool is gone, so the
extra conv runs at 1/16 of the input (14x14 at 224 px). Dropping torchvision's 4096-wide fully
connected head removes ~120 M parameters and makes the network independent of the input size.

One difference from the seed: our extra conv has BatchNorm and no bias (the seed: bias, no BN),
1,024 parameters more; BatchNorm folds into the conv at export, so the exported graphs match.
"""
from __future__ import annotations

import torch
from torch import nn

from edgebench.models.layers import ConvBNAct, init_weights

# Output channels per conv; "M" is a 2x2 max pool (floor mode: exact halving, no ceil_mode).
# No pool after the last block: the seed's extra conv sees the 1/16 map.
VGG16_STACK: tuple[int | str, ...] = (
    64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512,
)
EXTRA_CHANNELS = 1024


class VGG16(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = in_channels
        for item in VGG16_STACK:
            if item == "M":
                layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                layers.append(ConvBNAct(cin, int(item), 3))
                cin = int(item)
        self.features = nn.Sequential(*layers)
        # Four poolings take 32 px to 2x2; the padded 3x3 conv is valid there.
        self.extra = ConvBNAct(cin, EXTRA_CHANNELS, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(EXTRA_CHANNELS, num_classes)
        init_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.extra(self.features(x))
        return self.fc(torch.flatten(self.pool(x), 1))


def vgg16(in_channels: int = 1, num_classes: int = 2) -> VGG16:
    return VGG16(in_channels, num_classes)
