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

from edgebench.models.googlenet import googlenet, googlenet_tv
from edgebench.models.mobilenet import mobilenet_v2
from edgebench.models.resnet import resnet18, resnet34, resnet50, resnet101
from edgebench.models.vgg import vgg16


@dataclass(frozen=True)
class ModelSpec:
    name: str
    summary: str  # one line for `--model help`
    build: Callable[..., torch.nn.Module]  # build(in_channels=1, num_classes=2)
    # Another name for the entry `alias_of` (the seed's names): it builds the same network, and a
    # checkpoint records the canonical name, so files and reports never say both.
    alias_of: str | None = None


class UnknownModelError(KeyError):
    """A KeyError whose str() is the plain message (KeyError's own str() adds quotes)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


# Parameter counts are for the defaults (1 channel, 2 classes); tests check them against the code.
# vgg16, googlenet and resnet18/34/50/101 are the networks of Sensors 2022, 22(1):219 as its
# authors' code (the "seed") defines them; the seed calls VGG16 `conv`, hence the alias.
MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec("vgg16", "VGG16-BN, paper variant: 13 convs, 4 pools, 512->1024 conv, GAP, one FC "
                  "(19.4 M params)", vgg16),
        ModelSpec("conv", "the seed's name for vgg16 (alias; checkpoints say vgg16)", vgg16,
                  alias_of="vgg16"),
        ModelSpec("googlenet", "GoogLeNet, paper variant: BatchNorm, true 5x5 branch, extra 3x3 "
                  "1024->1024 conv before GAP, no aux heads (15.4 M params)", googlenet),
        ModelSpec("googlenet_tv", "GoogLeNet in torchvision's layout (3x3 \"5x5\" branch, "
                  "dropout, no extra conv), BatchNorm, no aux heads (5.6 M params)", googlenet_tv),
        ModelSpec("resnet18", "ResNet-18, basic blocks (11.2 M params)", resnet18),
        ModelSpec("resnet34", "ResNet-34, basic blocks (21.3 M params)", resnet34),
        ModelSpec("resnet50", "ResNet-50, bottleneck blocks (23.5 M params)", resnet50),
        ModelSpec("resnet101", "ResNet-101, bottleneck blocks (42.5 M params)", resnet101),
        ModelSpec("mobilenet_v2", "MobileNetV2 1.0, inverted residuals + ReLU6: edge baseline "
                  "(2.2 M params)", mobilenet_v2),
    )
}


def canonical_name(name: str) -> str:
    """The registry's own name for `name` (an alias resolves to its target; others unchanged)."""
    spec = MODELS.get(name)
    return spec.alias_of if spec is not None and spec.alias_of else name


def architectures() -> list[str]:
    """Every distinct network, aliases left out (what tests and sweeps iterate over)."""
    return [name for name, spec in MODELS.items() if not spec.alias_of]


def build_model(name: str, in_channels: int = 1, num_classes: int = 2) -> torch.nn.Module:
    """Build a freshly initialised model; an unknown name raises a KeyError listing valid names."""
    try:
        spec = MODELS[name]
    except KeyError:
        raise UnknownModelError(
            f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None
    return spec.build(in_channels=in_channels, num_classes=num_classes)


__all__ = ["MODELS", "ModelSpec", "UnknownModelError", "architectures", "build_model",
           "canonical_name"]
