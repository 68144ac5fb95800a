"""What a SavedModel came from: written by `convert` as `edgebench.json` inside the SavedModel
folder, so `quantize SAVEDMODEL` knows the architecture, classes, normalisation and reference
without asking again."""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError

SOURCE_FILE = "edgebench.json"
SOURCE_FORMAT = "edgebench.export-source/1"


@dataclass
class SourceInfo:
    architecture: str
    input_shape: list[int]  # NHWC [1, H, W, C]
    class_names: list[str]
    normalization: dict  # {pixel_scale, mean [C], std [C]}
    onnx: str
    saved_model: str
    checkpoint: str | None = None  # None for an ONNX file from elsewhere
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
                "split_seed": self.split_seed}

    def save(self) -> Path:
        path = Path(self.saved_model) / SOURCE_FILE
        path.write_text(json.dumps({"format": SOURCE_FORMAT, **dataclasses.asdict(self)}, indent=2))
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
        return SourceInfo(**blob)
    except (ValueError, TypeError) as exc:
        raise UserError(f"cannot read {path}: {exc}") from None
