"""Test-split metrics of a checkpoint in PyTorch (malignant is the positive class)."""
from __future__ import annotations

from pathlib import Path

from edgebench.host.errors import UserError


def evaluate_checkpoint(checkpoint: Path, data_spec: str | None = None, split: str = "test",
                        expect_model: str | None = None, device: str = "auto") -> dict:
    """Metrics of the checkpoint on `split` of `data_spec` (default: the spec it was trained on,
    with its own split seed, so the test images are the ones training never saw), computed in
    float32 on `device` (`--device`)."""
    from edgebench.host.checkpoint import build_from_checkpoint, load_checkpoint
    from edgebench.host.data import load_splits
    from edgebench.device.metrics import classification_metrics
    from edgebench.host.torch_device import resolve_device
    from edgebench.host.train import predict_logits, to_tensor
    from edgebench.models import canonical_name

    dev = resolve_device(device)
    meta, _ = load_checkpoint(checkpoint)
    if expect_model and canonical_name(expect_model) != meta.architecture:
        raise UserError(f"checkpoint {checkpoint} holds a {meta.architecture!r} model, "
                        f"not {expect_model!r}")
    model, meta = build_from_checkpoint(checkpoint)
    spec = data_spec or meta.data_spec
    splits = load_splits(spec, meta.img_size, meta.in_channels, meta.split_seed)
    if split not in splits:
        raise UserError(f"unknown split {split!r}; choose one of: {', '.join(splits)}")
    images, labels = splits[split]
    if len(labels) == 0:
        raise UserError(f"the {split} split of {spec} is empty")
    logits = predict_logits(model.to(dev.torch), to_tensor(images, meta.mean, meta.std))
    metrics = classification_metrics(labels, logits, positive=meta.positive_class)
    return {"checkpoint": str(checkpoint), "architecture": meta.architecture, "data": spec,
            "split": split, "img_size": meta.img_size, "device": dev.torch, **metrics,
            "_per_image": (labels, logits, meta.positive_class)}


def write_predictions(m: dict, path: Path) -> Path:
    """predictions.csv of the PyTorch model, in the agent's schema (PREDICTION_COLUMNS), so a
    device's rows can be paired with the float model's image by image: runtime "torch", the
    torch device as compute unit, the checkpoint's sha256 as the model's."""
    from edgebench.device.metrics import per_image
    from edgebench.device.schema import PREDICTION_COLUMNS
    from edgebench.device.agent.result_store import prediction_lines, write_rows
    from edgebench.host.files import sha256_file

    labels, logits, positive = m["_per_image"]
    head = {"run_id": Path(m["checkpoint"]).parent.name, "model": f"{m['architecture']}.torch",
            "sha256": sha256_file(Path(m["checkpoint"])), "runtime": "torch", "xnnpack": "",
            "compute_unit": m["device"]}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_rows(path, PREDICTION_COLUMNS,
               prediction_lines(head, per_image(logits, labels, positive, m["split"])))
    return path


def format_metrics(m: dict) -> str:
    """A small table with units a person reads at a glance, plus the confusion matrix."""
    lines = [
        f"{m['architecture']} on {m['data']} ({m['split']} split, n={m['n']}, {m['img_size']} px)",
        f"  accuracy     {m['accuracy'] * 100:6.2f} %",
        f"  sensitivity  {m['sensitivity'] * 100:6.2f} %   (malignant recall)",
        f"  specificity  {m['specificity'] * 100:6.2f} %   (benign recall)",
        f"  AUC          {m['auc']:6.3f}",
        "  confusion matrix (rows = true, columns = predicted):",
        "                 benign  malignant",
        f"    benign     {m['tn']:7d}  {m['fp']:9d}",
        f"    malignant  {m['fn']:7d}  {m['tp']:9d}",
    ]
    return "\n".join(lines)
