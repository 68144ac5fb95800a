"""The agent's options as one type. The host builds an AgentOptions once (from its command line
or a profile), checks it here and turns it into the agent's argv with to_argv(); the agent checks
what it parsed with the same check(). A field left None is the agent's default."""
from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Optional, Tuple

from .common import AgentError
from .power import check_power
from .runtimes import check_runtime
from .units import parse_units


@dataclass(frozen=True)
class AgentOptions:
    threads: Optional[str] = None          # "1,2,4"
    accelerators: Optional[str] = None     # "cpu,gpu"
    delegate: Tuple[str, ...] = ()         # LIB[:key=value;...], each its own compute unit
    rounds: Optional[int] = None
    warmup: Optional[int] = None
    min_runs: Optional[int] = None
    min_seconds: Optional[float] = None
    max_seconds: Optional[float] = None
    models: Optional[str] = None           # model names, comma-separated
    runtime: Optional[str] = None
    xnnpack: Optional[str] = None          # "on" | "off"
    robustness_images: Optional[int] = None
    cooldown_temp: Optional[float] = None
    cooldown_timeout: Optional[float] = None
    power: Optional[str] = None            # auto|none|SOURCE|cmd:COMMAND (device/power)
    power_hz: Optional[float] = None       # sampler rate (agent default 10)
    power_idle_seconds: Optional[float] = None   # idle baseline before each row (default 3)
    soak: Optional[float] = None           # seconds of sustained run per row (soak.csv)
    soak_interval: Optional[float] = None  # seconds per soak.csv line (default 10)
    fps: Optional[str] = None              # "15,30": fixed-arrival-rate scenarios
    scenario_seconds: Optional[float] = None     # length of each scenario (default 10)
    streams: Optional[int] = None          # concurrent interpreters (throughput scenario)

    @classmethod
    def from_namespace(cls, ns, **more) -> "AgentOptions":
        """The fields an argparse namespace has (absent ones stay None), then `more`."""
        values = dict((f.name, getattr(ns, f.name, None)) for f in fields(cls))
        values.update(more)
        values["delegate"] = tuple(values.get("delegate") or ())
        return cls(**values)

    def over(self, base: "AgentOptions") -> "AgentOptions":
        """These options where given, `base`'s elsewhere (a profile's defaults, say)."""
        given = dict((f.name, getattr(self, f.name)) for f in fields(self)
                     if getattr(self, f.name) not in (None, ()))
        return replace(base, **given)

    def thread_counts(self) -> list:
        try:
            counts = [int(t) for t in (self.threads or "1").split(",") if t.strip()]
        except ValueError:
            raise AgentError("--threads takes comma-separated integers, e.g. 1,2,4")
        if not counts or min(counts) < 1:
            raise AgentError("--threads takes positive integers, e.g. 1,2,4")
        return counts

    def units(self) -> list:
        return parse_units(self.accelerators or "cpu", list(self.delegate))

    def fps_rates(self) -> list:
        try:
            rates = [float(f) for f in (self.fps or "").split(",") if f.strip()]
        except ValueError:
            raise AgentError("--fps takes comma-separated frame rates, e.g. 15,30")
        if any(not (0 < r <= 10000) for r in rates):
            raise AgentError("--fps takes positive frame rates (frames per second), e.g. 15,30")
        return rates

    def check(self) -> "AgentOptions":
        """AgentError (one line) for anything the agent would refuse; self otherwise."""
        self.units()
        self.thread_counts()
        if self.runtime is not None:
            check_runtime(self.runtime)
        if self.xnnpack not in (None, "on", "off"):
            raise AgentError("--xnnpack must be on or off, not %r" % self.xnnpack)
        for name, low, strict in (("warmup", 0, False), ("min_runs", 1, False),
                                  ("min_seconds", 0, False), ("max_seconds", 0, True)):
            value = getattr(self, name)
            if value is not None and (value <= low if strict else value < low):
                raise AgentError("--warmup >= 0, --min-runs >= 1, --min-seconds >= 0, "
                                 "--max-seconds > 0")
        if self.rounds is not None and self.rounds < 1:
            raise AgentError("--rounds takes a positive integer (the plan's repetitions)")
        self.fps_rates()
        check_power(self.power)
        for name, flag in (("power_hz", "--power-hz"), ("soak_interval", "--soak-interval"),
                           ("scenario_seconds", "--scenario-seconds")):
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise AgentError("%s takes a positive number" % flag)
        for name, flag in (("power_idle_seconds", "--power-idle-seconds"), ("soak", "--soak")):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise AgentError("%s takes seconds >= 0 (0: none)" % flag)
        if self.streams is not None and self.streams < 1:
            raise AgentError("--streams takes a positive count of concurrent interpreters")
        if self.robustness_images is not None and self.robustness_images < 0:
            raise AgentError("--robustness-images takes a positive count (0: every image)")
        return self

    def to_argv(self) -> list:
        out = []
        for f in fields(self):
            value = getattr(self, f.name)
            flag = "--" + f.name.replace("_", "-")
            if f.name == "delegate":
                for spec in value:
                    out += [flag, spec]
            elif value is not None:
                out += [flag, str(value)]
        return out
