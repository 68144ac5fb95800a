"""What every op profile method hands on (op_profile.py picks the method by the row's API): per
node, its time summarised over the profiled runs (ONNX Runtime: the median over inferences;
LiteRT: the fastest over rounds of prefix timings) with a 95 % bootstrap interval, its share of
the row's time, and whether the interval tells the node apart from 0."""
from __future__ import annotations

import numpy as np

BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 0


def median_intervals(times, draws: int = BOOTSTRAP_DRAWS, seed: int = BOOTSTRAP_SEED) -> tuple:
    """(median, low, high) per column of a runs x nodes array: the median over runs and a 95 %
    percentile-bootstrap interval of it, the runs resampled together for every node."""
    runs = times.shape[0]
    picks = np.random.default_rng(seed).integers(0, runs, size=(draws, runs))
    medians = np.median(times, axis=0)
    low, high = np.empty_like(medians), np.empty_like(medians)
    for col in range(times.shape[1]):  # one node at a time: draws x runs, never x nodes
        boot = np.median(times[picks, col], axis=1)
        low[col], high[col] = np.percentile(boot, [2.5, 97.5])
    return medians, low, high


def fastest_difference(before, after, draws: int = BOOTSTRAP_DRAWS,
                       seed: int = BOOTSTRAP_SEED) -> tuple:
    """(difference, low, high) of two paired series of timings (one value of each per run):
    the fastest of `after` less the fastest of `before`, and a 95 % percentile-bootstrap
    interval of it, the runs resampled together."""
    runs = len(before)
    picks = np.random.default_rng(seed).integers(0, runs, size=(draws, runs))
    boot = np.min(after[picks], axis=1) - np.min(before[picks], axis=1)
    low, high = np.percentile(boot, [2.5, 97.5])
    return float(np.min(after) - np.min(before)), float(low), float(high)


def node_line(node: tuple, runs: int, median: float, low: float, high: float,
              resolution_ms: float) -> dict:
    """One op_profile.csv line's per-node fields but its share. Resolved: the interval lies
    above 0 and reaches no lower than the method's resolution. A negative median (a difference
    of two noisy timings, LiteRT) stays as measured, and unresolved."""
    name, op_type, provider = node
    return {"node": name, "op_type": op_type, "provider": provider, "profiled_runs": int(runs),
            "median_ms": float(median), "low_ms": float(low), "high_ms": float(high),
            "resolved": bool(low > 0 and low >= resolution_ms)}


def finish(lines: list) -> list:
    """Shares (each node's median over the sum, negative medians counted as 0 so the shares
    still sum to 1) added; slowest first, as op_profile.csv lists them."""
    total = sum(max(line["median_ms"], 0.0) for line in lines)
    for line in lines:
        line["share"] = max(line["median_ms"], 0.0) / total if total > 0 else 0.0
    return sorted(lines, key=lambda line: (-line["median_ms"], line["node"]))


def profile_lines(nodes: list, times, resolution_ms: float) -> list:
    """op_profile.csv's per-node fields (schema.OP_PROFILE without the row's), slowest first,
    from a runs x nodes array of times in ms."""
    medians, low, high = median_intervals(times)
    return finish([node_line(node, times.shape[0], medians[i], low[i], high[i], resolution_ms)
                   for i, node in enumerate(nodes)])
