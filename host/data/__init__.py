"""Data sets, one registry: `phantom` (default, generated), `busi:PATH`, `breastmnist:FILE.npz`,
`folder:PATH`. Everything here is numpy + Pillow + scipy; no torch, nothing downloaded.

Label 0 = benign, 1 = malignant (the positive class) for every source."""
from __future__ import annotations

import re

from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

from edgebench.host.data import phantom, sources
from edgebench.host.data.split import Split, read_split, split_dataset, write_split
from edgebench.host.errors import UserError
from edgebench.host.registry import lookup

__all__ = ["CLASS_NAMES", "DATASETS", "DataSource", "Dataset", "Split", "load_dataset",
           "load_splits", "parse_spec", "read_split", "split_dataset", "split_of", "write_split"]

CLASS_NAMES = ("benign", "malignant")
DEFAULT_PHANTOM_SIZE = 600
MIN_PHANTOM_SIZE = 10


@dataclass
class Dataset:
    images: np.ndarray      # uint8, N×H×W×C (grayscale replicated when C = 3)
    labels: np.ndarray      # int64, N
    ids: list[str]          # per image: source file (relative to the data root) or "phantom-<i>"
    spec: str
    class_names: tuple = CLASS_NAMES


@dataclass(frozen=True)
class DataSource:
    """One entry of the registry: `read(arg, img_size, seed)` -> (gray N×S×S, labels, ids)."""

    name: str
    usage: str
    summary: str
    read: Callable[[str, int, int], tuple[np.ndarray, np.ndarray, list[str]]]
    needs_arg: bool = True
    cacheable: bool = False  # generated (costly, never changes for a key) rather than read


def _read_phantom(arg: str, img_size: int, seed: int):
    if not arg:
        n = DEFAULT_PHANTOM_SIZE
    else:
        try:
            n = int(arg)
        except ValueError:
            raise UserError(f"phantom:N needs an image count, got {arg!r}") from None
        if n < MIN_PHANTOM_SIZE:
            raise UserError(f"phantom:N needs at least {MIN_PHANTOM_SIZE} images to split, got {n}")
    return phantom.generate(n, img_size, seed)


DATASETS: dict[str, DataSource] = {s.name: s for s in (
    DataSource("phantom", "phantom[:N]",
               f"phantom[:N]  synthetic B-mode breast-ultrasound phantom generated offline from "
               f"the seed (default {DEFAULT_PHANTOM_SIZE} images, balanced)",
               _read_phantom, needs_arg=False, cacheable=True),
    DataSource("busi", "busi:PATH",
               "busi:PATH  BUSI layout Dataset_BUSI_with_GT/{benign,malignant}/*.png "
               "(masks and normal/ ignored)",
               lambda arg, size, seed: sources.read_busi(arg, size)),
    DataSource("breastmnist", "breastmnist:FILE.npz",
               "breastmnist:FILE.npz  MedMNIST BreastMNIST (labels remapped so malignant = 1; "
               "official splits pooled and re-split)",
               lambda arg, size, seed: sources.read_breastmnist(arg, size)),
    DataSource("folder", "folder:PATH",
               "folder:PATH  images in PATH/benign/ and PATH/malignant/ (png, jpg, bmp, tif)",
               lambda arg, size, seed: sources.read_folder(arg, size)),
)}


DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
_SPLIT_SUFFIX = re.compile(r"@(\d+)/(\d+)/(\d+)$")


def split_of(spec: str) -> tuple[str, tuple[float, float, float]]:
    """('phantom:1400', (5/7, 1/7, 1/7)) for 'phantom:1400@1000/200/200': a spec may end in
    @TRAIN/VAL/TEST image counts (the paper's 1000/200/200), split in those proportions — exactly
    those counts when the data set has that many images. Without the suffix: 70/15/15. Being part
    of the spec, the split travels with it into checkpoints and cards, so every stage re-derives
    the same test images."""
    spec = (spec or "").strip()
    found = _SPLIT_SUFFIX.search(spec)
    if not found:
        return spec, DEFAULT_FRACTIONS
    counts = [int(v) for v in found.groups()]
    if sum(counts) == 0 or counts[0] == 0:
        raise UserError(f"{spec}: the split @TRAIN/VAL/TEST needs training images")
    return spec[:found.start()], tuple(c / sum(counts) for c in counts)


def parse_spec(spec: str) -> tuple[DataSource, str]:
    """'busi:/data/x' -> (DATASETS['busi'], '/data/x'). Only the first ':' separates, so paths
    may contain colons; a split suffix (@1000/200/200) is not part of the argument."""
    name, _, arg = split_of(spec)[0].partition(":")
    source = lookup(DATASETS, name.strip().lower(), "data set")
    if source.needs_arg and not arg:
        raise UserError(f"data set {source.name!r} needs an argument: {source.usage}")
    return source, arg


# The last few phantoms generated in this process: `run` loads the same one in train, convert,
# quantize and bundle, and a 224 px phantom costs tens of seconds to regenerate. Files on disk
# are read afresh every time, so an edited folder is never served stale.
_CACHE: OrderedDict[tuple, Dataset] = OrderedDict()
_CACHE_SIZE = 2


def load_dataset(spec: str, img_size: int, channels: int = 1, seed: int = 0) -> Dataset:
    """Load (or generate) the data set named by `spec`, images img_size² with `channels`
    channels. `seed` seeds the phantom's generation; files on disk ignore it."""
    if channels not in (1, 3):
        raise UserError(f"channels must be 1 or 3, got {channels}")
    if img_size < 8:
        raise UserError(f"image size must be at least 8 px, got {img_size}")
    if seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}")
    source, arg = parse_spec(spec)
    key = (source.name, arg, img_size, channels, seed)
    if key in _CACHE:
        _CACHE.move_to_end(key)
        ds = _CACHE[key]
        # Copies: a caller that normalises in place must not poison the next caller.
        return replace(ds, images=ds.images.copy(), labels=ds.labels.copy(), ids=list(ds.ids),
                       spec=spec)
    gray, labels, ids = source.read(arg, img_size, seed)
    missing = [c for k, c in enumerate(CLASS_NAMES) if not (labels == k).any()]
    if missing:
        raise UserError(f"data set {spec!r} has no {' or '.join(missing)} images")
    ds = Dataset(images=np.repeat(gray[..., None], channels, axis=-1),
                 labels=labels.astype(np.int64), ids=list(ids), spec=spec)
    if source.cacheable:
        _CACHE[key] = replace(ds, images=ds.images.copy(), labels=ds.labels.copy())
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return ds


def load_splits(spec: str, img_size: int, channels: int, seed: int
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{"train": (images, labels), "val": ..., "test": ...} for a checkpoint's
    (data_spec, img_size, in_channels, split_seed): the same seed generates the phantom and
    splits it, so the test split comes back exactly as training saw it."""
    ds = load_dataset(spec, img_size, channels, seed)
    split = split_dataset(ds, seed, split_of(spec)[1])
    return {name: (ds.images[idx], ds.labels[idx]) for name, idx in split.items()}

