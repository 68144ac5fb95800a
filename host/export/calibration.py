"""Calibration (and verification) images for quantization: drawn from the training split of a
data spec, or read from a user's .npz. Library code, shared by `bench-host quantize`, the `run`
pipeline and the benchmarks; a caller that already holds the splits passes them in."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from edgebench.host.errors import UserError


def draw(train_images: np.ndarray, n: int, seed: int) -> np.ndarray:
    """n images of the training split (all of them when it is smaller), in their split order."""
    pick = np.random.default_rng(seed).choice(len(train_images), size=min(n, len(train_images)),
                                              replace=False)
    return train_images[np.sort(pick)]


def pick_images(source, calib_data: Path | None, data: str | None, n: int, seed: int,
                splits: dict | None = None):
    """(calibration uint8 N×H×W×C or None, test images or None, test labels or None).
    `splits` (load_splits' result for the source's own data) saves loading them again."""
    if calib_data is not None:
        return _from_npz(calib_data, source, n, seed)
    if splits is None:
        spec = data or source.data_spec
        if not spec:
            return None, None, None
        from edgebench.host.data import load_splits

        splits = load_splits(spec, source.img_size, source.channels,
                             source.split_seed if source.split_seed is not None else 0)
    test_images, test_labels = splits["test"]
    return draw(splits["train"][0], n, seed), test_images, test_labels


def _from_npz(path: Path, source, n: int, seed: int):
    try:
        blob = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"calibration file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read calibration file {path}: {exc}") from None
    key = next((k for k in ("train_images", "images") if k in blob.files), None)
    if key is None:
        raise UserError(f"{path} has no 'train_images' or 'images' array (found: "
                        f"{', '.join(blob.files) or 'nothing'})")
    calib = _as_nhwc(blob[key], source, f"{path}:{key}")
    if "test_images" in blob.files:
        test = _as_nhwc(blob["test_images"], source, f"{path}:test_images")
        labels = np.asarray(blob["test_labels"]).reshape(-1) if "test_labels" in blob.files else None
        return draw(calib, n, seed), test, labels
    return draw(calib, n, seed), calib[:200], None


def _as_nhwc(images, source, where: str):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    want = tuple(source.input_shape[1:])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
        raise UserError(f"{where}: expected uint8 images N×{want[0]}×{want[1]}×{want[2]} "
                        f"(the model's input), got {images.dtype} {list(images.shape)}")
    if len(images) == 0:
        raise UserError(f"{where} is empty")
    return images
