"""Building blocks and weight initialisation shared by the zoo.

Every block here lowers to ops that survive ONNX (opset 18) -> onnx2tf -> TFLite int8 cleanly:
Conv, BatchNorm (folded into the conv at export), ReLU/ReLU6 (Clip), MaxPool in floor mode.
"""
from __future__ import annotations

from torch import nn


class ConvBNAct(nn.Sequential):
    """Conv (no bias: BN follows) -> BatchNorm -> ReLU or ReLU6 (torchvision's BasicConv2d)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, relu6: bool = False, padding: int | None = None) -> None:
        if padding is None:
            padding = kernel_size // 2
        super().__init__(
            nn.Conv2d(cin, cout, kernel_size, stride, padding, groups=groups, bias=False),
            nn.BatchNorm2d(cout),
            nn.ReLU6(inplace=True) if relu6 else nn.ReLU(inplace=True),
        )


def init_weights(model: nn.Module) -> nn.Module:
    """Kaiming (fan-out, as torchvision does for ReLU nets) for convs, BN to identity,
    a small normal for linear layers so the first logits start near zero."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, 0.0, 0.01)
            nn.init.zeros_(m.bias)
    return model
