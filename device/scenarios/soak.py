"""The soak (--soak SECONDS): after the row's timed loop, in the same child, the model runs back to
back and every --soak-interval seconds one {"type": "soak", ...} line goes to the parent
(timing.py's protocol), which writes it to soak.csv at once (result_store.ResultStore.write_soak), so a
killed agent keeps every interval that ended. An interval carries its count, p50/p90, the hottest
thermal zone, cpu0's frequency and the throttle flags read as it ends, and its window
[t0_ns, t1_ns] in time.monotonic_ns() for the parent's power readings.

Resume: the parent passes where an interrupted soak of the same row stopped (soak_first_interval,
soak_offset_s) and only the seconds left (soak_seconds); intervals are numbered on and their
t_start_s/t_end_s go on from the offset, so the curve reads as one soak (the gap while the agent
was down, and the row's re-measured timed loop, are not in it)."""
from __future__ import annotations

import time

import numpy as np

from ..agent import environment as sensors
from ..common import one_line
from ..agent.invoke_loop import time_invokes


def interval_record(number: int, t_start_s: float, t_end_s: float, samples_ns, window) -> dict:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90 = np.percentile(ms, [50, 90]) if len(ms) else (None, None)
    flags = sensors.throttled_flags()
    return {"type": "soak", "interval": number, "t_start_s": t_start_s, "t_end_s": t_end_s,
            "count": len(ms), "p50_ms": p50, "p90_ms": p90, "temp_c": sensors.soc_temp_c(),
            "freq_mhz": sensors.freq_mhz(),
            "throttled_flags": None if flags is None else hex(flags), "window": window}


def soak_loop(invoke, seconds: float, interval_s: float, first: int, offset_s: float,
              send) -> int:
    """Invoke back to back for `seconds`, one line per interval (the last may be shorter);
    returns the number of intervals sent. Sensors are read between intervals, outside the
    clocked invokes."""
    clock = time.perf_counter_ns
    total_ns, step_ns = int(seconds * 1e9), int(interval_s * 1e9)
    start = clock()
    number, begin_ns, sent = first, 0, 0
    while begin_ns < total_ns:
        end_ns = min(begin_ns + step_ns, total_ns)
        t0_mono = time.monotonic_ns()
        left_ns = end_ns - (clock() - start)
        samples = time_invokes(invoke, 1, left_ns, left_ns)
        t1_mono = time.monotonic_ns()
        real_end_ns = clock() - start  # an invoke longer than the interval stretches it: say so
        send(interval_record(number, offset_s + begin_ns / 1e9, offset_s + real_end_ns / 1e9,
                             samples, [t0_mono, t1_mono]))
        number, sent, begin_ns = number + 1, sent + 1, real_end_ns
    return sent


def run(session, job: dict, send) -> list:
    """The job's soak, if any; notes for the row's `error` (a soak that failed part way keeps the
    intervals it sent)."""
    seconds = float(job.get("soak") or 0.0)
    if seconds <= 0:
        return []
    try:
        soak_loop(session.invoke, seconds, float(job.get("soak_interval") or 10.0),
                  int(job.get("soak_first_interval") or 1), float(job.get("soak_offset_s") or 0.0),
                  send)
    except Exception as exc:
        return ["soak failed: %s: %s" % (type(exc).__name__, one_line(exc, 300))]
    return []
