"""The agent's measurement options, shared by `deploy` and `run`: parsed and checked here, then
passed on to the agent (agent.pyz) on the device as its own flags."""
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


def agent_args_from(args, **more) -> list:
    """The agent flags for what was given; `more` maps extra agent flags (without --) to values."""
    from edgebench.device.common import AgentError
    from edgebench.device.units import parse_units
    from edgebench.host.errors import UserError

    try:
        parse_units(args.accelerators or "cpu", args.delegate or [])
    except AgentError as exc:
        raise UserError(str(exc)) from None
    if args.rounds is not None and args.rounds < 1:
        raise UserError("--rounds takes a positive integer (the plan's repetitions)")
    pairs = [("--threads", getattr(args, "threads", None)),
             ("--accelerators", args.accelerators),
             ("--rounds", args.rounds),
             ("--robustness-images", args.robustness_images),
             ("--cooldown-temp", args.cooldown_temp),
             ("--cooldown-timeout", args.cooldown_timeout)]
    pairs += [("--" + k.replace("_", "-"), v) for k, v in more.items()]
    out = []
    for flag, value in pairs:
        if value is not None:
            out += [flag, str(value)]
    for spec in args.delegate or ():
        out += ["--delegate", spec]
    return out
