"""Where an SSH target is and whether we trust it: `user@host[:port]` parsing, `~/.ssh/config`
aliases (HostName, User, Port, IdentityFile, UserKnownHostsFile, ProxyJump, ProxyCommand), jump
host chains (`-J a,b` as OpenSSH's ProxyJump) and the known_hosts policy (OpenSSH's
StrictHostKeyChecking=yes, or =accept-new when asked), applied to every hop alike."""
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
    proxy_jump: Optional[str] = None       # -J: jump hosts for every target, beats ~/.ssh/config
    # A link that has not answered a keepalive for this long is given up as dropped (then
    # retried): a vanished Wi-Fi link raises no error by itself, TCP would wait for hours.
    link_timeout_s: float = 60.0


@dataclass
class Route:
    """How to reach the device: jump hosts in order (each a resolved TargetSpec) or a
    ProxyCommand whose stdin/stdout carry the first connection (not both, as in OpenSSH)."""
    jumps: list = field(default_factory=list)
    proxy_command: Optional[str] = None


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
    Returns (resolved spec, known_hosts files from the config or None, Route)."""
    entry = _lookup(spec.host or spec.name, options)
    resolved = _fill(spec, entry)
    known = entry.get("userknownhostsfile")
    route = _route(options.proxy_jump or spec.proxy_jump, entry, options, spec.name, 0)
    return resolved, ([os.path.expanduser(p) for p in known.split()] if known else None), route


def _config_path(options: ConnectOptions) -> str:
    path = options.ssh_config or os.path.expanduser("~/.ssh/config")
    if options.ssh_config and not os.path.exists(path):
        raise UserError(f"ssh config {path} does not exist")
    return path


def _lookup(host: str, options: ConnectOptions) -> dict:
    path = _config_path(options)
    if not os.path.exists(path):
        return {}
    try:
        return paramiko.SSHConfig.from_path(path).lookup(host)
    except Exception as exc:  # paramiko raises several types for a malformed file
        raise UserError(f"cannot read ssh config {path}: {exc}") from None


def _fill(spec: TargetSpec, entry: dict) -> TargetSpec:
    return dataclasses.replace(
        spec,
        host=entry.get("hostname", spec.host or spec.name),
        user=spec.user or entry.get("user") or _local_user(),
        port=spec.port or int(entry.get("port", 22)),
        identity_files=list(spec.identity_files) + [os.path.expanduser(p) for p in
                                                   entry.get("identityfile", [])],
    )


_MAX_HOPS = 8


def _route(jump: Optional[str], entry: dict, options: ConnectOptions, who: str,
           depth: int) -> Route:
    """OpenSSH's rules: an explicit jump list (-J, the inventory) beats the config; ProxyJump
    beats ProxyCommand; the first hop's own ProxyJump/ProxyCommand from the config is honoured
    (the later hops are reached through the earlier ones)."""
    jump = jump or entry.get("proxyjump")
    if jump and jump.strip().lower() != "none":
        hops = [parse_hop(text, who) for text in jump.split(",")]
        if depth + len(hops) > _MAX_HOPS:
            raise UserError(f"{who}: more than {_MAX_HOPS} jump hosts (a ProxyJump loop in "
                            f"the ssh config?)")
        first_entry = _lookup(hops[0].host, options)
        head = _route(None, first_entry, options, who, depth + len(hops))
        resolved = [_fill(h, _lookup(h.host, options)) for h in hops]
        return Route(jumps=head.jumps + resolved, proxy_command=head.proxy_command)
    command = entry.get("proxycommand")
    if command and command.strip().lower() != "none":
        return Route(proxy_command=command)
    return Route()


def parse_hop(text: str, who: str = "") -> TargetSpec:
    """One jump host: [user@]host[:port] or ssh://[user@]host[:port] (as in ProxyJump / -J)."""
    text = text.strip()
    if text.startswith("ssh://"):
        text = text[len("ssh://"):].rstrip("/")
    m = _TARGET_RE.match(text)
    if not m or text == "local":
        raise UserError(f"{who + ': ' if who else ''}bad jump host {text!r}: expected "
                        f"[user@]host[:port], several joined by commas")
    port = int(m["port"]) if m["port"] else None
    if port is not None and not 0 < port < 65536:
        raise UserError(f"bad port in jump host {text!r}")
    return TargetSpec(name=text, kind="ssh", host=m["host"].strip("[]"), user=m["user"],
                      port=port)


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

    def __init__(self, write_path: str, accept_new: bool, keys: paramiko.HostKeys,
                 role: str = "device"):
        self.write_path = write_path
        self.accept_new = accept_new
        self.keys = keys
        self.role = role              # "device" or "jump host": named in what we say
        self.recorded: list = []      # one line per key recorded under accept-new

    def _who(self, hostname: str) -> str:
        return hostname if self.role == "device" else f"{self.role} {hostname}"

    def missing_host_key(self, client, hostname, key):
        recorded = self.keys.lookup(hostname)
        if recorded:
            other = next(iter(recorded.values()))
            raise UserError(changed_message(hostname, key, other, self.write_path))
        if not self.accept_new:
            raise UserError(
                f"host key for {self._who(hostname)} is not known ({_key_kind(key)} key "
                f"fingerprint {fingerprint(key)}); check that fingerprint on the {self.role} "
                f"(ssh-keygen -lf /etc/ssh/ssh_host_{_key_kind(key).lower()}_key.pub), then rerun "
                f"with --accept-new-host-key to record it in {self.write_path}")
        with _save_lock:
            os.makedirs(os.path.dirname(self.write_path) or ".", mode=0o700, exist_ok=True)
            with open(self.write_path, "a") as f:
                f.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")
        self.keys.add(hostname, key.get_name(), key)
        self.recorded.append(f"recorded the host key of {self.role} {hostname} "
                             f"({_key_kind(key)} {fingerprint(key)}) in {self.write_path}")


def changed_message(hostname: str, offered: paramiko.PKey, recorded: paramiko.PKey,
                    path: str) -> str:
    return (f"REMOTE HOST IDENTIFICATION HAS CHANGED for {hostname}: it sent the "
            f"{_key_kind(offered)} key {fingerprint(offered)} but {path} records "
            f"{_key_kind(recorded)} key {fingerprint(recorded)}; someone could be eavesdropping "
            f"on you (man-in-the-middle), or the device was reinstalled. Refusing to connect. If "
            f"you trust the change, remove the old key with ssh-keygen -R '{hostname}' -f {path} "
            f"and connect again")

