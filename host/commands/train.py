"""`bench-host train`: train a model from the zoo on a data set, keep the best-validation checkpoint."""
from __future__ import annotations

from pathlib import Path

HELP_DATA = ("data spec: phantom[:N] (default; synthetic, offline), busi:PATH, "
             "breastmnist:FILE.npz, folder:PATH (benign/ and malignant/); 'help' lists them")


def register(sub) -> None:
    p = sub.add_parser("train", help="train a CNN classifier (best-validation checkpoint)",
                       description="Train a model from the zoo with Adam and cosine annealing; keep "
                                   "the checkpoint with the best validation accuracy.")
    p.add_argument("--model", default="resnet18", help="architecture ('help' lists them)")
    p.add_argument("--data", default="phantom", help=HELP_DATA)
    p.add_argument("--epochs", "--epoch", dest="epochs", type=int, default=3, help="epochs (default 3)")
    p.add_argument("--lr", type=float, default=1e-3, help="peak Adam learning rate (default 1e-3)")
    p.add_argument("--batch", type=int, default=32, help="batch size (default 32)")
    p.add_argument("--img-size", type=int, default=64, help="square input size in px (default 64; paper 224)")
    p.add_argument("--channels", type=int, default=1, choices=(1, 3),
                   help="input channels: 1 grayscale (default, as in the paper) or 3")
    p.add_argument("--seed", type=int, default=0, help="seed for data split, init and shuffling")
    p.add_argument("--weight-decay", type=float, default=1e-4)
    p.add_argument("--no-augment", dest="augment", action="store_false",
                   help="disable flips/shifts augmentation")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default runs/train/<model>-<img-size>px)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.data import DATASETS
    from edgebench.host.registry import describe
    from edgebench.models import MODELS

    if args.model == "help":
        print(describe(MODELS, "model"))
        return 0
    if args.data == "help":
        print(describe(DATASETS, "data set"))
        return 0
    from edgebench.host.evaluate import format_metrics
    from edgebench.host.train import TrainConfig, train

    out = args.out or Path("runs/train") / f"{args.model}-{args.img_size}px"
    cfg = TrainConfig(model=args.model, data=args.data, epochs=args.epochs, lr=args.lr,
                      batch=args.batch, img_size=args.img_size, channels=args.channels,
                      seed=args.seed, weight_decay=args.weight_decay, augment=args.augment, out=out)
    result = train(cfg, progress=not args.quiet)
    m = {"architecture": args.model, "data": args.data, "split": "test", "img_size": args.img_size,
         **result.test_metrics}
    print(format_metrics(m))
    print(f"checkpoint: {result.checkpoint} (best epoch {result.best_epoch}, "
          f"{result.seconds:.1f} s); history and test metrics beside it")
    return 0
