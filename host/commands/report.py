"""`bench-host report RESULTS_DIR…`: tables, plots, Markdown + HTML + summary.csv from the
results.csv files the device agent wrote (one run or several, one device or many)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "report",
        help="latency-vs-accuracy tables, Pareto plot, Markdown + HTML from results folders",
        description="Build report.md, report.html (self-contained), summary.csv and PNG plots "
                    "from the results.csv files found under the given folders: a target folder, "
                    "a run folder (results/<run-id>/) or a whole results root.",
    )
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS_DIR",
                   help="folder(s) holding results.csv files, searched recursively")
    p.add_argument("--out", type=Path, default=None, metavar="DIR",
                   help="where to write the report (default: the first RESULTS_DIR)")
    p.add_argument("--quiet", action="store_true", help="print only the report's path")
    from edgebench.host.commands.db_args import add_db_arg

    add_db_arg(p)
    p.epilog = ("Without --db or $EDGEBENCH_DB, each folder is recorded in the edgebench.sqlite "
                "of the results root it belongs to (the folder holding its run folder).")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from edgebench.host.report import build_report  # pandas/matplotlib: only when reporting

    from edgebench.host.commands.db_args import report_links, results_root_of

    # The previous run is looked up in the database the first folder is recorded into.
    links = report_links(args, results_root_of(args.results[0]))
    paths = build_report(args.results, args.out, links(args.results))
    if not args.quiet:
        print(paths.headline)
        print()
    print(f"report: {paths.markdown}  ({paths.html.name}, {paths.summary_csv.name}, "
          f"{len(paths.plots)} plot(s); {paths.rows} row(s) from {len(paths.devices)} device(s))")
    from edgebench.host.commands.db_args import record_results

    record_results(args, args.results)
    return 0
