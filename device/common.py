"""What every agent module needs: the bad-input error, the two output channels (JSON events on
stdout, human lines on stderr) and atomic file writes."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import threading
import time


class AgentError(Exception):
    """Bad input: printed as one line, exit status 2."""


class KillTimer:
    """Kills `proc` after `seconds` unless cancelled first; `fired` says whether it did (a child
    that went silent, told apart from one that died by itself)."""

    def __init__(self, proc, seconds: float):
        self.fired = False
        self._proc = proc
        self._timer = threading.Timer(seconds, self._kill)
        self._timer.daemon = True
        self._timer.start()

    def _kill(self) -> None:
        self.fired = True
        self._proc.kill()

    def cancel(self) -> None:
        self._timer.cancel()


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
    """ISO 8601 UTC to the millisecond: a row's start tells two measurements of one key apart
    (the database refuses a second session under a run id), and two fast deploys share seconds."""
    now = time.time()
    return "%s.%03dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)), int(now * 1000) % 1000)


@contextlib.contextmanager
def atomic_path(path):
    """A temporary sibling of `path` (same type: str or Path) to write to; renamed onto `path`
    when the block succeeds, removed when it fails. A kill leaves the old file or the new one,
    never half of one. The one temp-and-rename of host and device."""
    folder, name = os.path.split(os.fspath(path))
    tmp = os.path.join(folder, "." + name + ".tmp")
    try:
        yield tmp if isinstance(path, str) else type(path)(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.lexists(tmp):
            os.remove(tmp)
        raise


def write_atomic(path, write, mode: str = "w") -> None:
    """Write a file through `write(fh)` (or write `write` itself, when it is str or bytes) and
    fsync it, atomically (atomic_path)."""
    if isinstance(write, (str, bytes)):
        data, mode = write, ("wb" if isinstance(write, bytes) else "w")
        write = lambda fh: fh.write(data)  # noqa: E731
    with atomic_path(path) as tmp:
        with open(tmp, mode, **({"newline": ""} if "b" not in mode else {})) as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())


def sha256_file(path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks (models can be hundreds of MB)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
