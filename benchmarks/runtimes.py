"""LiteRT against ONNX Runtime on this machine: the paper's three models in the default recipes,
each built by both routes (onnx2tf -> .tflite, ort -> .onnx) and measured side by side in one run,
with a per-operator profile of every row (ORT's profiler; LiteRT's prefix cuts).

    python benchmarks/runtimes.py [--profile quick] [--profile-ops 50] [--results DIR]
                                  [--readme benchmarks/README.md]

Runs `bench-host run --converter onnx2tf,ort --profile-ops N` in a fresh results folder and device
folder, prints the report's Runtimes verdicts, and with --readme replaces the "Runtimes" section of
benchmarks/README.md with the report's Runtimes table and the op-share picture (copied next to
the README)."""
from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

from pipeline import cpu_name
from readme_section import update_section


def section_of(markdown: str, title: str) -> str:
    """The body of the report's `## {title}...` section (up to the next `## `)."""
    found = re.search(rf"^## {re.escape(title)}[^\n]*\n(.*?)(?=^## |\Z)", markdown, re.S | re.M)
    return found.group(1).strip() if found else ""


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="quick")
    ap.add_argument("--profile-ops", type=int, default=50, help="profiled inferences per ORT row, rounds at most per LiteRT row")
    ap.add_argument("--results", type=Path, default=None, help="default: a fresh temp folder")
    ap.add_argument("--readme", type=Path, default=None, help="update this README's Runtimes section")
    args = ap.parse_args()

    from edgebench.device.options import AgentOptions
    from edgebench.host.pipeline import run_pipeline
    from edgebench.host.profiles import PROFILES
    from edgebench.host.targets import parse_target

    profile = PROFILES[args.profile]
    results = args.results or Path(tempfile.mkdtemp(prefix="edgebench-runtimes-"))
    target = dataclasses.replace(parse_target("local"), remote_dir=str(results / "device"))
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    result = run_pipeline(profile, results, f"runtimes-{profile.name}", [target], quiet=True,
                          agent=AgentOptions(profile_ops=args.profile_ops),
                          converters=("onnx2tf", "ort"))
    total = time.perf_counter() - start
    load_after = os.getloadavg()[0]
    markdown = result.report.markdown.read_text()
    table = section_of(markdown, "Runtimes")
    if not table:
        print("no Runtimes section in the report: nothing was measured on both runtimes")
        return 1
    verdicts = [ln for ln in table.splitlines() if ln.startswith("Per recipe:")]
    print("\n".join(verdicts) or table)
    print(f"\n{total:.0f} s in all; report: {result.report.markdown}")

    if args.readme:
        picture = next(iter(sorted(result.report.out_dir.glob("op_shares_*.png"))), None)
        figure = ""
        if picture:
            kept = args.readme.parent / "runtimes_op_shares.png"
            shutil.copyfile(picture, kept)
            figure = (f"\n\nWhere the time goes (ONNX Runtime rows, `--profile-ops "
                      f"{args.profile_ops}`): each op type's share of the kernel time per recipe."
                      f"\n\n![op-type shares]({kept.name})")
        busy = max(load_before, load_after) > 1.5
        section = (
            "## Runtimes\n\n"
            f"`python benchmarks/runtimes.py --profile {profile.name} --profile-ops "
            f"{args.profile_ops}` on {platform.machine()}, {cpu_name()}, {os.cpu_count()} cores "
            f"(load average {load_before:.1f} before, {load_after:.1f} after"
            f"{': other jobs shared the CPUs' if busy else ''}): the `{profile.name}` profile's "
            f"models and recipes built by both routes and measured in one run "
            f"({total:.0f} s in all). The report's Runtimes section:\n\n{table}{figure}\n")
        update_section(args.readme, "Runtimes", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
