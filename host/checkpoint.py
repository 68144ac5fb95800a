"""The trained-model checkpoint: one `.pt` file carrying the weights and everything later stages
need to rebuild the model and its test split without asking the user again."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.files import atomic_path

CHECKPOINT_FORMAT = "edgebench.checkpoint/1"


@dataclass
class CheckpointMeta:
    architecture: str
    in_channels: int
    num_classes: int
    img_size: int
    class_names: list[str]
    # x = (uint8 * pixel_scale - mean[c]) / std[c]; the same numbers go into every model card.
    mean: list[float]
    std: list[float]
    data_spec: str
    split_seed: int
    pixel_scale: float = 1.0 / 255.0
    positive_class: int = 1  # index of "malignant"
    epoch: int = 0
    val_metrics: dict = field(default_factory=dict)
    train_args: dict = field(default_factory=dict)
    # where it was trained: requested and resolved torch device, its name, autocast dtype, torch
    trained_on: dict = field(default_factory=dict)

    def normalization(self) -> dict:
        return {"pixel_scale": self.pixel_scale, "mean": list(self.mean), "std": list(self.std)}


def save_checkpoint(path: Path, meta: CheckpointMeta, state_dict) -> None:
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:  # a crash mid-write never leaves a half checkpoint
        torch.save({"format": CHECKPOINT_FORMAT, "meta": dataclasses.asdict(meta),
                    "state_dict": state_dict}, tmp)


def load_checkpoint(path: Path) -> tuple[CheckpointMeta, dict]:
    """Return (meta, state_dict); a missing, corrupt or foreign file is a UserError."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserError(f"cannot read checkpoint {path}: {type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'corrupt file'}") from None
    if not isinstance(blob, dict) or blob.get("format") != CHECKPOINT_FORMAT:
        raise UserError(f"{path} is not an edgebench checkpoint (expected format {CHECKPOINT_FORMAT})")
    return CheckpointMeta(**blob["meta"]), blob["state_dict"]


def build_from_checkpoint(path: Path):
    """Rebuild the torch model (eval mode, on the CPU) and return (model, meta)."""
    from edgebench.host.registry import lookup
    from edgebench.models import MODELS

    meta, state = load_checkpoint(path)
    spec = lookup(MODELS, meta.architecture, "model")
    model = spec.build(in_channels=meta.in_channels, num_classes=meta.num_classes)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise UserError(f"checkpoint {path} does not match architecture {meta.architecture!r}: "
                        f"{first}") from None
    model.eval()
    return model, meta
