"""The data registry, the readers for data on disk (on tiny trees made here, never real data),
and the stratified split."""
from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from edgebench.host.data import (CLASS_NAMES, DATASETS, Dataset, load_dataset, load_splits,
                                 read_split, split_dataset, write_split)
from edgebench.host.errors import UserError
from edgebench.host.registry import describe


def save(path, array, mode=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def gradient(h, w, value=0):
    """An image that is dark on the left and bright on the right, plus an offset per file."""
    row = np.linspace(0, 200, w).astype(np.uint8)
    return np.clip(np.tile(row, (h, 1)).astype(int) + value, 0, 255).astype(np.uint8)


@pytest.fixture
def busi_tree(tmp_path):
    root = tmp_path / "Dataset_BUSI_with_GT"
    for i in (1, 2, 12):
        save(root / "benign" / f"benign ({i}).png", gradient(50, 70, i))
        save(root / "benign" / f"benign ({i})_mask.png", np.full((50, 70), 255, np.uint8))
    save(root / "benign" / "benign (2)_mask_1.png", np.full((50, 70), 255, np.uint8))
    rgb = np.dstack([gradient(40, 40)] * 3)
    for i in (1, 3):
        save(root / "malignant" / f"malignant ({i}).png", rgb)
        save(root / "malignant" / f"malignant ({i})_mask.png", np.full((40, 40), 255, np.uint8))
    save(root / "normal" / "normal (1).png", gradient(30, 30))
    return tmp_path


def test_registry_lists_every_spec_with_a_one_line_summary():
    assert list(DATASETS) == ["phantom", "busi", "breastmnist", "folder"]
    listing = describe(DATASETS, "data set")
    for name, source in DATASETS.items():
        assert name in listing and source.summary and "\n" not in source.summary
    assert CLASS_NAMES == ("benign", "malignant")


@pytest.mark.parametrize("spec, message", [
    ("imagenet", "choose one of: phantom, busi, breastmnist, folder"),
    ("busi", "busi:PATH"),
    ("folder:", "folder:PATH"),
    ("breastmnist", "breastmnist:FILE.npz"),
    ("phantom:many", "image count"),
    ("phantom:3", "at least"),
])
def test_bad_specs_are_one_line_user_errors(spec, message):
    with pytest.raises(UserError) as info:
        load_dataset(spec, 32)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_channels_size_and_seed():
    for kwargs in ({"channels": 2}, {"img_size": 4}, {"seed": -1}):
        with pytest.raises(UserError):
            load_dataset("phantom:10", **{"img_size": 32, **kwargs})


def test_phantom_dataset_shapes_channels_and_ids():
    ds = load_dataset("phantom:20", 32, channels=3, seed=1)
    assert isinstance(ds, Dataset) and ds.spec == "phantom:20"
    assert ds.images.shape == (20, 32, 32, 3) and ds.images.dtype == np.uint8
    assert np.array_equal(ds.images[..., 0], ds.images[..., 2])  # grey replicated
    assert ds.labels.dtype == np.int64 and np.bincount(ds.labels).tolist() == [10, 10]
    assert ds.ids[:2] == ["phantom-0", "phantom-1"] and ds.class_names == CLASS_NAMES
    gray = load_dataset("phantom:20", 32, channels=1, seed=1)
    assert gray.images.shape == (20, 32, 32, 1)
    assert np.array_equal(gray.images[..., 0], ds.images[..., 0])


def test_cached_phantom_is_handed_out_as_a_copy():
    first = load_dataset("phantom:12", 16, seed=2)
    first.images[:] = 0
    first.labels[:] = 7
    again = load_dataset("phantom:12", 16, seed=2)
    assert again.images.max() > 0 and set(again.labels.tolist()) == {0, 1}


def test_busi_layout_from_parent_or_class_root(busi_tree):
    for path in (busi_tree, busi_tree / "Dataset_BUSI_with_GT"):
        ds = load_dataset(f"busi:{path}", 32)
        assert ds.ids == ["benign/benign (1).png", "benign/benign (2).png",
                          "benign/benign (12).png", "malignant/malignant (1).png",
                          "malignant/malignant (3).png"]
        assert ds.labels.tolist() == [0, 0, 0, 1, 1]
        assert ds.images.shape == (5, 32, 32, 1)
    # Resized, not cropped: the dark-to-bright ramp survives, and RGB became grey.
    left, right = ds.images[3, :, :4].mean(), ds.images[3, :, -4:].mean()
    assert left < 40 and right > 160


def test_busi_without_class_folders(tmp_path):
    (tmp_path / "stuff").mkdir()
    with pytest.raises(UserError, match="BUSI layout"):
        load_dataset(f"busi:{tmp_path}", 32)
    with pytest.raises(UserError, match="not found"):
        load_dataset(f"busi:{tmp_path / 'nope'}", 32)


def test_folder_reads_common_formats_and_ignores_other_folders(tmp_path):
    save(tmp_path / "benign" / "a.jpg", gradient(20, 20))
    save(tmp_path / "benign" / "b.BMP", gradient(20, 30))
    save(tmp_path / "Malignant" / "c.tif", gradient(64, 64))
    save(tmp_path / "malignant_extra" / "d.png", gradient(64, 64))
    (tmp_path / "benign" / "notes.txt").write_text("not an image")
    ds = load_dataset(f"folder:{tmp_path}", 24, channels=3)
    assert ds.ids == ["benign/a.jpg", "benign/b.BMP", "Malignant/c.tif"]
    assert ds.labels.tolist() == [0, 0, 1] and ds.images.shape == (3, 24, 24, 3)


def test_folder_with_16_bit_images_is_stretched_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 4000, 32), (32, 1)).astype(np.uint16)
    save(tmp_path / "benign" / "a.png", ramp)
    save(tmp_path / "malignant" / "b.png", gradient(32, 32))
    ds = load_dataset(f"folder:{tmp_path}", 32)
    assert ds.images[0, :, 0].max() < 20 and ds.images[0, :, -1].min() > 230


def test_folder_errors_name_the_problem(tmp_path):
    save(tmp_path / "benign" / "a.png", gradient(8, 8))
    (tmp_path / "malignant").mkdir()
    with pytest.raises(UserError, match=r"no malignant images in .*malignant"):
        load_dataset(f"folder:{tmp_path}", 16)
    (tmp_path / "malignant" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    with pytest.raises(UserError, match=r"cannot read image .*broken\.png"):
        load_dataset(f"folder:{tmp_path}", 16)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(UserError, match="benign/ and malignant/"):
        load_dataset(f"folder:{other}", 16)
    with pytest.raises(UserError, match="not a folder"):
        load_dataset(f"folder:{tmp_path / 'benign' / 'a.png'}", 16)


def test_truncated_image_is_named(tmp_path):
    good = save(tmp_path / "benign" / "a.png", np.random.default_rng(0).integers(0, 255, (64, 64),
                                                                              dtype=np.uint8))
    save(tmp_path / "malignant" / "b.png", gradient(8, 8))
    good.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UserError, match=r"cannot read image .*a\.png"):
        load_dataset(f"folder:{tmp_path}", 16)


def write_npz(path, img=28, **override):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 10), ("val", 4), ("test", 6)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, img, img), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3 != 0).astype(np.uint8).reshape(n, 1)
    arrays.update(override)
    np.savez(path, **arrays)
    return path, arrays


def test_breastmnist_remaps_labels_and_pools_splits(tmp_path):
    path, arrays = write_npz(tmp_path / "breastmnist.npz")
    ds = load_dataset(f"breastmnist:{path}", 28)
    raw = np.concatenate([arrays[f"{s}_labels"].ravel() for s in ("train", "val", "test")])
    assert len(ds.labels) == 20 and np.array_equal(ds.labels, 1 - raw)  # 0 (malignant) -> 1
    assert ds.ids[0] == "train_images[0]" and ds.ids[-1] == "test_images[5]"
    assert np.array_equal(ds.images[10, ..., 0], arrays["val_images"][0])  # same size: untouched
    bigger = load_dataset(f"breastmnist:{path}", 56)
    assert bigger.images.shape == (20, 56, 56, 1)
    assert abs(bigger.images[0, ..., 0].astype(float).mean() - arrays["train_images"][0].mean()) < 8


def test_breastmnist_bad_files(tmp_path):
    path, _ = write_npz(tmp_path / "a.npz")
    data = dict(np.load(path))
    del data["val_labels"]
    np.savez(tmp_path / "b.npz", **data)
    with pytest.raises(UserError, match="missing keys val_labels"):
        load_dataset(f"breastmnist:{tmp_path / 'b.npz'}", 28)
    (tmp_path / "c.npz").write_text("hello")
    with pytest.raises(UserError, match="cannot read"):
        load_dataset(f"breastmnist:{tmp_path / 'c.npz'}", 28)
    with pytest.raises(UserError, match="not found"):
        load_dataset(f"breastmnist:{tmp_path / 'd.npz'}", 28)
    bad_labels, _ = write_npz(tmp_path / "e.npz", test_labels=np.full((6, 1), 4, np.uint8))
    with pytest.raises(UserError, match="must be 0"):
        load_dataset(f"breastmnist:{bad_labels}", 28)


def toy(labels):
    labels = np.asarray(labels, np.int64)
    return Dataset(images=np.zeros((len(labels), 4, 4, 1), np.uint8), labels=labels,
                   ids=[f"img-{i}" for i in range(len(labels))], spec="toy")


def test_split_is_stratified_disjoint_complete_and_seeded():
    ds = toy([0] * 70 + [1] * 30)
    split = split_dataset(ds, seed=0)
    parts = [split.train, split.val, split.test]
    assert all(p.dtype == np.int64 for p in parts)
    assert sorted(np.concatenate(parts).tolist()) == list(range(100))
    assert [len(p) for p in parts] == [70, 15, 15]
    for p in parts:  # each split keeps the class ratio
        assert abs(ds.labels[p].mean() - 0.3) < 0.04
    again = split_dataset(ds, seed=0)
    other = split_dataset(ds, seed=1)
    assert all(np.array_equal(a, b) for a, b in zip(parts, [again.train, again.val, again.test]))
    assert not np.array_equal(split.test, other.test)


def test_split_keeps_both_classes_in_every_part_when_possible():
    ds = toy([0] * 3 + [1] * 40)
    split = split_dataset(ds, seed=3)
    for part in (split.train, split.val, split.test):
        assert set(ds.labels[part].tolist()) == {0, 1}
    tiny = toy([0, 1, 1, 1, 1])  # one benign image: it goes to training
    split = split_dataset(tiny, seed=0)
    assert tiny.labels[split.train].tolist().count(0) == 1
    assert sorted(np.concatenate([split.train, split.val, split.test]).tolist()) == list(range(5))


def test_split_rejects_bad_fractions():
    with pytest.raises(UserError):
        split_dataset(toy([0, 1] * 5), seed=0, fractions=(0.5, 0.5, 0.5))


def test_write_and_read_split_round_trip(tmp_path):
    ds = load_dataset("phantom:30", 16, seed=4)
    split = split_dataset(ds, seed=4)
    path = tmp_path / "run" / "split.json"
    write_split(path, ds, split, seed=4)
    record = json.loads(path.read_text())
    assert record["spec"] == "phantom:30" and record["seed"] == 4 and record["img_size"] == 16
    assert record["test"] == [ds.ids[i] for i in split.test]
    assert sum(sum(c.values()) for c in record["counts"].values()) == 30
    back = read_split(path, ds)
    assert all(np.array_equal(b, s) for (_, b), (_, s) in zip(back.items(), split.items()))
    with pytest.raises(UserError, match="not in"):
        read_split(path, load_dataset("phantom:20", 16, seed=4))


def test_load_splits_reproduces_the_split_a_checkpoint_names():
    splits = load_splits("phantom:40", 16, 1, 7)
    assert list(splits) == ["train", "val", "test"]
    assert sum(len(y) for _, y in splits.values()) == 40
    ds = load_dataset("phantom:40", 16, 1, 7)
    test_idx = split_dataset(ds, 7).test
    x, y = splits["test"]
    assert x.shape == (len(test_idx), 16, 16, 1)
    assert np.array_equal(x, ds.images[test_idx]) and np.array_equal(y, ds.labels[test_idx])
    x2, y2 = load_splits("phantom:40", 16, 1, 7)["test"]
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_a_split_suffix_gives_those_counts_and_travels_with_the_spec(tmp_path):
    """'@TRAIN/VAL/TEST' (the paper's 1000/200/200) splits in those counts when the data set has
    that many images, in those proportions otherwise, and is kept by absolute_spec (checkpoints
    record it, so later stages re-derive the same test images)."""
    from edgebench.host.data import split_of
    from edgebench.host.train import absolute_spec

    counts = {k: len(y) for k, (_, y) in load_splits("phantom:140@100/20/20", 16, 1, 0).items()}
    assert counts == {"train": 100, "val": 20, "test": 20}
    scaled = {k: len(y) for k, (_, y) in load_splits("phantom:70@100/20/20", 16, 1, 0).items()}
    assert scaled == {"train": 50, "val": 10, "test": 10}
    plain = load_splits("phantom:140", 16, 1, 0)
    assert [len(y) for _, y in plain.values()] == [98, 21, 21]  # 70/15/15 without the suffix
    assert split_of("busi:/data/set@1000/200/200") == ("busi:/data/set", (5 / 7, 1 / 7, 1 / 7))
    rel = absolute_spec("folder:data/x@1000/200/200")
    assert rel.endswith("@1000/200/200") and rel.startswith(f"folder:{Path.cwd()}")
    with pytest.raises(UserError, match="needs training images"):
        split_of("phantom:10@0/5/5")


def test_the_paper_profile_splits_1000_200_200():
    from edgebench.host.profiles import PROFILES

    paper = PROFILES["paper"]
    assert paper.train_settings("vgg16")["data"] == "phantom:1400@1000/200/200"
    busi = paper.with_overrides(data="busi:/data/BUSI").train_settings("vgg16")["data"]
    assert busi == "busi:/data/BUSI@1000/200/200"   # too few images there: the proportions
    own = paper.with_overrides(data="phantom:700@500/100/100").train_settings("vgg16")["data"]
    assert own == "phantom:700@500/100/100"           # a split of the user's own wins


def test_data_loads_without_torch():
    """The data layer must run where torch is absent (e.g. bundling on a slim host)."""
    code = ("import sys; from edgebench.host.data import load_splits; "
            "load_splits('phantom:10', 16, 1, 0); "
            "sys.exit(1 if any(m.split('.')[0] in ('torch', 'tensorflow') for m in sys.modules) "
            "else 0)")
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0
