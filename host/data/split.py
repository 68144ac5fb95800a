"""Stratified, seeded train/val/test split, and its JSON record written next to a run."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgebench.host.errors import UserError
from edgebench.host.files import write_atomic

SPLIT_FORMAT = "edgebench.split/1"
SPLIT_NAMES = ("train", "val", "test")


@dataclass
class Split:
    """int64 index arrays into a Dataset, sorted, disjoint, covering it."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray

    def items(self):
        return ((name, getattr(self, name)) for name in SPLIT_NAMES)


def _sizes(class_sizes: list[int], fractions: tuple[float, float, float]) -> np.ndarray:
    """(classes × 3) split sizes. Val and test each get round(N·f) images in all, shared among
    the classes by largest remainder so each class keeps its ratio; once a class has three
    images, val and test (when asked for) hold at least one of it, so every split sees both
    classes wherever the data allow."""
    sizes = np.zeros((len(class_sizes), 3), np.int64)
    n = np.asarray(class_sizes)
    for col, f in ((1, fractions[1]), (2, fractions[2])):
        quota = n * f
        take = np.floor(quota).astype(np.int64)
        spare = int(round(n.sum() * f)) - int(take.sum())
        for k in np.argsort(-(quota - take), kind="stable")[:max(spare, 0)]:
            take[k] += 1
        sizes[:, col] = np.where((n >= 3) & (f > 0), np.maximum(take, 1), take)
    for k in range(len(n)):  # a tiny class trains first, then validates, then tests
        while sizes[k, 1:].sum() >= n[k] and n[k] >= 1:
            sizes[k, 2 if sizes[k, 2] >= sizes[k, 1] and sizes[k, 2] > 0 else 1] -= 1
    sizes[:, 0] = n - sizes[:, 1:].sum(axis=1)
    return sizes


def split_dataset(ds, seed: int, fractions=(0.7, 0.15, 0.15)) -> Split:
    """Stratified split of `ds` (anything with `.labels`): each class is shuffled with its own
    stream from `seed` and cut by `fractions`, so the result depends only on the labels, the seed
    and the fractions. Indices within each part are sorted."""
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) < 0 or abs(sum(fractions) - 1.0) > 1e-6:
        raise UserError(f"split fractions must be three non-negative numbers summing to 1, "
                        f"got {fractions}")
    if seed < 0:
        raise UserError(f"seed must be a non-negative integer, got {seed}")
    labels = np.asarray(ds.labels)
    classes = np.unique(labels)
    members = [np.flatnonzero(labels == cls) for cls in classes]
    sizes = _sizes([len(m) for m in members], fractions)
    parts: dict[str, list[np.ndarray]] = {name: [] for name in SPLIT_NAMES}
    for cls, idx, (n_train, n_val, _) in zip(classes, members, sizes):
        idx = idx[np.random.default_rng([seed, int(cls)]).permutation(len(idx))]
        for name, chunk in zip(SPLIT_NAMES, np.split(idx, [n_train, n_train + n_val])):
            parts[name].append(chunk)
    return Split(*(np.sort(np.concatenate(parts[name] or [np.zeros(0, np.int64)])).astype(np.int64)
                   for name in SPLIT_NAMES))


def write_split(path: Path, ds, split: Split, seed: int) -> None:
    """Record which image went where (by id), with the spec and seed that reproduce it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "format": SPLIT_FORMAT,
        "spec": ds.spec,
        "seed": seed,
        "img_size": int(ds.images.shape[1]),
        "class_names": list(ds.class_names),
        "counts": {name: {cls: int((ds.labels[idx] == k).sum())
                          for k, cls in enumerate(ds.class_names)}
                   for name, idx in split.items()},
        **{name: [ds.ids[i] for i in idx] for name, idx in split.items()},
    }
    write_atomic(path, json.dumps(record, indent=1) + "\n")


def read_split(path: Path, ds) -> Split:
    """The split recorded in `path`, as indices into `ds`; ids it names that `ds` lacks (the data
    changed on disk since) are a UserError."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read split file {path}: {exc}") from None
    if not isinstance(record, dict) or record.get("format") != SPLIT_FORMAT:
        raise UserError(f"{path} is not an edgebench split file (expected format {SPLIT_FORMAT})")
    where = {image_id: i for i, image_id in enumerate(ds.ids)}
    out = []
    for name in SPLIT_NAMES:
        missing = [i for i in record.get(name, []) if i not in where]
        if missing:
            raise UserError(f"{path}: {len(missing)} {name} ids are not in {ds.spec!r} "
                            f"(first: {missing[0]!r}); the data changed since the split "
                            f"was written")
        out.append(np.sort(np.asarray([where[i] for i in record.get(name, [])], np.int64)))
    return Split(*out)
