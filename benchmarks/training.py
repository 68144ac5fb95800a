"""Epoch time of training per model and torch device (CPU against GPU), the paper's recipe.

    python benchmarks/training.py [--models vgg16,googlenet,resnet34] [--devices cpu,cuda]
        [--img-size 224] [--data phantom:1400] [--epochs 2] [--amp] [--readme benchmarks/README.md]

Trains each model with the `paper` profile's settings on each device and reports the median
epoch time (training + validation) after the first (which pays for warm-up: cuDNN autotuning,
allocator growth) and the images per second; with --readme replaces the "Training on a GPU"
section of benchmarks/README.md. A device this machine lacks is a row saying so, never a silent
omission."""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from readme_section import update_section


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="vgg16,googlenet,resnet34")
    ap.add_argument("--devices", default="cpu,cuda")
    ap.add_argument("--img-size", type=int, default=224)
    ap.add_argument("--data", default="phantom:1400")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--amp", action="store_true")
    ap.add_argument("--readme", type=Path, default=None)
    args = ap.parse_args()

    from edgebench.host.errors import UserError
    from edgebench.host.profiles import PROFILES
    from edgebench.host.torch_device import resolve_device
    from edgebench.host.train import TrainConfig, train

    paper = PROFILES["paper"]
    rows, names = [], {}
    for device in args.devices.split(","):
        try:
            dev = resolve_device(device, args.amp)
        except UserError as exc:
            rows.append(f"| {device} | - | - | - | not available: {exc} |")
            continue
        names[dev.torch] = dev.name
        for model in args.models.split(","):
            settings = paper.train_settings(model) | {"data": args.data, "img_size": args.img_size,
                                                      "epochs": args.epochs}
            with tempfile.TemporaryDirectory() as tmp:
                result = train(TrainConfig(model=model, out=Path(tmp), device=device, amp=args.amp,
                                           **settings), progress=False)
                n_train = len(json.loads((Path(tmp) / "split.json").read_text())["train"])
            seconds = [h["seconds"] for h in result.history]
            steady = statistics.median(seconds[1:] or seconds)
            rows.append(f"| {dev.torch} | {model} | {seconds[0]:.1f} | {steady:.1f} | "
                        f"{n_train / steady:.0f} img/s |")
            print(rows[-1], flush=True)
    table = "\n".join(["| device | model | first epoch s | later epochs s (median) | throughput |",
                       "|---|---|---:|---:|---|", *rows])
    print(table)
    if args.readme:
        where = "; ".join(f"{k}: {v}" for k, v in names.items())
        section = ("## Training on a GPU\n\n"
                   f"`python benchmarks/training.py --models {args.models} --devices {args.devices} "
                   f"--img-size {args.img_size} --data {args.data} --epochs {args.epochs}"
                   f"{' --amp' if args.amp else ''}`, the paper profile's training settings "
                   f"({where}; load average {os.getloadavg()[0]:.1f}).\n\n{table}\n")
        update_section(args.readme, "Training on a GPU", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
