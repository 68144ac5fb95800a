"""`bench-host run`: the whole pipeline on a tiny setting, and its resume."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from cli_runner import run_bench_host, run_cli


def test_profile_help_and_unknown_profile():
    code, out, _ = run_cli("run", "--profile", "help")
    assert code == 0 and "quick" in out and "paper" in out
    proc = run_bench_host("run", "--profile", "fastest")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "unknown profile 'fastest'" in proc.stderr and "quick" in proc.stderr


def test_paper_profile_is_the_papers():
    from edgebench.host.profiles import PROFILES

    paper = PROFILES["paper"]
    for model in paper.models:
        s = paper.train_settings(model)
        assert (s["lr"], s["batch"], s["img_size"], s["channels"], s["seed"]) == (1e-4, 32, 224, 1, 42)
        assert (s["schedule"], s["select"], s["min_epoch"]) == ("epoch", "loss", 2)
        assert (s["augment"], s["normalise"], s["weight_decay"]) == (False, False, 0.0)
    assert paper.models == ("vgg16", "googlenet", "resnet34")
    assert paper.recipes == ("fp32", "dynamic", "fp16", "int8")
    assert (paper.io, paper.calib, paper.calib_split) == ("uint8", 199, "val")
    assert "500" in paper.summary  # says that the seed trains longer than its default
    # --epochs 500 gives the seed's run: T_max = 500 epochs, per epoch
    assert paper.with_overrides(epochs=500).train_settings("googlenet")["epochs"] == 500


def test_per_model_settings_yield_to_the_command_line():
    from edgebench.host.profiles import PROFILES

    quick = PROFILES["quick"]
    assert "int16x8" not in quick.recipes
    own = {m: quick.train_settings(m)["epochs"] for m in quick.models}
    assert own["vgg16"] != quick.epochs and own["resnet18"] == quick.epochs
    again = quick.with_overrides(epochs=2, img_size=32)
    assert {m: again.train_settings(m)["epochs"] for m in quick.models} == dict.fromkeys(quick.models, 2)
    assert again.train_settings("vgg16")["img_size"] == 32
    assert quick.train_settings("vgg16")["epochs"] == own["vgg16"]  # the registry is untouched


def test_unknown_model_or_recipe_is_refused_before_any_work(tmp_path):
    proc = run_bench_host("run", "--models", "resnet18,alexnet", "--results", tmp_path)
    assert proc.returncode == 2 and "alexnet" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_bench_host("run", "--recipes", "fp32,int4", "--results", tmp_path)
    assert proc.returncode == 2 and "int4" in proc.stderr
    assert not any(tmp_path.iterdir())  # nothing was started


@pytest.mark.slow
def test_run_end_to_end_then_resume(tmp_path):
    args = ("run", "--models", "resnet18", "--recipes", "fp32,dynamic,int8", "--img-size", "32",
            "--epochs", "1", "--data", "phantom:120", "--results", tmp_path, "--run-id", "t",
            "--quiet")
    proc = run_bench_host(*args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run_dir = tmp_path / "t"
    for name in ("report.md", "report.html", "summary.csv", "stages.json", "bundle/manifest.json",
                 "local/results.csv", "models/resnet18/best.pt", "models/resnet18/verify.csv"):
        assert (run_dir / name).exists(), name
    summary = pd.read_csv(run_dir / "summary.csv")
    assert sorted(summary["recipe"]) == ["dynamic", "fp32", "int8"]
    assert (summary["status"] == "ok").all()
    fp32 = summary[summary["recipe"] == "fp32"].iloc[0]
    assert fp32["speedup_vs_fp32"] == pytest.approx(1.0)
    assert "resnet18" in proc.stdout and "report:" in proc.stdout  # the headline table is printed

    stamps = json.loads((run_dir / "stages.json").read_text())
    assert set(stamps) == {"train:resnet18", "export:resnet18", "bundle"}
    checkpoint_mtime = (run_dir / "models/resnet18/best.pt").stat().st_mtime_ns

    # Same inputs again: training, export and bundling are skipped; the agent skips measured rows.
    proc = run_bench_host(*args[:-1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("up to date, skipped") == 3
    assert (run_dir / "models/resnet18/best.pt").stat().st_mtime_ns == checkpoint_mtime
    assert len(pd.read_csv(run_dir / "local/results.csv")) == 3  # no duplicate rows

    # A second route: only its own export stage runs (onnx2tf's models are not built again).
    int8_mtime = (run_dir / "models/resnet18/resnet18.int8.tflite").stat().st_mtime_ns
    proc = run_bench_host(*args[:-1], "--converter", "onnx2tf,ort")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr.count("up to date, skipped") == 2  # training, onnx2tf's export
    assert "quantize + verify resnet18 by ort" in proc.stderr
    assert (run_dir / "models/resnet18/resnet18.int8.tflite").stat().st_mtime_ns == int8_mtime
    assert (run_dir / "models/resnet18/resnet18.ort.int8.onnx").is_file()
    assert "export:resnet18:ort" in json.loads((run_dir / "stages.json").read_text())

    # A device that cannot be reached: a one-line reason, and the models stay for the next try.
    proc = run_bench_host(*args, "--target", "pi@127.0.0.1:1", "--connect-timeout", "5")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "no target measured anything" in proc.stderr and "127.0.0.1" in proc.stderr
    assert (run_dir / "models/resnet18/resnet18.int8.tflite").is_file()
