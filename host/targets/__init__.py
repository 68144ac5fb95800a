"""Targets: where a bundle runs. `local` (this machine, the embedded default) and `ssh`
(`user@host[:port]` or a ~/.ssh/config alias) share one interface (base.Target); `labgrid:PLACE`
is a place of a labgrid board farm, held for the run and reached over SSH (labgrid_fleet.py)."""
from __future__ import annotations

from typing import Optional

from edgebench.host.registry import describe, lookup
from edgebench.host.targets.base import LinkDropped, Target, TargetSpec
from edgebench.host.errors import UserError
from edgebench.host.targets.sshconfig import ConnectOptions
from edgebench.host.targets.sshconfig import parse_target as _parse_ssh_target


def _open_local(spec: TargetSpec, options: ConnectOptions) -> Target:
    """this machine: the agent runs as a subprocess (the embedded default)"""
    from edgebench.host.targets.local import LocalTarget
    return LocalTarget(spec)


def _open_ssh(spec: TargetSpec, options: ConnectOptions) -> Target:
    """a device over SSH: user@host[:port] or a ~/.ssh/config alias; host keys from known_hosts"""
    from edgebench.host.targets.ssh import SSHTarget
    return SSHTarget(spec, options)


def _open_labgrid(spec: TargetSpec, options: ConnectOptions) -> Target:
    """labgrid:PLACE, a labgrid place: acquired for the run, reached by SSH at its NetworkService

    (coordinator from --coordinator or LG_COORDINATOR; released when the run ends)"""
    raise UserError(f"labgrid:{spec.name} is reached through its place's NetworkService once the "
                    f"place is acquired (bench-host deploy/doctor do that)")


TARGETS = {"local": _open_local, "ssh": _open_ssh, "labgrid": _open_labgrid}


def parse_target(text: str) -> TargetSpec:
    """`local`, `labgrid:PLACE`, `user@host[:port]` or a ~/.ssh/config alias."""
    text = text.strip()
    if text.startswith("labgrid:"):
        name = text[len("labgrid:"):]
        if not name or any(c.isspace() or c in "/\\'\"" for c in name) or name.startswith("+"):
            raise UserError(f"bad --target {text!r}: expected labgrid:PLACE with a place name")
        return TargetSpec(name=name, kind="labgrid")
    return _parse_ssh_target(text)


def open_target(spec, options: Optional[ConnectOptions] = None) -> Target:
    """Connect to a target given as a TargetSpec or a --target string."""
    if isinstance(spec, str):
        spec = parse_target(spec)
    return lookup(TARGETS, spec.kind, "target kind")(spec, options or ConnectOptions())


def describe_targets() -> str:
    return describe(TARGETS, "target kind")


__all__ = ["ConnectOptions", "LinkDropped", "Target", "TargetSpec", "TARGETS", "describe_targets",
           "open_target", "parse_target"]
