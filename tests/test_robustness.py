"""Robustness under MedMNIST-C's breast-ultrasound corruptions: each corruption checked against
its definition, the corrupted sets in the bundle and their manifest, the agent measuring them on
real tiny models (robustness.csv, per-image predictions, faults as error lines), a trained tiny
model on the phantom losing accuracy with severity, and the report's curves and gap table."""
from __future__ import annotations

import io
import json
import math
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from agent_helpers import FAST, bundle_command, read_rows
from edgebench.device.schema import ROBUSTNESS_COLUMNS
from edgebench.host.data import corruptions as C
from edgebench.host.errors import UserError

pytestmark = pytest.mark.timeout(900)


def grey(h: int = 224, value: int | None = None, seed: int = 0) -> np.ndarray:
    if value is not None:
        return np.full((1, h, h, 1), value, np.uint8)
    rng = np.random.default_rng(seed)
    return (rng.random((1, h, h, 1)) * 200 + 20).astype(np.uint8)


def test_speckle_is_multiplicative_noise_of_the_stated_sigma():
    x = grey(value=128)
    for severity, sigma in enumerate(C.CORRUPTIONS["speckle_noise"].severities, 1):
        out = C.corrupt(x, "speckle_noise", severity).astype(np.float64)[0, :, :, 0] / 255.0
        rel = (out - 128 / 255.0) / (128 / 255.0)   # x + x·n  =>  n = (out − x) / x
        assert abs(rel.mean()) < 0.02
        assert rel.std() == pytest.approx(sigma, rel=0.05)  # (clipping at 1 is rare here)
    dark = C.corrupt(grey(value=0), "speckle_noise", 5)
    assert not dark.any()  # multiplicative: black stays black


def test_jpeg_round_trips_through_a_real_encoder():
    x = grey(seed=1)
    for severity, quality in enumerate(C.CORRUPTIONS["jpeg_compression"].severities, 1):
        out = C.corrupt(x, "jpeg_compression", severity)[0, :, :, 0]
        ok, encoded = cv2.imencode(".jpg", x[0, :, :, 0], [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok and np.array_equal(out, cv2.imdecode(encoded, cv2.IMREAD_GRAYSCALE))
    buf = io.BytesIO()
    Image.fromarray(x[0, :, :, 0]).save(buf, "JPEG", quality=50)
    # quality 50 is libjpeg's standard luminance table unscaled (Annex K of the JPEG standard)
    assert Image.open(buf).quantization[0][:8] == [16, 11, 10, 16, 24, 40, 51, 61]
    errs = [np.abs(C.corrupt(x, "jpeg_compression", s).astype(int) - x).mean() for s in (1, 5)]
    assert errs[1] > errs[0] > 0


def test_brightness_contrast_pixelate_and_motion_blur_follow_their_definitions():
    x = grey(seed=2)
    for severity, factor in enumerate(C.CORRUPTIONS["brightness_up"].severities, 1):
        out = C.corrupt(x, "brightness_up", severity).astype(int)
        assert np.abs(out - np.clip(np.round(x * factor), 0, 255)).max() <= 1
    mean = int(x.mean() + 0.5)
    out = C.corrupt(x, "contrast_down", 5).astype(int)  # factor 0.4 towards the mean grey
    assert np.abs(out - np.clip(mean + 0.4 * (x.astype(int) - mean), 0, 255)).max() <= 1
    pix = C.corrupt(x, "pixelate", 2)[0, :, :, 0]       # factor 0.25 at 224 px: 4×4 blocks
    blocks = pix.reshape(56, 4, 56, 4)
    assert (blocks == blocks[:, :1, :, :1]).all() and not np.array_equal(pix, x[0, :, :, 0])
    taps = C.motion_kernel(5, 5, 0.0)
    assert len(taps) == 11 and sum(w for _, _, w in taps) == pytest.approx(1.0)
    assert [(dy, dx) for dy, dx, _ in taps] == [(0, i) for i in range(11)]
    weights = [w for _, _, w in taps]
    assert weights == sorted(weights, reverse=True)     # a one-sided Gaussian
    diag = C.motion_kernel(9, 7, 45.0)
    assert diag[-1][:2] == (13, 13)                     # tap 18 at 45°: round(18 / √2)


def test_parameters_scale_with_the_image_size_and_draws_are_seeded():
    small = grey(48, seed=3)
    assert np.array_equal(C.corrupt(small, "pixelate", 1), small)  # 67 px pixelation > 48 px
    assert not np.array_equal(C.corrupt(small, "pixelate", 5), small)
    assert C.CORRUPTIONS["motion_blur"].at_size((17, 12), 112) == (8.5, 6.0)
    a, b = C.corrupt(small, "speckle_noise", 3, seed=0), C.corrupt(small, "speckle_noise", 3, seed=0)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, C.corrupt(small, "speckle_noise", 3, seed=1))


@pytest.mark.parametrize("spec, message", [
    ("fog", "unknown corruption 'fog'; choose from: pixelate"),
    ("speckle_noise:0", "severity out of 1-5"),
    ("speckle_noise:6", "severity out of 1-5"),
    ("speckle_noise:x", "severities are 1-5"),
    ("", "names no corruption"),
])
def test_bad_corruption_specs(spec, message):
    with pytest.raises(UserError, match=message):
        C.parse(spec)


def test_cli_unknown_corruption_is_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "edgebench.host.cli", "bundle", str(tmp_path),
                           "--out", str(tmp_path / "b"), "--robustness", "fog"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown corruption 'fog'" in proc.stderr and "Traceback" not in proc.stderr


@pytest.fixture(scope="module")
def robust_bundle(tmp_path_factory) -> Path:
    from tflite_factory import factory_dir
    from edgebench.host.bundle import build_bundle

    src = factory_dir()
    models = tmp_path_factory.mktemp("rob-models")
    for recipe in ("fp32", "int8"):
        for ext in ("tflite", "json"):
            shutil.copy(src / "models" / f"tinycnn.{recipe}.{ext}", models)
    return build_bundle(models, tmp_path_factory.mktemp("rob") / "bundle",
                        testset=src / "testset.npz", run_id="rob",
                        robustness=C.parse("speckle_noise:1+5,contrast_down:1+5,pixelate"))


def test_bundle_documents_the_corrupted_sets(robust_bundle):
    manifest = json.loads((robust_bundle / "manifest.json").read_text())
    rob = manifest["robustness"]
    assert "MedMNIST-C" in rob["source"] and rob["protocol_size"] == 224
    assert rob["image_size"] == [32, 32] and "size/224" in rob["scaling"]
    sets = {(s["corruption"], s["severity"]): s for s in rob["sets"]}
    assert len(sets) == 2 + 2 + 5
    assert sets[("speckle_noise", 5)]["parameter"] == 0.3
    assert sets[("pixelate", 1)]["parameter_applied"] == 1.0   # capped: 0.3·224/32 > 1
    clean = np.load(robust_bundle / "testset.npz")["images"]
    for s in sets.values():
        images = np.load(robust_bundle / s["file"])["images"]
        assert images.shape == clean.shape and images.dtype == np.uint8


def test_agent_measures_corrupted_sets_and_reports_faults_per_set(robust_bundle, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(robust_bundle, bundle)
    (bundle / "robustness" / "pixelate-3.npz").unlink()                # missing on the device
    np.savez(bundle / "robustness" / "pixelate-4.npz", images=np.zeros((3, 32, 32, 1), np.uint8))
    out = tmp_path / "out"
    cmd = bundle_command(bundle, out, replace(FAST, robustness_images=40))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "robustness: 7 corrupted set(s) x 2 configuration(s) = 560 extra inferences" in proc.stderr
    header, rows = read_rows(out / "robustness.csv")
    assert header == list(ROBUSTNESS_COLUMNS)
    by = {(r["recipe"], r["corruption"], int(r["severity"])): r for r in rows}
    assert len(by) == 2 * 9
    for recipe in ("fp32", "int8"):
        assert "corrupted set missing on the device: robustness/pixelate-3.npz" in \
            by[(recipe, "pixelate", 3)]["error"]
        assert "is 3x32x32x1 but the test set is 48x32x32x1" in by[(recipe, "pixelate", 4)]["error"]
        ok = [r for r in rows if r["recipe"] == recipe and r["status"] == "ok"]
        assert len(ok) == 7 and all(r["n"] == "40" for r in ok)
    assert all(by[("fp32", c, s)]["agreement_fp32"] == "1.0" for c, s in
               (("speckle_noise", 1), ("contrast_down", 5)))
    agreement = float(by[("int8", "speckle_noise", 5)]["agreement_fp32"])
    assert 0.8 <= agreement <= 1.0
    _, results = read_rows(out / "results.csv")
    assert [r["status"] for r in results] == ["ok", "ok"]   # the clean rows are untouched
    _, preds = read_rows(out / "predictions.csv")
    assert {p["testset"] for p in preds} == {"clean", "speckle_noise-1", "speckle_noise-5",
                                             "contrast_down-1", "contrast_down-5", "pixelate-1",
                                             "pixelate-2", "pixelate-5"}
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)  # resumable
    assert again.returncode == 0 and len(read_rows(out / "robustness.csv")[1]) == len(rows)
    assert len(read_rows(out / "predictions.csv")[1]) == len(preds)

    from edgebench.host.report import build_report

    paths = build_report([out], tmp_path / "report")
    md = paths.markdown.read_text()
    assert "# Robustness under ultrasound corruptions (MedMNIST-C)" in md
    assert "| tinycnn | int8 | cpu |" in md and "answers changed" in md
    assert "mean corrupted (%)" in md
    assert any(p.name.startswith("robustness_") for p in paths.plots)
    gaps = pd.read_csv(tmp_path / "report" / "robustness_summary.csv").set_index("recipe")
    assert gaps.loc["fp32", "robustness_gap_pp"] == 0.0
    assert gaps.loc["int8", "sets"] == 7 and gaps.loc["int8", "unusable_sets"] == 2
    assert not math.isnan(gaps.loc["int8", "gap_difference_ci_low_pp"])


@pytest.mark.trained
def test_a_trained_model_on_the_phantom_loses_accuracy_with_severity(tmp_path):
    """A ResNet18 trained briefly on the phantom (PyTorch, the float model) is right less often at
    severity 5 than at severity 1, pooled over the seven corruptions, on 300 phantom images it never
    saw (another seed of the phantom): 2,100 image-corruption pairs.

    Not one corruption on the 45 test images, as this test once asked: that is one image from a
    tie, and trained on an Intel Xeon with AMX, speckle at severity 5 scored 0.867 against 0.844 at
    severity 1. Per corruption the order is not even a property of the phantom (on 300 images,
    one model scored higher under motion blur at 5 than at 1); pooled on its 45 test images, one
    model's p was 0.008. Pooled on the 300 unseen images, the one-sided exact test on the
    discordant pairs (right at severity 1 and wrong at 5, or the reverse) gave 332:147, p = 8e-18
    (seed 1, native kernels) and 206:49, p = 2e-24 (seed 0, SSE4.1 kernels); the test asks
    p < 1e-6. Corruptions that ignore the severity give no discordant pairs, and fail it."""
    import torch
    from scipy.stats import binomtest

    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.data import load_splits
    from edgebench.host.train import TrainConfig, train

    ckpt = train(TrainConfig(model="resnet18", data="phantom:300", epochs=4, batch=16,
                             img_size=48, out=tmp_path), progress=False).checkpoint
    model, meta = build_from_checkpoint(ckpt)
    unseen = load_splits(meta.data_spec, meta.img_size, meta.in_channels, meta.split_seed + 7)
    images = np.concatenate([unseen[s][0] for s in ("train", "val", "test")])
    labels = np.concatenate([unseen[s][1] for s in ("train", "val", "test")])
    norm = meta.normalization()

    def right(x: np.ndarray) -> np.ndarray:
        t = (x.astype(np.float32) * norm["pixel_scale"] - norm["mean"][0]) / norm["std"][0]
        with torch.no_grad():
            pred = model(torch.from_numpy(t.transpose(0, 3, 1, 2).copy())).argmax(1).numpy()
        return pred == labels

    # Far above chance, so there is accuracy to lose (the models seen: 0.82 and 0.87).
    clean = right(images)
    assert binomtest(int(clean.sum()), len(clean), 0.5, alternative="greater").pvalue < 1e-6
    mild = np.concatenate([right(C.corrupt(images, name, 1)) for name in C.CORRUPTIONS])
    severe = np.concatenate([right(C.corrupt(images, name, 5)) for name in C.CORRUPTIONS])
    lost, gained = int((mild & ~severe).sum()), int((~mild & severe).sum())
    p = binomtest(lost, lost + gained, 0.5, alternative="greater").pvalue if lost + gained else 1.0
    assert severe.mean() < mild.mean() and p < 1e-6, (mild.mean(), severe.mean(), lost, gained, p)
