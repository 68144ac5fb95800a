"""The model zoo: registry, shapes at the smallest sizes, parameter counts against the published
architectures, trainability, and a clean ONNX opset-18 export (the first step towards TFLite)."""
from __future__ import annotations

import functools
import re
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from edgebench.models import MODELS, ModelSpec, architectures, build_model, canonical_name

NAMES = ["vgg16", "googlenet", "googlenet_tv", "resnet18", "resnet34", "resnet50", "resnet101",
         "mobilenet_v2"]
ALIASES = {"conv": "vgg16"}  # the seed's names for our networks

# torchvision's published counts (3 channels, 1000 classes) for the standard architectures; the
# vgg16 variant is VGG16-BN's conv stack (no conv bias before BN) + a 512->1024 conv + one FC;
# the paper's googlenet is torchvision's layout with true 5x5 convs and a biased 3x3 1024 conv.
FIVE_BY_FIVE = 16 * (16 * 32 + 32 * 96 + 16 * 48 + 24 * 64 + 24 * 64 + 32 * 64 + 32 * 128
                     + 32 * 128 + 48 * 128)  # (25 - 9) taps more per "5x5" branch weight
REFERENCE_PARAMS = {
    "vgg16": 14_718_912 + (512 * 9 * 1024 + 2 * 1024) + (1024 * 1000 + 1000),
    "googlenet": 6_624_904 + FIVE_BY_FIVE + (1024 * 1024 * 9 + 1024),
    "googlenet_tv": 6_624_904,
    "resnet18": 11_689_512,
    "resnet34": 21_797_672,
    "resnet50": 25_557_032,
    "resnet101": 44_549_160,
    "mobilenet_v2": 3_504_872,
}

# At 1 channel / 2 classes, counted from the authors' code (the seed) where it has the model:
# its GoogLeNet and ResNet-34 exactly; its ConvNet (our vgg16) has 19,439,426, 1,024 fewer: its
# extra conv has a bias where ours has BatchNorm (folded away at export).
SEED_PARAMS = {
    "googlenet": 15_414_818,
    "vgg16": 19_440_450,
    "resnet34": 21_279_426,
}

# What onnx2tf turns into plain TFLite builtins (BatchNorm is folded and Dropout dropped at export).
ONNX_OPS_ALLOWED = {"Conv", "Relu", "Clip", "MaxPool", "GlobalAveragePool", "Flatten", "Gemm",
                    "Concat", "Add", "Identity", "Constant"}


@functools.lru_cache(maxsize=None)
def _model(name: str, in_channels: int, num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, in_channels=in_channels, num_classes=num_classes).eval()


def _params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_registry_lists_the_models_in_order_with_the_seeds_aliases():
    assert architectures() == NAMES
    assert [n for n in MODELS if n not in ALIASES] == NAMES
    for name, spec in MODELS.items():
        assert isinstance(spec, ModelSpec) and spec.name == name
        assert spec.summary and "\n" not in spec.summary
    for alias, target in ALIASES.items():
        assert MODELS[alias].alias_of == target and canonical_name(alias) == target
        assert _params(build_model(alias)) == _params(build_model(target))
    assert canonical_name("resnet18") == "resnet18" and canonical_name("nope") == "nope"


def test_unknown_name_raises_keyerror_listing_valid_names():
    with pytest.raises(KeyError) as err:
        build_model("resnet19")
    message = str(err.value)
    assert "resnet19" in message
    for name in NAMES:
        assert name in message
    assert not message.startswith("'")  # plain text, not KeyError's quoted repr


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("in_channels,num_classes", [(1, 2), (3, 5)])
@pytest.mark.parametrize("size", [32, 64])
def test_forward_shape_and_finite(name, in_channels, num_classes, size):
    model = _model(name, in_channels, num_classes)
    with torch.no_grad():
        out = model(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_odd_and_rectangular_input(name):
    model = _model(name, 1, 2)
    with torch.no_grad():
        out = model(torch.randn(1, 1, 33, 47))
    assert out.shape == (1, 2) and torch.isfinite(out).all()


def test_default_build_is_grayscale_binary():
    model = build_model("resnet18")
    first_conv = next(m for m in model.modules() if isinstance(m, nn.Conv2d))
    last_fc = [m for m in model.modules() if isinstance(m, nn.Linear)][-1]
    assert first_conv.in_channels == 1 and last_fc.out_features == 2


@pytest.mark.parametrize("name", NAMES)
def test_parameter_count_matches_reference_architecture(name):
    assert _params(build_model(name, in_channels=3, num_classes=1000)) == REFERENCE_PARAMS[name]


@pytest.mark.parametrize("name", sorted(SEED_PARAMS))
def test_parameter_count_at_one_channel_two_classes_is_pinned(name):
    assert _params(build_model(name)) == SEED_PARAMS[name]


@pytest.mark.parametrize("name", NAMES)
def test_summary_states_the_default_parameter_count(name):
    stated = float(re.search(r"([\d.]+) M params", MODELS[name].summary).group(1))
    assert stated == round(_params(_model(name, 1, 2)) / 1e6, 1)


@pytest.mark.parametrize("name", NAMES)
def test_weights_are_initialised(name):
    model = _model(name, 1, 2)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)
        elif isinstance(m, nn.Conv2d):
            # Kaiming normal, fan-out as torch counts it (out_channels * k * k, groups ignored).
            fan_out = m.out_channels * m.kernel_size[0] * m.kernel_size[1]
            if m.weight.numel() >= 1000:
                std = m.weight.std().item()
                assert std == pytest.approx((2 / fan_out) ** 0.5, rel=0.2)


@pytest.mark.parametrize("name", NAMES)
def test_no_ceil_mode_pooling(name):
    pools = [m for m in _model(name, 1, 2).modules() if isinstance(m, nn.MaxPool2d)]
    assert all(not p.ceil_mode for p in pools)


def test_vgg16_head_is_1024_conv_then_gap_and_one_linear():
    model = _model("vgg16", 1, 2)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert len(convs) == 14  # VGG16's 13 + the extra one
    extra = convs[-1]
    assert (extra.in_channels, extra.out_channels, extra.kernel_size) == (512, 1024, (3, 3))
    assert len(linears) == 1 and linears[0].in_features == 1024 and linears[0].out_features == 2
    assert isinstance(model.pool, nn.AdaptiveAvgPool2d) and model.pool.output_size in (1, (1, 1))
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 14
    # the seed's ConvNet pools four times: the extra conv sees 1/16 of the input
    assert sum(isinstance(m, nn.MaxPool2d) for m in model.modules()) == 4
    with torch.no_grad():
        assert model.features(torch.zeros(1, 1, 224, 224)).shape[-2:] == (14, 14)


def test_googlenet_is_the_papers_variant():
    model = _model("googlenet", 1, 2)
    head = model.head[0]
    assert (head.in_channels, head.out_channels, head.kernel_size) == (1024, 1024, (3, 3))
    assert head.bias is not None and isinstance(model.head[1], nn.ReLU)
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    fives = [m.branch3[1][0].kernel_size for m in model.modules() if hasattr(m, "branch3")]
    assert len(fives) == 9 and set(fives) == {(5, 5)}
    tv = _model("googlenet_tv", 1, 2)
    assert {m.branch3[1][0].kernel_size for m in tv.modules() if hasattr(m, "branch3")} == {(3, 3)}
    assert isinstance(tv.head, nn.Identity)


@pytest.mark.parametrize("name", NAMES)
def test_one_optimizer_step_changes_every_weight_and_lowers_loss(name):
    torch.manual_seed(0)
    model = build_model(name).train()
    x, y = torch.randn(8, 1, 32, 32), torch.tensor([0, 1] * 4)
    # Adam moves every parameter whose gradient is non-zero, so "all changed" also proves that
    # gradient reaches every layer (no dead branch).
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    before = [p.detach().clone() for p in model.parameters()]

    def loss() -> torch.Tensor:
        torch.manual_seed(1)  # the same dropout mask for both evaluations
        return nn.functional.cross_entropy(model(x), y)

    first = loss()
    opt.zero_grad()
    first.backward()
    opt.step()
    with torch.no_grad():
        second = loss()
    changed = sum(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
    assert changed == len(before)
    assert second.item() < first.item()


def _export(model: nn.Module, path, **kwargs) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # dynamo=False is deprecated in torch 2.13, still works
        torch.onnx.export(model, (torch.zeros(1, 1, 32, 32),), str(path), opset_version=18,
                          input_names=["input"], output_names=["logits"], **kwargs)


def _check_onnx(model: nn.Module, path) -> set[str]:
    import onnx
    import onnxruntime as ort

    graph = onnx.load(str(path))
    onnx.checker.check_model(graph)
    assert {o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")} == {18}
    for node in graph.graph.node:
        if node.op_type == "MaxPool":
            attrs = {a.name: a.i for a in node.attribute}
            assert attrs.get("ceil_mode", 0) == 0
    x = torch.randn(2, 1, 32, 32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The exported batch dimension is fixed at 1: feed the samples one by one.
    got = np.concatenate([session.run(None, {"input": x[i:i + 1].numpy()})[0] for i in range(2)])
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)
    return {node.op_type for node in graph.graph.node}


@pytest.mark.parametrize("name", NAMES)
def test_onnx_export_opset18_torchscript(name, tmp_path):
    model = _model(name, 1, 2)
    _export(model, tmp_path / f"{name}.onnx", dynamo=False)
    ops = _check_onnx(model, tmp_path / f"{name}.onnx")
    assert ops <= ONNX_OPS_ALLOWED, ops - ONNX_OPS_ALLOWED


def test_onnx_export_dynamo_also_works(tmp_path):
    # torch 2.13's default exporter; it writes GAP as ReduceMean + Reshape.
    pytest.importorskip("onnxscript")
    model = _model("mobilenet_v2", 1, 2)
    _export(model, tmp_path / "m.onnx", dynamo=True, external_data=False, verbose=False)
    ops = _check_onnx(model, tmp_path / "m.onnx")
    assert ops <= ONNX_OPS_ALLOWED | {"ReduceMean", "Reshape"}, ops
