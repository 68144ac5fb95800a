"""`bench-host deploy`: push a bundle to one or many devices, run the agent there with a live
progress bar, and pull the CSVs into results/<run-id>/<target>/."""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


class TargetAction(argparse.Action):
    """`--target` collects targets; `--target help` prints the kinds and exits, for every
    command that takes targets (deploy, doctor, run)."""

    def __call__(self, parser, namespace, value, option_string=None):
        if value == "help":
            from edgebench.host.targets import describe_targets

            print(describe_targets() + "\n  --target local | user@host[:port] | ALIAS (from "
                  "~/.ssh/config); --inventory FILE for a fleet")
            parser.exit(0)
        getattr(namespace, self.dest).append(value)


def add_target_args(p: argparse.ArgumentParser) -> None:
    """Where the devices are and how far to trust them; shared with `doctor`."""
    g = p.add_argument_group("targets and SSH")
    g.add_argument("--target", action=TargetAction, default=[], metavar="TARGET",
                   help="local, user@host[:port] or a ~/.ssh/config alias; repeat for a fleet "
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
                   help="working folder on the device (default ~/.edgebench)")


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
    if not specs:
        specs = [parse_target("local")]
    options = ConnectOptions(known_hosts=args.known_hosts,
                             accept_new_host_key=args.accept_new_host_key,
                             identity_files=[str(Path(k).expanduser()) for k in args.identity],
                             ssh_config=args.ssh_config, connect_timeout=args.connect_timeout,
                             proxy_jump=args.jump)
    if getattr(args, "lease_timeout", None):
        options.link_timeout_s = args.lease_timeout
    return specs, options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy", help="push a bundle to devices, run the agent, pull the CSVs",
        description="Copy a bundle to each target (models already on the device are not sent "
                    "again), check the device, take its lock, run the agent with live progress "
                    "and pull results.csv, latency_samples.csv and env.json into "
                    "RESULTS/<run-id>/<target>/. Devices of a fleet run concurrently; rerunning "
                    "an interrupted deploy resumes where it stopped.",
        epilog="examples:\n  bench-host deploy --bundle out/bundle --target pi@192.168.1.20\n"
               "  bench-host deploy --bundle out/bundle --inventory fleet.toml --threads 1,4\n"
               "  bench-host deploy --bundle out/bundle --target pi5 --accelerators cpu,gpu\n"
               "  bench-host deploy --bundle out/bundle --target coral "
               "--delegate libedgetpu.so.1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("what to run")
    src.add_argument("--bundle", type=Path, metavar="DIR", help="a bundle made by bench-host bundle")
    src.add_argument("--models-dir", type=Path, metavar="DIR",
                     help="build a bundle from these models first (into RESULTS/<run-id>/bundle)")
    src.add_argument("--testset", type=Path, metavar="FILE.npz", help="test set for --models-dir")
    src.add_argument("--run-id", help="run id when building a bundle (default: UTC timestamp)")
    add_target_args(p)
    from edgebench.host.commands.agent_options import add_agent_args

    add_agent_args(p)
    a = p.add_argument_group("agent (passed to agent.py on the device)")
    a.add_argument("--warmup", type=int, help="untimed runs first")
    a.add_argument("--min-runs", type=int, help="at least this many timed runs")
    a.add_argument("--min-seconds", type=float, help="and at least this long")
    a.add_argument("--max-seconds", type=float, help="but never longer than this")
    a.add_argument("--only", metavar="NAME,...", help="measure only these models")
    a.add_argument("--runtime", help="auto|litert|tflite-runtime|tensorflow")
    a.add_argument("--xnnpack", choices=("on", "off"))
    o = p.add_argument_group("output")
    o.add_argument("--results", type=Path, default=Path("results"), metavar="DIR",
                   help="results root (default results/)")
    o.add_argument("--retries", type=int, default=3, metavar="N",
                   help="reconnects after a dropped link (default 3), resuming where it stopped; "
                        "attempts that got further do not count")
    o.add_argument("--backoff", type=float, default=2.0, metavar="S",
                   help="seconds before the first retry, doubling after each (default 2)")
    o.add_argument("--lease-timeout", type=float, default=60.0, metavar="S",
                   help="a link silent this long is given up and retried, and a device lock "
                        "whose run stopped answering this long is taken over (default 60)")
    o.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.deploy import deploy, summary
    from edgebench.host.errors import UserError

    specs, options = targets_from_args(args)
    if bool(args.bundle) == bool(args.models_dir):
        raise UserError("pass exactly one of --bundle DIR (made by bench-host bundle) or "
                        "--models-dir DIR (to bundle first)")
    bundle = args.bundle
    if args.models_dir:
        from edgebench.host.bundle import build_bundle
        run_id = args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        bundle = build_bundle(args.models_dir, args.results / run_id / "bundle",
                              testset=args.testset, run_id=run_id)
    from edgebench.host.commands.agent_options import agent_args_from

    agent_args = agent_args_from(args, warmup=args.warmup, min_runs=args.min_runs,
                                 min_seconds=args.min_seconds, max_seconds=args.max_seconds,
                                 models=args.only, runtime=args.runtime, xnnpack=args.xnnpack)
    outcomes = deploy(bundle, specs, args.results, agent_args, options=options,
                      remote_python=args.remote_python, remote_dir=args.remote_dir,
                      retries=args.retries, progress=not args.no_progress,
                      backoff_s=args.backoff, lease_timeout_s=args.lease_timeout)
    print(summary(outcomes))
    sys.stdout.flush()
    return 0 if all(o.ok for o in outcomes) else 1
