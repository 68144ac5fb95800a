"""`bench-host import RESULTS_DIR…`: load results folders (older runs, or runs whose database
update failed) into the results database; importing the same folder twice adds nothing."""
from __future__ import annotations

from pathlib import Path

from edgebench.host.commands.db_args import add_db_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "import", help="load results folders into the results database",
        description="Import every results.csv under the given folders (with its latency samples, "
                    "predictions and env.json) into the results database. Rows already there "
                    "are skipped, so importing a folder again adds only what is new.",
        epilog="Without --db or $EDGEBENCH_DB: the edgebench.sqlite of the first folder's "
               "results root (the folder holding its run folder).")
    p.add_argument("results", nargs="+", type=Path, metavar="RESULTS_DIR")
    add_db_arg(p, writes=False)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.commands.db_args import results_root_of
    from edgebench.host.results_db.connect import opened, safe
    from edgebench.host.results_db.store import import_results

    with opened(args.db, "import", results_root_of(args.results[0])) as (engine, url):
        added = import_results(engine, args.results)
    print(f"{safe(url)}: {added}")
    return 0
