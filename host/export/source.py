"""What a SavedModel came from: written by `convert` as `edgebench.json` inside the SavedModel
folder, so `quantize SAVEDMODEL` knows the architecture, classes, normalisation and reference
without asking again."""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError

SOURCE_FILE = "edgebench.json"
SOURCE_FORMAT = "edgebench.export-source/1"
PATH_FIELDS = ("onnx", "saved_model", "checkpoint")


def portable_path(path: Path, anchor: Path) -> str:
    """`path` relative to `anchor`, for files that leave the host or its user (cards, the bundle,
    a shared results folder); only its name when the two share no folder below the user's home
    or the filesystem root, where a relative path would spell the host's layout and the user's
    name (a hash stored beside it identifies the file)."""
    path, anchor = Path(path).resolve(), Path(anchor).resolve()
    common = Path(os.path.commonpath([path, anchor]))
    if common == Path(common.anchor) or common in Path.home().resolve().parents:
        return path.name
    return os.path.relpath(path, anchor)


@dataclass
class SourceInfo:
    architecture: str
    input_shape: list[int]  # NHWC [1, H, W, C]
    class_names: list[str]
    normalization: dict  # {pixel_scale, mean [C], std [C]}
    onnx: str
    saved_model: str
    checkpoint: str | None = None  # None for an ONNX file from elsewhere
    checkpoint_sha256: str | None = None
    data_spec: str | None = None
    split_seed: int | None = None
    positive_class: int = 1
    # seconds spent before the TFLite step (ONNX export + onnx2tf + SavedModel)
    upstream_seconds: float = 0.0
    timings: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def img_size(self) -> int:
        return int(self.input_shape[1])

    @property
    def channels(self) -> int:
        return int(self.input_shape[3])

    def card_source(self) -> dict:
        return {"checkpoint": self.checkpoint, "onnx": self.onnx, "saved_model": self.saved_model,
                "data_spec": self.data_spec, "img_size": self.img_size,
                "split_seed": self.split_seed, "checkpoint_sha256": self.checkpoint_sha256}

    def save(self) -> Path:
        """In memory the paths are absolute; on disk relative to the SavedModel folder (results
        folders are shared and moved), and load_source makes them absolute again."""
        folder = Path(self.saved_model)
        if self.checkpoint and not self.checkpoint_sha256 and Path(self.checkpoint).is_file():
            from edgebench.host.files import sha256_file

            self.checkpoint_sha256 = sha256_file(Path(self.checkpoint))
        blob = dataclasses.asdict(self)
        for key in PATH_FIELDS:
            if blob[key] and os.path.isabs(blob[key]):
                blob[key] = portable_path(Path(blob[key]), folder)
        path = folder / SOURCE_FILE
        path.write_text(json.dumps({"format": SOURCE_FORMAT, **blob}, indent=2))
        return path


def load_source(saved_model: Path) -> SourceInfo:
    saved_model = Path(saved_model)
    if not (saved_model / "saved_model.pb").is_file():
        raise UserError(f"{saved_model} is not a SavedModel folder (no saved_model.pb); give the "
                        "folder `bench-host convert` wrote, or a checkpoint")
    path = saved_model / SOURCE_FILE
    if not path.is_file():
        raise UserError(f"{saved_model} was not written by `bench-host convert` (no {SOURCE_FILE}); "
                        "convert the checkpoint or .onnx file first")
    try:
        blob = json.loads(path.read_text())
        if blob.pop("format", None) != SOURCE_FORMAT:
            raise ValueError("unknown format")
        for key in PATH_FIELDS:  # relative to the SavedModel folder (older files: absolute)
            if blob.get(key):
                blob[key] = str((saved_model / blob[key]).resolve())
        return SourceInfo(**blob)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
