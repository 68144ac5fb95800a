"""Per-operator time of a row (--profile-ops N, op_profile.csv): a profiled pass in the row's
child after its timed loop, on sessions of its own, because profiling slows a model down (it can
triple a small model's time) and the row's own timing must not carry it.

The method depends on the row's API (PROFILERS): ONNX Runtime rows are timed by the session
profiler, node by node (op_profile_ort.py); LiteRT rows, whose Python API has no profiler, by
timing every prefix of the model, cut after each operator (op_profile_litert.py,
op_profile_tflite.py). Both hand on per node a time (ONNX Runtime: the median over the
profiled runs; LiteRT: the fastest prefix difference over the rounds), a 95 % bootstrap interval
of it and its share (op_profile_stats.py), and the row's note says how many ops there are and
what their times sum to against the row's own p50."""
from __future__ import annotations

from ..common import one_line
from ..metrics import latency_stats
from .op_profile_litert import profile_litert
from .op_profile_ort import profile_ort

# The row's API (units.py / sessions.SESSIONS' key) -> (its profiler(job, started, make_input,
# the row's fastest inference in ms) returning (lines, a note's tail or None), what its op times
# are, for the note).
PROFILERS = {"inference_session": (profile_ort, "kernels"),
             "interpreter": (profile_litert, "prefix differences"),
             "compiled_model": (profile_litert, "prefix differences")}


def add_note(result: dict, note: str) -> None:
    result["note"] = "; ".join(n for n in (result.get("note"), note) if n)


def measure(job: dict, started, result: dict, make_input) -> None:
    """--profile-ops: the row's profile lines into result["op_profile"] and a note on the row
    ("op profile: N ops, kernels sum to X % of p50"), or a note saying why there are none. A
    failure is a note: the row's timing stands without its profile."""
    api = job["unit"]["api"]
    if api not in PROFILERS:
        add_note(result, "op profile: no per-op method for %s rows" % api)
        return
    profiler, what = PROFILERS[api]
    stats = latency_stats(result["samples_ns"])
    try:
        lines, tail = profiler(job, started, make_input, stats["min_ms"])
    except Exception as exc:
        add_note(result, "op profile failed: %s" % one_line(exc, 200))
        return
    result["op_profile"] = lines
    p50 = stats["p50_ms"]
    total = sum(line["median_ms"] for line in lines)
    add_note(result, "op profile: %d ops, %s sum to %.0f %% of p50%s"
             % (len(lines), what, 100.0 * total / p50, " (%s)" % tail if tail else ""))
