"""Start, stop and inspect an emulated arm64 device: the image's rootfs, its own arm64 sshd under
qemu-user, alone in a network namespace.

Process layout: `ip netns exec NS unshare --mount --pid --uts --fork --kill-child -- sh -c
SETUP`. SETUP (host tools, before the chroot) sets the device's hostname (its name), mounts /proc,
binfmt_misc, /run, /dev/shm and /sys/devices/system/cpu (read-only) inside the rootfs, then execs
`chroot ROOTFS /usr/sbin/sshd -D`, so sshd is PID 1 of its own PID namespace. Everything of the
device therefore dies at once when `unshare` is killed (its --kill-child SIGKILLs sshd, and a PID
namespace dies with its PID 1), and the mounts vanish with the private mount namespace: a stop is
a power cut, and nothing leaks onto the host even if we crash.

The device keeps its disk (the extracted rootfs, host key included) across stop/start, as a board
keeps its SD card; `stop(purge=True)` throws it away, so the next start is a freshly flashed device
with a new host key."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

from edgebench.host.emulate import hostcheck, netns
from edgebench.host.emulate.build import ensure_image
from edgebench.host.emulate.images import (
    DEVICE_USER, ImageRecipe, cache_root, get_image,
)
from edgebench.host.errors import UserError
from edgebench.host.files import write_atomic
from edgebench.host.targets.base import TargetSpec

QEMU_CPU = "cortex-a72"     # a Raspberry Pi 4's core; qemu's default "max" CPU is no real board
SSH_PORT = 22
READY_TIMEOUT_S = 90
_SETUP = r'''
set -e
R="$1"; hostname "$2"; shift 2
mount -t proc proc "$R/proc"
# The agent's own check (edgebench.device.agent.environment.is_emulated) reads the qemu handler here.
mount -t binfmt_misc binfmt_misc "$R/proc/sys/fs/binfmt_misc" ||
  echo "warning: no binfmt_misc in the device" >&2
mount -t tmpfs -o mode=755 tmpfs "$R/run"
# A board's /sys has its CPU list; ONNX Runtime's cpuinfo reads it at import and, without it,
# ORT 1.19-1.23 abort ("Attempt to use DefaultLogger but none has been registered"). Only that
# folder, read-only: the host's DMI, thermal zones and network devices stay out of the device.
mount -t tmpfs -o mode=755 tmpfs "$R/sys"
mkdir -p "$R/sys/devices/system/cpu"
mount --bind /sys/devices/system/cpu "$R/sys/devices/system/cpu"
mount -o remount,bind,ro "$R/sys/devices/system/cpu"
mount -t tmpfs -o mode=1777 tmpfs "$R/dev/shm"
mkdir -p "$R/run/sshd"
exec chroot "$R" "$@"
'''


@dataclass
class DeviceState:
    name: str
    image: str
    image_key: str
    netns: str
    host_if: str
    host_addr: str
    dev_addr: str
    port: int
    user: str
    client_key: str
    known_hosts: str
    pid: Optional[int] = None
    started_utc: Optional[str] = None

    def spec(self) -> TargetSpec:
        """The device as a deploy/doctor target (the rootfs's python3 finds its runtime)."""
        return TargetSpec(name=self.name, kind="ssh", host=self.dev_addr, user=self.user,
                          port=self.port, identity_files=[self.client_key], python="python3")

    @property
    def target(self) -> str:
        return f"{self.user}@{self.dev_addr}:{self.port}"

    def inventory_line(self) -> str:
        """One Ansible-INI host line (bench-host deploy --inventory reads it)."""
        return (f"{self.name} ansible_host={self.dev_addr} ansible_port={self.port} "
                f"ansible_user={self.user} ansible_ssh_private_key_file={self.client_key} "
                f"ansible_python_interpreter=python3")


def check_name(name: str) -> str:
    """Device names become folder and namespace names: keep them plain."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,47}", name or ""):
        raise UserError(f"bad device name {name!r}: use letters, digits, '.', '_' and '-' "
                        f"(at most 48)")
    return name


def devices_root() -> Path:
    return cache_root() / "devices"


def device_dir(name: str) -> Path:
    return devices_root() / name


def load_state(name: str) -> Optional[DeviceState]:
    try:
        return DeviceState(**json.loads((device_dir(name) / "state.json").read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _save(state: DeviceState) -> None:
    path = device_dir(state.name) / "state.json"
    write_atomic(path, json.dumps(asdict(state), indent=1))


def _alive(pid: Optional[int], rootfs: Path) -> bool:
    """True when pid is still our device's unshare (not a recycled pid, not a zombie)."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z" and str(rootfs).encode() in cmdline


def is_running(state: DeviceState) -> bool:
    return _alive(state.pid, device_dir(state.name) / "rootfs")


def _keygen(path: Path) -> None:
    hostcheck.run_quiet(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C",
                         "edgebench-emulated", "-f", str(path)])


def _user_ids(rootfs: Path, user: str) -> tuple:
    for line in (rootfs / "etc/passwd").read_text().splitlines():
        f = line.split(":")
        if f[0] == user:
            return int(f[2]), int(f[3]), f[5]
    raise UserError(f"the image has no user {user!r}; rebuild it (bench-host emulate build "
                    f"--rebuild)")


def _prepare_rootfs(recipe: ImageRecipe, ddir: Path, log) -> Path:
    """Extract the image unless this device already has a rootfs from the same recipe."""
    rootfs = ddir / "rootfs"
    marker = ddir / "image.key"
    if rootfs.exists() and marker.exists() and marker.read_text().strip() == recipe.key:
        return rootfs
    image = ensure_image(recipe, log)
    _remove_tree(rootfs)
    rootfs.mkdir(parents=True)
    log(f"extracting {image.name}")
    hostcheck.run_quiet(["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-I", "zstd",
                         "-C", str(rootfs), "-xpf", str(image)], timeout=600)
    marker.write_text(recipe.key + "\n")
    return rootfs


def _configure_ssh(rootfs: Path, ddir: Path, dev_addr: str) -> tuple:
    """Host key (made once per rootfs: a rebuild gets a new one), client key, sshd_config,
    authorized_keys and the session environment. Returns (client_key, known_hosts)."""
    host_key = rootfs / "etc/ssh/ssh_host_ed25519_key"
    if not host_key.exists():
        _keygen(host_key)
    client_key = ddir / "client_ed25519"
    if not client_key.exists():
        _keygen(client_key)
    uid, gid, home = _user_ids(rootfs, DEVICE_USER)
    ssh_dir = rootfs / home.lstrip("/") / ".ssh"
    ssh_dir.mkdir(mode=0o700, exist_ok=True)
    (ssh_dir / "authorized_keys").write_text(client_key.with_suffix(".pub").read_text())
    # sshd gives sessions a fresh environment; qemu reads QEMU_CPU at every exec, so it must
    # be in the session's own (PermitUserEnvironment; OpenSSH 8.4 has no sshd SetEnv).
    (ssh_dir / "environment").write_text(f"QEMU_CPU={QEMU_CPU}\n")
    for p in (ssh_dir, ssh_dir / "authorized_keys", ssh_dir / "environment"):
        os.chown(p, uid, gid)
    (rootfs / "etc/ssh/sshd_config").write_text(f"""\
# Written by edgebench's emulated device; regenerated at every start.
ListenAddress {dev_addr}
Port {SSH_PORT}
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
AuthorizedKeysFile .ssh/authorized_keys
AllowUsers {DEVICE_USER}
PermitRootLogin no
PubkeyAuthentication yes
PasswordAuthentication no
UsePAM no
StrictModes no
PermitUserEnvironment yes
UseDNS no
AllowTcpForwarding no
X11Forwarding no
MaxStartups 50
Subsystem sftp internal-sftp
""")
    known_hosts = ddir / "known_hosts"
    kind, b64 = (host_key.with_suffix(".pub")).read_text().split()[:2]
    known_hosts.write_text(f"{dev_addr} {kind} {b64}\n")
    return client_key, known_hosts


def start(image: str = "bookworm", name: Optional[str] = None,
          log: Optional[Callable[[str], None]] = None) -> DeviceState:
    """Start (building or extracting as needed) and return once its sshd answers."""
    log = log or (lambda msg: None)
    recipe = get_image(image)
    name = check_name(name or f"pi-{recipe.name}")
    hostcheck.require_root("an emulated device")
    hostcheck.require_tools(hostcheck.START_TOOLS)
    for note in hostcheck.ensure_binfmt():
        log(note)
    old = load_state(name)
    if old and is_running(old):
        if old.image != recipe.name:
            raise UserError(f"{name} is running the {old.image} image; stop it first")
        return old
    ddir = device_dir(name)
    ddir.mkdir(parents=True, exist_ok=True)
    if old and old.image != recipe.name:
        _remove_tree(ddir / "rootfs")
    rootfs = _prepare_rootfs(recipe, ddir, log)
    hostcheck.check_arm64_runs(rootfs)
    link = netns.create(name, prefer=old.dev_addr if old else None)
    try:
        client_key, known_hosts = _configure_ssh(rootfs, ddir, link.dev_addr)
        state = DeviceState(name=name, image=recipe.name, image_key=recipe.key,
                            netns=link.netns, host_if=link.host_if, host_addr=link.host_addr,
                            dev_addr=link.dev_addr, port=SSH_PORT, user=DEVICE_USER,
                            client_key=str(client_key), known_hosts=str(known_hosts))
        _launch(state, rootfs, ddir)
        _save(state)
        _wait_ready(state, rootfs, ddir)
    except BaseException:
        stop(name)
        raise
    log(f"{name}: {state.target} (ssh key {client_key}, known_hosts {known_hosts})")
    return state


def _launch(state: DeviceState, rootfs: Path, ddir: Path) -> None:
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "QEMU_CPU": QEMU_CPU, "LANG": "C.UTF-8"}
    argv = ["ip", "netns", "exec", state.netns,
            "unshare", "--mount", "--pid", "--uts", "--fork", "--kill-child",
            "--propagation", "private",
            "--", "sh", "-c", _SETUP, "edgebench-device", str(rootfs), state.name,
            "/usr/sbin/sshd", "-D", "-e", "-f", "/etc/ssh/sshd_config"]
    with open(ddir / "sshd.log", "ab") as logf:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                                env=env, start_new_session=True)
    _CHILDREN[proc.pid] = proc
    state.pid = proc.pid
    state.started_utc = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# Popen handles of devices this process started, so a stop can reap them (no zombies in tests).
_CHILDREN: dict = {}


def _wait_ready(state: DeviceState, rootfs: Path, ddir: Path) -> None:
    """Until sshd sends its banner; an early exit or a deadline is an error with sshd's log."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        # Our own child is asked directly: right after the fork its cmdline is still ours.
        proc = _CHILDREN.get(state.pid)
        if (proc.poll() is not None) if proc else not _alive(state.pid, rootfs):
            raise UserError(f"{state.name}: the device's sshd exited at start: {_log_tail(ddir)}")
        try:
            with socket.create_connection((state.dev_addr, state.port), timeout=2) as s:
                s.settimeout(10)
                if s.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise UserError(f"{state.name}: sshd did not answer within {READY_TIMEOUT_S} s: "
                    f"{_log_tail(ddir)}")


def _log_tail(ddir: Path) -> str:
    try:
        lines = (ddir / "sshd.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return "no log"
    return " | ".join(lines[-3:]) or "empty log"


def stop(name: str, purge: bool = False) -> bool:
    """Power the device off: kill its process tree by PID, delete its namespace. With purge, also
    delete its disk (the next start is a fresh device with a new host key). Returns whether
    anything was running."""
    check_name(name)
    state = load_state(name)
    ns_name, host_if, _ = netns.names_for(name)
    was_running = False
    if state and state.pid and _alive(state.pid, device_dir(name) / "rootfs"):
        was_running = True
        _kill(state.pid)
    if netns.exists(ns_name):
        # Wait for the namespace to empty before deleting it: its processes' sockets close as
        # they die, so the host's SSH sessions see the link end at once instead of hanging on
        # a vanished route; anything still there (not in the PID namespace) is killed by PID.
        grace, deadline = time.monotonic() + 2, time.monotonic() + 10
        while (left := netns.pids(ns_name)) and time.monotonic() < deadline:
            if time.monotonic() > grace:
                for pid in left:
                    _kill(pid)
            time.sleep(0.05)
    netns.destroy(ns_name, host_if)
    if state:
        state.pid = None
        _save(state)
    if purge:
        _remove_tree(device_dir(name))
    return was_running


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc = _CHILDREN.pop(pid, None)
    if proc is not None:
        proc.wait(timeout=10)
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        try:
            if Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)


def _remove_tree(path: Path) -> None:
    """rmtree, but never through a mount point (a leaked /proc mount would be walked)."""
    if not path.exists():
        return
    prefix = str(path.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        mounted = [line.split()[4] for line in f if line.split()[4].startswith(prefix)]
    for point in sorted(mounted, reverse=True):
        hostcheck.run_quiet(["umount", "-l", point], check=False)
    with open("/proc/self/mountinfo") as f:
        if any(line.split()[4].startswith(prefix) for line in f):
            raise UserError(f"{path} still has mounts under it; unmount them, then retry")
    shutil.rmtree(path)


def status() -> list:
    """[(DeviceState, running)] for every device that has a folder."""
    out = []
    if devices_root().exists():
        for d in sorted(devices_root().iterdir()):
            state = load_state(d.name)
            if state:
                out.append((state, is_running(state)))
    return out
