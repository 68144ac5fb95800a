"""`bench-host train` and `evaluate`: real training on the phantom, checkpoints, bad input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from cli_runner import run_bench_host, run_cli
from edgebench.host.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from edgebench.host.train import TrainConfig, train

ZOO = ("vgg16", "googlenet", "resnet18", "resnet34", "resnet50", "mobilenet_v2")


def test_model_help_lists_the_six_models():
    code, out, _ = run_cli("train", "--model", "help")
    assert code == 0
    for name in ZOO:
        assert name in out


@pytest.mark.slow
@pytest.mark.parametrize("model", ZOO)
def test_every_model_trains_one_epoch(model, tmp_path):
    cfg = TrainConfig(model=model, data="phantom:48", epochs=1, batch=16, img_size=32, out=tmp_path)
    result = train(cfg, progress=False)
    meta, state = load_checkpoint(result.checkpoint)
    assert meta.architecture == model and meta.img_size == 32 and meta.in_channels == 1
    assert meta.class_names == ["benign", "malignant"] and meta.data_spec == "phantom:48"
    assert len(meta.mean) == 1 and meta.std[0] > 0
    assert len(result.history) == 1 and np.isfinite(result.history[0]["train_loss"])
    for name in ("split.json", "history.csv", "history.json", "test_metrics.json"):
        assert (tmp_path / name).is_file(), name
    assert 0.0 <= result.test_metrics["accuracy"] <= 1.0


def test_checkpoint_round_trip_gives_the_same_logits(tiny_checkpoint):
    model, meta = build_from_checkpoint(tiny_checkpoint)
    x = torch.randn(4, meta.in_channels, meta.img_size, meta.img_size)
    again, _ = build_from_checkpoint(tiny_checkpoint)
    with torch.inference_mode():
        assert torch.equal(model(x), again(x))


def test_evaluate_matches_the_metrics_training_wrote(tiny_checkpoint, tmp_path):
    out = tmp_path / "m.json"
    code, text, err = run_cli("evaluate", tiny_checkpoint, "--json", out)
    assert code == 0, err
    got = json.loads(out.read_text())
    written = json.loads((tiny_checkpoint.parent / "test_metrics.json").read_text())
    for key in ("n", "accuracy", "sensitivity", "specificity", "tp", "tn", "fp", "fn"):
        assert got[key] == pytest.approx(written[key]), key
    assert got["tp"] + got["tn"] + got["fp"] + got["fn"] == got["n"] > 0
    assert "confusion matrix" in text and "%" in text


@pytest.mark.slow
def test_resnet18_learns_the_phantom(tmp_path):
    """The phantom must be learnable (clearly above chance) but not trivial."""
    cfg = TrainConfig(model="resnet18", data="phantom:400", epochs=3, img_size=32, out=tmp_path)
    acc = train(cfg, progress=False).test_metrics["accuracy"]
    assert 0.65 <= acc < 1.0, acc


# --- bad input: one line on stderr, non-zero exit, no traceback --------------------------------

def _one_line_error(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [l for l in proc.stderr.splitlines() if l.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def test_unknown_model_lists_the_valid_ones(tmp_path):
    _one_line_error(run_bench_host("train", "--model", "alexnet", "--out", tmp_path),
                    "alexnet", "resnet18", "mobilenet_v2")


def test_unknown_data_spec_lists_the_valid_ones(tmp_path):
    _one_line_error(run_bench_host("train", "--data", "imagenet:/x", "--out", tmp_path),
                    "imagenet", "phantom", "busi")


def test_missing_and_empty_data_folders(tmp_path):
    _one_line_error(run_bench_host("train", "--data", f"folder:{tmp_path / 'nope'}",
                                   "--out", tmp_path / "o1"), "nope")
    (tmp_path / "empty" / "benign").mkdir(parents=True)
    (tmp_path / "empty" / "malignant").mkdir()
    _one_line_error(run_bench_host("train", "--data", f"folder:{tmp_path / 'empty'}",
                                   "--out", tmp_path / "o2"))


def test_unreadable_image_is_named(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    for cls in ("benign", "malignant"):
        (root / cls).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(np.full((40, 40), 60 * i, np.uint8)).save(root / cls / f"{i}.png")
    (root / "malignant" / "broken.png").write_bytes(b"not a png at all")
    _one_line_error(run_bench_host("train", "--data", f"folder:{root}", "--out", tmp_path / "o"),
                    "broken.png")


def test_checkpoint_of_another_architecture_is_refused(tiny_checkpoint, tmp_path):
    _one_line_error(run_bench_host("evaluate", tiny_checkpoint, "--model", "vgg16"),
                    "resnet18", "vgg16")
    # A checkpoint whose weights belong to another architecture than it claims.
    meta, state = load_checkpoint(tiny_checkpoint)
    meta.architecture = "resnet34"
    forged = tmp_path / "forged.pt"
    save_checkpoint(forged, meta, state)
    _one_line_error(run_bench_host("evaluate", forged), "does not match", "resnet34")


def test_missing_and_corrupt_checkpoints(tmp_path):
    _one_line_error(run_bench_host("evaluate", tmp_path / "none.pt"), "not found")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x00garbage")
    _one_line_error(run_bench_host("evaluate", bad), "bad.pt")
