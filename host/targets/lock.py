"""The device lock: one edgebench run per device at a time, held as a lease.

A small python process on the device holds an flock on `<remote_dir>/lock` and writes who holds
it there. The host heartbeats it (a byte on its stdin every few seconds) and it records the time
of the last heartbeat in the lock file. A cut link gives no sign on the device (sshd keeps a dead
session for hours), so the holder of a run that stopped answering would live on; instead, a run
that finds the lock held by a holder silent for longer than the lease timeout ends that holder
(same user, the recorded pid, still running this script) and takes the lock. A live run,
heartbeating, is never broken. A retry of our own deploy (same owner token, host, pid and run)
takes over its previous attempt's lease at once, checked and ended the same way: the attempts of
one deploy follow one another, so a holder of ours is one whose link was cut.

The agent is covered too: it runs under a wrapper (AGENT_WRAPPER) that starts it only while this
run holds the lock, and that holds `<remote_dir>/agent.lock` for the agent's whole life (the flock
is inherited across exec). Whoever takes the lock next finds an agent of a dead run still
measuring there, says so and stops it, so no two agents ever measure side by side; the rows it
wrote stay, and a re-run of its bundle resumes."""
from __future__ import annotations

import datetime
import getpass
import json
import os
import socket
import threading
import uuid
from typing import Optional

from edgebench.host.agent_archive import device_script
from edgebench.host.errors import UserError
from edgebench.host.targets.base import LinkDropped, Process, Target, dropped_while

DEFAULT_LEASE_TIMEOUT_S = 60.0
MARK = "edgebench-lease-v2"   # in the holder's command line: what a breaker checks before a kill

# Device-side code, sent as source: device/remote/lease.py (argv: lock path, holder info JSON, lease
# timeout s, longest wait for our own old lease s) and device/remote/agent_wrapper.py.
_LOCK_SCRIPT = device_script("lease")

AGENT_WRAPPER = device_script("agent_wrapper")


class DeviceBusy(UserError):
    pass


def new_owner() -> str:
    """A token for one deploy of one target, shared by its attempts (so a retry recognises the
    lease of its own cut attempt)."""
    return uuid.uuid4().hex[:16]


class DeviceLock:
    """Context manager holding the lease; `notes` says what was recovered or stopped on the way
    in, `stale` holds the details of a dead run (or our own cut attempt) whose lock was taken.
    `owner` is shared by the attempts of one deploy, which must follow one another: a holder with
    our owner is taken over at once."""

    def __init__(self, target: Target, python: str, remote_root: str, run_id: str,
                 owner: Optional[str] = None, timeout_s: float = DEFAULT_LEASE_TIMEOUT_S):
        self.target, self.python = target, python
        self.path = f"{remote_root}/lock"
        self.agent_lock = f"{remote_root}/agent.lock"
        self.timeout_s = float(timeout_s)
        self.owner = owner or new_owner()
        # Which attempt holds the lease: the agent wrapper of a cut attempt that only reaches the
        # device after the retry took over must not start its agent under the retry's lease.
        self.attempt = uuid.uuid4().hex[:8]
        self.info = {"run_id": run_id, "user": _user(), "host": socket.gethostname(),
                     "pid": os.getpid(), "owner": self.owner, "attempt": self.attempt,
                     "since": datetime.datetime.now(datetime.timezone.utc).isoformat(
                         timespec="seconds")}
        self.stale: Optional[dict] = None
        self.orphan: Optional[dict] = None
        self.notes: list = []
        self._proc: Optional[Process] = None
        self._stop = threading.Event()

    @property
    def heartbeat_s(self) -> float:
        return min(5.0, max(0.2, self.timeout_s / 12))

    def __enter__(self) -> "DeviceLock":
        try:
            return self._take()
        except LinkDropped as exc:
            self._drop()
            raise dropped_while(self.target, "taking the device lock", exc) from None

    def _take(self) -> "DeviceLock":
        self.target.run(["mkdir", "-p", os.path.dirname(self.path)])
        wait_s = self.timeout_s * 1.5 + 5
        self._proc = self.target.start([self.python, "-c", _LOCK_SCRIPT, self.path,
                                        json.dumps(self.info), str(self.timeout_s), str(wait_s)])
        line = self._proc.readline(timeout=wait_s + 30) or ""
        state, _, details = line.partition(" ")
        try:
            got = json.loads(details) if details else {}
        except ValueError:
            got = {}
        if state == "held":
            self._held(got)
            threading.Thread(target=self._heartbeat, daemon=True, name="lease").start()
            return self
        self._drop()
        if state == "busy":
            silent = got.get("silent_s")
            beat = (f"last heartbeat {silent:.0f} s ago; a run silent for "
                    f"{self.timeout_s:.0f} s is taken over" if silent is not None else
                    "an edgebench without leases holds it: it is free once that run ends")
            raise DeviceBusy(f"{self.target.describe()}: device busy: another edgebench run holds "
                             f"{self.path} ({describe_holder(got)}; {beat}); wait for it to "
                             f"finish or stop it")
        if state == "agent-busy":
            raise DeviceBusy(f"{self.target.describe()}: device busy: an agent is still measuring "
                             f"there ({describe_agent(got)}) and could not be stopped; stop it "
                             f"by hand")
        raise UserError(f"{self.target.describe()}: could not take the lock {self.path} "
                        f"(no answer from {self.python})")

    def _held(self, got: dict) -> None:
        recovered, previous, orphan = got.get("recovered"), got.get("previous"), got.get("orphan")
        took = got.get("took_over")
        self.stale = took or recovered or previous or None
        if took:
            self.notes.append(f"took over the lease of this deploy's previous attempt (cut link; "
                              f"{describe_holder(took)})")
        elif recovered:
            self.notes.append(f"recovered a lock whose run stopped answering "
                              f"{recovered.get('silent_s', 0):.0f} s ago "
                              f"({describe_holder(recovered)})")
        elif previous:
            self.notes.append(f"recovered a stale lock from a dead run "
                              f"({describe_holder(previous)})")
        if orphan:
            self.orphan = orphan
            self.notes.append(_orphan_note(orphan, orphan.get("owner") == self.owner))

    def _heartbeat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            proc = self._proc
            if proc is None or not proc.send(b"."):
                return

    def _drop(self) -> None:
        self._stop.set()
        if self._proc:
            self._proc.stop()
            self._proc = None

    def __exit__(self, *exc) -> None:
        self._drop()

    def wrap_agent(self, argv: list, pid_file: str) -> list:
        """argv run under the agent wrapper (see the module's docstring)."""
        return [self.python, "-c", AGENT_WRAPPER, self.path, f"{self.owner}/{self.attempt}",
                self.agent_lock, pid_file, *argv]


def describe_holder(h: dict) -> str:
    if not h:
        return "holder unknown"
    return (f"run {h.get('run_id', '?')} by {h.get('user', '?')}@{h.get('host', '?')} pid "
            f"{h.get('pid', '?')}, device pid {h.get('device_pid', '?')}, since "
            f"{h.get('since', '?')}")


def _orphan_note(orphan: dict, ours: bool) -> str:
    if ours:
        return (f"stopped the agent of this deploy's previous attempt, still measuring after its "
                f"link was cut ({describe_agent(orphan)}); the rows it measured are kept and "
                f"this attempt resumes after them")
    return (f"stopped an orphaned agent of a run that stopped answering "
            f"({describe_agent(orphan)}); the rows it measured stay on the device and a re-run "
            f"of its bundle resumes")


def describe_agent(a: dict) -> str:
    return (f"run {a.get('run_id', '?')}, device pid {a.get('pid', '?')}, measuring since "
            f"{a.get('started', '?')}")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid())
