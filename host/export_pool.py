"""`bench-host run`'s export stages in worker processes, so that a model converts while the next
one trains: training keeps both cores of a small machine only part of the time, and a conversion
(onnx2tf, the TFLite converter, verification) mostly runs on one.

Processes, not threads: onnx2tf and the exporter are Python-heavy (a thread would fight training
for the GIL), and a conversion sends file descriptor 2 to host.log while it runs (native_log),
which in a thread would swallow training's own output. The worker's log records (TensorFlow's
native lines) come back with its result and are logged here, into the run's host.log."""
from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Callable

from edgebench.host.errors import UserError

# Whose records a worker sends back (host/liblog.py's LIBRARIES that a conversion writes to).
_FORWARDED = ("edgebench.native",)


def worker_count(models: int) -> int:
    """Export workers for `models` models: none (export in this process, one after the other)
    on a single CPU or for a single model, where a worker only adds its imports."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    return min(2, cpus, models) if models > 1 and cpus > 1 else 0


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records: list = []

    def emit(self, record):
        self.records.append((record.name, record.levelno, record.getMessage()))


# One thread each for TensorFlow's two pools and for OpenMP (torch's exporter and reference
# logits) in a worker and in the converter children it starts: the workers already run beside
# training and each other, and more threads only wait for one another. Measured on the 2-core
# VM (benchmarks/README.md#pipeline): the default run 127 -> 120 s, 6 CPU-s less.
_WORKER_THREADS = {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
                   "OMP_NUM_THREADS": "1"}


def _worker_init() -> None:
    # Ctrl-C reaches the whole process group: the parent stops the workers itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.environ.update(_WORKER_THREADS)  # before the worker imports TensorFlow or torch
    # A spawned worker ends through the interpreter's whole teardown, which with TensorFlow and
    # torch loaded takes ~1.7 s, and the run waits for it before its bundle. Nothing is left to
    # tear down: each stage's files are written and closed, its result already sent. Registered
    # first, this runs after every other exit handler; multiprocessing's own finalizers ran before.
    atexit.register(_exit_now)


def _exit_now() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(0)


def _call(fn: Callable, args: tuple) -> tuple:
    """fn(*args) in a worker: (result, log records, seconds it took); an exception travels with
    its records."""
    from edgebench.host import liblog

    start = time.perf_counter()
    liblog.quiet()
    collect = _Collect()
    for name in _FORWARDED:
        logging.getLogger(name).addHandler(collect)
    try:
        result = fn(*args)
        return result, collect.records, time.perf_counter() - start
    except BaseException as exc:
        exc.edgebench_records = collect.records
        raise
    finally:  # a worker runs several stages: each collects only its own lines
        for name in _FORWARDED:
            logging.getLogger(name).removeHandler(collect)


@dataclass
class _Job:
    name: str  # the stage's label, for the progress line and errors
    done: Callable  # done(result): record the stage and keep what it handed over


class ExportPool:
    """Runs submitted stages in `workers` processes; `finished()` hands back the ones done (in
    the order they finish) as they finish. A worker that dies (a native crash) fails its stage
    with a one-line error, like any stage that raises."""

    def __init__(self, workers: int):
        import multiprocessing

        # spawn: the parent has imported torch (and may be training with its threads): forking
        # that state is unsafe.
        self.pool = ProcessPoolExecutor(max_workers=workers, initializer=_worker_init,
                                        mp_context=multiprocessing.get_context("spawn"))
        self.jobs: dict = {}

    def submit(self, name: str, fn: Callable, args: tuple, done: Callable) -> None:
        self.jobs[self.pool.submit(_call, fn, args)] = _Job(name, done)

    def finished(self, block: bool = False) -> list:
        """[(name, seconds of its own work)] of the stages that ended since the last call (each
        one's `done` called first); with `block`, waits until every submitted stage has ended."""
        out = []
        while self.jobs:
            ready, _ = wait(list(self.jobs), timeout=None if block else 0,
                            return_when=FIRST_COMPLETED)
            if not ready:
                break
            for future in [f for f in self.jobs if f in ready]:  # in the order submitted
                job = self.jobs.pop(future)
                out.append((job.name, self._finish(job, future)))
        return out

    def _finish(self, job: _Job, future) -> float:
        try:
            result, records, seconds = future.result()
        except BrokenProcessPool:
            raise UserError(f"{job.name}: the conversion process died (a crash in native code); "
                            "rerun to resume, the stages done so far are kept") from None
        except BaseException as exc:
            _log(getattr(exc, "edgebench_records", []))
            raise
        _log(records)
        job.done(result)
        return seconds

    def close(self, abort: bool = False) -> None:
        """Wait for the workers to exit; with `abort` (an error or Ctrl-C here), stop them."""
        if abort:
            for process in list(getattr(self.pool, "_processes", {}).values()):
                process.terminate()  # a conversion can take minutes: don't wait for it
        self.pool.shutdown(wait=True, cancel_futures=abort)


def _log(records: list) -> None:
    for name, level, message in records:
        logging.getLogger(name).log(level, "%s", message)
