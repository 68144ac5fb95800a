"""Fleet inventories: TOML, or the Ansible INI format so existing inventories work unchanged.

TOML:
    [defaults]                 # optional, applies to every device
    user = "pi"
    python = "/home/pi/venv/bin/python"
    [devices.pi4-a]
    host = "192.168.1.20"      # or an alias from ~/.ssh/config
    port = 22
    identity_file = "~/.ssh/id_ed25519"
    remote_dir = "~/.edgebench"
    proxy_jump = "gw.lab"      # optional: jump hosts, as ssh -J / ProxyJump
    [devices.bench-box]
    host = "local"             # this machine

Ansible INI (host lines with ansible_* variables, [group:vars], [all:vars]; groups are only
a way to set variables here):
    [pis]
    pi4-a ansible_host=192.168.1.20 ansible_user=pi
    jetson ansible_host=192.168.1.30 ansible_port=2222 ansible_python_interpreter=/usr/bin/python3
    [pis:vars]
    ansible_ssh_private_key_file=~/.ssh/id_ed25519
"""
from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.targets.base import TargetSpec
from edgebench.host.targets.transfer import safe_name

_TOML_KEYS = {"host", "user", "port", "identity_file", "python", "remote_dir", "proxy_jump"}
_ANSIBLE = {
    "ansible_host": "host", "ansible_ssh_host": "host",
    "ansible_user": "user", "ansible_ssh_user": "user",
    "ansible_port": "port", "ansible_ssh_port": "port",
    "ansible_ssh_private_key_file": "identity_file", "ansible_private_key_file": "identity_file",
    "ansible_python_interpreter": "python", "edgebench_remote_dir": "remote_dir",
    "edgebench_proxy_jump": "proxy_jump",
}


def load_inventory(path: str) -> list:
    """The devices in an inventory file, as TargetSpecs, in file order."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"inventory {path} does not exist")
    text = p.read_text()
    if p.suffix == ".toml" or (p.suffix not in (".ini", ".cfg", "") and "[devices" in text):
        specs = _from_toml(text, path)
    else:
        specs = _from_ini(text, path)
    if not specs:
        raise UserError(f"inventory {path} lists no devices")
    names = [s.name for s in specs]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise UserError(f"inventory {path} names {', '.join(sorted(dup))} more than once")
    return specs


def _spec(name: str, values: dict, where: str) -> TargetSpec:
    safe_name(name, f"device name in {where}")
    unknown = set(values) - _TOML_KEYS
    if unknown:
        raise UserError(f"{where}: device {name!r} has unknown keys {', '.join(sorted(unknown))}; "
                        f"known: {', '.join(sorted(_TOML_KEYS))}")
    host = str(values.get("host", name))
    if host == "local":
        return TargetSpec(name=name, kind="local", python=values.get("python"),
                          remote_dir=values.get("remote_dir"))
    try:
        port = int(values["port"]) if "port" in values else None
    except ValueError:
        raise UserError(f"{where}: device {name!r} has a bad port {values['port']!r}") from None
    key = values.get("identity_file")
    return TargetSpec(name=name, kind="ssh", host=host, user=values.get("user"), port=port,
                      identity_files=[key] if key else [], python=values.get("python"),
                      remote_dir=values.get("remote_dir"), proxy_jump=values.get("proxy_jump"))


def _from_toml(text: str, path: str) -> list:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"inventory {path}: {exc}") from None
    defaults = data.get("defaults", {})
    devices = data.get("devices", {})
    if not isinstance(devices, dict):
        raise UserError(f"inventory {path}: [devices.NAME] tables expected")
    return [_spec(name, {**defaults, **values}, path) for name, values in devices.items()]


def _from_ini(text: str, path: str) -> list:
    hosts: dict = {}            # name -> (group, own vars)
    group_vars: dict = {"all": {}}
    section = ("ungrouped", "hosts")
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split(" #")[0].strip()
        if not line or line[0] in "#;":
            continue
        where = f"{path}:{lineno}"
        if line.startswith("["):
            if not line.endswith("]"):
                raise UserError(f"{where}: bad section header {line!r}")
            group, _, kind = line[1:-1].partition(":")
            section = (group, kind or "hosts")
            continue
        group, kind = section
        try:
            words = shlex.split(line)
        except ValueError as exc:
            raise UserError(f"{where}: {exc}") from None
        if kind == "vars":
            key, sep, value = line.partition("=")
            if not sep:
                raise UserError(f"{where}: expected key=value in [{group}:vars]")
            group_vars.setdefault(group, {})[key.strip()] = value.strip()
        elif kind == "hosts":
            name, own = words[0], {}
            for word in words[1:]:
                key, sep, value = word.partition("=")
                if not sep:
                    raise UserError(f"{where}: expected key=value after the host name, got {word!r}")
                own[key] = value
            hosts.setdefault(name, (group, {}))[1].update(own)
        # [group:children] only nests groups; variables still come from [group:vars] and all.
    specs = []
    for name, (group, own) in hosts.items():
        merged = {**group_vars["all"], **group_vars.get(group, {}), **own}
        if merged.get("ansible_connection") == "local":
            merged["ansible_host"] = "local"
        values = {_ANSIBLE[k]: v for k, v in merged.items() if k in _ANSIBLE}
        specs.append(_spec(name, values, path))
    return specs
