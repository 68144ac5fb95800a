"""The ort route on the tiny real ResNet18 (32 px): the exported ONNX -> ONNX Runtime fp32, int8
(static QDQ) and fp16 models with cards verified against PyTorch, the recipes it does not build as
rows, and a bundle that ships .onnx beside .tflite models."""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from edgebench.host.bundle import build_bundle
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.checkpoint import build_from_checkpoint
from edgebench.host.data import load_splits
from edgebench.host.errors import UserError
from edgebench.host.export.calibration import draw
from edgebench.host.export.card import read_card
from edgebench.host.export.converters import CONVERTERS, converter_of, converters_help
from edgebench.host.export.onnx_export import export_onnx
from edgebench.host.export.pipeline import checkpoint_source, reference_for
from edgebench.host.export.quantize import QuantizeOptions, quantize
from edgebench.host.export.verify import normalize
from tflite_factory import ARCH as TFLITE_ARCH, factory_dir

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

RECIPES = ["fp32", "dynamic", "fp16", "int8", "int16x8"]
BUILT = ("fp32", "fp16", "int8")


@pytest.fixture(scope="module")
def ort_run(tiny_checkpoint, tmp_path_factory):
    """Every default recipe through the ort route, from the ONNX file exported as `convert` does,
    calibrated on 8 training images and verified on the test split."""
    out = tmp_path_factory.mktemp("ort")
    model, meta = build_from_checkpoint(tiny_checkpoint)
    splits = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed)
    source = checkpoint_source(tiny_checkpoint, meta)
    source.onnx = str(export_onnx(model, meta.in_channels, meta.img_size,
                                  out / f"{meta.architecture}.onnx"))
    calib = normalize(draw(splits["train"][0], 8, 0), source.normalization)
    verify = reference_for(source, *splits["test"], model=model)
    start = time.perf_counter()
    results = quantize(Path(source.saved_model), RECIPES, calib, out, source,
                       QuantizeOptions(verify=verify, progress=False, converter="ort",
                                       model=model))
    seconds = time.perf_counter() - start
    print(f"ort route, {len(BUILT)} recipes + verification: {seconds:.1f} s")
    return {"out": out, "source": source, "seconds": seconds,
            "results": {r.recipe: r for r in results}}


def test_registry_lists_ort_and_names_its_files():
    route = CONVERTERS["ort"]
    assert "ort" in converters_help() and "to TFLite" not in converters_help()
    assert route.model_file("resnet18", "int8") == "resnet18.ort.int8.onnx"
    assert CONVERTERS["onnx2tf"].model_file("resnet18", "int8") == "resnet18.int8.tflite"
    assert converter_of("resnet18.ort.int8") == "ort"


def test_each_recipe_is_an_onnx_file_with_a_verified_card(ort_run):
    results, source = ort_run["results"], ort_run["source"]
    for recipe in BUILT:
        r = results[recipe]
        assert r.status == "ok", (recipe, r.error)
        assert r.tflite.name == f"resnet18.ort.{recipe}.onnx" and r.tflite.is_file()
        card = read_card(r.card)
        assert r.card.name == f"resnet18.ort.{recipe}.json"
        assert card["name"] == f"resnet18.ort.{recipe}" and card["file"] == r.tflite.name
        assert card["input"] == {"shape": [1, 1, 32, 32], "dtype": "float32", "layout": "NCHW",
                                 "scale": 0.0, "zero_point": 0,
                                 "normalization": card["input"]["normalization"]}
        assert card["input"]["normalization"]["mean"] == pytest.approx(
            source.normalization["mean"])
        assert card["output"] == {"shape": [1, 2], "dtype": "float32", "scale": 0.0,
                                  "zero_point": 0}
        assert card["converter"] == "ort" and card["recipe"] == recipe
        assert card["tools"]["onnxruntime"] and card["tools"]["onnx"]
        assert card["verification"]["reference"] == "torch" and card["verification"]["n"] > 0
    v = {k: results[k].verification for k in BUILT}
    assert v["fp32"]["max_abs_diff"] < 1e-4 and v["fp32"]["agreement"] == 1.0
    assert v["fp16"]["agreement"] >= 0.9 and v["fp16"]["max_abs_diff"] < 0.05
    assert v["int8"]["agreement"] >= 0.9


def test_int8_is_static_qdq_with_per_channel_weight_scales(ort_run):
    graph = onnx.load(str(ort_run["results"]["int8"].tflite)).graph
    ops = {n.op_type for n in graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "Conv"} <= ops
    assert not ops & {"QLinearConv", "ConvInteger", "DynamicQuantizeLinear"}  # QDQ, static
    weights = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    conv_weight_dq = [n for n in graph.node if n.op_type == "DequantizeLinear"
                      and n.input[0] in weights and weights[n.input[0]].ndim == 4]
    assert conv_weight_dq
    for dq in conv_weight_dq:
        scale, zero_point = weights[dq.input[1]], weights[dq.input[2]]
        assert scale.shape == (weights[dq.input[0]].shape[0],)  # one scale per output channel
        assert weights[dq.input[0]].dtype == np.int8 and zero_point.dtype == np.int8
    activation_q = [n for n in graph.node if n.op_type == "QuantizeLinear"]
    assert all(weights[q.input[2]].dtype == np.int8 for q in activation_q)  # S8S8
    census = read_card(ort_run["results"]["int8"].card)["census"]
    assert census["kind"] in ("integer", "mixed") and census["integer_ops"] > 10


def test_fp16_has_half_weights_and_float_io(ort_run):
    model = onnx.load(str(ort_run["results"]["fp16"].tflite))
    types = {i.data_type for i in model.graph.initializer}
    assert onnx.TensorProto.FLOAT16 in types
    for value in list(model.graph.input) + list(model.graph.output):
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    fp32 = ort_run["results"]["fp32"]
    assert ort_run["results"]["fp16"].size_bytes < 0.6 * fp32.size_bytes
    assert read_card(ort_run["results"]["fp16"].card)["census"]["kind"] == "fp16-weights"


def test_fp32_is_the_exported_graph_not_one_optimised_for_this_host(ort_run):
    exported = onnx.load(ort_run["source"].onnx).graph
    saved = onnx.load(str(ort_run["results"]["fp32"].tflite)).graph
    assert [n.op_type for n in saved.node] == [n.op_type for n in exported.node]
    for path in (ort_run["results"][r].tflite for r in BUILT):
        domains = {n.domain for n in onnx.load(str(path)).graph.node}
        assert not domains - {"", "ai.onnx"}, (path.name, domains)  # no com.microsoft NCHWc
    assert read_card(ort_run["results"]["fp32"].card)["census"]["kind"] == "float"


def test_recipes_it_does_not_build_are_rows_with_the_reason(ort_run):
    for recipe in ("dynamic", "int16x8"):
        r = ort_run["results"][recipe]
        assert r.status == "unsupported" and r.converter == "ort"
        assert r.error == CONVERTERS["ort"].unsupported[recipe]
        assert not (ort_run["out"] / f"resnet18.ort.{recipe}.onnx").exists()
    assert "static quantization for CNNs" in ort_run["results"]["dynamic"].error


def test_route_exports_the_onnx_itself_when_none_is_kept(tiny_checkpoint, tmp_path):
    _, meta = build_from_checkpoint(tiny_checkpoint)
    source = checkpoint_source(tiny_checkpoint, meta)  # no ONNX file: the route exports one
    (r,) = quantize(Path(source.saved_model), ["fp32"], None, tmp_path, source,
                    QuantizeOptions(progress=False, converter="ort"))
    assert r.status == "ok" and r.tflite == tmp_path / "resnet18.ort.fp32.onnx"
    assert read_card(r.card)["conversion_seconds"] > 0
    assert not list(tmp_path.glob("resnet18.onnx"))  # the export stays out of the models folder


def test_bundle_ships_onnx_beside_tflite_content_addressed(ort_run, tmp_path):
    models = ort_run["out"]  # ort models + cards, and the bare export resnet18.onnx
    for ext in ("tflite", "json"):
        shutil.copy(factory_dir() / "models" / f"{TFLITE_ARCH}.int8.{ext}", models)
    testset = factory_dir() / "testset.npz"
    first = build_bundle(models, tmp_path / "b1", testset=testset, run_id="r1")
    manifest = json.loads((first / "manifest.json").read_text())
    entries = {e["name"]: e for e in manifest["models"]}
    assert set(entries) == {f"{TFLITE_ARCH}.int8"} | {f"resnet18.ort.{r}" for r in BUILT}
    for recipe in BUILT:
        entry = entries[f"resnet18.ort.{recipe}"]
        assert entry["file"] == f"models/resnet18.ort.{recipe}.onnx"
        card = read_card(models / f"resnet18.ort.{recipe}.json")
        copied = (first / entry["file"]).read_bytes()
        assert entry["sha256"] == card["sha256"] == hashlib.sha256(copied).hexdigest()
        assert entry["input"]["layout"] == "NCHW" and entry["census"]["ops"] > 0
        assert entry["reference"]  # NCHW 1×1×32×32 matches the 32×32×1 test images
    assert entries[f"{TFLITE_ARCH}.int8"]["file"] == f"models/{TFLITE_ARCH}.int8.tflite"
    second = build_bundle(models, tmp_path / "b2", testset=testset, run_id="r2")
    assert load_bundle(first).content_id == load_bundle(second).content_id


def test_bare_onnx_alone_is_a_one_line_refusal(ort_run, tmp_path):
    shutil.copy(ort_run["source"].onnx, tmp_path / "resnet18.onnx")
    with pytest.raises(UserError, match=r"resnet18.onnx without a card: `bench-host quantize"):
        build_bundle(tmp_path, tmp_path / "bundle")


def test_the_bundle_s_onnx_models_are_measured_by_the_agent(ort_run, tmp_path):
    """The whole line for ORT: the route's .onnx models and their cards -> bundle -> the agent's
    ONNX Runtime rows, scored on the test images like the .tflite beside them."""
    from agent_helpers import by_model, read_rows, run_agent

    models = tmp_path / "models"
    models.mkdir()
    for recipe in BUILT:
        for ext in ("onnx", "json"):
            shutil.copy(ort_run["out"] / f"resnet18.ort.{recipe}.{ext}", models)
    bundle = build_bundle(models, tmp_path / "bundle", testset=None, run_id="ort")
    done = run_agent(bundle, tmp_path / "out")
    assert done.returncode == 0, done.stderr
    rows = by_model(read_rows(tmp_path / "out" / "results.csv")[1])
    assert set(rows) == {f"resnet18.ort.{r}" for r in BUILT}
    for recipe in BUILT:
        row = rows[f"resnet18.ort.{recipe}"]
        assert row["status"] == "ok", row["error"]
        assert row["runtime"] == "onnxruntime" and row["runtime_version"] == onnx_runtime_version()
        assert float(row["p50_ms"]) > 0 and row["accuracy"] != ""
        card = read_card(models / f"resnet18.ort.{recipe}.json")
        # the same images the card was verified on (the host's session, other threads): the
        # agent's accuracy is the card's, give or take one borderline image
        verified = card["verification"]
        assert abs(float(row["accuracy"]) - verified["accuracy"]) <= 1 / verified["n"] + 1e-9


def onnx_runtime_version() -> str:
    import onnxruntime

    return onnxruntime.__version__
