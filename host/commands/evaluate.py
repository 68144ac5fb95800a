"""`bench-host evaluate`: test-split metrics of a checkpoint in PyTorch."""
from __future__ import annotations

import json
from pathlib import Path

from edgebench.host.commands.registry_args import add_registry_option


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="accuracy, sensitivity, specificity, AUC of a checkpoint",
                       description="Evaluate a checkpoint on the test split of its data set "
                                   "(malignant is the positive class).")
    p.add_argument("checkpoint", type=Path, help="a .pt written by `bench-host train`")
    add_registry_option(p, "--data", default=None,
                        help="data spec (default: the one the checkpoint was trained on)")
    p.add_argument("--split", default="test", choices=("train", "val", "test"))
    add_registry_option(p, "--model", default=None,
                        help="expected architecture; refuse a checkpoint of another one")
    p.add_argument("--json", type=Path, default=None, help="also write the metrics to this JSON file")
    p.add_argument("--predictions", type=Path, default=None, metavar="FILE.csv",
                   help="per-image predictions in the agent's predictions.csv format (default: "
                        "predictions.<split>.csv beside the checkpoint)")
    from edgebench.host.torch_device import DEVICE_HELP

    p.add_argument("--device", default="auto", help=DEVICE_HELP)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.evaluate import evaluate_checkpoint, format_metrics, write_predictions

    m = evaluate_checkpoint(args.checkpoint, args.data, args.split, expect_model=args.model,
                            device=args.device)
    print(format_metrics(m))
    path = write_predictions(m, args.predictions or
                             args.checkpoint.parent / f"predictions.{args.split}.csv")
    print(f"  per-image predictions: {path}")
    m.pop("_per_image")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(m, indent=2) + "\n")
    return 0
