"""Two routes from one checkpoint: onnx2tf (PyTorch -> ONNX -> TF -> TFLite) and litert-torch
(torch.export -> litert-torch, quantized by ai-edge-quantizer, in its own venv), on a tiny real CNN
at 32 px; the same calibration and verification images for both, and the real device agent."""
from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from torch import nn

from cli_runner import run_cli
from agent_helpers import by_model, read_rows, run_agent
from edgebench.host.bundle import build_bundle
from edgebench.host.errors import UserError
from edgebench.host.export.card import read_card
from edgebench.host.export.converters import (CONVERTERS, converter_of, converters_help,
                                              parse_converters)
from edgebench.host.export.converters.env import ENVS
from edgebench.host.export.pipeline import convert_checkpoint, record_verification, reference_for
from edgebench.host.export.quantize import QuantizeOptions, quantize
from edgebench.host.export.verify import normalize
from edgebench.models import MODELS, ModelSpec
from test_export import make_checkpoint as export_checkpoint, synthetic  # the same task

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

IMG = 32
LITERT_RECIPES = ["fp32", "dynamic", "fp16", "int8", "int16x8", "int8-mixed"]


class Tiny(nn.Sequential):
    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__(
            nn.Conv2d(in_channels, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
            nn.Linear(16, num_classes))


class MaskedSum(Tiny):
    """A data-dependent shape (boolean-mask indexing): torch.export and the ONNX exporter trace
    it, litert-torch's lowering cannot (its JAX tracer needs concrete boolean indices)."""

    def forward(self, x):
        layers = list(self)
        for layer in layers[:3]:
            x = layer(x)
        x = x + 0.01 * x[x > 0].mean()
        for layer in layers[3:]:
            x = layer(x)
        return x


def make_checkpoint(path, arch: str):
    return export_checkpoint(path, arch=arch, build=lambda channels: MODELS[arch].build(channels, 2))


@pytest.fixture(scope="module", autouse=True)
def registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, "tinyconv", ModelSpec("tinyconv", "test CNN", Tiny))
        mp.setitem(MODELS, "maskedsum", ModelSpec("maskedsum", "test CNN, data-dependent shape",
                                                  MaskedSum))
        yield


def test_registry_parses_lists_and_names_files():
    assert parse_converters(None) == ["onnx2tf"]
    assert parse_converters("litert-torch,onnx2tf") == ["onnx2tf", "litert-torch"]
    with pytest.raises(UserError, match="choose one of: onnx2tf, litert-torch"):
        parse_converters("tflite-magic")
    assert "litert-torch" in converters_help() and "onnx2tf" in converters_help()
    assert CONVERTERS["onnx2tf"].stem("resnet18") == "resnet18"  # the paper's names stay
    assert CONVERTERS["litert-torch"].stem("resnet18") == "resnet18.litert-torch"
    assert converter_of("resnet18.litert-torch.int8") == "litert-torch"
    assert converter_of("resnet18.int8") == "onnx2tf"


@pytest.fixture(scope="module")
def both_routes(tmp_path_factory):
    """Every recipe through both routes from one checkpoint, the same images for both."""
    out = tmp_path_factory.mktemp("routes")
    ckpt = make_checkpoint(out / "tinyconv.pt", "tinyconv")
    test_images, test_labels = synthetic(48, 7)
    calib = normalize(synthetic(32, 3)[0], {"pixel_scale": 1 / 255, "mean": [0.3], "std": [0.2]})
    conv = convert_checkpoint(ckpt, out)
    verify = reference_for(conv.source, test_images, test_labels)
    results = []
    for converter, recipes in (("onnx2tf", ["fp32", "int8"]), ("litert-torch", LITERT_RECIPES)):
        results += quantize(conv.saved_model, recipes, calib, out, conv.source,
                            QuantizeOptions(verify=verify, progress=False, converter=converter))
    record_verification(out, results, "tinyconv")
    np.savez(out / "testset.npz", images=test_images, labels=test_labels,
             class_names=np.array(["benign", "malignant"]))
    return out, {(r.converter, r.recipe): r for r in results}


def test_both_fp32_models_agree_with_pytorch(both_routes):
    out, results = both_routes
    for converter in ("onnx2tf", "litert-torch"):
        v = results[(converter, "fp32")].verification
        assert v["reference"] == "torch" and v["n"] == 48
        assert v["agreement"] == 1.0 and v["max_abs_diff"] < 1e-4, (converter, v)
    assert (out / "tinyconv.fp32.tflite").is_file()  # both routes' files side by side
    assert (out / "tinyconv.litert-torch.fp32.tflite").is_file()


def test_litert_builds_every_recipe_it_supports_and_says_why_not(both_routes):
    out, results = both_routes
    for recipe in ("fp32", "dynamic", "fp16", "int8", "int16x8"):
        r = results[("litert-torch", recipe)]
        assert r.status == "ok", (recipe, r.error)
        assert r.verification["agreement"] >= 0.9, (recipe, r.verification)
        card = read_card(r.card)
        assert card["converter"] == "litert-torch"
        assert card["name"] == f"tinyconv.litert-torch.{recipe}"
        assert card["tools"]["litert_torch"] == "0.10.0" and card["tools"]["onnx2tf"] is None
    mixed = results[("litert-torch", "int8-mixed")]
    assert mixed.status == "unsupported" and "QuantizationDebugger" in mixed.error
    int8 = read_card(results[("litert-torch", "int8")].card)
    assert int8["input"]["dtype"] == "int8" and int8["input"]["scale"] > 0
    assert int8["census"]["kind"] == "integer"
    fp16 = read_card(results[("litert-torch", "fp16")].card)
    assert fp16["size_bytes"] < read_card(results[("litert-torch", "fp32")].card)["size_bytes"]
    with open(out / "verify.csv", newline="") as f:
        rows = {(r["converter"], r["recipe"]): r for r in csv.DictReader(f)}
    assert rows[("onnx2tf", "int8")]["status"] == "ok"
    assert rows[("litert-torch", "int8-mixed")]["status"] == "unsupported"
    # against its own route's fp32 (a tiny model: the flatbuffer's overhead dominates)
    assert float(rows[("litert-torch", "int8")]["size_ratio_vs_fp32"]) < 0.9


def test_agent_runs_litert_int8_from_its_card_and_report_compares_routes(both_routes, tmp_path):
    """No special case in the agent: it quantizes the input with the card's (the model's) own
    scale and zero point, as for any int8 model. The report pairs the routes per recipe."""
    from edgebench.host.report import build_report

    out, _ = both_routes
    models = tmp_path / "models"
    models.mkdir()
    for stem in ("tinyconv.litert-torch.int8", "tinyconv.int8", "tinyconv.fp32",
                 "tinyconv.litert-torch.fp32"):
        for ext in (".tflite", ".json"):
            (models / f"{stem}{ext}").write_bytes((out / f"{stem}{ext}").read_bytes())
    bundle = build_bundle(models, tmp_path / "bundle", testset=out / "testset.npz", run_id="r")
    proc = run_agent(bundle, tmp_path / "res", "--threads", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    _, rows = read_rows(tmp_path / "res" / "results.csv")
    rows = by_model(rows)
    lite = rows["tinyconv.litert-torch.int8"]
    assert lite["status"] == "ok" and float(lite["p50_ms"]) > 0
    assert float(lite["accuracy"]) >= 0.75 and int(lite["n_test"]) == 48
    assert abs(float(lite["accuracy"]) - float(rows["tinyconv.int8"]["accuracy"])) <= 0.15

    report = build_report([tmp_path / "res"], tmp_path / "report")
    text = report.markdown.read_text()
    assert "# Converters: onnx2tf vs litert-torch" in text
    assert "accuracy (%) litert-torch" in text and "McNemar b/c" in text
    with open(report.summary_csv, newline="") as f:
        summary = list(csv.DictReader(f))
    routes = {(r["model"], r["recipe"]): r["converter"] for r in summary}
    assert routes[("tinyconv.litert-torch", "int8")] == "litert-torch"
    assert routes[("tinyconv", "int8")] == "onnx2tf"
    lines = report.headline.split("converters (McNemar between routes)")[1].strip().splitlines()
    assert [ln.split(":")[0] for ln in lines] == ["fp32", "int8"]
    assert all(("more accurate" in ln or "same accuracy" in ln) and "(p " in ln for ln in lines)


def test_litert_export_failure_is_a_row_naming_the_step(tmp_path):
    """Both routes in one command: litert-torch's rows fail naming its step, onnx2tf's are
    measured, and the exit status says something failed."""
    ckpt = make_checkpoint(tmp_path / "maskedsum.pt", "maskedsum")
    images, labels = synthetic(40, 5)
    np.savez(tmp_path / "calib.npz", train_images=images, test_images=images, test_labels=labels)
    code, out, err = run_cli("quantize", ckpt, "--converter", "onnx2tf,litert-torch", "--recipes",
                             "fp32,int8", "--calib-data", tmp_path / "calib.npz", "--quiet")
    assert code == 1, out + err
    with open(tmp_path / "verify.csv", newline="") as f:
        rows = {(r["converter"], r["recipe"]): r for r in csv.DictReader(f)}
    for recipe in ("fp32", "int8"):
        assert rows[("onnx2tf", recipe)]["status"] == "ok"
        assert float(rows[("onnx2tf", recipe)]["agreement"]) >= 0.9
        lite = rows[("litert-torch", recipe)]
        assert lite["status"] == "failed"
        assert lite["error"].startswith("litert_torch.convert failed: "), lite["error"]
    assert not list(tmp_path.glob("maskedsum.litert-torch.*"))


def _fake_env(root, python_ok: bool):
    """A converter venv that was ready once and is now broken: its Python gone, or present but
    without the converter installed."""
    spec = ENVS["litert-torch"]
    path = root / spec.path.name
    path.mkdir(parents=True)
    if python_ok:
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    (path / "edgebench-env.json").write_text(json.dumps({"pins": spec.pins_hash}))
    return path


@pytest.mark.parametrize("python_ok", [False, True], ids=["python-missing", "converter-missing"])
def test_broken_converter_env_is_one_line_with_the_rebuild_command(tmp_path, python_ok,
                                                                   monkeypatch):
    root = tmp_path / "envs"
    _fake_env(root, python_ok)
    ckpt = make_checkpoint(tmp_path / "tinyconv.pt", "tinyconv")
    monkeypatch.setenv("EDGEBENCH_CONVERTER_ENVS", str(root))
    code, out, err = run_cli("convert", ckpt, "--converter", "litert-torch", "--no-verify",
                             "--quiet")
    assert code == 2, out + err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "litert-torch converter environment" in lines[0] and "broken" in lines[0]
    assert "python -m edgebench.host.export.converters.env litert-torch --rebuild" in lines[0]
    assert ("missing" in lines[0]) if not python_ok else ("litert_torch" in lines[0])
    assert not list(tmp_path.glob("tinyconv*.tflite"))  # refused before any work


@pytest.mark.timeout(1500)
def test_run_measures_both_routes_and_reports_them(tmp_path):
    """`bench-host run --converter onnx2tf,litert-torch`: every model through both routes, measured
    by the agent, each route against its own fp32, and the Converters table in the report."""
    import pandas as pd

    from cli_runner import run_bench_host

    proc = run_bench_host("run", "--models", "resnet18", "--recipes", "fp32,int8", "--img-size",
                          "32", "--epochs", "1", "--data", "phantom:120", "--results", tmp_path,
                          "--run-id", "c", "--converter", "onnx2tf,litert-torch", "--quiet",
                          timeout=1400)  # train + two routes + the agent, on 2 shared cores
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "c"
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(zip(summary["converter"], summary["recipe"])) == [
        ("litert-torch", "fp32"), ("litert-torch", "int8"), ("onnx2tf", "fp32"), ("onnx2tf", "int8")]
    assert (summary["status"] == "ok").all()
    fp32 = summary[summary["recipe"] == "fp32"]
    assert (fp32["speedup_vs_fp32"] == 1.0).all()  # each route's own fp32 is its baseline
    assert "# Converters: onnx2tf vs litert-torch" in (run_dir / "report.md").read_text()
    assert "converters (McNemar between routes)" in proc.stdout
    assert (run_dir / "models/resnet18/resnet18.litert-torch.int8.tflite").is_file()
    # without --remote-dir the agent worked in $EDGEBENCH_REMOTE_DIR (the suite's, conftest.py)
    device = Path.home() / os.environ["EDGEBENCH_REMOTE_DIR"] / "runs"
    assert [p.name for p in device.iterdir() if p.name.startswith("c-")], device
