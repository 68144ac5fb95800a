"""Real OpenSSH servers on 127.0.0.1 for the deploy tests (devices, and jump hosts that only
forward), and the `tcp_proxy` fixture: a TCP proxy that misbehaves (tests/faultproxy.py).

Registered once for the whole suite in conftest.py (a test module must not import the fixtures
itself: each importing module would get session fixtures of its own).
Every server has its own config, host key, authorized key and pid, listens on loopback only and is
stopped by its PID. Logins use a dedicated unprivileged user (`ebtest`, /bin/sh) because root's
shell start-up here costs 270-430 ms per command. Keys are generated per session in a temp dir.
"""
from __future__ import annotations

import fcntl
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

from ports import free_port

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
TEST_USER = "ebtest"
SYSTEM_PYTHON = "/usr/bin/python3"


def _need_root_and_sshd() -> None:
    if os.geteuid() != 0:
        pytest.skip("the loopback sshd tests create a test user and need root")
    if not os.path.exists(SSHD):
        pytest.skip("openssh-server is not installed (tests/run.sh installs it)")


def ensure_test_user(name: str = TEST_USER) -> pwd.struct_passwd:
    """A plain user with /bin/sh (TEST_USER unless named); `useradd` leaves it locked ('!') and sshd with UsePAM no refuses
    locked accounts, so the password field is set to '*' (no password, but not locked)."""
    # pytest-xdist workers all come here at the start: one creates the user, the others wait.
    with open("/run/edgebench-test-useradd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            return pwd.getpwnam(name)
        except KeyError:
            subprocess.run(["useradd", "-m", "-s", "/bin/sh", name], check=True)
            subprocess.run(["usermod", "-p", "*", name], check=True)
            return pwd.getpwnam(name)


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "edgebench-test", "-f",
                    str(path)], check=True)
    return path


@dataclass
class SSHEnv:
    """What the whole session shares: the test user, its client key, a place for files."""
    root: Path                 # 0755 temp dir readable by the test user
    user: str
    home: Path
    client_key: Path           # authorized on every server
    authorized_keys: Path
    python: str                # an interpreter the test user can run, with numpy and LiteRT


@dataclass
class SSHServer:
    env: SSHEnv
    port: int
    host_key: Path
    workdir: Path
    proc: Optional[subprocess.Popen] = None
    extra_config: str = ""
    jump_only: bool = False    # a bastion: TCP forwarding to loopback ports, no commands, no sftp

    @property
    def host(self) -> str:
        return "127.0.0.1"

    @property
    def target(self) -> str:
        return f"{self.env.user}@127.0.0.1:{self.port}"

    def known_hosts_line(self) -> str:
        kind, b64 = self.host_key.with_suffix(".pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {b64}\n"

    def start(self) -> "SSHServer":
        cfg = self.workdir / "sshd_config"
        cfg.write_text(f"""\
ListenAddress 127.0.0.1
Port {self.port}
HostKey {self.host_key}
PidFile {self.workdir}/sshd.pid
AuthorizedKeysFile {self.env.authorized_keys}
AllowUsers {self.env.user}
PermitRootLogin no
PubkeyAuthentication yes
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
{self._role_config()}
X11Forwarding no
MaxStartups 50
{self.extra_config}
""")
        os.makedirs("/run/sshd", exist_ok=True)
        subprocess.run([SSHD, "-t", "-f", str(cfg)], check=True)
        self._log = open(self.workdir / "sshd.log", "ab")
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(cfg)], stderr=self._log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"sshd exited: {(self.workdir / 'sshd.log').read_text()}")
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening in 10 s")

    def _role_config(self) -> str:
        if not self.jump_only:
            return "AllowTcpForwarding no\nSubsystem sftp internal-sftp"
        return ("AllowTcpForwarding local\nPermitOpen 127.0.0.1:*\nPermitTTY no\n"
                "ForceCommand /bin/false")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        if getattr(self, "_log", None):
            self._log.close()
            self._log = None

    def log(self) -> str:
        return (self.workdir / "sshd.log").read_text(errors="replace")


def make_server(env: SSHEnv, host_key: Optional[Path] = None, extra_config: str = "",
                jump_only: bool = False) -> SSHServer:
    work = Path(tempfile.mkdtemp(prefix="sshd-", dir=env.root))
    key = host_key or keygen(work / "host_ed25519")
    return SSHServer(env=env, port=free_port(), host_key=key, workdir=work,
                     extra_config=extra_config, jump_only=jump_only)


def _test_python(root: Path) -> str:
    """The test user cannot read /root (where the project venv's base interpreter lives), so give
    it a venv on the system python 3.11 that sees the project venv's site-packages; this is also
    exactly the `--remote-python /path/to/venv/bin/python` case."""
    import numpy  # noqa: F401  (the project venv must have it)
    site = next(Path(p) for p in __import__("sys").path
                if p.endswith("site-packages") and (Path(p) / "numpy").exists())
    venv = root / "venv"
    subprocess.run([SYSTEM_PYTHON, "-m", "venv", "--without-pip", str(venv)], check=True)
    ver = subprocess.run([str(venv / "bin/python"), "-c",
                          "import sys;print('python%d.%d' % sys.version_info[:2])"],
                         check=True, capture_output=True, text=True).stdout.strip()
    (venv / "lib" / ver / "site-packages" / "edgebench-host.pth").write_text(f"{site}\n")
    return str(venv / "bin/python")


@pytest.fixture(scope="session")
def ssh_env():
    _need_root_and_sshd()
    user = ensure_test_user()
    root = Path(tempfile.mkdtemp(prefix="edgebench-ssh-"))
    os.chmod(root, 0o755)
    key = keygen(root / "client_ed25519")
    auth = root / "authorized_keys"
    auth.write_text(key.with_suffix(".pub").read_text())
    os.chmod(auth, 0o644)
    env = SSHEnv(root=root, user=TEST_USER, home=Path(user.pw_dir), client_key=key,
                 authorized_keys=auth, python=_test_python(root))
    yield env
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def sshd(ssh_env):
    """One server for the whole session (start-up is ~50 ms, but sessions share host keys)."""
    server = make_server(ssh_env).start()
    yield server
    server.stop()


@pytest.fixture
def sshd_factory(ssh_env):
    """make(**kw) -> a started SSHServer; all stopped by PID at teardown."""
    made = []

    def make(**kw) -> SSHServer:
        s = make_server(ssh_env, **kw).start()
        made.append(s)
        return s
    yield make
    for s in made:
        s.stop()


@pytest.fixture
def known_hosts(tmp_path, sshd):
    """A known_hosts file that trusts the session server (tests never touch ~/.ssh)."""
    path = tmp_path / "known_hosts"
    path.write_text(sshd.known_hosts_line())
    return path


@pytest.fixture
def remote_dir(ssh_env):
    """A fresh working folder (relative to the test user's home) per test."""
    rel = f"ebtest-{uuid.uuid4().hex[:10]}"
    yield rel
    shutil.rmtree(ssh_env.home / rel, ignore_errors=True)


# --- a loopback TCP proxy that resets, silently cuts or throttles the link (tests/faultproxy.py) ---

@pytest.fixture
def tcp_proxy():
    """make(upstream_port, reset_after_up=None, silent_after_up=None, rate_bps=None, ...) -> a
    started FaultProxy; all stopped at teardown."""
    from faultproxy import FaultProxy
    made = []

    def make(upstream_port: int, **kw) -> FaultProxy:
        p = FaultProxy(upstream_port, **kw).start()
        made.append(p)
        return p
    yield make
    for p in made:
        p.stop()
