"""Targets: where a bundle runs. `local` (this machine, the embedded default) and `ssh`
(`user@host[:port]` or a ~/.ssh/config alias) share one interface (base.Target)."""
from __future__ import annotations

from typing import Optional

from edgebench.host.registry import describe, lookup
from edgebench.host.targets.base import LinkDropped, Target, TargetSpec
from edgebench.host.targets.sshconfig import ConnectOptions, parse_target


def _open_local(spec: TargetSpec, options: ConnectOptions) -> Target:
    """this machine: the agent runs as a subprocess (the embedded default)"""
    from edgebench.host.targets.local import LocalTarget
    return LocalTarget(spec)


def _open_ssh(spec: TargetSpec, options: ConnectOptions) -> Target:
    """a device over SSH: user@host[:port] or a ~/.ssh/config alias; host keys from known_hosts"""
    from edgebench.host.targets.ssh import SSHTarget
    return SSHTarget(spec, options)


TARGETS = {"local": _open_local, "ssh": _open_ssh}


def open_target(spec, options: Optional[ConnectOptions] = None) -> Target:
    """Connect to a target given as a TargetSpec or a --target string."""
    if isinstance(spec, str):
        spec = parse_target(spec)
    return lookup(TARGETS, spec.kind, "target kind")(spec, options or ConnectOptions())


def describe_targets() -> str:
    return describe(TARGETS, "target kind")


__all__ = ["ConnectOptions", "LinkDropped", "Target", "TargetSpec", "TARGETS", "describe_targets",
           "open_target", "parse_target"]
