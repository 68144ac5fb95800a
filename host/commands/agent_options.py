"""The agent's measurement options, shared by `deploy` and `run`: parsed here into one
AgentOptions (edgebench.device.options), which travels unchanged to the agent's argv."""
from __future__ import annotations

import argparse

from edgebench.host.commands.registry_args import add_registry_option


def add_agent_args(p: argparse.ArgumentParser, threads: bool = True) -> None:
    a = p.add_argument_group("measurement (passed to the agent on the device)")
    if threads:
        a.add_argument("--threads", help="comma-separated thread counts, e.g. 1,4")
    add_registry_option(a, "--accelerators", metavar="UNIT,...",
                        help="compute units, one row each: cpu (default), gpu, npu; gpu!/npu! "
                             "require the whole model on the accelerator; 'help' lists them")
    a.add_argument("--delegate", action="append", metavar="LIB[:KEY=VALUE;...]",
                   help="also measure with this external delegate (repeatable), e.g. "
                        "libedgetpu.so.1 or /usr/lib/libarmnnDelegate.so:backends=CpuAcc")
    a.add_argument("--rounds", type=int, metavar="N",
                   help="run the whole plan N times, models interleaved (A B C A B C), so the "
                        "report can give the spread between rounds and intervals that include "
                        "it (agent default 1)")
    a.add_argument("--robustness-images", type=int, metavar="N",
                   help="measure at most the first N images of each corrupted test set the "
                        "bundle carries (default: all)")
    a.add_argument("--cooldown-temp", type=float, metavar="C",
                   help="before each row (so before every round) wait until the SoC is below C "
                        "degrees")
    a.add_argument("--cooldown-timeout", type=float, metavar="S",
                   help="longest wait for --cooldown-temp (agent default 300 s)")

    e = p.add_argument_group("energy, heat and frame rate (passed to the agent)")
    add_registry_option(e, "--power", metavar="SOURCE",
                        help="read a power source during each row: auto, none (agent default), "
                             "pi5-pmic, ina3221, rapl, nvml or cmd:COMMAND (a command printing "
                             "watts); gives energy per inference (mJ) and idle power")
    e.add_argument("--power-hz", type=float, metavar="HZ",
                   help="power sampling rate (agent default 10)")
    e.add_argument("--power-idle-seconds", type=float, metavar="S",
                   help="idle baseline before each row with --power (agent default 3)")
    e.add_argument("--soak", type=float, metavar="SECONDS",
                   help="run each row's model this long after its timed loop: latency, "
                        "temperature, frequency, throttling and power over time (soak.csv)")
    e.add_argument("--soak-interval", type=float, metavar="S",
                   help="seconds per soak.csv line (agent default 10)")
    e.add_argument("--fps", metavar="RATE,...",
                   help="frame-rate scenarios, e.g. 15,30: a frame every 1/RATE s with queueing "
                        "counted; achieved fps, missed deadlines, latency")
    e.add_argument("--scenario-seconds", type=float, metavar="S",
                   help="length of each --fps / --streams scenario (agent default 10)")
    e.add_argument("--streams", type=int, metavar="N",
                   help="throughput scenario: N interpreters invoking concurrently")


def agent_options_from(args, **more):
    """The AgentOptions given on this command line (`more`: fields under other names, e.g.
    deploy's --only is the agent's models), checked as the agent checks them: bad values are a
    UserError before any device is contacted."""
    from edgebench.device.common import AgentError
    from edgebench.device.options import AgentOptions
    from edgebench.host.errors import UserError

    try:
        return AgentOptions.from_namespace(args, **more).check()
    except AgentError as exc:
        raise UserError(str(exc)) from None
