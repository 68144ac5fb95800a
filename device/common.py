"""What every agent module needs: the bad-input error, the two output channels (JSON events on
stdout, human lines on stderr) and atomic file writes."""
from __future__ import annotations

import json
import os
import sys
import time


class AgentError(Exception):
    """Bad input: printed as one line, exit status 2."""


def emit(event: str, **fields) -> None:
    """One progress event (schema.EVENTS names them) as a JSON line on stdout."""
    fields = dict({"event": event}, **fields)
    sys.stdout.write(json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    sys.stderr.write("agent: " + message + "\n")
    sys.stderr.flush()


def one_line(text, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def write_atomic(path: str, write, mode: str = "w") -> None:
    """Write a file through `write(fh)` into a sibling temporary file, fsync it and rename it
    into place: a kill leaves the old file or the new one, never half of one."""
    tmp = path + ".tmp"
    with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as fh:
        write(fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
