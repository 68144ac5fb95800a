"""Where an SSH target is and whether we trust it: `user@host[:port]` parsing, `~/.ssh/config`
aliases (HostName, User, Port, IdentityFile, UserKnownHostsFile) and the known_hosts policy
(OpenSSH's StrictHostKeyChecking=yes, or =accept-new when asked)."""
from __future__ import annotations

import base64
import dataclasses
import hashlib
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Optional

import paramiko

from edgebench.host.errors import UserError
from edgebench.host.targets.base import TargetSpec

_TARGET_RE = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                        r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)(?::(?P<port>\d+))?$")
_save_lock = threading.Lock()


@dataclass
class ConnectOptions:
    """How to connect and what to trust; one per run, shared by every SSH target."""
    known_hosts: Optional[str] = None      # read and appended to; default ~/.ssh/known_hosts
    accept_new_host_key: bool = False      # OpenSSH's StrictHostKeyChecking=accept-new
    identity_files: list = field(default_factory=list)   # -i KEY, tried before the agent
    ssh_config: Optional[str] = None       # default ~/.ssh/config when it exists
    connect_timeout: float = 10.0
    keepalive_s: int = 15
    allow_agent: bool = True
    look_for_keys: bool = True             # ~/.ssh/id_* as OpenSSH does


def parse_target(text: str) -> TargetSpec:
    """`local`, `user@host`, `host:port`, `user@[::1]:2222` or a ~/.ssh/config alias."""
    text = text.strip()
    if text == "local":
        return TargetSpec(name="local", kind="local")
    m = _TARGET_RE.match(text)
    if not m:
        raise UserError(f"bad --target {text!r}: expected local, user@host[:port] or an "
                        f"alias from ~/.ssh/config")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise UserError(f"bad port in --target {text!r}")
    return TargetSpec(name=text, kind="ssh", host=m["host"].strip("[]"), user=m["user"], port=port)


def resolve(spec: TargetSpec, options: ConnectOptions) -> tuple:
    """Fill host/user/port/keys from ~/.ssh/config (explicit values win, as with ssh itself).
    Returns (resolved spec, known_hosts files from the config or None)."""
    path = options.ssh_config or os.path.expanduser("~/.ssh/config")
    if options.ssh_config and not os.path.exists(path):
        raise UserError(f"ssh config {path} does not exist")
    entry: dict = {}
    if os.path.exists(path):
        try:
            entry = paramiko.SSHConfig.from_path(path).lookup(spec.host or spec.name)
        except Exception as exc:  # paramiko raises several types for a malformed file
            raise UserError(f"cannot read ssh config {path}: {exc}") from None
    if "proxycommand" in entry or "proxyjump" in entry:
        raise UserError(f"{spec.name}: ProxyCommand/ProxyJump in {path} are not supported; "
                        f"reach the device directly or through a tunnel on a local port")
    resolved = dataclasses.replace(
        spec,
        host=entry.get("hostname", spec.host or spec.name),
        user=spec.user or entry.get("user") or _local_user(),
        port=spec.port or int(entry.get("port", 22)),
        identity_files=list(spec.identity_files) + [os.path.expanduser(p) for p in
                                                   entry.get("identityfile", [])],
    )
    known = entry.get("userknownhostsfile")
    return resolved, ([os.path.expanduser(p) for p in known.split()] if known else None)


def _local_user() -> str:
    import getpass
    return getpass.getuser()


def host_key_name(host: str, port: int) -> str:
    """The name known_hosts files use: `host` on port 22, `[host]:port` otherwise."""
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(key: paramiko.PKey) -> str:
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def _key_kind(key: paramiko.PKey) -> str:
    name = key.get_name()
    return {"ssh-ed25519": "ED25519", "ssh-rsa": "RSA"}.get(
        name, "ECDSA" if name.startswith("ecdsa") else name)


class KnownHostsPolicy(paramiko.MissingHostKeyPolicy):
    """Called by paramiko when no recorded key of the offered type exists for the host.

    A host with a key of another type on record is treated as changed (as OpenSSH warns); a host
    with none is refused unless accept_new, in which case the key is appended to the user's
    known_hosts file, so the next connection verifies against it."""

    def __init__(self, write_path: str, accept_new: bool, keys: paramiko.HostKeys):
        self.write_path = write_path
        self.accept_new = accept_new
        self.keys = keys

    def missing_host_key(self, client, hostname, key):
        recorded = self.keys.lookup(hostname)
        if recorded:
            other = next(iter(recorded.values()))
            raise UserError(changed_message(hostname, key, other, self.write_path))
        if not self.accept_new:
            raise UserError(
                f"host key for {hostname} is not known ({_key_kind(key)} key fingerprint "
                f"{fingerprint(key)}); check that fingerprint on the device "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_{_key_kind(key).lower()}_key.pub), then rerun "
                f"with --accept-new-host-key to record it in {self.write_path}")
        with _save_lock:
            os.makedirs(os.path.dirname(self.write_path) or ".", mode=0o700, exist_ok=True)
            with open(self.write_path, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        self.keys.add(hostname, key.get_name(), key)


def changed_message(hostname: str, offered: paramiko.PKey, recorded: paramiko.PKey,
                    path: str) -> str:
    return (f"REMOTE HOST IDENTIFICATION HAS CHANGED for {hostname}: it sent the "
            f"{_key_kind(offered)} key {fingerprint(offered)} but {path} records "
            f"{_key_kind(recorded)} key {fingerprint(recorded)}; someone could be eavesdropping "
            f"on you (man-in-the-middle), or the device was reinstalled. Refusing to connect. If "
            f"you trust the change, remove the old key with ssh-keygen -R '{hostname}' -f {path} "
            f"and connect again")

