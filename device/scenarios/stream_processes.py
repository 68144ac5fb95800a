"""--streams N on an API whose invoke holds Python's GIL: LiteRT's CompiledModel (gpu, npu). There,
threads in one process take turns (benchmarks/streams_gil.py: a Python thread beside a
CompiledModel invoke waited out the whole invoke, and two thread streams gave 0.96x one on the
CPU), so stream 1 runs in the row's child and streams 2..N each in a process of its own (the
agent's --child with a stream job), each with its own model, all released at one CLOCK_MONOTONIC
instant. The Interpreter lets go of the GIL in invoke; its streams stay threads (scenarios.py).

The protocol, JSON lines: the row's child writes the job (with "stream_seconds") on a stream
process's stdin; the stream process loads its model, runs its first inference and answers
{"type": "ready"} (or {"type": "error", "error"}); once every stream is ready the row's child
writes {"start_ns": T} and closes stdin; each stream invokes back to back from T for the
scenario's seconds and answers {"type": "samples", "samples_ns": [...], "end_ns": ...}. A stream
process dies with the row's child (PR_SET_PDEATHSIG, timing.child_main)."""
from __future__ import annotations

import json
import subprocess
import sys
import time

from ..common import KillTimer, one_line
from ..agent.invoke_loop import time_invokes
from . import stream_lines, wait_until

START_LEAD_NS = 50000000  # between "all ready" and the common start: every stream reads it first
READY_TIMEOUT_S = 600.0   # a stream process's start-up and model load (a GPU compile included)
NOTE = ("streams after the first ran in processes of their own (CompiledModel holds the GIL "
        "in invoke)")


def _answer(proc, stream: int, expect: str, timeout_s: float) -> dict:
    """The stream process's next line, which must be of type `expect`; RuntimeError otherwise
    (its error, its death, or silence past timeout_s, after which it is killed)."""
    timer = KillTimer(proc, timeout_s)
    try:
        line = proc.stdout.readline()
    finally:
        timer.cancel()
    try:
        message = json.loads(line.decode()) if line else {}
    except ValueError:
        message = {}
    if message.get("type") == expect:
        return message
    if message.get("type") == "error":
        raise RuntimeError("stream %d: %s" % (stream, message.get("error")))
    if timer.fired:
        raise RuntimeError("stream %d: its process did not answer within %.0f s; killed"
                           % (stream, timeout_s))
    try:  # its stdout closed as it died: its exit status follows a moment later
        code = proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        raise RuntimeError("stream %d: its process sent %r instead of %s"
                           % (stream, one_line(line.decode("utf-8", "replace"), 100), expect))
    raise RuntimeError("stream %d: its process ended (status %s)" % (stream, code))


def run(session, job: dict, seconds: float, n: int, command: list) -> dict:
    """One "streams=N" scenario with streams 2..N in processes started by `command` (the agent's
    --child); the same lines as scenarios.streams, with NOTE in each line's `error`."""
    run_ns = int(seconds * 1e9)
    stream_job = (json.dumps(dict(job, stream_seconds=seconds)) + "\n").encode()
    procs = []
    try:
        for _ in range(n - 1):
            # stderr inherited: the runtime's log lines go where the row's own go (runtime.log)
            proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
            procs.append(proc)
            proc.stdin.write(stream_job)
            proc.stdin.flush()
        for i, proc in enumerate(procs, 2):
            _answer(proc, i, "ready", READY_TIMEOUT_S)
        start_ns = time.monotonic_ns() + START_LEAD_NS
        for proc in procs:
            proc.stdin.write((json.dumps({"start_ns": start_ns}) + "\n").encode())
            proc.stdin.close()
        wait_until(start_ns, time.monotonic_ns)
        samples = [time_invokes(session.invoke, 1, run_ns, run_ns)]
        ends = [time.monotonic_ns()]
        for i, proc in enumerate(procs, 2):
            answer = _answer(proc, i, "samples", seconds + READY_TIMEOUT_S)
            samples.append(answer["samples_ns"])
            ends.append(int(answer["end_ns"]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
    lines = [dict(line, error=getattr(session, "streams_note", NOTE))
             for line in stream_lines(samples, seconds, max(ends) - start_ns)]
    return {"lines": lines, "frames": [], "window": [start_ns, max(ends)],
            "count": sum(len(s) for s in samples)}


def serve(open_session, job: dict, send) -> None:
    """A stream process (job["stream_seconds"]): open_session() loads the model and runs its first
    inference; then the protocol above."""
    try:
        session = open_session()
    except Exception as exc:
        send({"type": "error", "error": "%s: %s" % (type(exc).__name__, one_line(exc, 300))})
        return
    send({"type": "ready"})
    line = sys.stdin.readline()
    if not line:
        return  # the row's child gave up on the scenario
    start_ns = int(json.loads(line)["start_ns"])
    wait_until(start_ns, time.monotonic_ns)
    run_ns = int(float(job["stream_seconds"]) * 1e9)
    samples = time_invokes(session.invoke, 1, run_ns, run_ns)
    send({"type": "samples", "samples_ns": samples, "end_ns": time.monotonic_ns()})
