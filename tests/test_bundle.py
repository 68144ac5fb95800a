"""`bench-host bundle`: the bundle layout, cards read or derived, the test set given or re-derived
from the cards' source, reference logits from the checkpoint, and one-line errors."""
from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from agent_helpers import read_rows, run_agent
from edgebench.device.schema import MANIFEST_SCHEMA, MODEL_CARD_SCHEMA
from edgebench.host.agent_archive import archive_bytes
from edgebench.host.bundle import build_bundle
from edgebench.host.cli import main as cli_main
from edgebench.host.errors import UserError
from tflite_factory import ARCH, RECIPES, factory_dir

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def models_dir(tmp_path):
    """The factory's models in a nested layout, as convert/quantize might leave them."""
    src = factory_dir() / "models"
    dest = tmp_path / "models"
    for recipe in RECIPES:
        sub = dest / ("float" if recipe in ("fp32", "fp16") else "quant")
        sub.mkdir(parents=True, exist_ok=True)
        for ext in ("tflite", "json"):
            shutil.copy(src / f"{ARCH}.{recipe}.{ext}", sub)
    return dest


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_bundle_layout_and_manifest(models_dir, tmp_path):
    testset = factory_dir() / "testset.npz"
    out = build_bundle(models_dir, tmp_path / "bundle", testset=testset, run_id="r1")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["schema"] == MANIFEST_SCHEMA and manifest["run_id"] == "r1"
    assert manifest["testset"] == "testset.npz" and manifest["created"].endswith("Z")
    assert [e["name"] for e in manifest["models"]] == [f"{ARCH}.{r}" for r in
                                                       ("fp16", "fp32", "dynamic", "int16x8",
                                                        "int8")]
    for entry in manifest["models"]:
        assert entry["schema"] == MODEL_CARD_SCHEMA and entry["reference"] is None
        copied = out / entry["file"]
        assert entry["file"] == f"models/{entry['name']}.tflite"
        assert sha(copied) == entry["sha256"] == json.loads(
            next(models_dir.rglob(f"{entry['name']}.json")).read_text())["sha256"]
        assert entry["size_bytes"] == copied.stat().st_size
    assert (out / "agent.pyz").read_bytes() == archive_bytes()
    given, packed = np.load(testset), np.load(out / "testset.npz")
    assert packed["images"].dtype == np.uint8 and packed["images"].shape == (48, 32, 32, 1)
    np.testing.assert_array_equal(packed["images"], given["images"])
    np.testing.assert_array_equal(packed["labels"], given["labels"])
    assert list(packed["class_names"]) == ["benign", "malignant"]


def test_rebundling_replaces_the_old_bundle(models_dir, tmp_path):
    out = build_bundle(models_dir, tmp_path / "bundle", testset=factory_dir() / "testset.npz")
    (out / "models" / "stale.tflite").write_bytes(b"old")
    for card in models_dir.rglob("*int*.json"):
        card.unlink()
    for model in models_dir.rglob("*int*.tflite"):
        model.unlink()
    build_bundle(models_dir, out, testset=factory_dir() / "testset.npz")
    assert sorted(p.name for p in (out / "models").iterdir()) == [
        f"{ARCH}.{r}.tflite" for r in ("dynamic", "fp16", "fp32")]
    assert not list(tmp_path.glob(".bundle*"))  # no staging folder left behind


def test_bare_tflite_gets_a_derived_card_and_accuracy_only_with_a_testset(tmp_path):
    models = tmp_path / "bare"
    models.mkdir()
    shutil.copy(factory_dir() / "models" / f"{ARCH}.int8.tflite", models / "downloaded.tflite")
    plain = build_bundle(models, tmp_path / "plain")
    (entry,) = json.loads((plain / "manifest.json").read_text())["models"]
    assert entry["derived"] is True and entry["name"] == "downloaded"
    assert entry["input"]["shape"] == [1, 32, 32, 1] and entry["input"]["dtype"] == "int8"
    card = json.loads((factory_dir() / "models" / f"{ARCH}.int8.json").read_text())
    assert entry["input"]["scale"] == card["input"]["scale"]
    assert entry["input"]["zero_point"] == card["input"]["zero_point"]
    assert entry["output"] == card["output"] and entry["recipe"] == "int8"
    assert entry["input"]["normalization"] is None
    assert json.loads((plain / "manifest.json").read_text())["testset"] is None

    proc = run_agent(plain, tmp_path / "out-plain")
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(tmp_path / "out-plain" / "results.csv")[1]
    assert row["status"] == "ok" and float(row["p50_ms"]) > 0 and float(row["peak_rss_mb"]) > 0
    assert row["accuracy"] == "" and "no test set" in row["error"]

    with_test = build_bundle(models, tmp_path / "with-test", testset=factory_dir() / "testset.npz")
    (entry,) = json.loads((with_test / "manifest.json").read_text())["models"]
    assert entry["input"]["normalization"] == {"pixel_scale": 1 / 255, "mean": [0.0], "std": [1.0]}
    assert entry["class_names"] == ["benign", "malignant"]
    assert run_agent(with_test, tmp_path / "out-test").returncode == 0
    (row,) = read_rows(tmp_path / "out-test" / "results.csv")[1]
    assert row["n_test"] == "48" and row["accuracy"] != "" and row["error"] == ""


def test_testset_of_another_shape_gives_timing_and_says_why_no_accuracy(tmp_path):
    models = tmp_path / "bare"
    models.mkdir()
    shutil.copy(factory_dir() / "models" / f"{ARCH}.fp32.tflite", models / "m.tflite")
    big = tmp_path / "big.npz"
    np.savez(big, images=np.zeros((4, 64, 64, 1), np.uint8), labels=np.array([0, 1, 0, 1]),
             class_names=np.array(["benign", "malignant"]))
    bundle = build_bundle(models, tmp_path / "bundle", testset=big)
    assert run_agent(bundle, tmp_path / "out").returncode == 0
    (row,) = read_rows(tmp_path / "out" / "results.csv")[1]
    assert row["status"] == "ok" and row["accuracy"] == ""
    assert row["error"] == ("accuracy not measured: test images are 64x64x1 but the model takes "
                            "32x32x1")


def test_testset_and_reference_are_rederived_from_the_card_source(tiny_checkpoint, tmp_path):
    import torch

    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.data import load_splits

    model, meta = build_from_checkpoint(tiny_checkpoint)
    models = tmp_path / "models"
    models.mkdir()
    card = json.loads((factory_dir() / "models" / f"{ARCH}.fp32.json").read_text())
    card["architecture"] = meta.architecture
    card["input"]["normalization"] = meta.normalization()
    card["source"] = {"checkpoint": str(tiny_checkpoint), "onnx": None, "saved_model": None,
                      "data_spec": meta.data_spec, "img_size": meta.img_size,
                      "split_seed": meta.split_seed}
    shutil.copy(factory_dir() / "models" / f"{ARCH}.fp32.tflite", models)
    (models / f"{ARCH}.fp32.json").write_text(json.dumps(card))

    out = build_bundle(models, tmp_path / "bundle")
    images, labels = load_splits(meta.data_spec, meta.img_size, meta.in_channels,
                                 meta.split_seed)["test"]
    packed = np.load(out / "testset.npz")
    np.testing.assert_array_equal(packed["images"].reshape(images.shape), images)
    np.testing.assert_array_equal(packed["labels"], labels)
    (entry,) = json.loads((out / "manifest.json").read_text())["models"]
    assert entry["reference"] == f"reference/{meta.architecture}.npy"
    x = packed["images"].astype(np.float32) * meta.pixel_scale
    x = (x - np.float32(meta.mean)) / np.float32(meta.std)
    with torch.no_grad():
        expected = model(torch.from_numpy(x.transpose(0, 3, 1, 2).copy())).numpy()
    np.testing.assert_allclose(np.load(out / entry["reference"]), expected, atol=1e-4)


def test_cards_from_different_sources_are_refused(models_dir, tmp_path):
    for i, card_path in enumerate(sorted(models_dir.rglob("*.json"))[:2]):
        card = json.loads(card_path.read_text())
        card["source"] = {"data_spec": "phantom", "img_size": 32, "split_seed": i}
        card_path.write_text(json.dumps(card))
    with pytest.raises(UserError, match="different test sets"):
        build_bundle(models_dir, tmp_path / "bundle")


def test_cli_bundles_and_reports_bad_input_in_one_line(models_dir, tmp_path, capsys):
    testset = str(factory_dir() / "testset.npz")
    assert cli_main(["bundle", str(models_dir), "--out", str(tmp_path / "b"), "--testset",
                     testset, "--run-id", "cli"]) == 0
    assert "bundle cli: 5 model(s), test set testset.npz" in capsys.readouterr().out

    assert cli_main(["bundle", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "models folder not found" in err

    stale = next(models_dir.rglob(f"{ARCH}.fp32.json"))
    stale.write_text(json.dumps(dict(json.loads(stale.read_text()), sha256="0" * 64)))
    assert cli_main(["bundle", str(models_dir), "--out", str(tmp_path / "y")]) == 2
    assert "sha256 differs" in capsys.readouterr().err

    (tmp_path / "occupied").mkdir()
    (tmp_path / "occupied" / "notes.txt").write_text("mine")
    stale.unlink()
    assert cli_main(["bundle", str(models_dir), "--out", str(tmp_path / "occupied")]) == 2
    assert "is not a bundle" in capsys.readouterr().err
    assert (tmp_path / "occupied" / "notes.txt").read_text() == "mine"


def test_the_bundle_takes_what_an_earlier_stage_loaded(models_dir, tmp_path):
    """`run` hands over the test split and the float logits it already has: the bundle uses
    them as given and loads nothing again (the cards' checkpoint here is not even loadable)."""
    fake = tmp_path / "best.pt"
    fake.write_bytes(b"not a checkpoint: loading it would fail")
    for card_path in models_dir.rglob("*.json"):
        card = json.loads(card_path.read_text())
        card["source"] = {"checkpoint": str(fake), "data_spec": "phantom:999", "img_size": 32,
                          "split_seed": 1}
        card_path.write_text(json.dumps(card))
    given = np.load(factory_dir() / "testset.npz")
    images, labels = given["images"][:10], given["labels"][:10]
    logits = np.arange(20, dtype=np.float32).reshape(10, 2)
    out = build_bundle(models_dir, tmp_path / "bundle", run_id="r",
                       testset={"images": images, "labels": labels},
                       references={fake: logits})
    packed = np.load(out / "testset.npz")
    np.testing.assert_array_equal(packed["images"], images)
    assert list(packed["class_names"]) == ["benign", "malignant"]  # from the cards
    manifest = json.loads((out / "manifest.json").read_text())
    refs = {e["reference"] for e in manifest["models"]}
    assert len(refs) == 1 and None not in refs
    np.testing.assert_array_equal(np.load(out / refs.pop()), logits)
