"""Frame-rate and throughput scenarios (--fps, --streams), run in the row's child after its timed
loop on the model it already loaded. Each scenario goes to the parent as one
{"type": "scenario", ...} line (timing.py's protocol): its scenarios.csv line(s), the frames of a
frame-rate scenario and its window [t0_ns, t1_ns] in time.monotonic_ns() (one clock for every
process, so the parent can ask its power readings for exactly that window).

Frame rate ("fps=R"): frame k arrives at start + k/R for --scenario-seconds. A frame starts at its
arrival, or when the previous frame's result is out if that is later (queueing, no dropping: a
scanner's frames wait in line), and its latency is result - arrival. A frame misses when its
result comes after the next frame's arrival (arrival + 1/R). The scenario ends with its seconds:
frames that arrived but had not started by then stay unserved (empty start/end in frames.csv) and
count as missed, so a model that cannot keep up cannot stretch the run without bound.

Streams ("streams=N"): N interpreters of the model invoke back to back for --scenario-seconds, each
in its own thread. On the Interpreter, threads, not processes, because its invoke() releases the
GIL (tflite's interpreter_wrapper.cc: Py_BEGIN_ALLOW_THREADS around Subgraph::Invoke, "so that we
can run multiple interpreters in parallel"), measured here (LiteRT 2.1, 2-core test machine shared
with other jobs, load 1.5-2.6, a 17 ms model): a pure-Python counter thread kept 45-74 % of its
solo rate beside an invoke loop (a GIL held through invoke would leave it the gaps between
invokes, ~20 %), and two thread streams gave 1.02-1.99x one stream (1.97x in the agent's own
streams=2 line) against 1.04-1.97x for two processes, round by round as the neighbours' load
came and went: no gain from processes to pay their second model load for.
Threads also share the child's memory figures and need no second model load in another
process. LiteRT's CompiledModel (gpu, npu) keeps the GIL through invoke, so its streams after the
first run in processes of their own (stream_processes.py; a session's holds_gil says which)."""
from __future__ import annotations

import threading
import time

import numpy as np

from ..common import AgentError, one_line
from ..agent.invoke_loop import time_invokes

SPIN_NS = 500000  # the last half millisecond before a frame's arrival is spun, not slept


def percentiles_ms(latencies_ns) -> dict:
    if not len(latencies_ns):
        return {"p50_ms": None, "p90_ms": None, "p99_ms": None}
    p50, p90, p99 = np.percentile(np.asarray(latencies_ns, dtype=np.float64) / 1e6, [50, 90, 99])
    return {"p50_ms": p50, "p90_ms": p90, "p99_ms": p99}


def wait_until(deadline_ns: int, clock=time.perf_counter_ns) -> None:
    """Sleep, then spin the last SPIN_NS, until `clock` reaches deadline_ns."""
    left = deadline_ns - clock()
    if left > SPIN_NS:
        time.sleep((left - SPIN_NS) / 1e9)
    while clock() < deadline_ns:
        pass


def frame_rate(invoke, fps: float, seconds: float) -> dict:
    """One "fps=R" scenario: its scenarios.csv fields, frames (frame, arrival_ms, start_ms,
    end_ms from the scenario's start; None for unserved frames) and its window."""
    clock = time.perf_counter_ns
    period = 1e9 / fps
    n_frames = max(1, int(np.ceil(seconds * fps - 1e-9)))
    t0_mono = time.monotonic_ns()
    start = clock()
    end_of_run = start + int(seconds * 1e9)
    frames, latencies, service = [], [], []
    missed, previous_end = 0, start
    for k in range(n_frames):
        arrival = start + int(round(k * period))
        begin = max(arrival, previous_end)
        if begin >= end_of_run:  # arrived, never started within the scenario: unserved
            frames.append((k + 1, (arrival - start) / 1e6, None, None))
            missed += 1
            continue
        if begin == arrival:
            wait_until(arrival)
        t_start = clock()
        invoke()
        t_end = clock()
        previous_end = t_end
        frames.append((k + 1, (arrival - start) / 1e6, (t_start - start) / 1e6,
                       (t_end - start) / 1e6))
        latencies.append(t_end - arrival)
        service.append(t_end - t_start)
        if t_end > arrival + period:
            missed += 1
    t1_mono = time.monotonic_ns()
    elapsed = max(previous_end, end_of_run) - start
    line = {"seconds": seconds, "target_fps": fps, "frames": n_frames,
            "achieved_fps": len(latencies) / (elapsed / 1e9), "missed_share": missed / n_frames,
            "service_p50_ms": float(np.median(service)) / 1e6 if service else None}
    line.update(percentiles_ms(latencies))
    return {"lines": [dict(line, stream=1)], "frames": frames, "window": [t0_mono, t1_mono],
            "count": len(latencies)}


def streams(sessions, seconds: float) -> dict:
    """One "streams=N" scenario: N sessions invoking back to back in N threads, released together
    by a barrier; one line per stream, throughput_ips for all of them together."""
    n = len(sessions)
    barrier = threading.Barrier(n + 1)
    samples = [[] for _ in range(n)]
    errors = []
    run_ns = int(seconds * 1e9)

    def worker(i):
        invoke = sessions[i].invoke
        barrier.wait()
        try:
            samples[i] = time_invokes(invoke, 1, run_ns, run_ns)
        except Exception as exc:  # reported as the scenario's error, not a dead thread's stack
            errors.append("stream %d: %s: %s" % (i + 1, type(exc).__name__, one_line(exc, 200)))

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    barrier.wait()
    t0_mono, start = time.monotonic_ns(), time.perf_counter_ns()
    for t in threads:
        t.join()
    elapsed, t1_mono = time.perf_counter_ns() - start, time.monotonic_ns()
    if errors:
        raise RuntimeError("; ".join(errors))
    return {"lines": stream_lines(samples, seconds, elapsed), "frames": [],
            "window": [t0_mono, t1_mono], "count": sum(len(s) for s in samples)}


def stream_lines(samples, seconds: float, elapsed_ns: int) -> list:
    """One scenarios.csv line per stream from its invoke times; throughput_ips is all streams'
    inferences over the scenario's elapsed time."""
    total = sum(len(s) for s in samples)
    lines = []
    for i, s in enumerate(samples):
        line = {"stream": i + 1, "seconds": seconds, "frames": len(s),
                "throughput_ips": total / (elapsed_ns / 1e9),
                "service_p50_ms": float(np.median(s)) / 1e6 if s else None}
        line.update(percentiles_ms(s))
        lines.append(line)
    return lines


def run_all(session, load, model_input, job: dict, send, in_processes=None) -> list:
    """Every scenario of the job, each sent as it ends; a failing scenario becomes an error line
    and a note (returned, for the row's `error`), and the others go on. in_processes(n, seconds)
    runs a streams scenario with streams 2..n in processes (stream_processes.run), for a session
    whose invoke holds the GIL."""
    notes = []
    seconds = float(job.get("scenario_seconds") or 10.0)
    plan = [("fps=%g" % r, r) for r in job.get("fps") or ()]
    if job.get("streams"):
        plan.append(("streams=%d" % job["streams"], None))
    for name, fps in plan:
        try:
            session.set_input(model_input)
            if fps is not None:
                out = frame_rate(session.invoke, fps, seconds)
            elif session.holds_gil and in_processes is not None:
                out = in_processes(job["streams"], seconds)
            else:
                extra = []
                for _ in range(job["streams"] - 1):
                    other = load()
                    other.set_input(model_input)
                    other.invoke()  # its first inference (allocation, caches) stays out
                    extra.append(other)
                out = streams([session] + extra, seconds)
                del extra
        except Exception as exc:
            why = one_line(exc, 300) if isinstance(exc, AgentError) else "%s: %s" % (
                type(exc).__name__, one_line(exc, 300))
            notes.append("scenario %s failed: %s" % (name, why))
            out = {"lines": [{"stream": 1, "status": "error", "error": why}], "frames": [],
                   "window": None, "count": 0}
        send(dict(out, type="scenario", scenario=name))
    return notes
