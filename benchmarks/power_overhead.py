"""Does the power sampler disturb the timing? p50 with --power on against --power none.

The sampler is a thread in the agent's parent process and the model runs in a child, so it
should cost the timed loop nothing but the CPU time of its reads. Measured in one run,
interleaved round by round (the order flips every round, so drift and the neighbours' load hit
both sides alike), each side a fresh `python3 agent.pyz` on the same model, threads, warm-up and
duration. The sources are FIXTURES, since this machine has no power sensor of its own (no RAPL
under /sys/class/powercap, no GPU): an Orin-style INA3221 hwmon tree under --sysfs-root (three
rails, nine files read per reading), and `cmd:` running `cat` on a file (a process per reading,
as the Pi 5's `vcgencmd pmic_read_adc` costs), both at --power-hz (default 10).

    python benchmarks/power_overhead.py [--rounds 9] [--threads 1] [--min-seconds 3]
                                        [--readme benchmarks/README.md]

With --readme, the "## Power sampler overhead" section of that file is replaced (or
appended)."""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

from harness_overhead import cpu_model, make_models
from readme_section import update_section

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from power_fixtures import orin_hwmon  # noqa: E402  (the tests' fixture layout, one definition)

SECTION = "## Power sampler overhead"
TITLE = "Power sampler overhead"


def fixture_root(work: Path) -> Path:
    """The fixture power sources: the tests' Orin INA3221 hwmon tree (readings made up,
    constant), and a file for the cmd: fixture meter to print."""
    root = work / "sysfs-fixture"
    orin_hwmon(root)
    (root / "watts.txt").write_text("7.263\n")  # what the cmd: fixture meter prints
    return root


SIDES = ("off", "ina3221", "cmd")


def agent_row(bundle: Path, out: Path, name: str, root: Path, side: str, args) -> dict:
    from edgebench.device.options import AgentOptions, agent_command

    options = AgentOptions(models=name, threads=str(args.threads), warmup=args.warmup,
                           min_runs=args.min_runs, min_seconds=args.min_seconds)
    if side != "off":
        source = "ina3221" if side == "ina3221" else "cmd:cat " + str(root / "watts.txt")
        options = replace(options, power=source, power_hz=args.hz, power_idle_seconds=1.0)
    cmd = agent_command(sys.executable, bundle / "agent.pyz", bundle, out, options,
                        extra=("--sysfs-root", root))
    subprocess.run(cmd, check=True, capture_output=True)
    with open(out / "results.csv") as fh:
        (row,) = list(csv.DictReader(fh))
    if row["status"] != "ok":
        raise SystemExit(f"agent failed on {name}: {row['error']}")
    return row


def measure(args) -> dict:
    from edgebench.host.bundle import build_bundle

    work = Path(tempfile.mkdtemp(prefix="power-overhead-"))
    try:
        bundle = build_bundle(make_models(work, args.img), work / "bundle", run_id="power")
        root = fixture_root(work)
        name = f"mobilenetv2.{args.recipe}"
        load = os.getloadavg()
        p50 = dict((side, []) for side in SIDES)
        samples = dict((side, []) for side in SIDES[1:])
        hz = dict((side, []) for side in SIDES[1:])
        for r in range(args.rounds):
            for side in SIDES[r % 3:] + SIDES[:r % 3]:   # each side first in a third of rounds
                row = agent_row(bundle, work / f"out-{r}-{side}", name, root, side, args)
                p50[side].append(float(row["p50_ms"]))
                if side != "off":
                    samples[side].append(int(row["power_samples"]))
                    hz[side].append(float(row["power_hz"]))
            print(f"round {r + 1}/{args.rounds}: " + ", ".join(
                f"{side} {p50[side][-1]:.3f}" for side in SIDES) + " ms", file=sys.stderr)
        return {"p50": p50, "samples": samples, "hz": hz, "model": name,
                "load": [load[0], os.getloadavg()[0]]}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def summarize(data: dict, args) -> str:
    med = statistics.median
    off = data["p50"]["off"]
    rows, ratios = [], []
    for side in SIDES[1:]:
        on = data["p50"][side]
        ratio = med([a / b for a, b in zip(on, off)])
        ratios.append(ratio)
        spread = [(max(v) - min(v)) / med(v) for v in (on, off)]
        rows.append(f"| {data['model']} | {side} | {med(on):.3f} ms | {med(off):.3f} ms | "
                    f"{ratio:.4f} | {100 * spread[0]:.1f} % / {100 * spread[1]:.1f} % | "
                    f"{med(data['samples'][side]):.0f}, {med(data['hz'][side]):.2f} Hz |")
    return "\n".join([
        SECTION, "",
        f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {platform.machine()}, "
        f"{cpu_model()} ({os.cpu_count()} cores, load average {data['load'][0]:.1f} at the "
        f"start, {data['load'][1]:.1f} at the end), LiteRT, {args.threads} thread(s), "
        f"{data['model']} @ {args.img} px (random weights), {args.rounds} interleaved rounds, "
        f"each side a fresh `python3 agent.pyz` with {args.warmup} warm-up runs and at least "
        f"{args.min_runs} runs / {args.min_seconds:g} s, the three sides (power off, ina3221, "
        f"cmd) in rotating order; power from FIXTURE sources at {args.hz:g} Hz: ina3221 an "
        f"Orin INA3221 hwmon tree under --sysfs-root (9 files per reading), cmd `cat` of a "
        f"file (a process per reading, like the Pi 5's vcgencmd). "
        f"Command: `python benchmarks/power_overhead.py --rounds {args.rounds} --threads "
        f"{args.threads} --min-seconds {args.min_seconds:g} --readme benchmarks/README.md`.", "",
        "| model | source | p50 power on (median of rounds) | p50 power off | on / off (median "
        "of per-round ratios) | p50 spread over rounds, (max-min)/median: on / off | samples in "
        "the window (median), achieved rate |",
        "|---|---|---|---|---|---|---|"] + rows + ["",
        f"Target: on / off <= 1.01. Here: {'met' if max(ratios) <= 1.01 else 'NOT met'}. "
        "On a shared "
        "machine the spread column is the noise floor the ratio sits in. Not measured here: "
        "RAPL (this VM has no /sys/class/powercap) and NVML (no GPU), so no energy per "
        "inference of a real sensor. The fixture's reads cost what real sysfs reads cost; a Pi "
        "5's `vcgencmd pmic_read_adc` costs a process like the cmd row plus about 20 ms of "
        "firmware time per reading, on a slower CPU.", ""])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--min-runs", type=int, default=200)
    p.add_argument("--min-seconds", type=float, default=3.0,
                   help="at least 2.3 so that --power does not lengthen the timed loop")
    p.add_argument("--hz", type=float, default=10.0)
    p.add_argument("--img", type=int, default=128)
    p.add_argument("--recipe", default="fp32", choices=("fp32", "int8"))
    p.add_argument("--readme", type=Path, default=None)
    p.add_argument("--json", type=Path, default=None, help="also write the raw figures here")
    p.add_argument("--from-json", type=Path, default=None,
                   help="re-render a saved --json result instead of measuring")
    args = p.parse_args(argv)
    data = json.loads(args.from_json.read_text()) if args.from_json else measure(args)
    section = summarize(data, args)
    print(section)
    if args.json:
        args.json.write_text(json.dumps(data, indent=1))
    if args.readme:
        update_section(args.readme, TITLE, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
