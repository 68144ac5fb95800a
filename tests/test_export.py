"""Conversion and quantization on a tiny real CNN (32 px, a padded MaxPool stem like ResNet's):
PyTorch -> ONNX -> onnx2tf SavedModel -> five TFLite recipes, verified through LiteRT."""
from __future__ import annotations

import csv
import ipaddress
import json
import socket

import numpy as np
import onnx
import pytest
import torch
from torch import nn

from edgebench.host.checkpoint import CheckpointMeta, save_checkpoint
from edgebench.host.errors import UserError
from edgebench.host.export.card import read_card
from edgebench.host.export.pipeline import (convert_checkpoint, convert_onnx, record_verification,
                                            reference_for)
from edgebench.host.export.converters.onnx2tf_route import convert_isolated
from edgebench.host.export.quantize import QuantizeOptions, quantize
from edgebench.host.export.recipes import DEFAULT_RECIPES, parse_recipes
from edgebench.host.export.tf_convert import ConversionError
from edgebench.host.export.verify import (VERIFY_COLUMNS, compare, normalize, quantize_input,
                                          tflite_logits)
from edgebench.models import MODELS, ModelSpec

# Real conversions (seconds each); foreign ONNX files are made with the legacy exporter on purpose.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ARCH = "tinypool"
IMG = 32


class TinyPool(nn.Sequential):
    """ResNet's stem in miniature: conv s2 -> BN -> ReLU -> MaxPool(3, 2, pad 1)."""

    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.MaxPool2d(3, 2, 1), nn.Conv2d(8, 16, 3, 1, 1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))


def synthetic(n: int, seed: int, channels: int = 1):
    """Speckle with a bright square in class-1 images: learnable in a few dozen steps."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 120, (n, IMG, IMG, channels)).astype(np.uint8)
    labels = rng.integers(0, 2, n)
    for img, lab in zip(images, labels):
        if lab:
            y, x = rng.integers(2, IMG - 12, 2)
            img[y:y + 10, x:x + 10] += 120
    return images, labels


def make_checkpoint(path, channels: int = 1, arch: str = ARCH, build=TinyPool):
    """`build(channels)` -> the model (TinyPool here; test_converters passes its own), trained 60
    steps on the synthetic task and saved as architecture `arch`."""
    torch.manual_seed(0)
    meta = CheckpointMeta(arch, channels, 2, IMG, ["benign", "malignant"], [0.3] * channels,
                          [0.2] * channels, "synthetic", 0)
    model = build(channels)
    images, labels = synthetic(256, 1, channels)
    x = torch.from_numpy(normalize(images, meta.normalization()).transpose(0, 3, 1, 2).copy())
    y = torch.from_numpy(labels)
    opt = torch.optim.Adam(model.parameters(), 1e-2)
    for step in range(60):  # trained, so that logits are apart and agreement is meaningful
        i = slice((step * 32) % 256, (step * 32) % 256 + 32)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[i]), y[i]).backward()
        opt.step()
    save_checkpoint(path, meta, model.eval().state_dict())
    return path


@pytest.fixture(scope="module", autouse=True)
def registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, ARCH, ModelSpec(ARCH, "test model with a padded MaxPool", TinyPool))
        yield


@pytest.fixture(scope="module")
def testset():
    return synthetic(96, 2)


@pytest.fixture(scope="module")
def converted(tmp_path_factory, testset):
    out = tmp_path_factory.mktemp("convert")
    ckpt = make_checkpoint(out / "tiny.pt")
    return convert_checkpoint(ckpt, verify_images=testset[0], verify_labels=testset[1])


@pytest.fixture(scope="module")
def quantized(converted, testset):
    src = converted.source
    calib = normalize(synthetic(64, 3)[0], src.normalization)
    verify = reference_for(src, *testset)
    out = converted.tflite.parent
    results = quantize(converted.saved_model, list(DEFAULT_RECIPES), calib, out, src,
                       QuantizeOptions(verify=verify, progress=False))
    record_verification(out, results, ARCH)
    return {r.recipe: r for r in results}


def tflite_ops(path) -> set[str]:
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=str(path))._get_ops_details()}


def test_convert_keeps_every_intermediate_beside_the_checkpoint(converted):
    folder = converted.tflite.parent
    assert converted.onnx == folder / f"{ARCH}.onnx"
    model = onnx.load(str(converted.onnx))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == 18
    assert not list(folder.glob("*.onnx.data"))  # weights inside the file
    conv = next(i for i in model.graph.initializer if len(i.dims) == 4)
    assert conv.raw_data or conv.float_data
    assert (converted.saved_model / "saved_model.pb").is_file()
    assert converted.tflite.name == f"{ARCH}.fp32.tflite"
    assert set(converted.timings) >= {"onnx_export_s", "onnx2tf_s", "tflite_s", "total_s"}


@pytest.mark.trained
def test_fp32_matches_pytorch(converted, testset):
    v = converted.verification
    assert v["reference"] == "torch" and v["n"] == len(testset[0])
    assert v["max_abs_diff"] <= 1e-4
    assert v["agreement"] == 1.0
    assert v["accuracy"] > 0.8  # the model learnt the task, so agreement is not trivial


def test_padded_maxpool_is_zero_padded_so_int8_scales_stay_sane(converted, quantized):
    # float32.min padding shows up as PADV2; the quantizer then picks a ~1e36 scale.
    assert "PADV2" not in tflite_ops(converted.tflite)
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(quantized["int8"].tflite))
    scales = [d["quantization"][0] for d in interp.get_tensor_details()]
    assert max(scales) < 1e3


@pytest.mark.trained
def test_every_recipe_converts_runs_and_agrees(quantized):
    assert list(quantized) == ["fp32", "dynamic", "fp16", "int8", "int16x8"]
    for name, r in quantized.items():
        assert r.status == "ok", (name, r.error)
        assert r.tflite.name == f"{ARCH}.{name}.tflite" and r.tflite.is_file()
        assert r.card.name == f"{ARCH}.{name}.json"
        assert r.verification["agreement"] >= 0.95, name
    assert quantized["fp32"].verification["max_abs_diff"] <= 1e-4
    assert quantized["fp16"].verification["max_abs_diff"] <= 1e-2
    # the float reference is exact in fp32, so quantized recipes must differ from it
    assert quantized["int8"].verification["max_abs_diff"] > 1e-5


def test_cards_describe_each_recipe_io(quantized, converted):
    cards = {n: read_card(r.card) for n, r in quantized.items()}
    for name in ("fp32", "dynamic", "fp16"):
        assert cards[name]["input"]["dtype"] == "float32"
        assert cards[name]["input"]["scale"] == 0.0
    i8 = cards["int8"]
    assert i8["input"]["dtype"] == "int8" and i8["output"]["dtype"] == "int8"
    assert i8["input"]["scale"] > 0 and -128 <= i8["input"]["zero_point"] <= 127
    i16 = cards["int16x8"]
    assert i16["input"]["dtype"] == "int16" and i16["input"]["zero_point"] == 0  # symmetric
    for name, card in cards.items():
        assert card["input"]["shape"] == [1, IMG, IMG, 1] and card["input"]["layout"] == "NHWC"
        assert card["input"]["normalization"] == {"pixel_scale": 1 / 255, "mean": [0.3], "std": [0.2]}
        assert card["recipe"] == name and card["architecture"] == ARCH
        assert card["size_bytes"] == quantized[name].tflite.stat().st_size
        assert card["verification"]["agreement"] == quantized[name].verification["agreement"]
        assert card["source"]["checkpoint"].endswith("tiny.pt")
        assert card["tools"]["onnx2tf"] == "1.29.24"
        assert card["conversion_seconds"] >= converted.source.upstream_seconds


def test_verify_csv_has_one_row_per_recipe(quantized, converted):
    with open(converted.tflite.parent / "verify.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == VERIFY_COLUMNS
    assert [r["recipe"] for r in rows] == list(DEFAULT_RECIPES)
    assert {r["model"] for r in rows} == {ARCH}
    by = {r["recipe"]: r for r in rows}
    assert float(by["fp32"]["size_ratio_vs_fp32"]) == 1.0
    assert 0 < float(by["int8"]["size_ratio_vs_fp32"]) < 1
    assert all(0.0 <= float(r["agreement"]) <= 1.0 and r["status"] == "ok" for r in rows)
    assert int(by["int8"]["n"]) == 96


def test_int8_inputs_are_quantized_with_scale_and_zero_point(quantized, converted, testset):
    from ai_edge_litert.interpreter import Interpreter

    x = normalize(testset[0][:8], converted.source.normalization)
    interp = Interpreter(model_path=str(quantized["int8"].tflite))
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zp = inp["quantization"]
    by_hand = []
    for xi in x:
        interp.set_tensor(inp["index"], np.clip(np.round(xi[None] / scale + zp), -128, 127).astype(np.int8))
        interp.invoke()
        o_scale, o_zp = out["quantization"]
        by_hand.append((interp.get_tensor(out["index"])[0].astype(np.float32) - o_zp) * o_scale)
    np.testing.assert_allclose(tflite_logits(quantized["int8"].tflite, x, desc=False), by_hand)
    assert quantize_input(np.array([1e9, -1e9], np.float32), inp).tolist() == [127, -128]


def test_verification_catches_a_wrong_model(quantized, converted, testset):
    # Without normalisation the same images give different logits: the check is able to fail.
    raw = testset[0].astype(np.float32)
    bad = compare(tflite_logits(quantized["fp32"].tflite, raw, desc=False),
                  reference_for(converted.source, *testset).reference, testset[1])
    assert bad["max_abs_diff"] > 0.1
    assert compare(np.array([[0, 1], [1, 0]]), np.array([[0, 2], [0, 1]]), np.array([1, 1])) == \
        {"max_abs_diff": 1.0, "agreement": 0.5, "accuracy": 0.5, "n": 2}


@pytest.mark.trained
def test_uint8_io_for_the_int8_recipe(converted, testset, tmp_path):
    src = converted.source
    calib = normalize(synthetic(32, 3)[0], src.normalization)
    (r,) = quantize(converted.saved_model, ["int8"], calib, tmp_path, src,
                    QuantizeOptions(io="uint8", verify=reference_for(src, *testset),
                                    progress=False))
    card = read_card(r.card)
    assert card["input"]["dtype"] == "uint8" and card["output"]["dtype"] == "uint8"
    assert r.verification["agreement"] >= 0.95


def test_a_failing_recipe_is_a_row_and_the_others_go_on(tmp_path):
    """SIN has no 16x8 kernel: int16x8 fails in the converter, fp32 and int8 still come out."""

    class Sine(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 4, 3, 1, 1), nn.Linear(4, 2)

        def forward(self, x):
            return self.fc(torch.sin(self.conv(x)).mean((2, 3)))

    path = tmp_path / "sine.onnx"
    torch.onnx.export(Sine().eval(), (torch.zeros(1, 1, 16, 16),), str(path), dynamo=False,
                      opset_version=18, input_names=["input"])
    conv = convert_onnx(path, verify_images=np.zeros((0, 16, 16, 1), np.uint8))
    (tmp_path / "sine.int16x8.tflite").write_bytes(b"stale file from an earlier run")
    calib = np.random.default_rng(0).random((8, 16, 16, 1), dtype=np.float32)
    results = quantize(conv.saved_model, ["fp32", "int8", "int16x8"], calib, tmp_path,
                       conv.source, QuantizeOptions(progress=False))
    by = {r.recipe: r for r in results}
    assert by["fp32"].status == "ok" and by["int8"].status == "ok"
    assert by["int16x8"].status == "failed"
    assert "SIN" in by["int16x8"].error and "\n" not in by["int16x8"].error
    assert not (tmp_path / "sine.int16x8.tflite").exists()
    record_verification(tmp_path, results, "sine")
    rows = {r["recipe"]: r for r in csv.DictReader(open(tmp_path / "verify.csv"))}
    assert rows["int16x8"]["status"] == "failed" and "SIN" in rows["int16x8"]["error"]
    assert rows["int8"]["status"] == "ok"


def test_a_converter_crash_costs_one_recipe(converted, tmp_path):
    # NaN calibration data segfaults TensorFlow's converter; quantize() refuses it up front, so
    # drive the isolated converter directly to prove a crash does not take the other recipes.
    nan = np.full((2, IMG, IMG, 1), np.nan, np.float32)
    events = list(convert_isolated(converted.saved_model, ["int8", "fp16"], nan, "int8",
                                   tmp_path, ARCH))
    assert [(e["recipe"], e["status"]) for e in events] == [("int8", "failed"), ("fp16", "ok")]
    assert "crashed" in events[0]["error"]
    with pytest.raises(UserError, match="NaN"):
        quantize(converted.saved_model, ["int8"], nan, tmp_path, converted.source,
                 QuantizeOptions(progress=False))
    with pytest.raises(UserError, match="shape"):
        quantize(converted.saved_model, ["int8"], np.zeros((2, 16, 16, 1), np.float32), tmp_path,
                 converted.source, QuantizeOptions(progress=False))


def test_unknown_recipe_lists_the_valid_ones():
    with pytest.raises(UserError, match="fp32, dynamic, fp16, int8, int16x8"):
        parse_recipes("fp32,int4")
    assert parse_recipes("int8,fp32") == ["fp32", "int8"]


def test_op_the_converter_cannot_take_is_named(tmp_path):
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((4, 1, 3, 3), np.float32), "w")
    nodes = [helper.make_node("Conv", ["input", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Frobnicate", ["c"], ["y"], name="odd0", domain="example.ops"),
             helper.make_node("GlobalAveragePool", ["y"], ["g"]),
             helper.make_node("Flatten", ["g"], ["logits"])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 16, 16])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18),
                                                    helper.make_opsetid("example.ops", 1)])
    path = tmp_path / "odd.onnx"
    onnx.save(model, str(path))
    with pytest.raises(ConversionError, match=r"cannot convert ONNX op 'Frobnicate' \(node odd0\)"):
        convert_onnx(path, verify_images=np.zeros((0, 16, 16, 1), np.uint8))


def test_bare_onnx_with_dynamic_batch_and_negative_maxpool_input(tmp_path):
    """An ONNX file from elsewhere: dynamic batch (needs the shape), a MaxPool fed by a signed
    tensor (must keep -inf padding to stay exact), checked against onnxruntime."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.MaxPool2d(3, 2, 1), nn.Flatten(),
                          nn.Linear(4 * 8 * 8, 3)).eval()
    path = tmp_path / "foreign.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 16, 16),), str(path), dynamo=False, opset_version=18,
                      input_names=["x"], dynamic_axes={"x": {0: "n"}})
    with pytest.raises(UserError, match="dynamic shape"):
        convert_onnx(path)
    result = convert_onnx(path, input_shape=(1, 3, 16, 16))
    assert result.verification["reference"] == "onnxruntime"
    assert result.verification["max_abs_diff"] <= 1e-4 and result.verification["n"] == 32
    assert any("MaxPool" in n for n in result.notes)
    assert "PADV2" in tflite_ops(result.tflite)
    assert read_card(result.card)["class_names"] == ["class0", "class1", "class2"]


@pytest.fixture
def loopback_only(monkeypatch):
    """Any name lookup or socket connect beyond loopback fails (and is recorded)."""
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host, *args, **kwargs):
        name = host.decode() if isinstance(host, bytes) else host
        if name not in (None, "localhost"):
            try:
                ok = ipaddress.ip_address(name).is_loopback
            except ValueError:
                ok = False
            if not ok:
                attempts.append(name)
                raise socket.gaierror(socket.EAI_NONAME, f"test forbids looking up {name!r}")
        return real_getaddrinfo(host, *args, **kwargs)

    def allowed(sock, address) -> bool:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return True
        try:
            return ipaddress.ip_address(address[0]).is_loopback
        except ValueError:
            return address[0] == "localhost"

    def connect(sock, address):
        if not allowed(sock, address):
            attempts.append(address)
            raise OSError(f"test forbids network access to {address!r}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if not allowed(sock, address):
            attempts.append(address)
            return 101  # ENETUNREACH
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return attempts


def test_conversion_opens_no_network_connection(loopback_only, tmp_path):
    # 3-channel input: the case where onnx2tf on its own downloads a sample from GitHub.
    ckpt = make_checkpoint(tmp_path / "rgb.pt", channels=3)
    images, labels = synthetic(16, 4, channels=3)
    result = convert_checkpoint(ckpt, verify_images=images, verify_labels=labels)
    (r,) = quantize(result.saved_model, ["int8"], normalize(images, result.source.normalization),
                    tmp_path, result.source, QuantizeOptions(progress=False))
    assert r.status == "ok", r.error
    assert result.verification["max_abs_diff"] <= 1e-4
    assert read_card(result.card)["input"]["shape"] == [1, IMG, IMG, 3]
    assert loopback_only == []
    with pytest.raises(OSError, match="forbids"):  # the guard itself works
        socket.create_connection(("192.0.2.1", 80), timeout=1)
    with pytest.raises(OSError, match="forbids"):
        socket.create_connection(("github.com", 443), timeout=1)


def test_source_file_lets_quantize_start_from_the_saved_model(converted):
    blob = json.loads((converted.saved_model / "edgebench.json").read_text())
    assert blob["architecture"] == ARCH and blob["input_shape"] == [1, IMG, IMG, 1]
    assert blob["checkpoint"].endswith("tiny.pt")
