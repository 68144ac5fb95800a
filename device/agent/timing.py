"""The child: one model on one compute unit at one thread count, in a fresh process so that its
memory figures are that model's alone. The parent writes one job (JSON) to the child's stdin; the
child is a re-exec of the agent itself (the archive, sys.argv[0]) with --child.

The child answers in JSON lines on its original stdout (the result fd), read by the parent line
by line as they come: {"type": "measured", "result": ...} once the row's own timing (and accuracy)
is done and more work follows in the same child, then progress lines of that work
({"type": "scenario", ...}, {"type": "soak", ...}: scenarios.py, soak.py), and last
{"type": "result", "result": ...}. A child that dies after "measured" still hands on the row's
timing; soak intervals reach the parent (and soak.csv) as each one ends.

The steps are functions that fill `result` as they go, so a failure late in a run still reports
what was measured, and so another module can wrap one (e.g. read a power meter around
measure_latency) without touching the others."""
from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import zipfile

import numpy as np

from . import accuracy, op_profile, ort_placement
from .. import scenarios
from ..scenarios import soak, stream_processes
from . import environment as sensors
from ..common import AgentError, KillTimer, one_line, utc_now
from .invoke_loop import time_invokes
from ..metrics import image_shape, to_model_input
from ..runtimes import import_runtime
from .sessions import SESSIONS, AcceleratorStart

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


def start_runtime(job: dict, result: dict):
    """The start-up a row pays before its model, timed apart (accelerator_init_ms): on the
    Interpreter and ONNX Runtime, importing the runtime (runtime_version: what was imported); on
    CompiledModel, LiteRT's environment and a trivial model on the accelerator. Returns what
    SESSIONS[api] takes with the job."""
    t0 = time.perf_counter_ns()
    if job["unit"]["api"] != "compiled_model":
        started, result["runtime_version"] = import_runtime(job["runtime"])
    else:
        started = AcceleratorStart(job)
        if started.note:
            result["note"] = started.note
    result["accelerator_init_ms"] = (time.perf_counter_ns() - t0) / 1e6
    return started


def load_session(job: dict, result: dict, started):
    """Load the model on the job's compute unit: load_ms (cold: the first load in this child,
    after the start-up) and the RSS around it."""
    result["rss_before_mb"] = memory_mb()[0]
    t0 = time.perf_counter_ns()
    session = SESSIONS[job["unit"]["api"]](job, started)
    result["load_ms"] = (time.perf_counter_ns() - t0) / 1e6
    result["rss_after_load_mb"] = memory_mb()[0]
    result.update(session.info)
    card = job["input"]
    layout = card.get("layout") or "NHWC"
    # session.shape is the images' N×H×W×C; the card and the message speak the model's layout.
    if card.get("shape") and image_shape(card["shape"], layout) != session.shape:
        raise AgentError("manifest says input shape %s%s but the model's input is %s"
                         % (list(card["shape"]), "" if layout == "NHWC" else " (%s)" % layout,
                            getattr(session, "model_shape", session.shape)))
    return session


def warm_load(job: dict, result: dict, started, cold: list):
    """The same model loaded a second time in this child (warm_load_ms): what a load costs once
    the process, the runtime and the accelerator are up and the file is in the page cache, so
    not depending on where the model sits in the plan. `cold` holds the only reference to the
    cold session, released here first: beside a live cold session the load would be a second
    copy's (twice the memory, every page of it new to the process; on a fresh VM new to the
    hypervisor too: benchmarks/warm_load.py), and a delegate that allows one instance would
    refuse it. The warm session carries on; None when the load fails (a note says why)."""
    del cold[:]
    gc.collect()
    t0 = time.perf_counter_ns()
    try:
        session = SESSIONS[job["unit"]["api"]](job, started)
    except Exception as exc:
        note = "warm load failed: %s" % one_line(exc, 300)
        result["note"] = "; ".join(n for n in (result.get("note"), note) if n)
        return None
    result["warm_load_ms"] = (time.perf_counter_ns() - t0) / 1e6
    return session


def model_input(session, job: dict):
    """The one input the timing loops feed: the first test image (random pixels without a test
    set, or when its images do not fit the model), normalised and quantized for the model."""
    shape = session.shape
    images = None
    if job.get("testset"):
        with np.load(job["testset"], allow_pickle=False) as data:
            images = data["images"][:1]
    if images is None or list(images.shape[1:]) != shape[1:]:
        images = np.random.default_rng(0).integers(0, 256, size=[1] + shape[1:], dtype=np.uint8)
    return to_model_input(images, job["input"].get("normalization"), session.input_dtype,
                          *session.in_q)


def measure_latency(session, job: dict, result: dict) -> None:
    """First inference, warm-up, the timed loop, then the peak RSS (before the test set is
    loaded: the model's peak). The input is set once before."""
    session.set_input(model_input(session, job))
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


def child_run(job: dict, result: dict, send) -> None:
    started = start_runtime(job, result)
    session = load_session(job, result, started)
    measure_latency(session, job, result)
    # Accuracy on the timed session, before the warm load: a failing warm load cannot take it.
    if job.get("accuracy"):
        accuracy.measure_logits(session, job, result)
    cold = [session]
    del session  # the cold session's last reference is in `cold`, which warm_load empties
    session = warm_load(job, result, started, cold)
    if job["unit"]["api"] == "inference_session":
        # Where ORT placed the nodes: a profiled run on a session of its own (a GPU unit only)
        ort_placement.measure(job, started, result, lambda s: model_input(s, job))
    if job.get("profile_ops"):
        # After the timed loop, on a session of its own: profiling slows the model down.
        op_profile.measure(job, started, result, lambda s: model_input(s, job))
    result["status"] = "ok"
    if not (job.get("fps") or job.get("streams") or job.get("soak")):
        return
    # What follows may fail or kill the child; the row's timing is safe with the parent now.
    send({"type": "measured", "result": result})
    fresh = lambda: load_session(job, {}, started)  # noqa: E731  (another interpreter, for --streams)
    if session is None:
        try:
            session = fresh()
        except Exception as exc:
            note = "scenarios and soak not run: the model did not load again: %s" % one_line(exc)
            result["error"] = "; ".join(n for n in (result.get("error"), note) if n)
            return
    inp = model_input(session, job)

    def in_processes(n: int, seconds: float) -> dict:
        return stream_processes.run(session, job, seconds, n, child_command())
    notes = scenarios.run_all(session, fresh, inp, job, send, in_processes)
    session.set_input(inp)
    notes += soak.run(session, job, send)
    if notes:
        result["error"] = "; ".join(n for n in [result.get("error")] + notes if n)


def stream_session(job: dict):
    """A stream process's model: the row's start-up and load, its input, its first inference."""
    session = load_session(job, {}, start_runtime(job, {}))
    session.set_input(model_input(session, job))
    session.invoke()
    return session


def child_main() -> int:
    """--child: read one job (JSON) on stdin, write JSON lines on the original stdout (the
    result fd; see the module's docstring). Anything the interpreter prints goes to stderr, so
    it cannot corrupt the result."""
    try:  # die with the parent (Linux): a SIGKILLed agent leaves no orphan measuring on
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    job = json.loads(sys.stdin.readline())  # one line: a stream process reads on after it
    sensors.set_root(job.get("sysfs_root") or "/")  # the soak reads the sensors in here
    result_fd = os.dup(1)
    os.dup2(2, 1)
    channel = os.fdopen(result_fd, "w")

    def send(message: dict) -> None:
        channel.write(json.dumps(message) + "\n")
        channel.flush()

    if job.get("stream_seconds"):  # one stream of a --streams scenario (stream_processes.py)
        stream_processes.serve(lambda: stream_session(job), job, send)
        channel.close()
        return 0
    result = {"status": "error"}
    try:
        child_run(job, result, send)
    except AgentError as exc:
        result.update(status="error", error=one_line(exc))
    except Exception as exc:
        result.update(status="error", error="%s: %s" % (type(exc).__name__, one_line(exc)))
    send({"type": "result", "result": result})
    channel.close()
    return 0


def child_command() -> list:
    """How to start a child: the archive we run from (python3 agent.pyz), else the installed
    package (python -m edgebench.device, on the host)."""
    me = os.path.abspath(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if os.path.isfile(me) and zipfile.is_zipfile(me):
        return [sys.executable, me, "--child"]
    return [sys.executable, "-m", "edgebench.device", "--child"]


def run_child(job: dict, log_path: str, title: str, on_message=None,
              timeout_s: float = CHILD_TIMEOUT_S) -> dict:
    """One child per row; its result. Progress lines go to on_message(message) as they arrive.
    What the runtime prints (LiteRT's GPU path logs dozens of lines per model) goes to a
    temporary file (read after the child ends, so a chatty runtime can never block it on a full
    pipe), then to OUT/runtime.log under a header naming the row, and to stderr only when the row
    failed."""
    err_file = tempfile.TemporaryFile()
    proc = subprocess.Popen(child_command(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=err_file)
    timer = KillTimer(proc, timeout_s)
    result = measured = None
    try:
        proc.stdin.write(json.dumps(job).encode())
        proc.stdin.close()
    except OSError:  # the child died before reading its job: its stderr says why
        pass
    for line in proc.stdout:
        try:
            message = json.loads(line.decode())
        except ValueError:
            continue  # a cut line from a dying child
        kind = message.get("type")
        if kind == "result":
            result = message["result"]
        elif kind == "measured":
            measured = message["result"]
        elif on_message is not None:
            on_message(message)
    proc.wait()
    timer.cancel()
    timed_out = timer.fired and result is None
    err_file.seek(0)
    err_text = err_file.read().decode("utf-8", "replace").strip()
    err_file.close()
    with open(log_path, "a") as fh:
        fh.write("=== %s %s\n%s\n" % (utc_now(), title, err_text))
    if err_text and (result or {}).get("status") != "ok":
        sys.stderr.write("\n".join(err_text.splitlines()[-20:]) + "\n")
    if result is not None:
        return result
    last = err_text.splitlines()[-1] if err_text else ""
    if timed_out:
        why = "no result within %d s; child killed" % timeout_s
    elif proc.returncode < 0:
        why = "child killed by signal %s" % signal.Signals(-proc.returncode).name
    else:
        why = "child exited with status %d" % proc.returncode
    why = one_line(why + (": " + last if last else ""))
    if measured is not None:
        # The row was measured before the child died (in a scenario or the soak): keep it.
        measured["error"] = "; ".join(n for n in (measured.get("error"), "after the timed loop: "
                                                  + why) if n)
        return measured
    return {"status": "error", "error": why}
