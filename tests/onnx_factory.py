"""Tiny real `.onnx` models for the agent's ONNX Runtime rows: the tflite factory's tinycnn with
the SAME weights (read out of its fp32 `.tflite`), rebuilt as an NCHW float graph with
onnx.helper, so an ORT row and its LiteRT twin can be asked for the same class image by image.

The cards follow the interface the host's bundle writes for ORT recipes: name
`<arch>.ort.<recipe>`, "converter": "ort", input [1, C, H, W] float32 "NCHW" with the tflite
card's normalization, output [1, K] float32, scale 0.0 and zero point 0 on both."""
from __future__ import annotations

import copy
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np

from tflite_factory import ARCH, factory_dir, make_bundle

# ORT 1.19.2 (the last with wheels for Python 3.8/3.9) reads IR <= 10; opset 13 is old enough
# for every ORT a board may have.
IR_VERSION, OPSET = 8, 13
# tflite -> onnx weight layouts: a convolution's OHWI -> OIHW
OHWI_TO_OIHW = (0, 3, 1, 2)


def tflite_weights(path: Path) -> dict:
    """{op number: [weights, bias]} of the fp32 tinycnn's CONV_2D and FULLY_CONNECTED ops, in
    graph order, read through LiteRT (constant tensors can be read without invoking)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(path))
    it.allocate_tensors()
    weights = []
    for op in it._get_ops_details():
        if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED"):
            weights.append((op["op_name"], [np.array(it.get_tensor(int(i)))
                                            for i in op["inputs"][1:]]))
    return weights


def tinycnn_graph(weights: list, channels: int = 1, size: int = 32):
    """The tinycnn as an ONNX model: Conv+Relu, MaxPool 2x2, Conv+Relu, GlobalMaxPool, Gemm+Relu,
    Gemm. `channels` > 1 repeats the first convolution's weights over the channels (a model
    whose input does not match the one-channel test set)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    (_, (w1, b1)), (_, (w2, b2)), (_, (w3, b3)), (_, (w4, b4)) = weights
    w1 = np.repeat(w1.transpose(OHWI_TO_OIHW), channels, axis=1) / channels
    inits = [numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name) for a, name in (
        (w1, "w1"), (b1, "b1"), (w2.transpose(OHWI_TO_OIHW), "w2"), (b2, "b2"),
        (w3, "w3"), (b3, "b3"), (w4, "w4"), (b4, "b4"))]
    nodes = [
        helper.make_node("Conv", ["input", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("MaxPool", ["r1"], ["p1"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["p1", "w2", "b2"], ["c2"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("GlobalMaxPool", ["r2"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w3", "b3"], ["d1"], transB=1),
        helper.make_node("Relu", ["d1"], ["r3"]),
        helper.make_node("Gemm", ["r3", "w4", "b4"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, ARCH, [helper.make_tensor_value_info("input", TensorProto.FLOAT,
                                                    [1, channels, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, int(b4.shape[0])])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgebench-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def ort_card(tflite_card: dict, path: Path, recipe: str, card_channels: int) -> dict:
    """The card the host writes for an ORT recipe, from the tflite twin's card."""
    import onnx

    _, size, _, _ = tflite_card["input"]["shape"]
    card = copy.deepcopy(tflite_card)
    card.update(
        name=f"{ARCH}.ort.{recipe}", file=path.name, recipe=recipe, converter="ort",
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(), size_bytes=path.stat().st_size,
        tools={"onnx": onnx.__version__}, verification=None)
    card["input"].update(shape=[1, card_channels, size, size], dtype="float32", layout="NCHW",
                         scale=0.0, zero_point=0)
    card["output"].update(dtype="float32", scale=0.0, zero_point=0)
    return card


def add_onnx_model(bundle: Path, name: str = f"{ARCH}.ort.fp32", channels: int = 1,
                   card_channels: int = 1) -> dict:
    """Writes the tinycnn (the factory's fp32 weights) as models/<name>.onnx into a bundle made
    by tflite_factory.make_bundle and adds its card to the manifest; returns the entry.
    channels != card_channels gives a model whose input is not what its card (and the test
    set) says."""
    import onnx

    src = factory_dir() / "models"
    tflite_card = json.loads((src / f"{ARCH}.fp32.json").read_text())
    path = bundle / "models" / f"{name}.onnx"
    onnx.save(tinycnn_graph(tflite_weights(src / f"{ARCH}.fp32.tflite"), channels), str(path))
    recipe = name.rsplit(".", 1)[-1]
    entry = dict(ort_card(tflite_card, path, recipe, card_channels), name=name,
                 file=f"models/{path.name}")
    manifest = json.loads((bundle / "manifest.json").read_text())
    twin = next((e for e in manifest["models"] if e.get("architecture") == ARCH), {})
    if twin.get("reference"):
        entry["reference"] = twin["reference"]
    manifest["models"].append(entry)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return entry


def make_ort_bundle(out: Path, recipes=("fp32",)) -> Path:
    """A bundle (tflite_factory.make_bundle) with tinycnn.RECIPE.tflite for each recipe and
    tinycnn.ort.fp32.onnx beside them, the same fp32 weights."""
    bundle = make_bundle(out, recipes=recipes)
    add_onnx_model(bundle)
    return bundle


def copy_bundle(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    return dest


# A model for the op profile's validation (tests/test_op_profile.py): a stem convolution, then
# parallel branches from its output, each a convolution of its own width and kernel + ReLU +
# global average pool, concatenated into one Gemm. One branch is the deliberately heavy
# convolution (5x5, 224 channels: 5.6x the multiply-adds of the next op, 5.9x its time here);
# the others step down by about 15 % each, so that five ops make up 80 % of the time, each in a
# rank of its own. Widths are multiples of 16 so ORT's blocked NCHWc kernels (blocks of 8 or
# 16 channels) pad none of them.
HEAVY_ARCH = "heavyconv"
HEAVY_NODE = "conv_heavy"
HEAVY_BRANCHES = ((HEAVY_NODE, 224, 5),) + tuple(
    ("conv_w%dk%d" % (width, kernel), width, kernel)
    for width, kernel in ((112, 3), (96, 3), (80, 3), (64, 3), (16, 5), (48, 3), (32, 3), (16, 3)))


def heavy_conv_graph(size: int = 32, stem: int = 16, classes: int = 2, seed: int = 0):
    """The heavy-convolution model (HEAVY_BRANCHES), random weights (it is timed, not judged),
    every node named so the profile's node names are stable."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weights(name, *shape):
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.1).astype(np.float32),
                                       name)

    inits = [weights("stem_w", stem, 1, 3, 3), weights("stem_b", stem)]
    nodes = [helper.make_node("Conv", ["input", "stem_w", "stem_b"], ["stem"], name="conv_stem",
                              pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["stem"], ["stem_r"], name="relu_stem")]
    pooled = []
    for name, width, kernel in HEAVY_BRANCHES:
        pad = kernel // 2
        inits += [weights(name + "_w", width, stem, kernel, kernel), weights(name + "_b", width)]
        nodes += [helper.make_node("Conv", ["stem_r", name + "_w", name + "_b"], [name],
                                   name=name, pads=[pad] * 4),
                  helper.make_node("Relu", [name], [name + "_r"], name="relu_" + name),
                  helper.make_node("GlobalAveragePool", [name + "_r"], [name + "_p"],
                                   name="pool_" + name)]
        pooled.append(name + "_p")
    total = sum(width for _, width, _ in HEAVY_BRANCHES)
    inits += [weights("fc_w", classes, total), weights("fc_b", classes)]
    nodes += [helper.make_node("Concat", pooled, ["cat"], name="concat", axis=1),
              helper.make_node("Flatten", ["cat"], ["flat"], name="flatten"),
              helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"], name="fc",
                               transB=1)]
    graph = helper.make_graph(
        nodes, HEAVY_ARCH,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, classes])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="edgebench-tests")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    return model


def add_heavy_conv_model(bundle: Path, name: str = f"{HEAVY_ARCH}.ort.fp32") -> dict:
    """Writes heavy_conv_graph() as models/<name>.onnx into a bundle made by
    tflite_factory.make_bundle (its 32x32x1 test set) and adds its card; returns the entry."""
    import onnx

    tflite_card = json.loads((factory_dir() / "models" / f"{ARCH}.fp32.json").read_text())
    classes = int(tflite_card["output"]["shape"][-1])
    path = bundle / "models" / f"{name}.onnx"
    onnx.save(heavy_conv_graph(classes=classes), str(path))
    entry = dict(ort_card(tflite_card, path, name.rsplit(".", 1)[-1], 1), name=name,
                 architecture=HEAVY_ARCH, file=f"models/{path.name}")
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["models"].append(entry)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))
    return entry
