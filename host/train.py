"""Training: data spec → stratified split → Adam + cosine annealing → best-validation checkpoint.

Everything a later stage needs (architecture, channels, image size, normalisation, class names,
data spec, split seed) goes into the checkpoint, so convert/quantize/bundle never ask again.

Two recipes share this loop: ours (the defaults: per-step cosine, augmentation, weight decay,
mean/std normalisation, best validation accuracy) and the paper's (`bench-host run --profile
paper`: the seed's per-epoch cosine over T_max = epochs, no augmentation or weight decay, inputs
in [0, 1], best validation loss from the second epoch on)."""
from __future__ import annotations

import csv
import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.host.checkpoint import CheckpointMeta, save_checkpoint
from edgebench.host.errors import UserError

SCHEDULES = ("step", "epoch")  # cosine annealing stepped per optimizer step, or per epoch
SELECTIONS = ("accuracy", "loss")  # what "best validation" means for the kept checkpoint


@dataclass
class TrainConfig:
    model: str = "resnet18"
    data: str = "phantom"
    epochs: int = 3
    lr: float = 1e-3
    batch: int = 32
    img_size: int = 64
    channels: int = 1
    seed: int = 0
    weight_decay: float = 1e-4
    augment: bool = True
    normalise: bool = True  # mean/std of the training split; False: pixels / 255 only
    schedule: str = "step"
    select: str = "accuracy"
    min_epoch: int = 1  # the first epoch (1-based) whose checkpoint may be kept
    device: str = "auto"
    amp: bool = False
    out: Path = field(default_factory=lambda: Path("runs/train"))


@dataclass
class TrainResult:
    checkpoint: Path
    best_epoch: int
    history: list[dict]
    test_metrics: dict
    seconds: float
    device: dict = field(default_factory=dict)


def _normalisation(train_images: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean/std of the training split in [0, 1] units (never of val/test)."""
    x = train_images.astype(np.float64) / 255.0
    mean = x.mean(axis=(0, 1, 2))
    std = x.std(axis=(0, 1, 2))
    return [float(m) for m in mean], [float(max(s, 1e-3)) for s in std]


def to_tensor(images: np.ndarray, mean, std):
    """uint8 N×H×W×C → normalised float NCHW tensor (channels_last memory for faster convs)."""
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous(memory_format=torch.channels_last)


def _augment(x, gen):
    """Horizontal flips and small shifts: lesion shape cues survive both (no vertical flip:
    shadowing is always below the lesion in B-mode). The draws come from the CPU generator
    whatever the device, so a run's randomness does not depend on where it trains."""
    import torch

    flip = (torch.rand(x.shape[0], generator=gen) < 0.5).to(x.device)
    x = torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x)
    max_shift = max(1, x.shape[-1] // 16)
    dy, dx = (int(v) for v in torch.randint(-max_shift, max_shift + 1, (2,), generator=gen))
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


class CosineSchedule:
    """Cosine annealing from `lr` to 0 over the run, stepped per optimizer step (T_max = all
    steps: smooth even over a few epochs) or per epoch (T_max = epochs, as the seed steps
    `CosineAnnealingLR` after each epoch: the LR of epoch e, 0-based, is lr·(1 + cos(π·e/T))/2)."""

    def __init__(self, opt, schedule: str, epochs: int, steps_per_epoch: int):
        import torch

        if schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {schedule!r}; choose one of: {', '.join(SCHEDULES)}")
        self.per_step = schedule == "step"
        t_max = epochs * steps_per_epoch if self.per_step else epochs
        self.opt = opt
        self.sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=t_max)

    def lr(self) -> float:
        return float(self.opt.param_groups[0]["lr"])

    def after_step(self) -> None:
        if self.per_step:
            self.sched.step()

    def after_epoch(self) -> None:
        if not self.per_step:
            self.sched.step()


def absolute_spec(spec: str) -> str:
    """`folder:rel/path` → `folder:/abs/path`: the checkpoint records the spec, and later stages
    may run from another working folder."""
    from edgebench.host.data import split_of

    base, _ = split_of(spec)
    suffix = spec.strip()[len(base):]  # the split (@1000/200/200), kept as it is
    name, sep, arg = base.partition(":")
    if sep and name != "phantom" and arg:
        return f"{name}:{Path(arg).expanduser().resolve()}{suffix}"
    return spec


def predict_logits(model, x, batch: int = 128, device=None) -> np.ndarray:
    """Logits of `x` (a CPU tensor) in float32 on the CPU; batches go to `device` (a torch
    device string, default: wherever the model is) one by one."""
    import torch

    if device is None:
        device = next(model.parameters()).device
    model.eval()
    outs = []
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            outs.append(model(x[i:i + batch].to(device, non_blocking=True)).float().cpu().numpy())
    return np.concatenate(outs) if outs else np.zeros((0, 2), np.float32)


def _check(cfg: TrainConfig) -> None:
    if cfg.epochs < 1 or cfg.batch < 1 or cfg.lr <= 0:
        raise UserError("--epochs and --batch must be ≥ 1 and --lr > 0")
    if cfg.img_size < 32:
        raise UserError(f"--img-size must be at least 32 px (got {cfg.img_size})")
    if cfg.select not in SELECTIONS:
        raise UserError(f"unknown selection {cfg.select!r}; choose one of: {', '.join(SELECTIONS)}")
    if cfg.schedule not in SCHEDULES:
        raise UserError(f"unknown schedule {cfg.schedule!r}; choose one of: {', '.join(SCHEDULES)}")


def _on_device(x, device: str):
    """The training split lives on the accelerator for the whole run (a few hundred MB at
    224 px): no per-step host work or copy. If it does not fit, it stays in pinned host memory
    and each batch is copied asynchronously. On the CPU nothing moves."""
    import torch

    if device == "cpu":
        return x
    try:
        return x.to(device)
    except torch.OutOfMemoryError:
        return x.pin_memory() if device.startswith("cuda") else x


def train(cfg: TrainConfig, progress: bool = True) -> TrainResult:
    import torch

    from edgebench.host.registry import lookup
    from edgebench.host.torch_device import resolve_device
    from edgebench.models import MODELS, canonical_name

    _check(cfg)
    spec = lookup(MODELS, cfg.model, "model")
    cfg.model = canonical_name(cfg.model)
    dev = resolve_device(cfg.device, cfg.amp)
    cfg.data = absolute_spec(cfg.data)
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    splits = _load_splits(cfg, out)
    loop = _EpochLoop(cfg, dev, spec, splits)
    best = _BestCheckpoint(cfg, _checkpoint_meta(cfg, splits, dev), out / "best.pt")
    history: list[dict] = []
    for epoch in range(1, cfg.epochs + 1):
        row, val = loop.run_epoch(epoch, progress)
        history.append(row)
        best.offer(epoch, val, row["val_loss"], loop.model)
        if progress:
            print(f"epoch {epoch}/{cfg.epochs}: train loss {row['train_loss']:.3f} "
                  f"acc {row['train_accuracy']:.3f} | val loss {row['val_loss']:.3f} "
                  f"acc {val['accuracy']:.3f} auc {val['auc']:.3f} | {row['seconds']:.1f} s "
                  f"on {dev.torch}", flush=True)
        _write_history(out, history)
    test = _test_best(best.path, dev, splits)
    (out / "test_metrics.json").write_text(json.dumps(test, indent=2) + "\n")
    return TrainResult(checkpoint=best.path, best_epoch=best.meta.epoch, history=history,
                       test_metrics=test, seconds=time.perf_counter() - t0, device=dev.record())


@dataclass
class _Splits:
    """The train/val/test splits as CPU tensors, normalised as the checkpoint will record."""
    class_names: list
    mean: list
    std: list
    xs: dict  # "train"/"val"/"test" -> float NCHW tensor
    ys: dict  # "train"/"val"/"test" -> long tensor of labels


def _load_splits(cfg: TrainConfig, out: Path) -> _Splits:
    """Loads cfg.data, splits it (the split is written to out/split.json) and normalises it."""
    import torch

    from edgebench.host.data import load_dataset, split_dataset, split_of, write_split

    ds = load_dataset(cfg.data, cfg.img_size, channels=cfg.channels, seed=cfg.seed)
    split = split_dataset(ds, seed=cfg.seed, fractions=split_of(cfg.data)[1])
    out.mkdir(parents=True, exist_ok=True)
    write_split(out / "split.json", ds, split, cfg.seed)
    if cfg.normalise:
        mean, std = _normalisation(ds.images[split.train])
    else:  # the seed's ToTensor(): pixels / 255, nothing subtracted
        mean, std = [0.0] * cfg.channels, [1.0] * cfg.channels
    xs = {k: to_tensor(ds.images[getattr(split, k)], mean, std) for k in ("train", "val", "test")}
    ys = {k: torch.from_numpy(ds.labels[getattr(split, k)]).long() for k in ("train", "val", "test")}
    return _Splits(ds.class_names, mean, std, xs, ys)


def _checkpoint_meta(cfg: TrainConfig, splits: _Splits, dev) -> CheckpointMeta:
    return CheckpointMeta(
        architecture=cfg.model, in_channels=cfg.channels, num_classes=len(splits.class_names),
        img_size=cfg.img_size, class_names=list(splits.class_names), mean=splits.mean,
        std=splits.std, data_spec=cfg.data, split_seed=cfg.seed,
        train_args={k: (str(v) if isinstance(v, Path) else v) for k, v in vars(cfg).items()},
        trained_on=dev.record(),
    )


class _EpochLoop:
    """The model, optimiser and schedule of one run; `run_epoch` trains one epoch and
    validates it."""

    def __init__(self, cfg: TrainConfig, dev, spec, splits: _Splits):
        import torch

        from edgebench.host.torch_device import grad_scaler

        self.cfg, self.dev, self.splits = cfg, dev, splits
        self.x_train = _on_device(splits.xs["train"], dev.torch)
        self.y_train = _on_device(splits.ys["train"], dev.torch)
        model = spec.build(in_channels=cfg.channels, num_classes=len(splits.class_names))
        # channels_last speeds up convs on CPU and CUDA; MPS handles it poorly, so it stays NCHW.
        fmt = torch.contiguous_format if dev.type == "mps" else torch.channels_last
        self.model = model.to(dev.torch, memory_format=fmt)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr,
                                    weight_decay=cfg.weight_decay)
        self.n_train = splits.xs["train"].shape[0]
        self.steps_per_epoch = max(1, -(-self.n_train // cfg.batch))
        # Cosine annealing: a constant Adam LR left 2-epoch models at chance (TOOLCHAIN.md).
        self.sched = CosineSchedule(self.opt, cfg.schedule, cfg.epochs, self.steps_per_epoch)
        self.scaler = grad_scaler(dev)
        self.loss_fn = torch.nn.CrossEntropyLoss()
        self.gen = torch.Generator().manual_seed(cfg.seed)

    def run_epoch(self, epoch: int, progress: bool) -> tuple[dict, dict]:
        """(history row, validation metrics) of `epoch` (1-based)."""
        import torch

        from edgebench.device.metrics import classification_metrics

        epoch_start = time.perf_counter()
        total_loss, correct, epoch_lr = self._fit(epoch, progress)
        ys = self.splits.ys
        val_logits = predict_logits(self.model, self.splits.xs["val"], device=self.dev.torch)
        val_loss = float(self.loss_fn(torch.from_numpy(val_logits), ys["val"]))
        val = classification_metrics(ys["val"].numpy(), val_logits)
        self.sched.after_epoch()
        row = {"epoch": epoch, "train_loss": total_loss / self.n_train,
               "train_accuracy": correct / self.n_train,
               "val_loss": val_loss, "val_accuracy": val["accuracy"], "val_auc": val["auc"],
               "lr": epoch_lr, "seconds": round(time.perf_counter() - epoch_start, 3),
               "device": self.dev.torch}
        return row, val

    def _fit(self, epoch: int, progress: bool) -> tuple[float, int, float]:
        """One pass over the shuffled training split: (summed loss, correct, the epoch's LR)."""
        import torch
        from tqdm import tqdm

        from edgebench.host.torch_device import autocast

        cfg, dev = self.cfg, self.dev
        self.model.train()
        perm = torch.randperm(self.n_train, generator=self.gen)
        total_loss, correct = 0.0, 0
        bar = tqdm(range(self.steps_per_epoch), desc=f"{cfg.model} epoch {epoch}/{cfg.epochs}",
                   unit="batch", disable=not progress, leave=False)
        for step in bar:
            idx = perm[step * cfg.batch:(step + 1) * cfg.batch]
            xb = self.x_train[idx].to(dev.torch, non_blocking=True)
            yb = self.y_train[idx].to(dev.torch, non_blocking=True)
            if cfg.augment:
                xb = _augment(xb, self.gen)
            with autocast(dev):
                logits = self.model(xb)
                loss = self.loss_fn(logits, yb)
            self.opt.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            epoch_lr = self.sched.lr()
            self.scaler.step(self.opt)
            self.scaler.update()
            self.sched.after_step()
            total_loss += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            bar.set_postfix(loss=f"{loss.item():.3f}")
        return total_loss, correct, epoch_lr


class _BestCheckpoint:
    """Saves the model at `path` whenever an eligible epoch validates better than the kept one:
    best accuracy (lower loss breaks ties), or lowest loss as the seed keeps it."""

    def __init__(self, cfg: TrainConfig, meta: CheckpointMeta, path: Path):
        self.select, self.meta, self.path = cfg.select, meta, path
        # With fewer epochs than min_epoch the last one is kept: a run always leaves a checkpoint.
        self.first_eligible = min(cfg.min_epoch, cfg.epochs)
        self.key = None

    def offer(self, epoch: int, val: dict, val_loss: float, model) -> None:
        key = (val["accuracy"], -val_loss) if self.select == "accuracy" else (-val_loss,)
        if epoch >= self.first_eligible and (self.key is None or key > self.key):
            self.key = key
            self.meta.epoch, self.meta.val_metrics = epoch, {
                "accuracy": val["accuracy"], "auc": val["auc"], "loss": val_loss}
            save_checkpoint(self.path, self.meta,
                            {k: v.cpu() for k, v in model.state_dict().items()})


def _test_best(ckpt_path: Path, dev, splits: _Splits) -> dict:
    """The kept checkpoint's metrics on the test split."""
    from edgebench.device.metrics import classification_metrics
    from edgebench.host.checkpoint import build_from_checkpoint

    best_model, _ = build_from_checkpoint(ckpt_path)
    best_model = best_model.to(dev.torch)
    return classification_metrics(splits.ys["test"].numpy(),
                                  predict_logits(best_model, splits.xs["test"]))


def _write_history(out: Path, history: list[dict]) -> None:
    (out / "history.json").write_text(json.dumps(history, indent=2) + "\n")
    with open(out / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
