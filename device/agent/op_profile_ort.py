"""The op profile of an ONNX Runtime row: the session profiler. Its trace has one `model_run`
event per inference and one `<node>_kernel_time` event per node run (args: op_name, provider), on
a 1 us clock; each kernel event is given to the run whose time window holds it, so every node
gets one time per run (a node absent from a run: 0 in it). Node names are those of the graph ORT
optimised (a Conv+Relu fused is one node). The kernels' sum is a check against the row's own
latency (the note states it)."""
from __future__ import annotations

import json
import os
import shutil
import tempfile

import numpy as np

from .op_profile_stats import profile_lines

KERNEL_SUFFIX = "_kernel_time"
RUN_EVENT = "model_run"
# Inferences run in the profiling session before the profiled ones, and left out of the profile:
# the session's first runs pay for its lazily allocated buffers.
PROFILE_WARMUP = 2
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


def profile_ort(job: dict, ort, make_input, row_ms: float) -> tuple:
    """(the ORT row's profile lines, its note's tail): a profiling session of the row's model,
    PROFILE_WARMUP inferences, then job["profile_ops"] profiled ones; its trace read and
    removed. row_ms (the row's fastest inference) is not needed: N inferences is the cost."""
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
    return profile_lines(nodes, times, ORT_RESOLUTION_MS), None
