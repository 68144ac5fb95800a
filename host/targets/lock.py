"""The device lock: one edgebench run per device at a time, held as a lease.

A small python process on the device holds an flock on `<remote_dir>/lock` and writes who holds
it there. The host heartbeats it (a byte on its stdin every few seconds) and it records the time
of the last heartbeat in the lock file. A cut link gives no sign on the device (sshd keeps a dead
session for hours), so the holder of a run that stopped answering would live on; instead, a run
that finds the lock held by a holder silent for longer than the lease timeout ends that holder
(same user, the recorded pid, still running this script) and takes the lock. A live run,
heartbeating, is never broken; a retry of our own run waits for its previous attempt's lease to
run out rather than calling the device busy.

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

from edgebench.host.errors import UserError
from edgebench.host.targets.base import LinkDropped, Process, Target, dropped_while

DEFAULT_LEASE_TIMEOUT_S = 60.0
MARK = "edgebench-lease-v2"   # in the holder's command line: what a breaker checks before a kill

# argv: lock path, holder info (JSON), lease timeout s, longest wait for our own old lease s.
# Python 3.8 compatible (preflight's minimum). Exit 3: busy; 4: an agent that cannot be stopped.
_LOCK_SCRIPT = r'''
# edgebench-lease-v2
import fcntl, json, os, signal, sys, time
path, info, timeout, wait_s = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
MARK = b"edgebench-lease-v2"
HEAD = '{"heartbeat": '
fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
def read(f):
    for _ in range(20):
        os.lseek(f, 0, 0)
        raw = os.read(f, 65536).decode("utf-8", "replace").strip()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            time.sleep(0.05)
    return {}
def ours(pid, needle):
    try:
        if os.stat("/proc/%d" % pid).st_uid != os.getuid():
            return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return needle in f.read()
    except (OSError, ValueError, TypeError):
        return False
def say(state, obj):
    sys.stdout.write(state + " " + json.dumps(obj) + "\n"); sys.stdout.flush()
def grab(f):
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB); return True
    except (IOError, OSError):
        return False
def end(pid, f):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except OSError:
            pass
        deadline = time.time() + 5
        while time.time() < deadline:
            if grab(f):
                return True
            time.sleep(0.05)
    return False
recovered = None
deadline = time.time() + wait_s
while not grab(fd):
    holder = read(fd)
    beat, pid = holder.get("heartbeat"), holder.get("device_pid")
    age = time.time() - beat if isinstance(beat, (int, float)) else None
    if age is not None and age > timeout and isinstance(pid, int) and ours(pid, MARK):
        if end(pid, fd):
            recovered = dict(holder, silent_s=round(age, 1))
            break
    elif holder.get("owner") == info["owner"] and age is not None and time.time() < deadline:
        time.sleep(0.2)
        continue
    say("busy", dict(holder, silent_s=None if age is None else round(age, 1)))
    sys.exit(3)
previous = None if recovered else read(fd)
orphan = None
agent_lock = os.path.join(os.path.dirname(path), "agent.lock")
afd = os.open(agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
if not grab(afd):
    orphan = read(afd)
    apid = orphan.get("pid")
    if not (isinstance(apid, int) and ours(apid, b"agent.py") and end(apid, afd)):
        say("agent-busy", orphan)
        sys.exit(4)
    orphan["stopped"] = True
fcntl.flock(afd, fcntl.LOCK_UN); os.close(afd)
info["device_pid"] = os.getpid()
rest = json.dumps(info)[1:]
def beat():
    os.pwrite(fd, ("%20.6f" % time.time()).encode(), len(HEAD))
os.ftruncate(fd, 0)
os.pwrite(fd, (HEAD + "%20.6f" % time.time() + ", " + rest).encode(), 0)
os.fsync(fd)
say("held", {"previous": previous or None, "recovered": recovered, "orphan": orphan})
while os.read(0, 64):
    beat()
os.ftruncate(fd, 0)
'''

# argv: lock path, owner token, agent.lock path, pid file, then the agent's argv. Starts the agent
# only while this run holds the device lock and no other agent measures here; the agent then
# holds agent.lock (an flock inherited across exec) until it exits. Exit 75: refused.
AGENT_WRAPPER = r'''
import fcntl, json, os, sys, time
lock, owner, agent_lock, pid_file = sys.argv[1:5]
argv = sys.argv[5:]
def read(p):
    try:
        with open(p) as f:
            return json.loads(f.read() or "{}")
    except (OSError, ValueError):
        return {}
holder = read(lock)
if holder.get("owner") != owner:
    sys.stderr.write("edgebench: this run no longer holds the device lock (now: run %s); the "
                     "agent was not started\n" % holder.get("run_id", "none"))
    sys.exit(75)
fd = os.open(agent_lock, os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
except (IOError, OSError):
    other = read(agent_lock)
    sys.stderr.write("edgebench: another agent is measuring on this device (run %s, pid %s); "
                     "the agent was not started\n" % (other.get("run_id"), other.get("pid")))
    sys.exit(75)
os.ftruncate(fd, 0)
os.write(fd, json.dumps({"pid": os.getpid(), "run_id": holder.get("run_id"), "owner": owner,
                         "run_dir": os.getcwd(), "started": time.strftime(
                             "%Y-%m-%dT%H:%M:%SZ", time.gmtime())}).encode())
with open(pid_file, "w") as f:
    f.write("%d\n" % os.getpid())
os.set_inheritable(fd, True)
os.execvp(argv[0], argv)
'''


class DeviceBusy(UserError):
    pass


def new_owner() -> str:
    """A token for one deploy of one target, shared by its attempts (so a retry recognises the
    lease of its own cut attempt)."""
    return uuid.uuid4().hex[:16]


class DeviceLock:
    """Context manager holding the lease; `notes` says what was recovered or stopped on the way
    in, `stale` holds the details of a dead run whose lock was recovered."""

    def __init__(self, target: Target, python: str, remote_root: str, run_id: str,
                 owner: Optional[str] = None, timeout_s: float = DEFAULT_LEASE_TIMEOUT_S):
        self.target, self.python = target, python
        self.path = f"{remote_root}/lock"
        self.agent_lock = f"{remote_root}/agent.lock"
        self.timeout_s = float(timeout_s)
        self.owner = owner or new_owner()
        self.info = {"run_id": run_id, "user": _user(), "host": socket.gethostname(),
                     "pid": os.getpid(), "owner": self.owner,
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
        self.stale = recovered or previous or None
        if recovered:
            self.notes.append(f"recovered a lock whose run stopped answering "
                              f"{recovered.get('silent_s', 0):.0f} s ago "
                              f"({describe_holder(recovered)})")
        elif previous:
            self.notes.append(f"recovered a stale lock from a dead run "
                              f"({describe_holder(previous)})")
        if orphan:
            self.orphan = orphan
            self.notes.append(f"stopped an orphaned agent of a run that stopped answering "
                              f"({describe_agent(orphan)}); the rows it measured stay on the "
                              f"device and a re-run of its bundle resumes")

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
        return [self.python, "-c", AGENT_WRAPPER, self.path, self.owner, self.agent_lock,
                pid_file, *argv]


def describe_holder(h: dict) -> str:
    if not h:
        return "holder unknown"
    return (f"run {h.get('run_id', '?')} by {h.get('user', '?')}@{h.get('host', '?')} pid "
            f"{h.get('pid', '?')}, device pid {h.get('device_pid', '?')}, since "
            f"{h.get('since', '?')}")


def describe_agent(a: dict) -> str:
    return (f"run {a.get('run_id', '?')}, device pid {a.get('pid', '?')}, measuring since "
            f"{a.get('started', '?')}")


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return str(os.getuid())
