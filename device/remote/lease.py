"""The device lock's holder, run on the device as `python3 -c <this source> LOCK INFO TIMEOUT
WAIT` before anything else is there (host/targets/lock.py sends it). Takes LOCK (an flock). Takes
over at once the lease of an earlier attempt of this same deploy (INFO's owner, host, pid and
run_id match), and the lease of another run once it has been silent past TIMEOUT; either holder is
first checked to be ours by its command line, and an agent still measuring there is stopped the
same way. Says "held"/"busy"/"agent-busy" with JSON details on stdout, then beats the heartbeat
for every byte the host sends and lets go at EOF.
Python 3.8 compatible (preflight's minimum), stdlib only. Exit 3: busy; 4: an agent that cannot
be stopped."""
# edgebench-lease-v2: this marker is in every lease holder's command line (the source is its
# argv), which is how a holder is told to be ours before it is stopped.
import fcntl
import json
import os
import signal
import sys
import time

MARK = b"edgebench-lease-v2"
AGENT_MARK = b"/agent.pyz\x00"  # our agent's cmdline: python3 .../bundle/agent.pyz --bundle ...
HEAD = '{"heartbeat": '
MINE = ("owner", "host", "pid", "run_id")


def read(f):
    """The JSON a lock file holds ({} when empty); a holder mid-write is read again."""
    for _ in range(20):
        os.lseek(f, 0, 0)
        raw = os.read(f, 65536).decode("utf-8", "replace").strip()
        try:
            return json.loads(raw) if raw else {}
        except ValueError:
            time.sleep(0.05)
    return {}


def ours(pid, needle):
    """Whether process `pid` is this user's and its command line holds `needle`."""
    try:
        if os.stat("/proc/%d" % pid).st_uid != os.getuid():
            return False
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return needle in f.read()
    except (OSError, ValueError, TypeError):
        return False


def say(state, obj):
    sys.stdout.write(state + " " + json.dumps(obj) + "\n")
    sys.stdout.flush()


def grab(f):
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except (IOError, OSError):
        return False


def end(pid, f):
    """Stop `pid` (TERM, then KILL) until its lock on `f` is ours; False if it never is."""
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


def take(fd, info, timeout, wait_s):
    """Hold the lease on `fd`: (recovered, took) holders' details, or exit 3 (busy)."""
    deadline = time.time() + wait_s
    while not grab(fd):
        holder = read(fd)
        beat, pid = holder.get("heartbeat"), holder.get("device_pid")
        age = time.time() - beat if isinstance(beat, (int, float)) else None
        silent = dict(holder, silent_s=None if age is None else round(age, 1))
        mine = all(holder.get(k) == info.get(k) for k in MINE)
        # Our own deploy's earlier attempt: its host side is gone (attempts follow one another),
        # only its link's dead session keeps it alive, so its lease is ours to take now.
        if mine and isinstance(pid, int) and ours(pid, MARK) and end(pid, fd):
            return None, silent
        if age is not None and age > timeout and isinstance(pid, int) and ours(pid, MARK):
            if end(pid, fd):
                return silent, None
        elif holder.get("owner") == info["owner"] and age is not None and time.time() < deadline:
            time.sleep(0.2)
            continue
        say("busy", silent)
        sys.exit(3)
    return None, None


def stop_orphan_agent(path):
    """An agent of ours still measuring under this folder is stopped (its details, "stopped");
    one that cannot be is exit 4 (agent-busy). None when there is none."""
    orphan = None
    afd = os.open(os.path.join(os.path.dirname(path), "agent.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    if not grab(afd):
        orphan = read(afd)
        apid = orphan.get("pid")
        if not (isinstance(apid, int) and ours(apid, AGENT_MARK) and end(apid, afd)):
            say("agent-busy", orphan)
            sys.exit(4)
        orphan["stopped"] = True
    fcntl.flock(afd, fcntl.LOCK_UN)
    os.close(afd)
    return orphan


def write_lease(fd, info):
    info["device_pid"] = os.getpid()
    rest = json.dumps(info)[1:]
    os.ftruncate(fd, 0)
    os.pwrite(fd, (HEAD + "%20.6f" % time.time() + ", " + rest).encode(), 0)
    os.fsync(fd)


def beat_until_eof(fd):
    """The heartbeat, beaten for every byte the host sends; the lease let go at EOF."""
    while os.read(0, 64):
        os.pwrite(fd, ("%20.6f" % time.time()).encode(), len(HEAD))
    os.ftruncate(fd, 0)


def main():
    path, info, timeout, wait_s = (sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3]),
                                   float(sys.argv[4]))
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    recovered, took = take(fd, info, timeout, wait_s)
    previous = None if recovered or took else read(fd)
    orphan = stop_orphan_agent(path)
    write_lease(fd, info)
    say("held", {"previous": previous or None, "recovered": recovered, "took_over": took,
                 "orphan": orphan})
    beat_until_eof(fd)


if __name__ == "__main__":
    main()
