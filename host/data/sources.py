"""Readers for data sets on disk: the BUSI folder layout, a BreastMNIST npz, and plain
`benign/` + `malignant/` image folders. Each returns grayscale uint8 images N×S×S (resized to
S = img_size), int64 labels (0 = benign, 1 = malignant) and one id per image."""
from __future__ import annotations

import re
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from edgebench.host.errors import UserError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
CLASS_FOLDERS = ("benign", "malignant")  # index = label
BUSI_FOLDER = "Dataset_BUSI_with_GT"

Loaded = tuple[np.ndarray, np.ndarray, list[str]]


def to_gray_square(image: Image.Image, size: int) -> np.ndarray:
    """Grayscale uint8 size×size. Bilinear resampling in Pillow widens its kernel when it shrinks,
    so a downscale averages over the covered area instead of aliasing the speckle."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit / float scans: stretch to 8 bits over the image's own range (convert("L") clips).
        a = np.asarray(image, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        gain = 255.0 / (hi - lo) if hi > lo else 0.0
        image = Image.fromarray(((a - lo) * gain).astype(np.uint8))
    elif image.mode != "L":
        image = image.convert("L")
    if image.size != (size, size):
        image = image.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def read_image(path: Path, size: int) -> np.ndarray:
    try:
        with Image.open(path) as image:
            image.load()  # Pillow decodes lazily: a truncated file must fail here, by name
            return to_gray_square(image, size)
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError,
            SyntaxError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UserError(f"cannot read image {path}: {reason}") from None


def _natural_key(name: str) -> list:
    """'benign (2).png' before 'benign (12).png', so ids list in the order a person expects."""
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _class_dirs(root: Path) -> dict[str, Path] | None:
    """The benign/ and malignant/ subfolders of root (any letter case), or None."""
    if not root.is_dir():
        return None
    found = {p.name.lower(): p for p in root.iterdir() if p.is_dir()}
    return {c: found[c] for c in CLASS_FOLDERS} if all(c in found for c in CLASS_FOLDERS) else None


def _images_in(folder: Path, skip_masks: bool) -> list[Path]:
    files = [p for p in folder.iterdir()
             if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_SUFFIXES
             and not (skip_masks and "_mask" in p.stem.lower())]
    return sorted(files, key=lambda p: _natural_key(p.name))


def _read_class_folders(root: Path, dirs: dict[str, Path], size: int, skip_masks: bool) -> Loaded:
    images, labels, ids = [], [], []
    for label, cls in enumerate(CLASS_FOLDERS):
        files = _images_in(dirs[cls], skip_masks)
        if not files:
            raise UserError(f"no {cls} images in {dirs[cls]} "
                            f"(looked for {', '.join(IMAGE_SUFFIXES)})")
        for path in files:
            images.append(read_image(path, size))
            labels.append(label)
            ids.append(path.relative_to(root).as_posix())
    return np.stack(images), np.asarray(labels, np.int64), ids


def _existing_dir(path: str, what: str) -> Path:
    if not path:
        raise UserError(f"{what} needs a path: {what}:PATH")
    p = Path(path).expanduser()
    if not p.exists():
        raise UserError(f"{what} path not found: {p}")
    if not p.is_dir():
        raise UserError(f"{what} path is not a folder: {p}")
    return p


def read_busi(path: str, img_size: int) -> Loaded:
    """BUSI: `Dataset_BUSI_with_GT/{benign,malignant,normal}/"benign (12).png"`. PATH is the
    folder holding the class folders or any folder above it by one level. Masks
    (`*_mask*.png`) and `normal/` are ignored: the task is benign vs malignant."""
    given = _existing_dir(path, "busi")
    candidates = [given, given / BUSI_FOLDER] + sorted(p for p in given.iterdir() if p.is_dir())
    for root in candidates:
        dirs = _class_dirs(root)
        if dirs:
            return _read_class_folders(root, dirs, img_size, skip_masks=True)
    raise UserError(f"no benign/ and malignant/ folders in {given} or its subfolders "
                    f"(expected the BUSI layout {BUSI_FOLDER}/{{benign,malignant,normal}}/)")


def read_folder(path: str, img_size: int) -> Loaded:
    """Any data set laid out as PATH/benign/* and PATH/malignant/* images (png/jpg/bmp/tif);
    other subfolders are ignored."""
    root = _existing_dir(path, "folder")
    dirs = _class_dirs(root)
    if not dirs:
        raise UserError(f"{root} needs two subfolders, benign/ and malignant/, holding the images")
    return _read_class_folders(root, dirs, img_size, skip_masks=False)


NPZ_SPLITS = ("train", "val", "test")


def read_breastmnist(path: str, img_size: int) -> Loaded:
    """BreastMNIST (MedMNIST v2) npz: `train_images`, `train_labels`, `val_*`, `test_*`, uint8
    N×H×W images and N×1 labels with **0 = malignant, 1 = normal + benign**; we remap so
    malignant = 1, the positive class. The three official splits are pooled, and the caller
    re-splits them with our own stratified, seeded split (so every data set is split the same
    way); images are resized when img_size differs from the file's."""
    if not path:
        raise UserError("breastmnist needs a file: breastmnist:FILE.npz")
    p = Path(path).expanduser()
    if not p.is_file():
        raise UserError(f"breastmnist file not found: {p}")
    try:
        with np.load(p, allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise UserError(f"cannot read {p} as an npz file: {str(exc).splitlines()[0]}") from None
    want = [f"{s}_{kind}" for s in NPZ_SPLITS for kind in ("images", "labels")]
    missing = [k for k in want if k not in arrays]
    if missing:
        raise UserError(f"{p} is not a MedMNIST npz: missing keys {', '.join(missing)} "
                        f"(has {', '.join(sorted(arrays)) or 'none'})")
    images, labels, ids = [], [], []
    for split in NPZ_SPLITS:
        x, y = arrays[f"{split}_images"], np.asarray(arrays[f"{split}_labels"]).reshape(-1)
        if x.ndim == 4 and x.shape[-1] in (1, 3):
            x = x[..., 0] if x.shape[-1] == 1 else _rgb_to_gray(x)
        if x.ndim != 3 or len(x) != len(y):
            raise UserError(f"{p}: {split}_images must be N×H×W with one label each "
                            f"(got images {x.shape}, labels {y.shape})")
        if y.size and not np.isin(y, (0, 1)).all():
            raise UserError(f"{p}: {split}_labels must be 0 (malignant) or 1 (normal/benign); "
                            f"found {sorted(set(np.unique(y).tolist()) - {0, 1})[:5]}")
        for i, img in enumerate(x):
            img = np.asarray(img)
            if img.dtype != np.uint8:
                img = np.clip(img, 0, 255).astype(np.uint8)
            images.append(img if img.shape == (img_size, img_size)
                          else to_gray_square(Image.fromarray(img), img_size))
            ids.append(f"{split}_images[{i}]")
        labels.append(1 - y.astype(np.int64))  # MedMNIST: 0 = malignant; ours: 1 = malignant
    if not images:
        raise UserError(f"{p} holds no images")
    return np.stack(images), np.concatenate(labels), ids


def _rgb_to_gray(x: np.ndarray) -> np.ndarray:
    return (x.astype(np.float32) @ np.float32([0.299, 0.587, 0.114]) + 0.5).astype(np.uint8)
