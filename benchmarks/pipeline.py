"""Wall time of each stage of `bench-host run` (the default profile, local target) and in total.

    python benchmarks/pipeline.py [--profile quick] [--serial-too] [--results DIR]
                                  [--readme benchmarks/README.md]

Runs in a fresh results folder and device folder so nothing is skipped; prints one line per
stage and the total, and with --readme replaces the "Pipeline" section of benchmarks/README.md."""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

from readme_section import update_section

TARGET_S = 120  # issue 29: the default `bench-host run` on this 2-core machine


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _epochs(profile) -> str:
    """"4 epochs (vgg16 3)": the profile's epochs and each model's own, where it has one."""
    own = [f"{m} {o['epochs']}" for m, o in profile.per_model.items() if "epochs" in o]
    return f"{profile.epochs} epochs" + (f" ({', '.join(own)})" if own else "")


def _run(profile, results: Path, workers):
    """One `bench-host run` of `profile` into a fresh folder: (stage seconds, total, result)."""
    from edgebench.host.pipeline import run_pipeline
    from edgebench.host.targets import parse_target

    start = time.perf_counter()
    # A fresh device folder too: the agent skips rows it measured for the same bundle content
    # before, and the default's training is deterministic, so a rerun would time nothing.
    target = dataclasses.replace(parse_target("local"), remote_dir=str(results / "device"))
    result = run_pipeline(profile, results, f"bench-{profile.name}", [target], quiet=True,
                          export_workers=workers)
    return result.stage_seconds, time.perf_counter() - start, result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--results", type=Path, default=None, help="default: a fresh temp folder")
    ap.add_argument("--readme", type=Path, default=None, help="update this README's Pipeline section")
    ap.add_argument("--serial-too", action="store_true",
                    help="first time the run with every model converted before the next one "
                         "trains (export_workers=0, the path before issue 29), then the default")
    args = ap.parse_args()

    from edgebench.host.export_pool import worker_count
    from edgebench.host.profiles import PROFILES

    profile = PROFILES[args.profile]
    results = args.results or Path(tempfile.mkdtemp(prefix="edgebench-pipeline-"))
    load_before = os.getloadavg()[0]
    runs = {}
    if args.serial_too:
        runs["serial"] = _run(profile, results / "serial", 0)
    workers = worker_count(len(profile.models))
    runs[f"{workers} export workers"] = result_run = _run(profile, results / "default", None)
    load_after = os.getloadavg()[0]
    result = result_run[2]
    ok_rows = sum(o.rows for o in result.outcomes)

    names = list(dict.fromkeys(n for seconds, _, _ in runs.values() for n in seconds))
    head = "| stage | " + " | ".join(f"{k}: wall s" for k in runs) + " |"
    rule = "|---|" + "---:|" * len(runs)
    lines = [f"| {n} | " + " | ".join(f"{r[0][n]:.1f}" if n in r[0] else "—"
                                      for r in runs.values()) + " |" for n in names]
    totals = [r[1] for r in runs.values()]
    lines.append("| **total** | " + " | ".join(f"**{t:.1f}**" for t in totals) + " |")
    table = "\n".join([head, rule, *lines])
    print(table)
    print("\nStages that ran in the background overlap the ones after them: their times do not "
          "add up to the total.")
    print(f"\n{ok_rows} result rows; report: {result.report.markdown}")
    print(result.report.headline)

    if args.readme:
        total = totals[-1]
        ratio = (f" The default path took {totals[-1] / totals[0]:.2f}× the serial path's time."
                 if len(totals) > 1 else "")
        section = (
            "## Pipeline\n\n"
            f"`python benchmarks/pipeline.py --profile {profile.name}"
            f"{' --serial-too' if args.serial_too else ''}` on {platform.machine()}, "
            f"{cpu_name()}, {os.cpu_count()} cores (load average {load_before:.1f} before, "
            f"{load_after:.1f} after), from an empty results folder: the `{profile.name}` profile "
            f"({profile.data} at {profile.img_size} px, {', '.join(profile.models)}, "
            f"{_epochs(profile)}, recipes {', '.join(profile.recipes)}), measured on the "
            f"local target. A stage run in the background (a model converting while the next "
            f"one trains, host/export_pool.py) overlaps the stages after it, so the stage times "
            f"do not add up to the total.\n\n{table}\n\n"
            f"Target: the default run in at most {TARGET_S} s on 2 cores: "
            f"{'met' if total <= TARGET_S else 'missed'}"
            # the load after counts the run's own processes; only the load before tells of others
            f"{' (other jobs shared the CPUs: load above 1.5 before)' if load_before > 1.5 else ''}"
            f".{ratio}\n")
        update_section(args.readme, "Pipeline", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
