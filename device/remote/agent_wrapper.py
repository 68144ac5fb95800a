"""Starts the agent under the device lock: `python3 -c <this source> LOCK OWNER/ATTEMPT
AGENT_LOCK PID_FILE AGENT_ARGV...`. Starts it only while this attempt of this run holds the
device lock (a cut attempt's late request must not start an agent under its retry's lease) and no
other agent measures here; the agent then holds AGENT_LOCK (an flock inherited across exec)
until it exits. Exit 75: refused. Stdlib only, Python 3.8 compatible."""


def main():
    import fcntl, json, os, sys, time
    lock, token, agent_lock, pid_file = sys.argv[1:5]
    owner, _, attempt = token.partition("/")
    argv = sys.argv[5:]
    def read(p):
        try:
            with open(p) as f:
                return json.loads(f.read() or "{}")
        except (OSError, ValueError):
            return {}
    holder = read(lock)
    if holder.get("owner") != owner or holder.get("attempt", "") != attempt:
        sys.stderr.write("edgebench: this attempt no longer holds the device lock (now: run %s, "
                         "device pid %s); the agent was not started\n"
                         % (holder.get("run_id", "none"), holder.get("device_pid", "none")))
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


if __name__ == "__main__":
    main()
