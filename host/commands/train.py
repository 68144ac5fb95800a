"""`bench-host train`: train a model from the zoo on a data set, keep the best-validation checkpoint."""
from __future__ import annotations

from pathlib import Path

from edgebench.host.commands.registry_args import add_registry_option

HELP_DATA = ("data spec: phantom[:N] (default; synthetic, offline), busi:PATH, "
             "breastmnist:FILE.npz, folder:PATH (benign/ and malignant/); 'help' lists them")

# Flag defaults when no --like profile is given (TrainConfig's own defaults).
DEFAULTS = {"data": "phantom", "epochs": 3, "lr": 1e-3, "batch": 32, "img_size": 64, "channels": 1,
            "seed": 0, "weight_decay": 1e-4, "augment": True, "normalise": True,
            "schedule": "step", "select": "accuracy", "min_epoch": 1}


def register(sub) -> None:
    from edgebench.host.torch_device import AMP_HELP, DEVICE_HELP

    p = sub.add_parser("train", help="train a CNN classifier (best-validation checkpoint)",
                       description="Train a model from the zoo with Adam and cosine annealing; keep "
                                   "the checkpoint with the best validation accuracy (or loss).",
                       epilog="the paper's training exactly (the seed's models_training.py): "
                              "bench-host train --model googlenet --like paper --epochs 500")
    add_registry_option(p, "--model", default="resnet18", help="architecture ('help' lists them)")
    p.add_argument("--like", metavar="PROFILE",
                   help="start from the training settings of a `bench-host run` profile (quick, "
                        "paper); flags given here win")
    add_registry_option(p, "--data", default=None, help=HELP_DATA)
    p.add_argument("--epochs", "--epoch", dest="epochs", type=int, help="epochs (default 3)")
    p.add_argument("--lr", type=float, help="peak Adam learning rate (default 1e-3)")
    p.add_argument("--batch", type=int, help="batch size (default 32)")
    p.add_argument("--img-size", type=int, help="square input size in px (default 64; paper 224)")
    p.add_argument("--channels", type=int, choices=(1, 3),
                   help="input channels: 1 grayscale (default, as in the paper) or 3")
    p.add_argument("--seed", type=int, help="seed for data split, init and shuffling (default 0)")
    p.add_argument("--weight-decay", type=float, help="Adam weight decay (default 1e-4)")
    p.add_argument("--no-augment", dest="augment", action="store_const", const=False,
                   help="disable flips/shifts augmentation")
    p.add_argument("--no-normalise", dest="normalise", action="store_const", const=False,
                   help="inputs are pixels / 255 only, no mean/std of the training split")
    p.add_argument("--schedule", choices=("step", "epoch"),
                   help="cosine annealing stepped per batch (default) or per epoch over "
                        "T_max = epochs (the seed's)")
    p.add_argument("--select", choices=("accuracy", "loss"),
                   help="keep the checkpoint with the best validation accuracy (default) or the "
                        "lowest validation loss (the seed's)")
    p.add_argument("--min-epoch", type=int,
                   help="first epoch whose checkpoint may be kept (default 1; the seed's 2)")
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.add_argument("--amp", action="store_true", help=AMP_HELP)
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/train/<model>-<img-size>px)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def settings(args) -> dict:
    """Explicit flags, then the --like profile's settings for this model, then DEFAULTS."""
    from edgebench.host.profiles import PROFILES
    from edgebench.host.registry import lookup
    from edgebench.models import canonical_name

    base = dict(DEFAULTS)
    profile = None
    if args.like:
        profile = lookup(PROFILES, args.like, "profile")
        if args.data is not None:  # the profile's split (paper: 1000/200/200) applies to it too
            profile = profile.with_overrides(data=args.data)
        base.update(profile.train_settings(canonical_name(args.model)))
    chosen = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in base.items()}
    if profile is not None:
        chosen["data"] = base["data"]
    return chosen


def run(args) -> int:
    from edgebench.host.registry import lookup
    from edgebench.models import MODELS, canonical_name

    lookup(MODELS, args.model, "model")
    from edgebench.host.evaluate import format_metrics
    from edgebench.host.train import TrainConfig, train

    s = settings(args)
    model = canonical_name(args.model)
    out = args.out or Path("runs/train") / f"{model}-{s['img_size']}px"
    cfg = TrainConfig(model=model, out=out, device=args.device, amp=args.amp, **s)
    result = train(cfg, progress=not args.quiet)
    m = {"architecture": model, "data": s["data"], "split": "test", "img_size": s["img_size"],
         **result.test_metrics}
    print(format_metrics(m))
    print(f"checkpoint: {result.checkpoint} (best epoch {result.best_epoch}, "
          f"{result.seconds:.1f} s on {result.device['device']} ({result.device['name']})); "
          f"history and test metrics beside it")
    return 0
