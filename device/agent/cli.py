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
from .guide import DESCRIPTION, GUIDE
from ..options import ENERGY, AgentOptions, option_fields
from ..runtimes import runtime_help
from ..schema import MANIFEST_JSON, TESTSET_NPZ
from ..units import unit_help


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise AgentError(message)


def build_parser() -> argparse.ArgumentParser:
    """The agent's flags: the measurement options as options.py declares them (with the
    agent's defaults), and the ones only the agent has."""
    p = OneLineParser(prog="agent.pyz", description=DESCRIPTION,
                      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GUIDE)
    p.add_argument("--bundle",
                   help="bundle folder (%s, models/, %s)" % (MANIFEST_JSON, TESTSET_NPZ))
    p.add_argument("--out", help="results folder; re-running into it resumes")
    p.add_argument("--run-id", help="this measurement run's id, in every row (default: the "
                   "bundle's id); an --out folder holds one run")
    groups = {ENERGY: p.add_argument_group(ENERGY)}  # the rest among the general options
    for _, flag, declared in option_fields():
        default = [] if declared.repeat else declared.default
        groups.get(declared.group, p).add_argument(flag, **declared.argparse_kwargs(default))
    p.add_argument("--sysfs-root", default="/", help="root for sensor files (tests)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    return p


def parse_args(argv):
    args = build_parser().parse_args(argv)
    if args.child:
        return args
    if args.accelerators.strip() == "help":
        sys.stdout.write(unit_help() + "\n")
        raise SystemExit(0)
    if args.runtime.strip() == "help":
        sys.stdout.write(runtime_help() + "\n")
        raise SystemExit(0)
    require_numpy()
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


