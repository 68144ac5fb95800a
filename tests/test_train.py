"""`bench-host train` and `evaluate`: real training on the phantom, checkpoints, bad input."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from cli_runner import run_bench_host, run_cli
from edgebench.host.checkpoint import build_from_checkpoint, load_checkpoint, save_checkpoint
from edgebench.host.errors import UserError
from edgebench.host.torch_device import pick_device, resolve_device
from edgebench.host.train import CosineSchedule, TrainConfig, train
from edgebench.models import architectures

ZOO = tuple(architectures())


def test_model_help_lists_every_model_and_the_seeds_names():
    code, out, _ = run_cli("train", "--model", "help")
    assert code == 0
    for name in ZOO + ("conv", "resnet101", "googlenet_tv"):
        assert f"  {name} " in out, name
    assert "alias" in next(line for line in out.splitlines() if line.strip().startswith("conv "))


# --- where torch runs: --device ----------------------------------------------------------------

@pytest.mark.parametrize("spec,cuda,mps,want", [
    ("auto", 0, False, "cpu"), ("auto", 2, False, "cuda:0"), ("auto", 0, True, "mps"),
    ("auto", 1, True, "cuda:0"), (None, 0, False, "cpu"), ("cpu", 2, True, "cpu"),
    ("cuda", 1, False, "cuda:0"), ("cuda:1", 2, False, "cuda:1"), ("CUDA:0", 1, False, "cuda:0"),
    ("mps", 0, True, "mps"),
])
def test_device_selection(spec, cuda, mps, want):
    assert pick_device(spec, cuda, mps) == want


@pytest.mark.parametrize("spec,cuda,mps,needles", [
    ("cuda", 0, False, ["--device cuda", "no CUDA", "--device cpu"]),
    ("cuda:0", 0, True, ["no CUDA"]),
    ("cuda:2", 2, False, ["2 CUDA device", "cuda:0 to cuda:1"]),
    ("mps", 1, False, ["MPS", "not available"]),
    ("tpu", 1, True, ["unknown --device 'tpu'", "cuda:N"]),
    ("cuda:x", 1, False, ["unknown --device"]),
])
def test_device_selection_refuses_what_the_machine_lacks(spec, cuda, mps, needles):
    with pytest.raises(UserError) as err:
        pick_device(spec, cuda, mps, "2.13.0+cpu")
    message = str(err.value)
    assert "\n" not in message
    for needle in needles:
        assert needle in message, message


def test_auto_resolves_to_what_this_machine_has():
    import torch

    dev = resolve_device("auto")
    if torch.cuda.is_available():
        assert dev.torch == "cuda:0"
    elif dev.torch != "mps":
        assert dev.torch == "cpu" and dev.name and dev.amp is None
    assert resolve_device("cpu", amp=True).amp == "bfloat16"


@pytest.mark.skipif("torch.cuda.is_available()")
def test_cuda_without_cuda_is_one_line_before_any_work(tmp_path):
    for command in (("train", "--data", "phantom:20", "--img-size", "32", "--out", tmp_path / "t"),
                    ("evaluate", tmp_path / "missing.pt"),
                    ("run", "--results", tmp_path / "r")):
        proc = run_bench_host(*command, "--device", "cuda")
        _one_line_error(proc, "--device cuda", "no CUDA")
    assert not any(tmp_path.iterdir())  # nothing was trained or written


# --- the paper's training recipe --------------------------------------------------------------

def _lrs(schedule: str, epochs: int, steps: int) -> list[float]:
    """The LR of each epoch as the trainer sees it: stepped as the training loop steps it."""
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.Adam([param], lr=1e-4)
    sched = CosineSchedule(opt, schedule, epochs, steps)
    out = []
    for _ in range(epochs):
        for _ in range(steps):
            out_lr = sched.lr()
            opt.step()
            sched.after_step()
        out.append(out_lr)
        sched.after_epoch()
    return out


def test_per_epoch_schedule_is_the_seeds_over_500_epochs():
    # The seed: CosineAnnealingLR(Adam(lr=1e-4), T_max=500), stepped once after each epoch, so
    # epoch e (0-based) trains at 1e-4 * (1 + cos(pi * e / 500)) / 2, whatever the batch count.
    got = _lrs("epoch", 500, 32)  # 1000 training images / batch 32
    want = [1e-4 * (1 + math.cos(math.pi * e / 500)) / 2 for e in range(500)]
    assert got == pytest.approx(want, rel=1e-9, abs=1e-15)
    assert got[0] == 1e-4 and got[-1] < 1e-9
    # ours (per step) anneals within the epoch: not the seed's
    assert _lrs("step", 500, 32)[1] != pytest.approx(want[1], rel=1e-6)


@pytest.mark.slow
def test_training_like_the_paper(tmp_path):
    """`--like paper`: per-epoch cosine, inputs in [0, 1], best validation loss from epoch 2,
    no augmentation, seed 42; the history and the checkpoint say where it ran."""
    proc = run_bench_host("train", "--model", "conv", "--like", "paper", "--data", "phantom:60",
                          "--img-size", "32", "--epochs", "3", "--out", tmp_path, "--quiet",
                          "--device", "cpu")
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta, _ = load_checkpoint(tmp_path / "best.pt")
    assert meta.architecture == "vgg16"  # the seed's name, our canonical one in the checkpoint
    assert meta.mean == [0.0] and meta.std == [1.0]
    args = meta.train_args
    assert (args["lr"], args["batch"], args["seed"], args["weight_decay"], args["augment"],
            args["schedule"], args["select"]) == (1e-4, 32, 42, 0.0, False, "epoch", "loss")
    assert meta.trained_on["device"] == "cpu" and meta.trained_on["requested"] == "cpu"
    history = json.loads((tmp_path / "history.json").read_text())
    assert [round(h["lr"] / 1e-4, 9) for h in history] == [1.0, 0.75, 0.25]
    assert {h["device"] for h in history} == {"cpu"} and all(h["seconds"] > 0 for h in history)
    best = min(history[1:], key=lambda h: h["val_loss"])  # the first epoch is never kept
    assert meta.epoch == best["epoch"] and meta.val_metrics["loss"] == best["val_loss"]


@pytest.mark.slow
def test_mixed_precision_on_the_cpu_trains(tmp_path):
    cfg = TrainConfig(model="resnet18", data="phantom:40", epochs=1, batch=16, img_size=32,
                      amp=True, device="cpu", out=tmp_path)
    result = train(cfg, progress=False)
    assert result.device["amp"] == "bfloat16"
    assert np.isfinite(result.history[0]["train_loss"])
    meta, state = load_checkpoint(result.checkpoint)
    assert meta.trained_on["amp"] == "bfloat16"
    assert all(v.dtype in (torch.float32, torch.int64) for v in state.values())  # float32 weights


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
    # per-image predictions in the agent's schema, consistent with the confusion matrix
    import csv

    from edgebench.device.schema import PREDICTION_COLUMNS

    with open(tiny_checkpoint.parent / "predictions.test.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        assert tuple(reader.fieldnames) == PREDICTION_COLUMNS
        rows = list(reader)
    assert len(rows) == got["n"] and {r["runtime"] for r in rows} == {"torch"}
    right = sum(r["label"] == r["predicted"] for r in rows)
    assert right == got["tp"] + got["tn"]
    assert all(0.0 <= float(r["score"]) <= 1.0 for r in rows)


@pytest.mark.trained
@pytest.mark.slow
def test_resnet18_learns_the_phantom(tmp_path):
    """The phantom must be learnable (clearly above chance) but not trivial.

    Judged on 400 phantom images the model never saw (another seed), not on the 60 of its test
    split: three epochs at 32 px give models of 0.65-0.70 on those 400 whatever the seed and the
    kernels (tests/kernels.py), but one of them scored 0.583 on its 60 test images, below the
    0.65 this test once asked. Above chance is the exact binomial test, p < 1e-4 (238 of 400 or
    more); the weakest model seen, 260 of 400, has p = 1e-9. Trained at a learning rate of 1e-9,
    the model scores 200 of 400 and fails."""
    from scipy.stats import binomtest

    from edgebench.host.data import load_splits

    cfg = TrainConfig(model="resnet18", data="phantom:400", epochs=3, img_size=32, out=tmp_path)
    result = train(cfg, progress=False)
    model, meta = build_from_checkpoint(result.checkpoint)
    unseen = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed + 7)
    images = np.concatenate([unseen[s][0] for s in ("train", "val", "test")])
    labels = np.concatenate([unseen[s][1] for s in ("train", "val", "test")])
    norm = meta.normalization()
    x = (images.astype(np.float32) * norm["pixel_scale"] - norm["mean"][0]) / norm["std"][0]
    with torch.no_grad():
        pred = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).argmax(1).numpy()
    right = int((pred == labels).sum())
    assert binomtest(right, len(labels), 0.5, alternative="greater").pvalue < 1e-4, right
    assert right < len(labels), "every unseen image right: the phantom has become trivial"


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
