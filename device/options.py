"""The agent's options, each declared once: a field of AgentOptions whose `Flag` (its metadata)
holds the flag's type, the agent's own default, unit, metavar/choices and help. The agent's
argparse (agent/cli.py), the host's flags (host/commands/agent_options.py), the argv the host
sends (to_argv) and the guide's usage line are all made from these declarations, so a new option
is one field here.

The host builds an AgentOptions once (from its command line or a profile), checks it here and
turns it into the agent's argv; the agent checks what it parsed with the same check(). A field
left None is the agent's default, so the host sends only what was given.

Stdlib only at import time: the agent's --help must work on a device without numpy."""
from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Optional, Tuple

from .common import AgentError
from .runtimes import RUNTIMES, check_runtime
from .units import COMPUTE_UNITS, parse_units

# The groups the options are shown in. The host's `run` leaves out RUNNING: its profile decides
# how long to measure, and its --models are the models to train.
MEASUREMENT = "measurement"
RUNNING = "timing, models and runtime"
ENERGY = "energy, heat and frame rate"
# --profile-ops: fewer profiled inferences give no usable interval of a median.
MIN_PROFILED_RUNS = 5


@dataclass(frozen=True)
class Flag:
    """How one option reads on a command line (the agent's and the host's)."""
    type: type                     # what argparse parses the value into
    default: object                # the agent's default
    help: str
    unit: str = ""                 # said after the default: "(default 2 s)"
    shown: Optional[str] = None    # the default in words, where its value would not say it
    metavar: Optional[str] = None
    choices: Optional[tuple] = None
    group: str = MEASUREMENT
    repeat: bool = False           # given once per value (argparse's append)

    def default_text(self) -> str:
        """"2 s", "all", "cpu"; "" where the default is simply "not given"."""
        if self.shown is not None:
            return self.shown
        if self.default in (None, "", ()):
            return ""
        value = "%g" % self.default if isinstance(self.default, float) else str(self.default)
        return (value + " " + self.unit).strip()

    def help_with_default(self, who: str = "default") -> str:
        """The help, then "(default 2 s)" (who="agent default" on the host)."""
        text = self.default_text()
        return "%s (%s %s)" % (self.help, who, text) if text else self.help

    def placeholder(self) -> str:
        """What the value looks like in a usage line: on|off, N, S, ..."""
        return "|".join(self.choices) if self.choices else (self.metavar or "VALUE")

    def argparse_kwargs(self, default, who: str = "default") -> dict:
        """add_argument's keywords; `default` is the agent's own default on the agent and None
        on the host (which sends only what was given)."""
        kwargs = dict(default=default, help=self.help_with_default(who), metavar=self.metavar)
        if self.repeat:
            kwargs["action"] = "append"
        elif self.type is not str:
            kwargs["type"] = self.type
        if self.choices:
            kwargs["choices"] = self.choices
        return kwargs


def option(value_type, default, help, **more):
    """A field of AgentOptions: None unless given (then the agent's default applies)."""
    flag = Flag(value_type, default, help, **more)
    return field(default=() if flag.repeat else None, metadata={"flag": flag})


@dataclass(frozen=True)
class AgentOptions:
    # Field order is the argv's order (to_argv), which is part of a run's identity: keep it.
    threads: Optional[str] = option(
        str, "1", "comma-separated thread counts, one row each, e.g. 1,2,4", metavar="N,...")
    accelerators: Optional[str] = option(
        str, "cpu", "comma-separated compute units, one row each: %s, gpu!, npu! (gpu!/npu!: the "
        "whole model on the accelerator, or an error row); 'help' lists them"
        % ", ".join(COMPUTE_UNITS), metavar="UNIT,...")
    delegate: Tuple[str, ...] = option(
        str, (), "also measure on an external delegate loaded from LIB (repeatable), e.g. "
        "libedgetpu.so.1 or libarmnnDelegate.so:backends=CpuAcc,CpuRef",
        metavar="LIB[:KEY=VALUE;...]", repeat=True)
    rounds: Optional[int] = option(
        int, 1, "run the whole plan N times, models interleaved (A B C A B C), so the report can "
        "give the spread between rounds and intervals that include it", metavar="N")
    warmup: Optional[int] = option(int, 10, "untimed runs first", metavar="N", group=RUNNING)
    min_runs: Optional[int] = option(int, 50, "at least this many timed runs", metavar="N",
                                     group=RUNNING)
    min_seconds: Optional[float] = option(float, 2.0, "and at least this long", unit="s",
                                          metavar="S", group=RUNNING)
    max_seconds: Optional[float] = option(float, 60.0, "but never longer than this", unit="s",
                                          metavar="S", group=RUNNING)
    models: Optional[str] = option(str, "", "comma-separated names of the models to measure",
                                   shown="all", metavar="NAME,...", group=RUNNING)
    runtime: Optional[str] = option(
        str, "auto", "the TFLite interpreter of .tflite rows (.onnx rows always run on "
        "onnxruntime); 'help' lists them",
        metavar="|".join(("auto",) + tuple(RUNTIMES)), group=RUNNING)
    xnnpack: Optional[str] = option(str, "on", "off: builtin kernels only",
                                    choices=("on", "off"), group=RUNNING)
    robustness_images: Optional[int] = option(
        int, 0, "measure at most the first N images of each corrupted test set the bundle carries",
        shown="all", metavar="N")
    cooldown_temp: Optional[float] = option(
        float, None, "before each row (so before every round) wait until the SoC is below C "
        "degrees", metavar="C")
    cooldown_timeout: Optional[float] = option(float, 300.0, "longest wait for --cooldown-temp",
                                               unit="s", metavar="S")
    power: Optional[str] = option(
        str, "none", "read a power source during each row: auto, none, pi5-pmic, ina3221, rapl, "
        "nvml or cmd:COMMAND (a command printing watts); gives energy per inference (mJ) and idle "
        "power; 'help' lists them", metavar="SOURCE", group=ENERGY)
    power_hz: Optional[float] = option(
        float, 10.0, "power sampling rate; the achieved rate is in each row", unit="Hz",
        metavar="HZ", group=ENERGY)
    power_idle_seconds: Optional[float] = option(
        float, 3.0, "idle baseline before each row with --power", unit="s", metavar="S",
        group=ENERGY)
    soak: Optional[float] = option(
        float, 0.0, "after each row's timed loop, run the model this long and write soak.csv: "
        "latency, temperature, frequency, throttling and power per interval", shown="none",
        metavar="SECONDS", group=ENERGY)
    soak_interval: Optional[float] = option(float, 10.0, "length of each soak.csv line",
                                            unit="s", metavar="S", group=ENERGY)
    fps: Optional[str] = option(
        str, "", "frame-rate scenarios, e.g. 15,30: a frame every 1/RATE s, queueing counted; "
        "achieved fps, missed deadlines, latency (scenarios.csv, frames.csv)",
        metavar="RATE,...", group=ENERGY)
    scenario_seconds: Optional[float] = option(
        float, 10.0, "length of each --fps / --streams scenario", unit="s", metavar="S",
        group=ENERGY)
    streams: Optional[int] = option(
        int, None, "throughput scenario: N interpreters invoking concurrently", metavar="N",
        group=ENERGY)
    # A count, not an on/off switch: the runs profiled set both the pass's cost and how narrow
    # each op's interval is, and a tiny model needs more runs than a large one.
    profile_ops: Optional[int] = option(
        int, 0, "after each row's timed loop, a profiled pass of N inferences on a session of its "
        "own: per-operator time with intervals in op_profile.csv (ONNX Runtime: its profiler; LiteRT: "
        "prefix cuts, N rounds at most; e.g. 50)",
        shown="off", metavar="N")

    @classmethod
    def from_namespace(cls, ns, **more) -> "AgentOptions":
        """The fields an argparse namespace has (absent ones stay None), then `more`."""
        values = dict((name, getattr(ns, name, None)) for name, _, _ in option_fields())
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
        from .power import check_power  # here, not at the top: device/power needs numpy

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
        if self.profile_ops is not None and (self.profile_ops < 0 or
                                             0 < self.profile_ops < MIN_PROFILED_RUNS):
            raise AgentError("--profile-ops takes 0 (off) or at least %d profiled inferences per "
                             "row (each op's interval is a bootstrap over them)"
                             % MIN_PROFILED_RUNS)
        if self.robustness_images is not None and self.robustness_images < 0:
            raise AgentError("--robustness-images takes a positive count (0: every image)")
        return self

    def to_argv(self) -> list:
        """The flags of the options given, in declaration order; a repeated flag once per value."""
        out = []
        for name, flag, declared in option_fields():
            value = getattr(self, name)
            if declared.repeat:
                for each in value:
                    out += [flag, str(each)]
            elif value is not None:
                out += [flag, str(value)]
        return out


def option_fields() -> list:
    """(field name, flag, Flag) of every option, in declaration order."""
    return [(f.name, "--" + f.name.replace("_", "-"), f.metadata["flag"])
            for f in fields(AgentOptions)]


def agent_command(python, archive, bundle, out, options: AgentOptions = AgentOptions(),
                  extra=()) -> list:
    """The one place the agent's command line is put together: `python archive --bundle B --out
    O`, the options given, then `extra` (flags that are not measurement options: --run-id,
    --sysfs-root; a flag repeated there wins over the same one in `options`)."""
    return [str(python), str(archive), "--bundle", str(bundle), "--out", str(out),
            *options.to_argv(), *(str(e) for e in extra)]
