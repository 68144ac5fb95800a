"""How much can one round say? The p50 interval from one round against the spread across rounds.

The agent measures a MobileNetV2 (fp32 and int8, Keras with random weights, --img px) with
`--rounds R --min-seconds S`, models interleaved round by round. For every round the report's
interval method (host/report/stats.py: a moving-block bootstrap of that round's samples) gives
a 95 % interval of its p50; an i.i.d. bootstrap of the same samples is shown beside it, and the
spread of the R rounds' p50s, (max − min) / median, is what actually happened between rounds.
When the spread is much wider than one round's interval, one round cannot tell two recipes apart
at that level: use --rounds (the report's interval then resamples rounds too).

    python benchmarks/round_noise.py [--rounds 5] [--min-seconds 2] [--img 128]
                                    [--readme benchmarks/README.md]"""
from __future__ import annotations

import argparse
import csv
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import stats as st

from harness_overhead import cpu_model, make_models
from readme_section import update_section

SECTION = "## Statistics"


def measure(args) -> dict:
    from edgebench.device.options import AgentOptions, agent_command
    from edgebench.host.bundle import build_bundle
    from edgebench.host.report import stats

    work = Path(tempfile.mkdtemp(prefix="stats-bench-"))
    bundle = build_bundle(make_models(work, args.img), work / "bundle", run_id="stats-bench")
    load = [os.getloadavg()[0]]
    out = work / "out"
    rounds = AgentOptions(rounds=args.rounds, min_seconds=args.min_seconds, min_runs=50,
                          warmup=10)
    subprocess.run(agent_command(sys.executable, bundle / "agent.pyz", bundle, out, rounds),
                   check=True, capture_output=True)
    load.append(os.getloadavg()[0])
    samples: dict = {}
    with open(out / "latency_samples.csv") as fh:
        for r in csv.DictReader(fh):
            samples.setdefault(r["model"], {}).setdefault(int(r["round"]), []).append(
                float(r["latency_ms"]))
    data = {"load": load, "models": {}}
    for model, rounds in samples.items():
        rows = []
        for k in sorted(rounds):
            x = np.asarray(rounds[k])
            lo, hi = stats.p50_ci(stats.round_medians([x], seed=k))
            iid = st.bootstrap((x,), np.median, n_resamples=1000, method="percentile",
                               random_state=np.random.default_rng(k)).confidence_interval
            rows.append({"p50": float(np.median(x)), "n": len(x), "block": (lo, hi),
                         "iid": (float(iid.low), float(iid.high))})
        all_rounds = [np.asarray(rounds[k]) for k in sorted(rounds)]
        data["models"][model] = {"rounds": rows, "pooled": stats.p50_ci(
            stats.round_medians(all_rounds, seed=99))}
    return data


def summarize(data: dict, args) -> str:
    med = statistics.median
    lines = [SECTION, "",
             f"Measured {time.strftime('%Y-%m-%d', time.gmtime())} on {platform.machine()}, "
             f"{cpu_model()} ({os.cpu_count()} cores, load average {data['load'][0]:.1f} at the "
             f"start, {data['load'][1]:.1f} at the end), LiteRT on the CPU, 1 thread, "
             f"MobileNetV2 @ {args.img} px (random weights), {args.rounds} interleaved rounds of "
             f"≥ {args.min_seconds:g} s each. Command: `python benchmarks/round_noise.py "
             f"--rounds {args.rounds} --min-seconds {args.min_seconds:g} --img {args.img} "
             f"--readme benchmarks/README.md`.", "",
             "| model | p50, median of rounds | one round's 95 % interval, block bootstrap "
             "(median width) | same, i.i.d. bootstrap | spread of the rounds' p50s, (max − "
             f"min) / median | interval over all {args.rounds} rounds (rounds resampled) |",
             "|---|---|---|---|---|---|"]
    for model, d in data["models"].items():
        p50s = [r["p50"] for r in d["rounds"]]
        centre = med(p50s)
        block = med([(r["block"][1] - r["block"][0]) / r["p50"] for r in d["rounds"]])
        iid = med([(r["iid"][1] - r["iid"][0]) / r["p50"] for r in d["rounds"]])
        spread = (max(p50s) - min(p50s)) / centre
        lo, hi = d["pooled"]
        lines.append(f"| {model} | {centre:.3f} ms | ±{50 * block:.1f} % | ±{50 * iid:.1f} % | "
                     f"{100 * spread:.1f} % | {lo:.3f}–{hi:.3f} ms |")
    lines += ["", "Read it as: one round's interval says how well that round pinned down its own "
              "median; the spread says how much the next round moved anyway (frequency, "
              "neighbours, thermal state). Where the spread is several times the one-round "
              "interval, a single round's speedup interval is too optimistic about "
              "reproducing it: measure with `--rounds 3` or more, which the report folds into "
              "intervals that include the round-to-round movement.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--min-seconds", type=float, default=2.0)
    p.add_argument("--img", type=int, default=128)
    p.add_argument("--readme", type=Path, default=None)
    args = p.parse_args(argv)
    section = summarize(measure(args), args)
    print(section)
    if args.readme:
        update_section(args.readme, "Statistics", section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
