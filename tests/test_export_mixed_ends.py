"""int8-mixed and the model's ends, on a model built so that only the int8 input quantization
flips an image: a 1×1 convolution W·(x − t), clipped to ±1, averaged, and read out as logits
(−d, d). Every test image is uniform; image P5 (pixel 5) sits above the threshold t by less
than the rounding of the input quantization, which moves it below t: float says class 1, any
model that rounds the input says class 0 (or a tie, which argmax also reads as 0). The other
images sit several quantization steps from t. Nothing here depends on training."""
from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from cli_runner import run_cli
from torch import nn

from edgebench.host.checkpoint import CheckpointMeta, save_checkpoint
from edgebench.host.export.card import read_card
from edgebench.host.export.mixed import ENDS, INPUT_END, MixedOptions
from edgebench.host.export.pipeline import convert_checkpoint, reference_for
from edgebench.host.export.quantize import QuantizeOptions, quantize
from edgebench.host.export.verify import normalize
from edgebench.models import MODELS, ModelSpec

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600),
              pytest.mark.filterwarnings("ignore::DeprecationWarning")]

ARCH = "edgecase"
IMG = 8
W = 1e4                      # |W·(x − t)| ≥ 1 a fifth of a step from t: the clip saturates
CALIB_MAX = 200              # calibration pixels 0..200: input scale (200/255)/255, zero point −128
STEP = CALIB_MAX / 255 / 255
CRITICAL = 5                 # 5/255 is 6.375 steps: int8 rounds it down to 6 steps
T = CRITICAL / 255 - 0.19 * STEP
TEST_PIXELS = [0, 2, 4, CRITICAL, 6, 9, 40, 120, 200]


class EdgeCase(nn.Sequential):
    def __init__(self, in_channels: int = 1, num_classes: int = 2) -> None:
        super().__init__(nn.Conv2d(in_channels, 1, 1), nn.Hardtanh(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(1, num_classes))


def uniform(pixels) -> np.ndarray:
    return np.stack([np.full((IMG, IMG, 1), p, np.uint8) for p in pixels])


def calibration_pixels() -> list[int]:
    return [CRITICAL] + list(range(0, CALIB_MAX + 1, 8))  # the critical one among the first 32


@pytest.fixture(scope="module", autouse=True)
def registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, ARCH, ModelSpec(ARCH, "constructed: input rounding flips one image",
                                           EdgeCase))
        yield


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    out = tmp_path_factory.mktemp("edgecase")
    meta = CheckpointMeta(ARCH, 1, 2, IMG, ["benign", "malignant"], [0.0], [1.0], "constructed", 0)
    model = EdgeCase()
    with torch.no_grad():
        model[0].weight.fill_(W)
        model[0].bias.fill_(-W * T)
        model[4].weight.copy_(torch.tensor([[-1.0], [1.0]]))
        model[4].bias.zero_()
    save_checkpoint(out / "edge.pt", meta, model.eval().state_dict())
    images = uniform(TEST_PIXELS)
    labels = (np.array(TEST_PIXELS) >= CRITICAL).astype(int)
    conv = convert_checkpoint(out / "edge.pt", verify_images=images, verify_labels=labels)
    assert conv.verification["agreement"] == 1.0 and conv.verification["accuracy"] == 1.0
    return conv, images, labels


def run(converted, tmp_path, recipes, io, options):
    conv, images, labels = converted
    calib = normalize(uniform(calibration_pixels()), conv.source.normalization)
    results = quantize(conv.saved_model, recipes, calib, tmp_path, conv.source,
                       QuantizeOptions(io=io, verify=reference_for(conv.source, images, labels),
                                       progress=False, mixed=options))
    return {r.recipe: r for r in results}


def test_pinned_int8_io_misses_and_names_the_input_quantization(converted, tmp_path):
    by = run(converted, tmp_path, ["int8", "int8-mixed"], "int8",
             MixedOptions(target_agreement=1.0, search_ends=False))
    # The premise, checked on the int8 model itself: its input rounding moves P5 below t.
    card = read_card(by["int8"].card)
    scale, zero_point = card["input"]["scale"], card["input"]["zero_point"]
    x = CRITICAL / 255
    assert round(x / scale) * scale < T < x and zero_point == -128
    assert by["int8"].verification["agreement"] == pytest.approx(8 / 9)
    r = by["int8-mixed"]
    assert r.status == "ok" and r.tflite.is_file()
    m = read_card(r.card)["mixed"]
    assert m["reached"] is False and m["ends"] == "int8" and m["float_ends"] == []
    assert m["n_images"] == 9 and m["max_changed_images"] == 0 and m["changed_images"] == 1
    assert "target agreement 1 on 9 images (no image may change) not reached" in r.error
    assert ("1 image changes with every layer in float: the int8 input quantization; "
            "try --io float") in r.error
    # The ends have rows of their own in the layer table, with the input's rounding error.
    with open(tmp_path / f"{ARCH}.int8-mixed.layers.csv", newline="") as f:
        rows = {row["tensor"]: row for row in csv.DictReader(f)}
    assert set(ENDS) <= set(rows) and rows[INPUT_END]["op"] == "INPUT"
    assert float(rows[INPUT_END]["scale"]) == pytest.approx(scale)
    assert float(rows[INPUT_END]["output_mse_alone"]) > 0  # it flips P5 among the first 32


def test_io_float_reaches_agreement_one(converted, tmp_path):
    r = run(converted, tmp_path, ["int8-mixed"], "float",
            MixedOptions(target_agreement=1.0, search_ends=False))["int8-mixed"]
    assert r.status == "ok" and r.error == ""
    card = read_card(r.card)
    m = card["mixed"]
    assert m["reached"] is True and m["agreement"] == 1.0
    assert m["ends"] == "float" and m["float_ends"] == ["input", "output"]
    assert card["input"]["dtype"] == "float32" and card["output"]["dtype"] == "float32"
    assert r.verification["agreement"] == 1.0
    assert m["k"] >= 1  # the first layer quantizes its input: it must stay float too


def test_the_search_keeps_the_input_float_when_io_is_not_pinned(converted, tmp_path):
    r = run(converted, tmp_path, ["int8-mixed"], "int8",
            MixedOptions(max_changed=0))["int8-mixed"]
    assert r.status == "ok" and r.error == ""
    card = read_card(r.card)
    m = card["mixed"]
    assert m["reached"] is True and r.verification["agreement"] == 1.0
    assert m["ends"] == "searched" and "input" in m["float_ends"]
    assert card["input"]["dtype"] == "float32"
    assert m["target"] == "--max-changed-images 0 on 9 images (no image may change)"


def test_cli_states_the_target_on_n_images_and_exits_1(converted, tmp_path):
    conv, images, labels = converted
    npz = tmp_path / "data.npz"
    np.savez(npz, train_images=uniform(calibration_pixels()), test_images=images,
             test_labels=labels)
    code, out, err = run_cli("quantize", conv.saved_model, "--recipes", "int8-mixed", "--io",
                             "int8", "--max-changed-images", "0", "--calib-data", npz,
                             "--out", tmp_path, "--quiet")
    assert code == 1, (out, err)
    assert "--max-changed-images 0 on 9 images (no image may change): NOT reached" in out
    assert "the int8 input quantization; try --io float" in err
    code, out, err = run_cli("quantize", conv.saved_model, "--recipes", "int8-mixed", "--io",
                             "float", "--target-agreement", "0.9", "--calib-data", npz,
                             "--out", tmp_path, "--quiet")
    assert code == 0, (out, err)
    assert "target agreement 0.9 on 9 images (no image may change): reached" in out


@pytest.mark.parametrize("options, n, words", [
    (MixedOptions(target_agreement=0.99), 90,
     "target agreement 0.99 on 90 images (no image may change)"),
    (MixedOptions(), 300, "target agreement 0.99 on 300 images (at most 3 may change)"),
    (MixedOptions(max_changed=2), 90, "--max-changed-images 2 on 90 images (at most 2 may change)"),
])
def test_the_target_in_words_states_the_count(options, n, words):
    assert options.check().words(n) == words


def test_max_changed_and_target_agreement_are_exclusive():
    from edgebench.host.errors import UserError

    with pytest.raises(UserError, match="not both"):
        MixedOptions(target_agreement=0.9, max_changed=1).check()
    with pytest.raises(UserError, match="--max-changed-images must be 0 or more"):
        MixedOptions(max_changed=-1).check()
