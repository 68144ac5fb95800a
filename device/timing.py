"""The child: one model on one compute unit at one thread count, in a fresh process so that its
memory figures are that model's alone. The parent writes one job (JSON) to the child's stdin and
reads one result (JSON) from its stdout; the child is a re-exec of the agent itself (the archive,
sys.argv[0]) with --child.

The steps are functions that fill `result` as they go, so a failure late in a run still reports
what was measured, and so another module can wrap one (e.g. read a power meter around
measure_latency) without touching the others."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np

from . import accuracy
from .common import AgentError, one_line, utc_now
from .metrics import to_model_input
from .runtimes import import_runtime
from .sessions import SESSIONS

CHILD_TIMEOUT_S = 3600  # a hung child becomes an error row instead of a hung run


def memory_mb():
    """(current RSS, peak RSS) of this process in MB: VmRSS/VmHWM, else psutil / ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
        return (int(status["VmRSS"].split()[0]) / 1024.0, int(status["VmHWM"].split()[0]) / 1024.0)
    except (OSError, KeyError, ValueError):
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak / 1024.0 if sys.platform.startswith("linux") else peak / 2.0 ** 20
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2.0 ** 20, peak
    except Exception:
        return None, peak


def time_invokes(invoke, min_runs: int, min_ns: int, max_ns: int) -> list:
    """Invoke until both min_runs and min_ns are reached, or max_ns has passed. Only invoke()
    sits between the two clock reads; the loop's own bookkeeping is outside them."""
    clock = time.perf_counter_ns
    samples = []
    add = samples.append
    start = clock()
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        add(t1 - t0)
        if (len(samples) >= min_runs and t1 - start >= min_ns) or t1 - start >= max_ns:
            return samples


def load_session(job: dict, result: dict):
    """Load the model on the job's compute unit: load_ms and the RSS around it."""
    api = job["unit"]["api"]
    module = import_runtime(job["runtime"])[0] if api == "interpreter" else None
    result["rss_before_mb"] = memory_mb()[0]
    t0 = time.perf_counter_ns()
    session = SESSIONS[api](job, module)
    result["load_ms"] = (time.perf_counter_ns() - t0) / 1e6
    result["rss_after_load_mb"] = memory_mb()[0]
    result.update(session.info)
    card = job["input"]
    if card.get("shape") and [int(s) for s in card["shape"]] != session.shape:
        raise AgentError("manifest says input shape %s but the model's input is %s"
                         % (list(card["shape"]), session.shape))
    return session


def measure_latency(session, job: dict, result: dict) -> None:
    """First inference, warm-up, the timed loop, then the peak RSS (before the test set is
    loaded: the model's peak). The input is one test image (random pixels without a test set),
    set once before."""
    shape = session.shape
    images = None
    if job.get("testset"):
        with np.load(job["testset"], allow_pickle=False) as data:
            images = data["images"][:1]
    if images is None or list(images.shape[1:]) != shape[1:]:
        images = np.random.default_rng(0).integers(0, 256, size=[1] + shape[1:], dtype=np.uint8)
    session.set_input(to_model_input(images, job["input"].get("normalization"),
                                     session.input_dtype, *session.in_q))
    invoke = session.invoke
    t0 = time.perf_counter_ns()
    invoke()
    result["first_inference_ms"] = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(job["warmup"]):
        invoke()
    result["warmup_runs"] = job["warmup"]
    # The timed window on CLOCK_MONOTONIC, which the parent's power sampler stamps its readings
    # with (one clock across processes on Linux): the parent integrates power over exactly it.
    w0 = time.monotonic_ns()
    result["samples_ns"] = time_invokes(invoke, job["min_runs"], int(job["min_seconds"] * 1e9),
                                        int(job["max_seconds"] * 1e9))
    result["timed_window_ns"] = [w0, time.monotonic_ns()]
    result["peak_rss_mb"] = memory_mb()[1]


def child_run(job: dict, result: dict) -> None:
    session = load_session(job, result)
    measure_latency(session, job, result)
    if job.get("accuracy"):
        accuracy.measure_logits(session, job, result)
    result["status"] = "ok"


def child_main() -> int:
    """--child: read one job (JSON) on stdin, write one result (JSON) on the original stdout.
    Anything the interpreter prints goes to stderr, so it cannot corrupt the result."""
    try:  # die with the parent (Linux): a SIGKILLed agent leaves no orphan measuring on
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    job = json.loads(sys.stdin.read())
    result_fd = os.dup(1)
    os.dup2(2, 1)
    result = {"status": "error"}
    try:
        child_run(job, result)
    except AgentError as exc:
        result.update(status="error", error=one_line(exc))
    except Exception as exc:
        result.update(status="error", error="%s: %s" % (type(exc).__name__, one_line(exc)))
    with os.fdopen(result_fd, "w") as fh:
        json.dump(result, fh)
    return 0


def child_command() -> list:
    """How to start a child: the archive we run from (python3 agent.pyz), else the installed
    package (python -m edgebench.device, on the host)."""
    me = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.isfile(me) and zipfile.is_zipfile(me):
        return [sys.executable, me, "--child"]
    return [sys.executable, "-m", __package__, "--child"]


def run_child(job: dict, log_path: str, title: str) -> dict:
    """One child per row. What the runtime prints (LiteRT's GPU path logs dozens of lines per
    model) goes to OUT/runtime.log under a header naming the row, and to stderr only when the
    row failed."""
    proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(json.dumps(job).encode(), timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"status": "error", "error": "no result within %d s; child killed" % CHILD_TIMEOUT_S}
    err_text = err.decode("utf-8", "replace").strip()
    with open(log_path, "a") as fh:
        fh.write("=== %s %s\n%s\n" % (utc_now(), title, err_text))
    try:
        result = json.loads(out.decode())
    except ValueError:
        result = None
    if err_text and (result or {}).get("status") != "ok":
        sys.stderr.write("\n".join(err_text.splitlines()[-20:]) + "\n")
    if result is not None:
        return result
    last = err_text.splitlines()[-1] if err_text else ""
    if proc.returncode < 0:
        why = "child killed by signal %s" % signal.Signals(-proc.returncode).name
    else:
        why = "child exited with status %d" % proc.returncode
    return {"status": "error", "error": one_line(why + (": " + last if last else ""))}
