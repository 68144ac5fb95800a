"""`bench-host`: the command line. Each subcommand lives in host/commands/<name>.py and exposes
`register(subparsers)`; heavy imports (torch, tensorflow) happen inside the command, so `--help`
stays fast."""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from edgebench.host.errors import UserError

# Order is the order `bench-host --help` lists them: the pipeline, then the whole run, then tools.
COMMANDS = (
    "train", "evaluate", "convert", "quantize", "bundle", "deploy", "report", "run", "doctor",
    "emulate", "compare", "history", "import_", "publish",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench-host",
        description="Train CNN classifiers, convert and quantize them to TFLite, benchmark them on "
                    "edge devices over SSH, and report latency against accuracy.",
        epilog="Run `bench-host COMMAND --help` for a command's options. "
               "Set EDGEBENCH_DEBUG=1 to see tracebacks.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"edgebench.host.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"edgebench.host.commands.{name}":
                raise
            continue  # a stage not built yet is simply not offered
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # TensorFlow's C++ start-up chatter (cuDNN/cuBLAS factories on a CPU box) drowns the progress
    # output; errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --target help, or a usage error: argparse's own code
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"bench-host {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `bench-host … | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"bench-host {args.command}: interrupted; finished results are kept", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not bad input: still one line unless debugging
        if os.environ.get("EDGEBENCH_DEBUG"):
            raise
        print(f"bench-host {args.command}: internal error: {type(exc).__name__}: {exc} "
              f"(EDGEBENCH_DEBUG=1 shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
