"""A model card says what it was built from without the host's layout: its source paths are
relative to the card's own folder, the checkpoint is identified by its sha256, and neither the
card, the bundle's manifest nor the SavedModel's edgebench.json holds an absolute path or the
user's name (cards go onto every device and into a lab's shared database)."""
from __future__ import annotations

import getpass
import json
from pathlib import Path

import numpy as np
import pytest

from edgebench.host.bundle import build_bundle
from edgebench.host.export.card import read_card
from edgebench.host.export.pipeline import convert_checkpoint
from edgebench.host.export.source import SOURCE_FILE, load_source
from edgebench.host.files import sha256_file
from edgebench.models import MODELS, ModelSpec
from test_export import ARCH, TinyPool, make_checkpoint, synthetic

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::DeprecationWarning")]


@pytest.fixture(scope="module", autouse=True)
def registered():
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(MODELS, ARCH, ModelSpec(ARCH, "test model with a padded MaxPool", TinyPool))
        yield


def _strings(blob):
    if isinstance(blob, str):
        yield blob
    elif isinstance(blob, dict):
        for k, v in blob.items():
            yield k
            yield from _strings(v)
    elif isinstance(blob, list):
        for v in blob:
            yield from _strings(v)


def _assert_no_host_paths(blob, tmp_path: Path, where: str) -> None:
    user = getpass.getuser()
    for s in _strings(blob):
        assert not s.startswith("/"), f"{where}: absolute path {s!r}"
        assert str(tmp_path) not in s, f"{where}: host path {s!r}"
        assert len(user) < 3 or user not in s, f"{where}: user name in {s!r}"


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """A run's layout, converted from elsewhere: results/quick/models/<arch>/best.pt."""
    root = tmp_path_factory.mktemp("cards")
    model_dir = root / "results" / "quick" / "models" / ARCH
    model_dir.mkdir(parents=True)
    ckpt = make_checkpoint(model_dir / "best.pt")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp("elsewhere"))
        conv = convert_checkpoint(ckpt.resolve())
    return root, ckpt, conv


def test_the_card_names_its_source_relative_to_itself_with_the_checkpoint_hash(converted):
    root, ckpt, conv = converted
    card = read_card(conv.card)
    _assert_no_host_paths(card, root, "card")
    src = card["source"]
    assert src["checkpoint"] == "best.pt"
    assert src["onnx"] == f"{ARCH}.onnx" and src["saved_model"] == f"{ARCH}_saved_model"
    assert src["checkpoint_sha256"] == sha256_file(ckpt)
    saved = json.loads((conv.saved_model / SOURCE_FILE).read_text())
    _assert_no_host_paths(saved, root, SOURCE_FILE)
    back = load_source(conv.saved_model)  # quantize SAVEDMODEL still finds what it came from
    assert Path(back.checkpoint).samefile(ckpt)
    assert Path(back.onnx).is_file() and Path(back.saved_model).samefile(conv.saved_model)


def test_the_bundle_finds_the_checkpoint_and_leaks_no_host_path(converted, tmp_path,
                                                              monkeypatch):
    root, ckpt, conv = converted
    images, labels = synthetic(24, 5)
    np.savez(tmp_path / "test.npz", images=images, labels=labels)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "best.pt").write_bytes(b"another checkpoint of the same name")
    out = build_bundle(ckpt.parent, root / "bundle", testset=tmp_path / "test.npz", run_id="r")
    manifest = json.loads((out / "manifest.json").read_text())
    _assert_no_host_paths(manifest, root, "manifest.json")
    (entry,) = manifest["models"]
    assert entry["source"]["checkpoint_sha256"] == sha256_file(ckpt)
    assert entry["reference"] == f"reference/{ARCH}.npy"  # the relative checkpoint was found
    assert (out / entry["reference"]).is_file()


def test_a_checkpoint_far_from_the_card_is_named_by_file_and_hash(tmp_path):
    """A checkpoint outside the card's tree keeps only its name (the hash identifies it)."""
    from edgebench.host.export.card import portable_source

    card_dir = tmp_path / "a" / "b"
    src = portable_source({"checkpoint": "/opt/lab/ckpts/best.pt", "onnx": None,
                           "saved_model": str(card_dir / "sm")}, card_dir)
    assert src["checkpoint"] == "best.pt" and src["saved_model"] == "sm"
    assert src["onnx"] is None and src["checkpoint_sha256"] is None
    old = {"checkpoint": "best.pt", "checkpoint_sha256": "ab" * 32}  # already portable
    again = portable_source(old, card_dir)
    assert {k: again[k] for k in old} == old
