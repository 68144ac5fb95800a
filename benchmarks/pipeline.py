"""Wall time of each stage of `bench-host run` (the default profile, local target) and in total.

    python benchmarks/pipeline.py [--profile quick] [--results DIR] [--readme benchmarks/README.md]

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

TARGET_S = 150  # issue 15: the default `bench-host run` on this 2-core machine


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--results", type=Path, default=None, help="default: a fresh temp folder")
    ap.add_argument("--readme", type=Path, default=None, help="update this README's Pipeline section")
    args = ap.parse_args()

    from edgebench.host.profiles import PROFILES
    from edgebench.host.pipeline import run_pipeline
    from edgebench.host.targets import parse_target

    profile = PROFILES[args.profile]
    results = args.results or Path(tempfile.mkdtemp(prefix="edgebench-pipeline-"))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    # A fresh device folder too: the agent skips rows it measured for the same bundle content
    # before, and the default's training is deterministic, so a rerun would time nothing.
    target = dataclasses.replace(parse_target("local"), remote_dir=str(results / "device"))
    result = run_pipeline(profile, results, f"bench-{profile.name}", [target], quiet=True)
    total = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    ok_rows = sum(o.rows for o in result.outcomes)

    lines = [f"| {stage} | {secs:.1f} |" for stage, secs in result.stage_seconds.items()]
    table = "\n".join(["| stage | wall s |", "|---|---:|", *lines, f"| **total** | **{total:.1f}** |"])
    print(table)
    print(f"\n{ok_rows} result rows; report: {result.report.markdown}")
    print(result.report.headline)

    if args.readme:
        section = (
            "## Pipeline\n\n"
            f"`python benchmarks/pipeline.py --profile {profile.name}` on {platform.machine()}, "
            f"{cpu_name()}, {os.cpu_count()} cores (load average {load_before:.1f} before, "
            f"{load_after:.1f} after), from an empty results folder: the `{profile.name}` profile "
            f"({profile.data} at {profile.img_size} px, {', '.join(profile.models)}, "
            f"{_epochs(profile)}, recipes {', '.join(profile.recipes)}), measured on the "
            f"local target.\n\n{table}\n\nTarget: the default run in at most {TARGET_S} s on 2 "
            f"cores: {'met' if total <= TARGET_S else 'missed'}"
            f"{' (other jobs shared the CPUs: load above 1.5)' if max(load_before, load_after) > 1.5 else ''}"
            f".\n")
        update_section(args.readme, "Pipeline", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
