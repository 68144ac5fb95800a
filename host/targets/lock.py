"""The device lock: one edgebench run per device at a time.

The lock is an flock on `<remote_dir>/lock` held by a small python process on the device that
lives exactly as long as our connection: it exits when we close its stdin or the link drops, and
the kernel releases an flock when its holder dies. So a lock can never outlive a dead run; the
holder's details written in the file only name who holds it (or who held it last, when a run died
before releasing — reported as a recovered stale lock)."""
from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
from typing import Optional

from edgebench.host.errors import UserError
from edgebench.host.targets.base import Process, Target

_LOCK_SCRIPT = r'''
import fcntl, json, os, sys
path, info = sys.argv[1], json.loads(sys.argv[2])
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
def content():
    os.lseek(fd, 0, 0)
    return os.read(fd, 8192).decode("utf-8", "replace").strip()
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except (IOError, OSError):
    sys.stdout.write("busy " + (content() or "{}") + "\n"); sys.stdout.flush(); sys.exit(3)
previous = content()
info["device_pid"] = os.getpid()
os.ftruncate(fd, 0); os.lseek(fd, 0, 0); os.write(fd, json.dumps(info).encode()); os.fsync(fd)
sys.stdout.write("held " + (previous or "{}") + "\n"); sys.stdout.flush()
sys.stdin.read()
os.ftruncate(fd, 0)
'''


class DeviceBusy(UserError):
    pass


class DeviceLock:
    """Context manager; `stale` holds the details of a dead run whose lock was recovered."""

    def __init__(self, target: Target, python: str, remote_root: str, run_id: str):
        self.target, self.python = target, python
        self.path = f"{remote_root}/lock"
        self.info = {"run_id": run_id, "user": _user(), "host": socket.gethostname(),
                     "pid": os.getpid(),
                     "since": datetime.datetime.now(datetime.timezone.utc).isoformat(
                         timespec="seconds")}
        self.stale: Optional[dict] = None
        self._proc: Optional[Process] = None

    def __enter__(self) -> "DeviceLock":
        self.target.run(["mkdir", "-p", os.path.dirname(self.path)])
        self._proc = self.target.start([self.python, "-c", _LOCK_SCRIPT, self.path,
                                        json.dumps(self.info)])
        line = self._proc.readline(timeout=30) or ""
        state, _, details = line.partition(" ")
        try:
            holder = json.loads(details) if details else {}
        except ValueError:
            holder = {}
        if state == "held":
            self.stale = holder or None
            return self
        self._proc.stop()
        if state == "busy":
            raise DeviceBusy(f"{self.target.describe()}: device busy: another edgebench run holds "
                             f"{self.path} ({describe_holder(holder)}); wait for it to finish or "
                             f"stop it")
        raise UserError(f"{self.target.describe()}: could not take the lock {self.path} "
                        f"(no answer from {self.python})")

    def __exit__(self, *exc) -> None:
        if self._proc:
            self._proc.stop()
            self._proc = None


def describe_holder(h: dict) -> str:
    if not h:
        return "holder unknown"
    return (f"run {h.get('run_id', '?')} by {h.get('user', '?')}@{h.get('host', '?')} pid "
            f"{h.get('pid', '?')}, device pid {h.get('device_pid', '?')}, since "
            f"{h.get('since', '?')}")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid())
