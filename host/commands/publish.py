"""`bench-host publish --out site/`: every run in the results database as a static web site that
works offline (from file:// or `--serve`): series with intervals and detected steps, changes,
comparisons, each run's report."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgebench.host.commands.db_args import add_db_arg


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "publish", help="a static results site from the database: history, changes, compare, "
                        "reports (offline)",
        description="Build a static site from the results database: an index of every series "
                    "(device × model × unit × threads × runtime) with its latest p50, accuracy "
                    "and energy and their intervals; one page per series with its history "
                    "(interactive, Plotly from the plotly wheel, no CDN); the detected steps "
                    "(ruptures proposes, a test on both runs' raw samples and the --fail-if "
                    "threshold decide); comparisons of consecutive runs with the table of "
                    "`bench-host compare`; each run's report. The site opens from file:// and "
                    "needs no network. Only pages whose content changed are rewritten, and the "
                    "new site replaces the old one only once it is complete. Exit status: 0; 1 "
                    "when --fail-if was given and the newest run of a series broke a rule; 2 on "
                    "bad input.",
        epilog="examples:\n  bench-host publish --out site\n"
               "  bench-host publish --db postgresql://lab@db/edgebench --out /srv/edgebench "
               "--fail-if 'p50>+5%' --fail-if 'accuracy<-1pp'\n"
               "  bench-host publish --out site --serve",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="the site's folder (default: site/ beside the SQLite database, "
                        "results/site for PostgreSQL); an existing folder must be empty or a "
                        "site made by publish")
    p.add_argument("--fail-if", action="append", default=[], metavar="RULE|help",
                   help="what counts as a step, as in compare: 'p50>+5%%' (default), "
                        "'accuracy<-1pp', 'energy>+10%%' (repeatable); the mirror of each rule "
                        "counts as an improvement. Given explicitly, a regression in the newest "
                        "run of a series exits 1")
    p.add_argument("--pair", nargs=2, action="append", default=[], metavar=("RUN_A", "RUN_B"),
                   help="also compare these two runs (run id, RUN_ID@STARTED or the run's page "
                        "name), e.g. a release baseline against the latest (repeatable)")
    p.add_argument("--match", metavar="FIELDS",
                   help="for --pair: fields that make two rows the same row, as in compare")
    p.add_argument("--serve", action="store_true",
                   help="then serve the site on 127.0.0.1 (any two runs can be compared there)")
    p.add_argument("--port", type=int, default=8000, help="--serve's port (default 8000; 0: any "
                                                          "free port)")
    p.add_argument("--jobs", type=int, default=0, metavar="N",
                   help="processes building reports and comparisons (default: the cores, up "
                        "to 8)")
    add_db_arg(p, writes=False)
    p.add_argument("--quiet", action="store_true", help="print only failures and the site's path")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.compare import gate

    if "help" in args.fail_if:
        print(gate.describe())
        return 0
    from edgebench.host.compare.pairs import parse_match
    from edgebench.host.publish import changes

    changes.parse_rules(args.fail_if)  # bad rules and fields refused before any work
    match = parse_match(args.match) if args.match else None
    from edgebench.host.errors import UserError

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: give 0..65535")
    if args.jobs < 0:
        raise UserError(f"--jobs {args.jobs}: give 1 or more (0: the cores)")
    from edgebench.host.publish.build import publish
    from edgebench.host.results_db.connect import beside, opened

    say = (lambda line: None) if args.quiet else (lambda line: print(line, file=sys.stderr))
    from edgebench.host.publish.workers import default_jobs

    jobs = args.jobs or default_jobs()
    with opened(args.db, "publish", reads=True) as (engine, url):
        out = args.out or beside(url) / "site"
        result = publish(engine, url, out, args.fail_if, args.pair, match, jobs, say)
        kept = [s for s in result.steps if s.kept]
        if not args.quiet:
            for note in result.notes:
                print(f"note: {note}")
            regressions = sum(s.verdict == "regression" for s in kept)
            print(f"{result.series} series from {result.runs} run(s); {len(kept)} step(s) kept "
                  f"({regressions} regression(s)), {len(result.steps) - len(kept)} candidate(s) "
                  f"not kept; {result.pairs} comparison(s)")
            print(f"{len(result.written)} file(s) written, {len(result.kept)} unchanged; "
                  f"{result.reports_built} report(s) and {result.comparisons_built} "
                  f"comparison(s) built")
        for line in result.failures:
            print(f"FAIL {line}")
        print(f"site: {result.out / 'index.html'}")
        sys.stdout.flush()
        if args.serve:
            from edgebench.host.publish.serve import serve
            serve(result.out, engine, args.port, say=lambda line: (print(line), sys.stdout.flush()))
    return 1 if result.failures else 0
