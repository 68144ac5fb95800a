"""Per-operator time of a row (--profile-ops N, op_profile.csv): a profiled pass in the row's
child after its timed loop, on a session of its own, because profiling slows a model down (it
can triple a small model's time) and the row's own timing must not carry it.

ONNX Runtime rows: the session profiler. Its trace has one `model_run` event per inference and
one `<node>_kernel_time` event per node run (args: op_name, provider), on a 1 us clock; each
kernel event is given to the run whose time window holds it, so every node gets one time per
run (a node absent from a run: 0 in it). Node names are those of the graph ORT optimised (a
Conv+Relu fused is one node). Per node: the median over runs, a 95 % bootstrap interval of it
(the runs resampled together, fixed seed) and its share of the sum of the medians.

Other runtimes are looked up in PROFILERS by the row's API; LiteRT rows have no method yet and
their note says so (NOT_PROFILED)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from ..common import one_line
from ..metrics import latency_stats

KERNEL_SUFFIX = "_kernel_time"
RUN_EVENT = "model_run"
# Inferences run in the profiling session before the profiled ones, and left out of the profile:
# the session's first runs pay for its lazily allocated buffers.
PROFILE_WARMUP = 2
BOOTSTRAP_DRAWS = 1000
BOOTSTRAP_SEED = 0
# ONNX Runtime's trace stamps whole microseconds: an interval reaching below this is not told
# apart from 0.
ORT_RESOLUTION_MS = 0.001


def run_windows(events: list, runs: int) -> list:
    """[(start, end)] in us of the last `runs` model_run events (the profiled ones; the warm-ups
    come first), in time order."""
    spans = sorted((e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == RUN_EVENT)
    return spans[-runs:] if runs else spans


def kernel_times(events: list, runs: int) -> tuple:
    """(nodes [(name, op_type, provider)], times: a runs x nodes array in ms) from an ORT trace:
    each kernel event added to its node's time in the run whose window holds it."""
    windows = run_windows(events, runs)
    starts = np.array([w[0] for w in windows], dtype=np.int64)
    nodes, column = [], {}
    cells = []  # (run, node column, ms)
    for e in events:
        name = e.get("name") or ""
        if e.get("cat") != "Node" or not name.endswith(KERNEL_SUFFIX) or not windows:
            continue
        run = int(np.searchsorted(starts, e["ts"], side="right")) - 1
        if run < 0 or e["ts"] > windows[run][1]:
            continue  # a warm-up's kernel, or one outside every profiled run
        args = e.get("args") or {}
        op_type = args.get("op_name", "")
        # a node without a name (hand-made graphs) is told apart by its index
        node = name[:-len(KERNEL_SUFFIX)] or "%s#%s" % (op_type, args.get("node_index", "?"))
        if node not in column:
            column[node] = len(nodes)
            nodes.append((node, op_type, args.get("provider", "")))
        cells.append((run, column[node], e["dur"] / 1000.0))
    times = np.zeros((len(windows), len(nodes)))
    for run, col, ms in cells:
        times[run, col] += ms
    return nodes, times


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


def profile_lines(nodes: list, times, resolution_ms: float) -> list:
    """op_profile.csv's per-node fields (schema.OP_PROFILE without the row's), slowest first."""
    medians, low, high = median_intervals(times)
    total = float(medians.sum())
    lines = [{"node": name, "op_type": op_type, "provider": provider,
              "profiled_runs": times.shape[0], "median_ms": float(medians[i]),
              "low_ms": float(low[i]), "high_ms": float(high[i]),
              "share": float(medians[i]) / total if total > 0 else 0.0,
              "resolved": bool(low[i] >= resolution_ms)}
             for i, (name, op_type, provider) in enumerate(nodes)]
    return sorted(lines, key=lambda line: (-line["median_ms"], line["node"]))


def profile_ort(job: dict, ort, make_input) -> list:
    """The ORT row's profile lines: a profiling session of the row's model, PROFILE_WARMUP
    inferences, then job["profile_ops"] profiled ones; its trace read and removed."""
    from .ort_session import OrtSession

    folder = tempfile.mkdtemp(prefix="edgebench-profile-")
    try:
        session = OrtSession(job, ort, profile_prefix=os.path.join(folder, "ort"))
        session.set_input(make_input(session))
        runs = int(job["profile_ops"])
        for _ in range(PROFILE_WARMUP + runs):
            session.invoke()
        with open(session.end_profiling()) as fh:
            events = json.load(fh)
        del session
        nodes, times = kernel_times(events, runs)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if times.shape[0] < runs or not nodes:
        raise RuntimeError("the trace holds %d of %d profiled runs and %d kernel events"
                           % (times.shape[0], runs, len(nodes)))
    return profile_lines(nodes, times, ORT_RESOLUTION_MS)


# The row's API (units.py / sessions.SESSIONS' key) -> its profiler(job, started, make_input).
PROFILERS = {"inference_session": profile_ort}
# The row's API -> whose rows have no per-op method yet (the note says so; never an error).
NOT_PROFILED = {"interpreter": "LiteRT", "compiled_model": "LiteRT"}


def add_note(result: dict, note: str) -> None:
    result["note"] = "; ".join(n for n in (result.get("note"), note) if n)


def measure(job: dict, started, result: dict, make_input) -> None:
    """--profile-ops: the row's profile lines into result["op_profile"] and a note on the row
    ("op profile: N ops, kernels sum to X % of p50"), or a note saying why there are none. A
    failure is a note: the row's timing stands without its profile."""
    api = job["unit"]["api"]
    profiler = PROFILERS.get(api)
    if profiler is None:
        add_note(result, "op profile: per-op time of %s rows is not measured yet"
                 % NOT_PROFILED.get(api, api))
        return
    try:
        lines = profiler(job, started, make_input)
    except Exception as exc:
        add_note(result, "op profile failed: %s" % one_line(exc, 200))
        return
    result["op_profile"] = lines
    p50 = latency_stats(result["samples_ns"])["p50_ms"]
    kernels = sum(line["median_ms"] for line in lines)
    add_note(result, "op profile: %d ops, kernels sum to %.0f %% of p50"
             % (len(lines), 100.0 * kernels / p50))
