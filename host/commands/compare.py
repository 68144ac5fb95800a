"""`bench-host compare RUN_A RUN_B`: what changed between two runs, with intervals, and an
optional CI gate (--fail-if)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgebench.host.commands.db_args import add_db_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "compare", help="compare two runs: p50 ratio, Δ accuracy, energy, memory with intervals; "
                        "CI gate",
        description="Match the rows of run B to run A (same model file, recipe, compute unit, "
                    "threads and device unless --match says otherwise) and give every change its "
                    "95 % interval: p50 B/A by a block bootstrap of both runs' raw latencies "
                    "(rounds respected), Δ accuracy by McNemar's exact test on the same test "
                    "images (Fisher's exact test otherwise), energy (from both runs' power readings "
                    "where they kept them, else over rounds) and peak memory over rounds. "
                    "Writes compare.md, compare.html (with a plot of the ratios) and compare.csv. "
                    "Exit status: 0, or 1 when a --fail-if rule is broken by a significant "
                    "change, 2 on bad input.",
        epilog="examples:\n  bench-host compare results/before results/after\n"
               "  bench-host compare quick-2026-11-01 quick --fail-if 'p50>+5%' "
               "--fail-if 'accuracy<-1pp'\n"
               "  bench-host compare results/pi4 results/pi5 --match "
               "architecture,recipe,compute_unit,threads",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_a", metavar="RUN_A", help="the baseline: a results folder or a run id "
                                                   "in the database")
    p.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    p.add_argument("--match", metavar="FIELDS|help",
                   help="comma-separated fields that make two rows the same row "
                        "(default sha256,recipe,compute_unit,threads,device)")
    p.add_argument("--fail-if", action="append", default=[], metavar="RULE|help",
                   help="exit 1 when a row's change is significant and beyond the threshold: "
                        "'p50>+5%%', 'accuracy<-1pp', 'energy>+10%%', 'memory>+20%%' "
                        "(repeatable)")
    p.add_argument("--device", metavar="NAME", help="a run id in the database: only this device")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="where to write compare.{md,html,csv,png} (default: RUN_B's folder/"
                        "compare-vs-<A>; for a run id, compare/<A>-vs-<B> beside the SQLite "
                        "database, or under results/ for PostgreSQL)")
    add_db_arg(p, writes=False)
    p.add_argument("--quiet", action="store_true", help="print only failures and the page's path")
    p.set_defaults(func=run)


def _load(spec: str, args, engine_box: list):
    """A results folder, or else a run id in the database."""
    from edgebench.host.errors import UserError
    from edgebench.host.report.load import load_results

    path = Path(spec)
    if path.exists():
        return load_results([path]), path
    from edgebench.host.results_db.connect import guarded, must_exist, open_db, resolve
    from edgebench.host.results_db.read import load_run

    url = resolve(args.db)
    if url is None:
        raise UserError(f"{spec}: no such folder (and --db none: no database to look it up in)")
    if not engine_box:
        must_exist(url)
        engine_box.append(open_db(url))
    with guarded(url):
        return load_run(engine_box[0], spec, args.device), None


def _beside_db(args) -> Path:
    from edgebench.host.results_db.connect import beside, resolve

    return beside(resolve(args.db))


def run(args) -> int:
    from edgebench.host.compare import gate, pairs

    if args.match == "help":
        print(pairs.describe_match())
        return 0
    if "help" in args.fail_if:
        print(gate.describe())
        return 0
    rules = [gate.parse_rule(r) for r in args.fail_if]  # bad rules refused before any work
    match = pairs.parse_match(args.match)

    from edgebench.host.compare.measures import compare_runs, headline
    from edgebench.host.compare.page import terminal, write_page
    from edgebench.host.report.plots import slug

    engine_box: list = []
    try:
        run_a, path_a = _load(args.run_a, args, engine_box)
        run_b, path_b = _load(args.run_b, args, engine_box)
    finally:
        for engine in engine_box:
            engine.dispose()
    comp = compare_runs(run_a, run_b, match, label_a=args.run_a, label_b=args.run_b)
    name_a = slug(path_a.resolve().name if path_a else args.run_a)
    out = args.out or ((path_b if path_b.is_dir() else path_b.parent) / f"compare-vs-{name_a}"
                       if path_b else _beside_db(args) / "compare"
                       / f"{name_a}-vs-{slug(args.run_b)}")
    paths = write_page(comp, out)
    failures, notes = gate.check(comp.table, rules)
    if not args.quiet:
        print(terminal(comp))
        print()
        print(headline(comp))
        for note in comp.notes + notes:
            print(f"note: {note}")
    for line in failures:
        print(f"FAIL {line}")
    print(f"comparison: {paths.markdown}  ({paths.html.name}, {paths.csv.name}"
          f"{', ' + paths.plot.name if paths.plot else ''})")
    return 1 if failures else 0
