"""`bench-host history --model NAME`: one model's metric over every stored run, with intervals, as
a table and a trend plot (one line per device)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgebench.host.commands.db_args import add_db_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "history", help="a model's p50/accuracy/energy over the runs in the database",
        description="Print the series of one model (architecture.recipe, e.g. resnet18.int8) "
                    "over every run stored in the results database, each value with its 95 % "
                    "interval, and draw it (history_<model>_<metric>.png).",
        epilog="examples:\n  bench-host history --model resnet18.int8\n"
               "  bench-host history --model vgg16.fp32 --device pi5 --metric accuracy",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="the model's name, architecture.recipe (required)")
    p.add_argument("--device", metavar="NAME", help="only this device")
    p.add_argument("--metric", default="p50", metavar="p50|accuracy|energy|memory|help",
                   help="what to follow (default p50)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where to write the plot (default: the SQLite database's folder; "
                        "results/ for a PostgreSQL database)")
    add_db_arg(p, writes=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.results_db import history

    if args.metric == "help":
        print(history.describe())
        return 0
    from edgebench.host.errors import UserError

    if not args.model:
        raise UserError("--model NAME is required (architecture.recipe, e.g. resnet18.int8)")
    if args.metric not in history.METRICS:
        raise UserError(f"--metric {args.metric!r}: choose from {', '.join(history.METRICS)} "
                        f"(--metric help)")
    from edgebench.host.report.formats import text_table
    from edgebench.host.report.plots import slug
    from edgebench.host.results_db.connect import beside, opened

    with opened(args.db, "history", reads=True) as (engine, url):
        df = history.series(engine, args.model, args.device, args.metric)
    if df["value"].isna().all():
        raise UserError(f"{args.metric}: not recorded for {args.model} in any stored run"
                        + (" (energy needs results with an energy_mj column)"
                           if args.metric == "energy" else ""))
    print(text_table(history.text(df, args.metric)))
    out = args.out or beside(url)
    out.mkdir(parents=True, exist_ok=True)
    path = history.plot(df, args.model, args.metric,
                        out / f"history_{slug(args.model)}_{args.metric}.png")
    if path:
        print(f"\nplot: {path}")
    return 0
