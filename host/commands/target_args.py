"""The target arguments every command that reaches devices takes (deploy, doctor, run): where the
devices are, how to reach them and how far to trust them."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgebench.host.commands.registry_args import add_registry_option


def add_target_args(p: argparse.ArgumentParser) -> None:
    """The "targets and SSH" argument group."""
    g = p.add_argument_group("targets and SSH")
    add_registry_option(g, "--target", append=True, default=[], metavar="TARGET",
                        help="local, user@host[:port], a ~/.ssh/config alias or labgrid:PLACE; repeat "
                             "for a fleet "
                             "(default: local)")
    g.add_argument("--inventory", metavar="FILE",
                   help="fleet file: TOML ([devices.NAME] host/user/port/...) or Ansible INI")
    g.add_argument("-i", "--identity", action="append", default=[], metavar="KEY",
                   help="private key to try first (ssh-agent and ~/.ssh/id_* are tried too)")
    g.add_argument("--accept-new-host-key", action="store_true",
                   help="trust and record the host key of a device seen for the first time "
                        "(OpenSSH StrictHostKeyChecking=accept-new); a changed key is always "
                        "refused")
    g.add_argument("--known-hosts", metavar="FILE", help="known_hosts file "
                                                         "(default ~/.ssh/known_hosts)")
    g.add_argument("--ssh-config", metavar="FILE", help="ssh config (default ~/.ssh/config)")
    g.add_argument("--connect-timeout", type=float, default=10.0, metavar="S",
                   help="seconds to wait for a device to answer")
    g.add_argument("-J", "--jump", metavar="[USER@]HOST[:PORT],...",
                   help="reach the devices through these jump hosts, in order (as ssh -J; "
                        "beats ProxyJump/ProxyCommand from ~/.ssh/config); every hop's host key "
                        "is checked like the device's")
    g.add_argument("--remote-python", metavar="PATH",
                   help="python on the device, e.g. a venv's bin/python (default python3)")
    g.add_argument("--remote-dir", metavar="DIR",
                   help="working folder on the device (default $EDGEBENCH_REMOTE_DIR, else "
                        "~/.edgebench; a relative path is under the device user's home)")
    add_labgrid_args(p)


def add_labgrid_args(p: argparse.ArgumentParser) -> None:
    """Board farms: labgrid places as targets (host/targets/labgrid_*.py)."""
    g = p.add_argument_group("labgrid board farm (--target labgrid:PLACE)")
    g.add_argument("--labgrid-tags", metavar="KEY=VALUE,...",
                   help="every place whose labgrid tags include these, e.g. board=pi5")
    g.add_argument("--coordinator", metavar="HOST:PORT",
                   help="labgrid coordinator (default $LG_COORDINATOR, else 127.0.0.1:20408)")
    g.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                   help="wait this long for a place someone else holds (a labgrid reservation); "
                        "default 0: say who holds it and fail that place")
    g.add_argument("--power-cycle", action="store_true",
                   help="power-cycle each place through labgrid before the run, then wait for "
                        "its SSH to answer")
    g.add_argument("--boot-timeout", type=float, default=180.0, metavar="S",
                   help="seconds to wait for SSH after --power-cycle (default 180)")
    g.add_argument("--labgrid-client", metavar="PATH",
                   help="labgrid's client program (default: labgrid-client on PATH)")


def targets_from_args(args) -> tuple:
    """(list of TargetSpec, ConnectOptions) from the shared arguments."""
    from edgebench.host.errors import UserError
    from edgebench.host.targets import ConnectOptions, parse_target
    from edgebench.host.targets.inventory import load_inventory

    from edgebench.host.targets.sshconfig import parse_hop

    for key in args.identity:
        if not Path(key).expanduser().is_file():
            raise UserError(f"-i {key}: no such key file")
    for text in args.jump.split(",") if args.jump else []:
        parse_hop(text, "-J")
    specs = [parse_target(t) for t in args.target]
    if args.inventory:
        specs += load_inventory(args.inventory)
    if not specs and not getattr(args, "labgrid_tags", None):
        specs = [parse_target("local")]
    options = ConnectOptions(known_hosts=args.known_hosts,
                             accept_new_host_key=args.accept_new_host_key,
                             identity_files=[str(Path(k).expanduser()) for k in args.identity],
                             ssh_config=args.ssh_config, connect_timeout=args.connect_timeout,
                             proxy_jump=args.jump)
    if getattr(args, "lease_timeout", None):
        options.link_timeout_s = args.lease_timeout
    return specs, options
