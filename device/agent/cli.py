"""The agent's command line: `python3 agent.pyz --bundle DIR --out DIR ...` (see guide.py), and
the hidden --child mode a row's child process runs in.

Only stdlib-only modules are imported up front: --help works on a device without numpy, and a
run there says how to install it (require_numpy) instead of a traceback from whichever module
imported numpy first. The modules that need numpy are imported after that check."""
from __future__ import annotations

import argparse
import platform
import sys

from ..common import AgentError, emit, one_line, say
from .guide import GUIDE
from ..runtimes import RUNTIMES, runtime_help
from ..units import COMPUTE_UNITS, unit_help


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise AgentError(message)


def parse_args(argv):
    p = OneLineParser(prog="agent.pyz", description=GUIDE.strip().splitlines()[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GUIDE)
    p.add_argument("--bundle", help="bundle folder (manifest.json, models/, testset.npz)")
    p.add_argument("--out", help="results folder; re-running into it resumes")
    p.add_argument("--run-id", help="this measurement run's id, in every row (default: the "
                   "bundle's id); an --out folder holds one run")
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--min-runs", type=int, default=50, help="at least this many timed runs")
    p.add_argument("--min-seconds", type=float, default=2.0, help="and at least this long")
    p.add_argument("--max-seconds", type=float, default=60.0, help="but never longer than this")
    p.add_argument("--models", default="", help="comma-separated model names (default: all)")
    p.add_argument("--runtime", default="auto",
                   help="auto|" + "|".join(RUNTIMES) + " ('help' lists them)")
    p.add_argument("--xnnpack", default="on", help="on|off (off: builtin kernels only)")
    p.add_argument("--accelerators", default="cpu",
                   help="comma-separated compute units, one row each (default cpu; 'help' "
                        "lists them): " + ", ".join(COMPUTE_UNITS) + ", gpu!, npu!")
    p.add_argument("--delegate", action="append", default=[], metavar="LIB[:KEY=VALUE;...]",
                   help="also measure on an external delegate loaded from LIB (repeatable), "
                        "e.g. libedgetpu.so.1 or libarmnnDelegate.so:backends=CpuAcc,CpuRef")
    p.add_argument("--robustness-images", type=int, default=0, metavar="N",
                   help="measure at most the first N images of each corrupted test set "
                        "(default: all)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole plan this many times, models interleaved (default 1)")
    p.add_argument("--cooldown-temp", type=float, default=None,
                   help="before each row (so before every round) wait until the SoC is below "
                        "this many degrees C")
    p.add_argument("--cooldown-timeout", type=float, default=300.0,
                   help="longest wait for --cooldown-temp, seconds (default 300)")
    e = p.add_argument_group("energy, heat and frame rate")
    e.add_argument("--power", default="none", metavar="SOURCE",
                   help="power source read during each row: auto|none|pi5-pmic|ina3221|rapl|nvml|"
                        "cmd:COMMAND ('help' lists them; default none)")
    e.add_argument("--power-hz", type=float, default=10.0,
                   help="power sampling rate (default 10; the achieved rate is in each row)")
    e.add_argument("--power-idle-seconds", type=float, default=3.0,
                   help="idle baseline before each row with --power (default 3 s)")
    e.add_argument("--soak", type=float, default=0.0, metavar="SECONDS",
                   help="after each row's timed loop, run the model this long and write soak.csv "
                        "(latency, temperature, frequency, throttling, power per interval)")
    e.add_argument("--soak-interval", type=float, default=10.0,
                   help="seconds per soak.csv line (default 10)")
    e.add_argument("--fps", default="", metavar="RATE,...",
                   help="frame-rate scenarios: a frame every 1/RATE s, queueing counted "
                        "(scenarios.csv, frames.csv)")
    e.add_argument("--scenario-seconds", type=float, default=10.0,
                   help="length of each --fps / --streams scenario (default 10 s)")
    e.add_argument("--streams", type=int, default=None, metavar="N",
                   help="throughput scenario: N interpreters invoking concurrently")
    p.add_argument("--sysfs-root", default="/", help="root for sensor files (tests)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.accelerators.strip() == "help":
        sys.stdout.write(unit_help() + "\n")
        raise SystemExit(0)
    if args.runtime.strip() == "help":
        sys.stdout.write(runtime_help() + "\n")
        raise SystemExit(0)
    require_numpy()
    from ..options import AgentOptions
    from ..power import power_help
    if args.power.strip() == "help":
        sys.stdout.write(power_help() + "\n")
        raise SystemExit(0)
    # The same checks the host runs before it contacts a device (options.AgentOptions).
    options = AgentOptions.from_namespace(args).check()
    if not args.bundle or not args.out:
        raise AgentError("--bundle and --out are required")
    if args.run_id:
        from ..manifest import check_name
        try:
            check_name(args.run_id, "run id")
        except ValueError as exc:
            raise AgentError(str(exc))
    args.units, args.threads = options.units(), options.thread_counts()
    args.fps_rates = options.fps_rates()
    return args


def require_numpy() -> None:
    """numpy is the one third-party package every run needs."""
    try:
        import numpy  # noqa: F401
    except ImportError as exc:
        python = "%s (Python %s)" % (sys.executable, platform.python_version())
        if getattr(exc, "name", None) == "numpy":
            raise AgentError("numpy is not installed for %s; install it with: %s -m pip install "
                             "numpy" % (python, sys.executable)) from None
        raise AgentError("numpy is installed for %s but does not import: %s"
                         % (python, one_line(exc, 200))) from None


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        if args.child:
            from .timing import child_main
            return child_main()
        from .plan import run
        return run(args)
    except AgentError as exc:
        say("error: %s" % exc)
        emit("error", message=str(exc), fatal=True)
        return 2
    except KeyboardInterrupt:
        say("interrupted; rows written so far are kept and a re-run resumes")
        return 130


