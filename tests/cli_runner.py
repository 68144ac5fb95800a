"""Run `bench-host` the way a user does, in-process (fast) or as a real subprocess."""
from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from pathlib import Path

BENCH_HOST = Path(sys.executable).with_name("bench-host")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """In-process: returns (exit code, stdout, stderr)."""
    from edgebench.host.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in argv])
    return code, out.getvalue(), err.getvalue()


def run_bench_host(*argv: str, cwd=None, timeout: float = 600) -> subprocess.CompletedProcess:
    """As a subprocess of the installed console script (proves no traceback reaches the user)."""
    return subprocess.run([str(BENCH_HOST), *map(str, argv)], cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)
