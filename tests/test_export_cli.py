"""`bench-host convert` and `bench-host quantize` as a user runs them, on a tiny real model."""
from __future__ import annotations

import csv
import os
import subprocess

import numpy as np
import pytest
import torch
from cli_runner import BENCH_HOST, run_bench_host, run_cli
from test_export import ARCH, IMG, TinyPool, make_checkpoint, synthetic
from test_export import registered  # noqa: F401  (autouse: puts the tiny model into MODELS)

from edgebench.host.checkpoint import load_checkpoint, save_checkpoint
from edgebench.host.export.card import read_card


# Real conversions (seconds each); foreign ONNX files are made with the legacy exporter on purpose.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """The tiny model, relabelled to verify on a small phantom (a real data spec)."""
    out = tmp_path_factory.mktemp("cli")
    path = make_checkpoint(out / "tiny.pt")
    meta, state = load_checkpoint(path)
    meta.data_spec = "phantom:60"
    save_checkpoint(path, meta, state)
    return path


def rows(path):
    with open(path, newline="") as f:
        return {r["recipe"]: r for r in csv.DictReader(f)}


def test_convert_then_quantize_from_the_saved_model(checkpoint):
    code, out, err = run_cli("convert", checkpoint, "--quiet")
    assert code == 0, err
    folder = checkpoint.parent
    assert "verified:" in out and "vs torch" in out
    assert (folder / f"{ARCH}.onnx").is_file() and (folder / f"{ARCH}.fp32.tflite").is_file()
    assert rows(folder / "verify.csv")["fp32"]["status"] == "ok"

    code, out, err = run_cli("quantize", folder / f"{ARCH}_saved_model", "--recipes", "int8,fp16",
                             "--calib", "16", "--io", "uint8", "--quiet")
    assert code == 0, err + out
    got = rows(folder / "verify.csv")
    assert list(got) == ["fp32", "fp16", "int8"]  # the earlier fp32 row is kept, in table order
    assert float(got["int8"]["size_ratio_vs_fp32"]) < 1
    assert 0 <= float(got["int8"]["agreement"]) <= 1 and int(got["int8"]["n"]) > 0
    card = read_card(folder / f"{ARCH}.int8.json")
    assert card["input"]["dtype"] == "uint8" and card["verification"]["n"] == int(got["int8"]["n"])
    assert card["source"]["data_spec"] == "phantom:60"


def test_recipes_help_and_unknown_recipe(checkpoint):
    code, out, _ = run_cli("quantize", checkpoint, "--recipes", "help")
    assert code == 0
    for name in ("fp32", "dynamic", "fp16", "int8", "int16x8"):
        assert f"  {name}" in out
    code, _, err = run_cli("quantize", checkpoint, "--recipes", "fp32,int4")
    assert code == 2
    assert err.count("\n") == 1 and "unknown recipe 'int4'" in err and "int16x8" in err


def test_missing_and_corrupt_checkpoints_are_one_line_errors(tmp_path):
    proc = run_bench_host("convert", tmp_path / "nope.pt")
    assert proc.returncode == 2 and "not found" in proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00not a checkpoint" * 10)
    code, _, err = run_cli("convert", bad)
    assert code == 2 and "cannot read checkpoint" in err and err.count("\n") == 1
    code, _, err = run_cli("quantize", tmp_path, "--recipes", "fp32")
    assert code == 2 and "not a SavedModel folder" in err


def test_bring_your_own_onnx_with_calibration_npz(tmp_path):
    path = tmp_path / "mine.onnx"
    torch.onnx.export(TinyPool(1).eval(), (torch.zeros(1, 1, IMG, IMG),), str(path), dynamo=False,
                      opset_version=18, input_names=["x"])
    code, _, err = run_cli("quantize", path, "--recipes", "int8", "--quiet")
    assert code == 2 and "need calibration images" in err
    images, labels = synthetic(40, 5)
    npz = tmp_path / "calib.npz"
    np.savez(npz, train_images=images[:30, ..., 0], test_images=images[30:], test_labels=labels[30:])
    code, out, err = run_cli("quantize", path, "--recipes", "fp32,int8", "--calib-data", npz,
                             "--quiet")
    assert code == 0, err + out
    got = rows(tmp_path / "verify.csv")
    assert got["fp32"]["status"] == "ok" and float(got["fp32"]["max_abs_diff"]) <= 1e-4
    assert int(got["int8"]["n"]) == 10
    card = read_card(tmp_path / "mine.int8.json")
    assert card["verification"]["reference"] == "onnxruntime" and card["source"]["checkpoint"] is None
    np.savez(npz, images=np.zeros((4, 8, 8), np.uint8))
    code, _, err = run_cli("quantize", tmp_path / "mine_saved_model", "--calib-data", npz)
    assert code == 2 and "expected uint8 images N×32×32×1" in err


def test_two_models_converted_into_one_folder_keep_both_tables(tmp_path):
    """Issue 13's "Also": verify.csv has a model column and is merged, never overwritten."""
    for name in ("alpha", "beta"):
        torch.onnx.export(TinyPool(1).eval(), (torch.zeros(1, 1, IMG, IMG),),
                          str(tmp_path / f"{name}.onnx"), dynamo=False, opset_version=18,
                          input_names=["x"])
    for name in ("alpha", "beta"):
        code, out, err = run_cli("convert", tmp_path / f"{name}.onnx", "--quiet")
        assert code == 0, err
        assert "ops:         float" in out
    code, _, err = run_cli("quantize", tmp_path / "alpha_saved_model", "--recipes", "fp16",
                           "--quiet")
    assert code == 0, err
    with open(tmp_path / "verify.csv", newline="") as f:
        got = [(r["model"], r["recipe"], r["status"]) for r in csv.DictReader(f)]
    assert got == [("alpha", "fp32", "ok"), ("alpha", "fp16", "ok"), ("beta", "fp32", "ok")]


def test_quantize_debug_and_mixed_from_the_command_line(checkpoint, tmp_path):
    out = tmp_path / "q"
    code, stdout, err = run_cli("quantize", checkpoint, "--out", out, "--recipes",
                                "int8,int8-mixed", "--debug", "--keep-float", "1", "--calib",
                                "16", "--quiet")
    assert code == 0, err + stdout
    assert (out / f"{ARCH}.int8.layers.csv").is_file()
    assert (out / f"{ARCH}.int8-mixed.layers.csv").is_file()
    assert "worst layer:" in stdout and "float layers: 1 of" in stdout
    assert "ops: integer" in stdout and "ops: mixed" in stdout
    assert rows(out / "verify.csv")["int8-mixed"]["float_layers"] == "1"
    # K beyond the model's layers: that recipe fails with the reason, int8 is kept, exit 1
    code, stdout, err = run_cli("quantize", out / f"{ARCH}_saved_model", "--recipes",
                                "int8,int8-mixed", "--keep-float", "99", "--calib", "16",
                                "--quiet")
    assert code == 1
    assert "--keep-float 99 is more than the" in stdout
    got = rows(out / "verify.csv")
    assert got["int8"]["status"] == "ok" and got["int8-mixed"]["status"] == "failed"
    assert not (out / f"{ARCH}.int8-mixed.tflite").exists()
    assert not (out / f"{ARCH}.int8.layers.csv").exists()  # stale: this int8 had no --debug


@pytest.mark.parametrize("args, message", [
    (("--keep-float", "-2"), "--keep-float must be 0 or more"),
    (("--target-agreement", "1.2"), "--target-agreement must be in (0, 1]"),
    (("--max-float", "0"), "--max-float must be at least 1"),
    (("--no-verify",), "give --keep-float K with --no-verify"),
])
def test_bad_mixed_arguments_are_one_line_errors(checkpoint, args, message):
    code, _, err = run_cli("quantize", checkpoint.parent / f"{ARCH}_saved_model", "--recipes",
                           "int8-mixed", *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_bundle_listing_shows_each_models_census(checkpoint, tmp_path):
    folder = checkpoint.parent
    if not (folder / f"{ARCH}.int8.tflite").is_file():  # run alone, without the first test
        assert run_cli("quantize", checkpoint, "--recipes", "fp32,int8", "--calib", "16",
                       "--quiet")[0] == 0
    code, out, err = run_cli("bundle", folder, "--out", tmp_path / "bundle")
    assert code == 0, err
    assert "ops: float" in out and "ops: integer" in out and "0 float, 0 Q/DQ pairs" in out


# A line of TensorFlow's/XLA's/absl's C++ logging: "2026-12-06 23:41:59.606547: E external/...]"
# or absl's "E0000 00:00:... file.cc:51] ...".
NATIVE_LINE = r"(^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [EWIF] )|(^[EWIF]\d{4} \d\d:\d\d:\d\d)|cuInit"


def test_a_conversion_keeps_tensorflow_s_native_lines_off_the_terminal(tmp_path):
    """A fresh process (TensorFlow logs its device set-up once per process, on fd 2): the
    conversion's native lines land in host.log beside the models, none on the terminal."""
    import re

    path = tmp_path / "mine.onnx"
    torch.onnx.export(TinyPool(1).eval(), (torch.zeros(1, 1, IMG, IMG),), str(path), dynamo=False,
                      opset_version=18, input_names=["x"])
    # As from a user's shell: not the TF_CPP_MIN_LOG_LEVEL=3 that importing onnx2tf put into
    # this test process's environment (it would silence the lines this test is about).
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    proc = subprocess.run([str(BENCH_HOST), "convert", str(path), "--no-verify", "--out",
                           str(tmp_path / "out")], capture_output=True, text=True, env=env,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr
    native = [ln for ln in proc.stderr.splitlines() if re.search(NATIVE_LINE, ln)]
    assert not native, native
    log = (tmp_path / "out" / "host.log").read_text()
    import tensorflow as tf

    # A CUDA build of TensorFlow without a GPU logs its failed probe: that line is in host.log.
    if tf.test.is_built_with_cuda() and not tf.config.list_physical_devices("GPU"):
        assert "edgebench.native" in log and "cuInit" in log, log
