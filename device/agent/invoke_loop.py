"""The one clocked invoke loop: the row's timed loop (timing.py), each soak interval (soak.py) and
each stream (scenarios.py) time their invokes with it, so only invoke() ever sits between two
clock reads, whichever of them measures."""
from __future__ import annotations

import time


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
