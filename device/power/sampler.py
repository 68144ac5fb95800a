"""The sampler: a thread in the PARENT agent process that reads a power source at a fixed rate
(the child that times the model is another process, so the thread takes no GIL from its loop),
and the arithmetic that turns its samples into energy over a window of CLOCK_MONOTONIC time
(time.monotonic_ns(), which the child's timed_window_ns also uses: one clock for both processes
on Linux)."""
from __future__ import annotations

import threading
import time

from ..common import one_line


class Sampler(threading.Thread):
    """Reads source.read() every 1/hz s until stop(). samples: [(t_ns, {rail: value})], t the
    midpoint of the read (a slow read, e.g. a command, is stamped at its middle); errors:
    [(t_ns, message)] of failed reads. A read that takes longer than the period delays the next
    one (the achieved rate says so) instead of queueing reads."""

    def __init__(self, source, hz: float):
        threading.Thread.__init__(self, name="edgebench-power", daemon=True)
        self.source, self.period_ns = source, int(1e9 / hz)
        self.samples, self.errors = [], []
        self.slowest_read_s = 0.0  # the longest read so far: how long a next reading may take
        self._halt = threading.Event()

    def run(self) -> None:
        clock = time.monotonic_ns
        due = clock()
        while not self._halt.is_set():
            t0 = clock()
            try:
                values = self.source.read()
            except Exception as exc:
                self.errors.append((t0, one_line(exc, 200)))
            else:
                self.samples.append(((t0 + clock()) // 2, values))
            now = clock()
            self.slowest_read_s = max(self.slowest_read_s, (now - t0) / 1e9)
            due += self.period_ns
            if due < now:  # fell behind: next read now, on a fresh schedule
                due = now
            self._halt.wait((due - now) / 1e9)

    def stop(self, timeout: float = 15.0) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(timeout)

    def wait_past(self, t_ns: int, timeout_s: float) -> bool:
        """Wait (at most timeout_s) until a sample stamped at or after t_ns exists: the window's
        right edge is interpolated between the samples around it."""
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            if self.samples and self.samples[-1][0] >= t_ns:
                return True
            if not self.is_alive():
                break
            time.sleep(0.01)
        return bool(self.samples) and self.samples[-1][0] >= t_ns


def series(samples, rail: str = "board") -> list:
    return [(t, v[rail]) for t, v in samples if rail in v]


def value_at(points, t: int) -> float:
    """Linear interpolation of a (t, value) series at t; points must bracket t."""
    for (ta, va), (tb, vb) in zip(points, points[1:]):
        if ta <= t <= tb:
            return va if tb == ta else va + (vb - va) * (t - ta) / float(tb - ta)
    raise ValueError("time outside the samples")


def energy_j(points, t0: int, t1: int, counter: bool):
    """Joules between t0 and t1 (ns). A power series (W): the trapezoid over the samples inside,
    with the edges interpolated from the samples around them. A counter series (cumulative J):
    the difference of the counter interpolated at both edges. None unless the samples bracket
    the window."""
    if len(points) < 2 or points[0][0] > t0 or points[-1][0] < t1 or t1 <= t0:
        return None
    if counter:
        return value_at(points, t1) - value_at(points, t0)
    inner = [(t, v) for t, v in points if t0 < t < t1]
    edge = [(t0, value_at(points, t0))] + inner + [(t1, value_at(points, t1))]
    return sum((tb - ta) * (va + vb) / 2.0 for (ta, va), (tb, vb) in zip(edge, edge[1:])) / 1e9


def rate_hz(samples, t0: int, t1: int):
    """The achieved rate inside [t0, t1]: samples there over the time they span."""
    inside = [t for t, _ in samples if t0 <= t <= t1]
    if len(inside) < 2 or inside[-1] == inside[0]:
        return None
    return (len(inside) - 1) * 1e9 / (inside[-1] - inside[0])


def watts_lines(samples, counter: bool) -> list:
    """(t_ns, rail, watts) of every sample and rail; a counter source's watts are the mean power
    since its previous reading (its first reading has none)."""
    out = []
    previous = None
    for t, values in samples:
        for rail in sorted(values):
            if not counter:
                out.append((t, rail, values[rail]))
            elif previous is not None and t > previous[0] and rail in previous[1]:
                out.append((t, rail, (values[rail] - previous[1][rail]) * 1e9 / (t - previous[0])))
        previous = (t, values)
    return out
