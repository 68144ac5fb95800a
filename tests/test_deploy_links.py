"""Deploys over links that really fail (tests/faultproxy.py on loopback): resets and silent cuts
during uploads, downloads, commands, the lock handshake and the agent run. Every cut is a
LinkDropped naming what was done and how far it got; the retry resumes (partial files, the lease
of the cut attempt, the rows measured) and sends little twice."""
from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from agent_helpers import FAST
from test_deploy import RECIPES, bundle, read_csv, ssh_options, ssh_spec, store_is_sound  # noqa: F401
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.deploy import deploy
from edgebench.host.targets import LinkDropped, open_target
from edgebench.host.targets.lock import DeviceBusy, DeviceLock

pytestmark = pytest.mark.ssh
LEASE_S = 4.0     # the tests' lease and link timeout: a few seconds instead of a minute
BLOB = 1 << 20
LONG_LEASE_S = 90.0   # a lease a retry must not wait out: its own cut attempt's is taken at once


@pytest.fixture(scope="module")
def big_bundle(bundle, tmp_path_factory) -> Path:
    """The tiny-model bundle plus three 1 MiB files: the bytes that matter are three files."""
    out = tmp_path_factory.mktemp("big-bundle") / "bundle"
    shutil.copytree(bundle, out)
    rng = __import__("random").Random(13)
    (out / "extra").mkdir()
    for i in range(3):
        (out / "extra" / f"blob-{i}.bin").write_bytes(rng.randbytes(BLOB))
    return out


def via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy, lease_s=None):
    spec = ssh_spec(ssh_env, sshd, remote_dir)
    spec.port = proxy.port
    kh = tmp_path / "kh"   # the proxy's port is another known_hosts name
    kh.write_text(sshd.known_hosts_line().replace(f":{sshd.port} ", f":{proxy.port} "))
    opts = ssh_options(ssh_env, kh)
    if lease_s:
        opts.link_timeout_s = lease_s
    return spec, opts


def test_bundle_over_a_link_cut_every_40_percent_completes_sending_little_twice(
        big_bundle, ssh_env, sshd, remote_dir, tmp_path, tcp_proxy):
    size = load_bundle(big_bundle).size
    proxy = tcp_proxy(sshd.port, reset_after_up=int(0.4 * size))
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy)
    out = deploy(big_bundle, [spec], tmp_path / "results", FAST, options=opts, retries=1,
                 backoff_s=0.1, progress=False)[0]
    assert out.ok, out.error
    assert out.rows == len(RECIPES)
    assert proxy.cuts >= 2 and out.attempts == proxy.cuts + 1
    # Every cut was retried although retries=1: each attempt got further than the last.
    for msg in out.drops:
        assert re.search(r"link dropped while (uploading extra/blob-\d\.bin \([\d,]+ of "
                         r"1,048,576 bytes sent|verifying )", msg), msg
        assert "connection reset" in msg or "the connection was closed" in msg, msg
    assert out.transfer.files_resumed >= 1 and out.transfer.bytes_resumed > 0
    # A cut loses at most the file in flight (README): SFTP writes are pipelined, so up to the
    # whole file may have left the host without reaching the device's disk, and the retry
    # resumes from what the device holds. Whether a cut lands in such a write or in a commit
    # (nothing in flight) moves with every byte before it (agent.pyz's size, say), so the bound
    # is that guarantee plus each connection's SSH set-up, not a fixed share of the bundle.
    assert proxy.bytes_up <= size + proxy.cuts * BLOB + proxy.connections * 60_000, \
        (proxy.bytes_up, size, out.drops)
    store_is_sound(ssh_env.home / remote_dir / "store")


def test_silent_cut_during_upload_retry_takes_over_its_own_lease_at_once_and_resumes(
        big_bundle, ssh_env, sshd, remote_dir, tmp_path, tcp_proxy):
    """The cut attempt's lease holder lives on in sshd's dead session. The retry, recognising
    its own deploy's lease, ends it and takes the lock at once: it does not wait out a lease of a
    minute and a half (the old way: 'recovered a lock whose run stopped answering 90 s ago')."""
    size = load_bundle(big_bundle).size
    proxy = tcp_proxy(sshd.port, silent_after_up=int(0.5 * size), fault_connections=1)
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy, LEASE_S)
    out = deploy(big_bundle, [spec], tmp_path / "results", FAST, options=opts, retries=1,
                 backoff_s=0.2, progress=False, lease_timeout_s=LONG_LEASE_S)[0]
    assert out.ok, out.error
    assert out.attempts == 2 and out.rows == len(RECIPES)
    assert "while uploading extra/blob-" in out.drops[0]
    assert f"no answer from the device for {LEASE_S:.0f} s" in out.drops[0]
    took = [n for n in out.notes if re.match(r"took over the lease of this deploy's previous "
                                             r"attempt \(cut link; run \S+ by \S+ pid \d+, "
                                             r"device pid \d+", n)]
    assert took, out.notes
    assert not any("stopped answering" in n for n in out.notes), out.notes
    assert out.stale_lock["silent_s"] < LONG_LEASE_S
    assert not _alive(out.stale_lock["device_pid"])          # the cut attempt's holder was ended
    assert (ssh_env.home / remote_dir / "lock").read_text() == ""   # and ours let go at the end
    assert out.transfer.files_resumed == 1
    store_is_sound(ssh_env.home / remote_dir / "store")


def test_silent_cut_during_the_agent_run_stops_the_orphan_and_keeps_rows(
        bundle, ssh_env, sshd, remote_dir, tmp_path, tcp_proxy):
    proxy = tcp_proxy(sshd.port)
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy, LEASE_S)
    first_rows = []

    def cutter():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            csv_path = _run_file(ssh_env.home / remote_dir, "out/results.csv")
            if csv_path and len(csv_path.read_text().splitlines()) >= 2:
                first_rows.append(csv_path.read_text().splitlines()[1])
                proxy.silent_cut()
                return
            time.sleep(0.05)
    t = threading.Thread(target=cutter)
    t.start()
    slow = replace(FAST, min_seconds=7.0, max_seconds=9.0)
    out = deploy(bundle, [spec], tmp_path / "results", slow, options=opts, retries=1,
                 backoff_s=0.2, progress=False, lease_timeout_s=LONG_LEASE_S)[0]
    t.join()
    assert out.ok, out.error
    assert out.attempts == 2 and out.rows == len(RECIPES)
    assert "link dropped while running the agent" in out.drops[0]
    assert re.search(r"\(tinycnn\.\w+ in progress; \d rows? of 2 models done so far, kept on "
                     r"the device\): no answer from the device for 4 s", out.drops[0]), out.drops
    assert any(n.startswith("took over the lease of this deploy's previous attempt (cut link")
               for n in out.notes), out.notes
    orphan = [n for n in out.notes if n.startswith("stopped the agent of this deploy's previous "
                                                   "attempt, still measuring")]
    assert orphan, out.notes           # the cut attempt's agent was still measuring
    _, rows = read_csv(out.results / "results.csv")
    with open(_run_file(ssh_env.home / remote_dir, "out/results.csv")) as f:
        assert f.read().splitlines()[1] == first_rows[0]   # the measured row kept as it was


def test_a_live_heartbeating_lease_is_never_broken(ssh_env, sshd, known_hosts, remote_dir):
    opts = ssh_options(ssh_env, known_hosts)
    with open_target(ssh_env.user + f"@127.0.0.1:{sshd.port}", opts) as a, \
            open_target(ssh_env.user + f"@127.0.0.1:{sshd.port}", opts) as b:
        root = a.expand(remote_dir)
        with DeviceLock(a, ssh_env.python, root, "holder", timeout_s=2.0):
            time.sleep(4.5)          # over twice the lease timeout: only heartbeats keep it
            with pytest.raises(DeviceBusy, match=r"device busy.*run holder.*last heartbeat \d s "
                                                 r"ago; a run silent for 2 s is taken over"):
                DeviceLock(b, ssh_env.python, root, "other", timeout_s=2.0).__enter__()
        with DeviceLock(b, ssh_env.python, root, "other", timeout_s=2.0) as lock:
            assert lock.notes == [] and lock.stale is None   # released cleanly, nothing recovered


def test_own_cut_attempts_lease_is_taken_at_once_another_runs_only_once_silent(
        ssh_env, sshd, known_hosts, remote_dir, tmp_path, tcp_proxy):
    proxy = tcp_proxy(sshd.port)
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy)
    with open_target(sshd.target, ssh_options(ssh_env, known_hosts)) as t:
        root = t.expand(remote_dir)

        def cut_holder(owner: str) -> int:
            """A lease whose link vanished: its holder lives on, silent, in sshd's session."""
            target = open_target(spec, opts).__enter__()
            DeviceLock(target, ssh_env.python, root, "run", owner=owner,
                       timeout_s=LONG_LEASE_S).__enter__()._stop.set()
            proxy.silent_cut()
            return json.loads((ssh_env.home / remote_dir / "lock").read_text())["device_pid"]

        first = cut_holder("deploy-1")
        with pytest.raises(DeviceBusy, match=r"device busy.*run run by .*last heartbeat \d s ago"):
            DeviceLock(t, ssh_env.python, root, "other-run", timeout_s=LONG_LEASE_S).__enter__()
        with DeviceLock(t, ssh_env.python, root, "run", owner="deploy-1",
                        timeout_s=LONG_LEASE_S) as retry:
            assert retry.stale["device_pid"] == first and not _alive(first)
            assert len(retry.notes) == 1 and retry.notes[0].startswith(
                "took over the lease of this deploy's previous attempt (cut link; run run by ")
        second = cut_holder("deploy-2")      # another run's: broken only once silent past 1 s
        time.sleep(1.5)
        with DeviceLock(t, ssh_env.python, root, "other-run", timeout_s=1.0) as other:
            assert other.stale["device_pid"] == second and not _alive(second)
            assert other.notes[0].startswith("recovered a lock whose run stopped answering")


def test_cut_during_the_lock_handshake_is_a_link_drop(ssh_env, sshd, known_hosts, remote_dir,
                                                      tmp_path, tcp_proxy):
    """A lease of our own deploy that cannot be ended (its holder is not the lease script) is
    waited for; a reset while the retry waits says so."""
    import fcntl
    proxy = tcp_proxy(sshd.port)
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy)
    with open_target(sshd.target, ssh_options(ssh_env, known_hosts)) as a, \
            open_target(spec, opts) as b:
        root = a.expand(remote_dir)
        with DeviceLock(a, ssh_env.python, root, "run"):
            pass                             # the lock file, made by the device's user
        with open(ssh_env.home / remote_dir / "lock", "r+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.write(json.dumps({"heartbeat": time.time(), "owner": "same-owner", "run_id": "run",
                                "host": socket.gethostname(), "pid": os.getpid(),
                                "device_pid": os.getpid()}))
            f.flush()
            threading.Timer(1.0, proxy.reset_all).start()
            with pytest.raises(LinkDropped, match=r"link dropped while taking the device lock: "
                                                  r"(connection reset|the connection was closed)"):
                DeviceLock(b, ssh_env.python, root, "run", owner="same-owner",
                           timeout_s=1.0).__enter__()


def test_reset_during_a_download_and_a_command_names_what_was_cut(
        ssh_env, sshd, remote_dir, tmp_path, tcp_proxy):
    proxy = tcp_proxy(sshd.port)
    spec, opts = via_proxy(ssh_env, sshd, remote_dir, tmp_path, proxy)
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(3 * BLOB))
    with open_target(spec, opts) as t:
        t.run(["mkdir", "-p", t.expand(remote_dir)])
        t.put(src, f"{t.expand(remote_dir)}/big.bin")
    proxy.reset_after_down = proxy.bytes_down + BLOB     # the next connection dies 1 MiB down
    with open_target(spec, opts) as t:
        with pytest.raises(LinkDropped, match=r"link dropped while fetching \S+/big.bin "
                                              r"\([\d,]+ of 3,145,728 bytes had arrived\)"):
            t.get(f"{t.expand(remote_dir)}/big.bin", tmp_path / "back.bin")
    proxy.reset_after_down = None
    with open_target(spec, opts) as t:
        threading.Timer(0.5, proxy.reset_all).start()
        with pytest.raises(LinkDropped, match="link dropped while running sleep"):
            t.run(["sleep", "10"])


def test_orphaned_agent_of_a_killed_run_is_stopped_before_another_bundle_measures(
        bundle, tmp_path):
    """kill -9 of `bench-host deploy` frees its lock (the holder's stdin closes) but leaves its
    agent measuring; a run of another bundle must stop it before its own agent starts."""
    from cli_runner import BENCH_HOST
    device = tmp_path / "device"
    other = tmp_path / "other-bundle"
    shutil.copytree(bundle, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["run_id"] = "other-run"
    (other / "manifest.json").write_text(json.dumps(manifest))
    host = subprocess.Popen([str(BENCH_HOST), "deploy", "--bundle", str(bundle), "--target",
                             "local", "--remote-dir", str(device), "--results",
                             str(tmp_path / "r1"), "--no-progress",
                             *replace(FAST, min_seconds=30.0, max_seconds=40.0).to_argv()],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid_file = None
    try:
        deadline = time.monotonic() + 60
        while not pid_file and time.monotonic() < deadline:
            pid_file = _run_file(device, "agent.pid")
            time.sleep(0.05)
        agent_pid = int(pid_file.read_text())
        while not _children(agent_pid) and time.monotonic() < deadline:
            time.sleep(0.05)       # a model is being measured: the agent prints nothing for 30 s
        os.kill(host.pid, signal.SIGKILL)
        host.wait()
        time.sleep(0.5)
        assert _alive(agent_pid), "the agent should outlive its killed host (the orphan case)"
        out = deploy(other, ["local"], tmp_path / "r2", FAST, remote_dir=str(device),
                     progress=False, lease_timeout_s=LEASE_S)[0]
        assert out.ok, out.error
        assert any(n.startswith("stopped an orphaned agent of a run that stopped answering "
                                "(run ") for n in out.notes), out.notes
        assert not _alive(agent_pid)
    finally:
        if host.poll() is None:
            host.kill()
        if pid_file and _alive(int(pid_file.read_text())):
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def _run_file(device_root: Path, rel: str):
    """A file of the (only) run folder on the device, once it is there."""
    found = sorted(device_root.glob(f"runs/*/{rel}"))
    return found[0] if found else None


def _children(pid: int) -> list:
    kids = []
    for d in Path("/proc").iterdir():
        try:
            if d.name.isdigit() and int((d / "stat").read_text().split(")")[-1].split()[1]) == pid:
                kids.append(int(d.name))
        except (OSError, ValueError, IndexError):
            pass
    return kids


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def test_partials_resume_only_when_their_prefix_checks_out_and_old_ones_are_cleaned(tmp_path):
    """transfer.sync on this machine: a partial with the right first bytes is continued, one
    with wrong bytes is started over, partials nobody wants are removed once old."""
    from edgebench.host.targets import open_target as ot
    from edgebench.host.targets.transfer import bundle_file, sync
    import sys
    src = tmp_path / "src"
    src.mkdir()
    data = {n: os.urandom(300_000 + i) for i, n in enumerate(("a.bin", "b.bin"))}
    for n, d in data.items():
        (src / n).write_bytes(d)
    files = [bundle_file(src, n) for n in data]
    store = tmp_path / "dev" / "store"
    store.mkdir(parents=True)
    (store / f".part-{files[0].sha256}").write_bytes(data["a.bin"][:123_456])     # good prefix
    (store / f".part-{files[1].sha256}").write_bytes(b"x" * 1000)                 # wrong bytes
    unwanted_old = store / f".part-{hashlib.sha256(b'old').hexdigest()}"
    unwanted_new = store / f".part-{hashlib.sha256(b'new').hexdigest()}"
    for p in (unwanted_old, unwanted_new):
        p.write_bytes(b"partial")
    os.utime(unwanted_old, (time.time() - 3 * 86400,) * 2)
    with ot("local") as t:
        stats = sync(t, files, str(tmp_path / "dev"), str(tmp_path / "dev" / "b"), sys.executable)
    assert stats.files_resumed == 1 and stats.bytes_resumed == 123_456
    assert stats.bytes_sent == sum(f.size for f in files) - 123_456
    assert not unwanted_old.exists() and unwanted_new.exists()
    for f in files:
        assert (store / f.sha256).read_bytes() == data[f.rel]
        assert (tmp_path / "dev" / "b" / f.rel).read_bytes() == data[f.rel]
