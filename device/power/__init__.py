"""--power: the registry of power sources (power_sources.py) and the Meter that measures a row's
energy: before the child starts, an idle baseline (--power-idle-seconds) gives idle power and the
rate the source achieves here; the sampler (power_sampler.py) goes on reading while the child
runs, and the child's timed window (time.monotonic_ns, timing.measure_latency) is integrated
afterwards. Any window of the current row can be asked for while it runs (Meter.columns), which
is what soak and scenario intervals use.

A source that is absent never gives a number: with --power auto the energy columns stay empty
and the row's note says why; a source named explicitly that cannot be opened makes each row an
error row (like a compute unit that is missing: checked before the child starts, so it costs no
measuring time, the run goes on and a re-run with a working source retries those rows)."""
from __future__ import annotations

import textwrap
import time
from collections import OrderedDict

from ..common import AgentError
from .sampler import Sampler, energy_j, rate_hz, series, watts_lines
from .sources import Command, Ina3221, Nvml, Pi5Pmic, PowerUnavailable, Rapl

# In the order --power auto tries them.
POWER_SOURCES = OrderedDict((s.name, s) for s in (Pi5Pmic, Ina3221, Rapl, Nvml))
MIN_WINDOW_SAMPLES = 20   # the timed loop runs until its window holds this many samples
MIN_INSIDE = 2            # fewer readings inside a window than this: no figure, "too slow"
WINDOW_MARGIN = 1.15      # ... with this margin over what the idle baseline's rate promises
# The columns a window gives (results.csv's names; scenarios.csv and soak.csv take some of them).
POWER_COLUMNS = ("power_source", "power_rails", "power_samples", "power_hz", "power_window_s",
                 "idle_power_w", "avg_power_w", "energy_mj", "energy_above_idle_mj")


def power_help() -> str:
    entries = [("none", "no power measured (the default)"),
               ("auto", "the first of %s that works here; the row says which"
                % ", ".join(POWER_SOURCES))]
    entries += [(name, cls.needs) for name, cls in POWER_SOURCES.items()]
    entries.append(("cmd:CMD", Command.needs))
    return "\n".join(textwrap.fill(text, 96, initial_indent="%-10s" % name,
                                   subsequent_indent=" " * 10) for name, text in entries)


def check_power(spec) -> None:
    """AgentError for a --power value the agent does not know (the host checks it too)."""
    if spec is None or spec in ("auto", "none") or spec in POWER_SOURCES:
        return
    if spec.startswith("cmd:") and spec[4:].strip():
        return
    raise AgentError("unknown --power %r; choose from: auto, none, %s, cmd:COMMAND ('help' "
                     "lists them)" % (spec, ", ".join(POWER_SOURCES)))


def make_source(spec: str):
    if spec.startswith("cmd:"):
        return Command(spec[4:])
    return POWER_SOURCES[spec]()


def empty_columns(reason: str) -> dict:
    out = dict((c, None) for c in POWER_COLUMNS)
    out["power_error"] = reason
    return out


class Meter(object):
    """One per run (--power other than none). Per row: begin_row() (idle baseline), then
    min_seconds() for the child's job, columns() for any window while the sampler runs, timed()
    for the child's timed window, end_row() to stop and collect power_samples.csv's lines."""

    def __init__(self, spec: str, hz: float, idle_s: float):
        self.spec, self.hz, self.idle_s = spec, hz, idle_s
        self.chosen, self.absent = None, None   # the source's name, or why there is none
        self.row = None

    def resolve(self) -> str:
        """Picks the source (auto: the first that opens) and says what was found, one line."""
        if self.spec != "auto":
            self.chosen = self.spec
            source = make_source(self.spec)
            try:
                source.open()
            except PowerUnavailable as exc:
                return ("power: %s unavailable here: %s; every row becomes an error row (a re-run "
                        "retries them)" % (self.spec, exc))
            source.close()
            return "power: %s (board = %s)" % (self.spec, source.power_rails)
        reasons = []
        for name in POWER_SOURCES:
            try:
                source = make_source(name)
                source.open()
                source.close()
            except PowerUnavailable as exc:
                reasons.append("%s: %s" % (name, exc))
                continue
            self.chosen = name
            return "power: auto found %s (board = %s)" % (name, source.power_rails)
        self.absent = "no power source found (%s)" % "; ".join(reasons)
        return "power: auto: " + self.absent + "; energy columns stay empty"

    def begin_row(self) -> dict:
        """Opens the source, starts the sampler and takes the idle baseline. {"error": reason}
        when a named source cannot be opened (the row becomes an error row), else {"note":
        reason or None}; self.row holds the row's state either way."""
        self.row = None
        if self.chosen is None:
            return {"note": "power not measured: " + self.absent}
        source = make_source(self.chosen)
        try:
            source.open()
        except PowerUnavailable as exc:
            if self.spec == "auto":
                return {"note": "power not measured: %s unavailable: %s" % (self.chosen, exc)}
            return {"error": "power source %s unavailable: %s" % (self.chosen, exc)}
        sampler = Sampler(source, self.hz)
        row = self.row = {"source": source, "sampler": sampler, "windows": [], "idle_w": None,
                          "rate": None, "notes": []}
        i0 = time.monotonic_ns()
        sampler.start()
        time.sleep(self.idle_s)
        i1 = time.monotonic_ns()
        row["idle"] = (i0, i1)
        samples = list(sampler.samples)
        row["rate"] = rate_hz(samples, i0, i1)
        points = [p for p in series(samples) if i0 <= p[0] <= i1]
        if len(points) >= 2:
            joules = energy_j(points, points[0][0], points[-1][0], source.counter)
            row["idle_w"] = joules * 1e9 / (points[-1][0] - points[0][0])
        elif self.idle_s > 0:
            row["notes"].append("power: fewer than 2 readings in the %.1f s idle baseline (the "
                                "source is slow): no idle power" % self.idle_s)
        return {"note": None}

    def min_seconds(self, min_s: float, max_s: float) -> float:
        """The timed loop's --min-seconds raised so that its window holds MIN_WINDOW_SAMPLES at
        the rate the idle baseline achieved (the asked rate when it did not tell), within
        --max-seconds; the row's note says so when raised."""
        if self.row is None:
            return min_s
        rate = self.row["rate"] or self.hz
        need = MIN_WINDOW_SAMPLES / rate * WINDOW_MARGIN
        if need <= min_s:
            return min_s
        held = min(need, max_s)
        self.row["notes"].append("power: timed loop held >= %.1f s so that its window holds >= %d "
                                 "power samples at %.1f Hz%s" % (
                                     held, MIN_WINDOW_SAMPLES, rate,
                                     " (capped by --max-seconds)" if held < need else ""))
        return held

    def columns(self, t0_ns: int, t1_ns: int, count: int, phase=None) -> dict:
        """The power columns of [t0_ns, t1_ns] (time.monotonic_ns) holding `count` inferences; any
        window of the current row, also while the child still runs. `phase` labels the window's
        samples in power_samples.csv. power_error (not a CSV column) says why values are empty,
        or notes a window with fewer than MIN_WINDOW_SAMPLES."""
        row = self.row
        if row is None:
            return empty_columns("power not measured: " + (self.absent or "no source this row"))
        if phase and phase != "timed":
            # Asked as the window ends (a soak interval, a scenario): one reading past its end,
            # so its right edge is interpolated, not cut short. timed() waits for its own.
            self._wait_past(t1_ns)
        if phase:
            row["windows"].append((phase, t0_ns, t1_ns))
        source, samples = row["source"], list(row["sampler"].samples)
        window_s = (t1_ns - t0_ns) / 1e9
        failed = [m for t, m in list(row["sampler"].errors) if t0_ns - row["sampler"].period_ns
                  <= t <= t1_ns]
        if failed:
            return empty_columns("power source %s failed during the window: %s"
                                 % (source.name, failed[0]))
        joules = energy_j(series(samples), t0_ns, t1_ns, source.counter)
        inside = sum(1 for t, _ in samples if t0_ns <= t <= t1_ns)
        if joules is None or inside < MIN_INSIDE:
            return empty_columns("power source %s too slow for the window: %d reading(s) inside "
                                 "the %.2f s window (at least %d, and one on each side, needed)"
                                 % (source.name, inside, window_s, MIN_INSIDE))
        hz = rate_hz(samples, t0_ns, t1_ns) or row["rate"]
        out = {"power_source": source.name, "power_rails": source.power_rails,
               "power_samples": inside, "power_hz": hz, "power_window_s": window_s,
               "idle_power_w": row["idle_w"], "avg_power_w": joules / window_s,
               "energy_mj": joules * 1e3 / count if count else None,
               "energy_above_idle_mj": None, "power_error": None}
        if count and row["idle_w"] is not None:
            out["energy_above_idle_mj"] = (joules - row["idle_w"] * window_s) * 1e3 / count
        if inside < MIN_WINDOW_SAMPLES:
            out["power_error"] = ("power: only %d samples in the %.2f s window (fewer than %d: "
                                  "the source is slow here, or --max-seconds cut the window)"
                                  % (inside, window_s, MIN_WINDOW_SAMPLES))
        return out

    def timed(self, window, count: int) -> tuple:
        """(columns, notes) of the row's timed window (the child's timed_window_ns, or None when
        the child failed); the sampler goes on until end_row(), so a soak or scenario that
        follows can still ask for its own windows."""
        row = self.row
        if row is None:
            return {}, []
        cols = {}
        if window:
            t0, t1 = int(window[0]), int(window[1])
            # One reading after the window, so its right edge is interpolated, not guessed.
            self._wait_past(t1)
            cols = self.columns(t0, t1, count, "timed")
            row["t0"] = t0
        notes = list(row["notes"])
        if cols.get("power_error"):
            notes.append(cols["power_error"])
        return cols, notes

    def _wait_past(self, t_ns: int) -> None:
        row = self.row
        period = max(1.0 / (row["rate"] or self.hz), row["sampler"].slowest_read_s)
        row["sampler"].wait_past(t_ns, min(max(3 * period, 0.5), 15.0))

    def end_row(self) -> list:
        """Stops the sampler and closes the source; the readings of the row's labelled windows
        as (phase, t_ns, rail, watts) for power_samples.csv (none when there was no timed
        window: its start is the time origin of t_s)."""
        row = self.row
        if row is None:
            return []
        row["sampler"].stop()
        row["source"].close()
        return self._lines() if "t0" in row else []

    def _lines(self) -> list:
        """The readings of every labelled window (idle, timed, soak/scenario ones), with the
        readings just outside each window that its edges were interpolated from."""
        row = self.row
        samples = list(row["sampler"].samples)
        times = [t for t, _ in samples]
        phase_of = {}
        for phase, a, b in [("idle",) + tuple(row["idle"])] + row["windows"]:
            inside = [t for t in times if a <= t <= b]
            if phase != "idle":
                inside = [t for t in times if t < a][-1:] + inside + [t for t in times if t > b][:1]
            for t in inside:
                phase_of.setdefault(t, phase)
        # A counter's watts need the reading before each kept one: computed over all readings.
        lines = watts_lines(samples, row["source"].counter)
        return [(phase_of[t], t, rail, w) for t, rail, w in lines if t in phase_of]
