"""The model zoo: CNN classifiers looked up by name.

Every model is built as ``build(in_channels=1, num_classes=2)`` (grayscale ultrasound, benign vs
malignant by default), accepts any square or rectangular input of at least 32 px, ends in global
average pooling + Linear, and uses only ops that survive ONNX (opset 18) -> onnx2tf -> TFLite int8:
Conv, BatchNorm, ReLU/ReLU6, floor-mode MaxPool, GlobalAveragePool, Flatten, Linear, Concat, Add.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from edgebench.models.googlenet import googlenet
from edgebench.models.mobilenet import mobilenet_v2
from edgebench.models.resnet import resnet18, resnet34, resnet50
from edgebench.models.vgg import vgg16


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str  # one line for `--model help`
    build: Callable[..., torch.nn.Module]  # build(in_channels=1, num_classes=2)


class UnknownModelError(KeyError):
    """A KeyError whose str() is the plain message (KeyError's own str() adds quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Parameter counts are for the defaults (1 channel, 2 classes); tests check them against the code.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vgg16", "VGG16-BN, paper variant: 13 convs + 512->1024 conv, GAP, one FC "
                  "(19.4 M params)", vgg16),
        ModelSpec("googlenet", "GoogLeNet / Inception-v1 with BatchNorm, no aux heads "
                  "(5.6 M params)", googlenet),
        ModelSpec("resnet18", "ResNet-18, basic blocks (11.2 M params)", resnet18),
        ModelSpec("resnet34", "ResNet-34, basic blocks (21.3 M params)", resnet34),
        ModelSpec("resnet50", "ResNet-50, bottleneck blocks (23.5 M params)", resnet50),
        ModelSpec("mobilenet_v2", "MobileNetV2 1.0, inverted residuals + ReLU6: edge baseline "
                  "(2.2 M params)", mobilenet_v2),
    )
}


def build_model(name: str, in_channels: int = 1, num_classes: int = 2) -> torch.nn.Module:
    """Build a freshly initialised model; an unknown name raises a KeyError listing valid names."""
    try:
        spec = MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
    return spec.build(in_channels=in_channels, num_classes=num_classes)


__all__ = ["MODELS", "ModelSpec", "UnknownModelError", "build_model"]
