"""What `bench-host publish` costs: a results database of R runs × S series (one board, S
configurations measured in every run, each with its raw latencies and predictions: the agent's
files, synthetic and imported as a run's folder is), published from scratch, again with nothing
new, and after one more run. One configuration gets 20 % slower two thirds of the way, so the
site has a step to find.

    python benchmarks/publish.py [--runs 200] [--series 50] [--samples 200] [--jobs 0]
                                 [--work DIR] [--readme benchmarks/README.md]"""
from __future__ import annotations

import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the suite's writer of agent result folders

from harness_overhead import cpu_model  # noqa: E402
from readme_section import update_section  # noqa: E402

SECTION = "## Results site"
BENCH_HOST = Path(sys.executable).with_name("bench-host")


def models(series: int, slower: bool) -> dict:
    from compare_runs import all_correct

    out = {}
    for i in range(series):
        arch, recipe = f"net{i // 2:02d}", ("fp32", "int8")[i % 2]
        p50 = (2.0 + 0.4 * (i // 2)) * (0.4 if recipe == "int8" else 1.0)
        if slower and i == 7:
            p50 *= 1.2
        out[f"{arch}.{recipe}"] = {"p50": p50, "correct": all_correct()}
    return out


def write(root: Path, k: int, args) -> Path:
    from compare_runs import write_run

    day, hour = divmod(k, 24)
    run_id = f"ci-{k:04d}"
    write_run(root / run_id / "board", run_id, models(args.series, k >= 2 * args.runs // 3),
              rounds=2, n=args.samples, seed=k,
              started=f"2026-{9 + day // 28:02d}-{1 + day % 28:02d}T{hour:02d}:00:00Z")
    return root / run_id


def timed(*argv) -> tuple[float, str]:
    start = time.monotonic()
    proc = subprocess.run([str(BENCH_HOST), *map(str, argv)], capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"{' '.join(map(str, argv))}: {proc.stderr[-2000:]}")
    return time.monotonic() - start, proc.stdout


def files(out: str) -> str:
    m = re.search(r"(\d+) file\(s\) written, (\d+) unchanged; (\d+) report\(s\) and (\d+) "
                  r"comparison\(s\) built", out)
    return (f"{m.group(1)} files written, {m.group(2)} unchanged; {m.group(3)} report(s) and "
            f"{m.group(4)} comparison(s) built") if m else "?"


def measure(args) -> dict:
    work = Path(args.work or tempfile.mkdtemp(prefix="publish-bench-"))
    runs_dir, db, site = work / "runs", work / "db.sqlite", work / "site"
    load = [os.getloadavg()[0]]
    start = time.monotonic()
    folders = [write(runs_dir, k, args) for k in range(args.runs)]
    made = time.monotonic() - start
    imported, _ = timed("import", *folders, "--db", db)
    jobs = ["--jobs", str(args.jobs)] if args.jobs else []
    scratch, out_scratch = timed("publish", "--db", db, "--out", site, *jobs)
    again, out_again = timed("publish", "--db", db, "--out", site, *jobs)
    more = write(runs_dir, args.runs, args)
    timed("import", more, "--db", db)
    one, out_one = timed("publish", "--db", db, "--out", site, *jobs)
    load.append(os.getloadavg()[0])
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    steps = re.search(r"(\d+) step\(s\) kept", out_one).group(1)
    return {"work": work, "load": load, "made": made, "import": imported, "scratch": scratch,
            "again": again, "one": one, "out_scratch": out_scratch, "out_again": out_again,
            "out_one": out_one, "size": size, "pages": len(list(site.rglob("*.html"))),
            "db_mb": db.stat().st_size / 1e6, "steps": steps}


def summarize(m: dict, args) -> str:
    from edgebench.host.publish.workers import default_jobs

    jobs = args.jobs or default_jobs()
    rows = [("from scratch", m["scratch"], files(m["out_scratch"])),
            ("again, nothing new", m["again"], files(m["out_again"])),
            ("after one more run", m["one"], files(m["out_one"]))]
    table = ["| publish | seconds | what it did |", "|---|---|---|"]
    table += [f"| {name} | {sec:.1f} | {what} |" for name, sec, what in rows]
    return "\n".join([
        SECTION, "",
        f"`python benchmarks/publish.py --runs {args.runs} --series {args.series} --samples "
        f"{args.samples}` on {platform.machine()}, {cpu_model()} ({os.cpu_count()} cores, "
        f"`--jobs` {jobs}; load average {m['load'][0]:.1f} before, {m['load'][1]:.1f} after): "
        f"one board, {args.series} configurations measured in each of {args.runs} runs, two "
        f"rounds of {args.samples} latencies each, 40 predictions per configuration "
        f"({args.runs * args.series:,} rows, {2 * args.runs * args.series * args.samples:,} "
        f"latency samples; the SQLite database is {m['db_mb']:.0f} MB, the import took "
        f"{m['import']:.0f} s). Each time is the whole `bench-host publish` command, start-up "
        f"included.", "",
        *table, "",
        f"The site: {m['pages']} pages, {m['size'] / 1e6:.0f} MB ({args.series} series pages, "
        f"a report per run, a comparison per pair of consecutive runs, plotly.js once); "
        f"{m['steps']} step kept (the configuration made 20 % slower). From scratch, nearly all "
        f"the time is the per-run work the other commands do too: `bench-host report`'s "
        f"build_report for each run's page, `bench-host compare` for each consecutive pair, "
        f"and `history`'s bootstrap for each run's points, spread over the `--jobs` processes. "
        f"After one more run only that run's points, report and comparison are computed, the "
        f"candidate steps it touches are tested, and the pages whose bytes change are written; "
        f"every other file is a hard link to the previous site's.", ""])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=200)
    p.add_argument("--series", type=int, default=50)
    p.add_argument("--samples", type=int, default=200, help="latencies per round")
    p.add_argument("--jobs", type=int, default=0, help="publish --jobs (0: its default)")
    p.add_argument("--work", type=Path, help="keep the runs, database and site here")
    p.add_argument("--readme", type=Path, help="write the section into this README")
    args = p.parse_args()
    m = measure(args)
    text = summarize(m, args)
    print(text)
    print(f"(work folder: {m['work']})", file=sys.stderr)
    if args.readme:
        update_section(args.readme, SECTION[3:], text)


if __name__ == "__main__":
    main()
