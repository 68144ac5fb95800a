"""`bench-host deploy`: push a bundle to one or many devices, run the agent there with a live
progress bar, and pull the CSVs into results/<run-id>/<target>/."""
from __future__ import annotations

import argparse
import sys
import time
from functools import partial
from pathlib import Path

from edgebench.host.commands.target_args import add_target_args, targets_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "deploy", help="push a bundle to devices, run the agent, pull the CSVs",
        description="Copy a bundle to each target (models already on the device are not sent "
                    "again), check the device, take its lock, run the agent with live progress "
                    "and pull results.csv, latency_samples.csv and env.json into "
                    "RESULTS/<run-id>/<target>/. Devices of a fleet run concurrently. Every deploy "
                    "is a run of its own (a new id); it resumes only an unfinished run: the one "
                    "named by --run-id, or the last run in RESULTS when that one was "
                    "interrupted with the same bundle, options and targets.",
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
    src.add_argument("--run-id", help="this run's id (default: a new UTC timestamp); naming an "
                     "unfinished run resumes it, a finished one is refused")
    src.add_argument("--new-run", action="store_true",
                     help="a new run even when the last one in RESULTS was interrupted")
    add_target_args(p)
    from edgebench.device.options import ENERGY, MEASUREMENT, RUNNING
    from edgebench.host.commands.agent_options import add_agent_args

    add_agent_args(p, groups=(MEASUREMENT, RUNNING, ENERGY), renamed={"models": "--only"})
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
    from edgebench.host.commands.db_args import add_db_arg

    add_db_arg(o)
    o.add_argument("--verbose", action="store_true",
                   help="show the libraries' log lines (paramiko, the agent's stderr) on the "
                        "terminal too; they always go to RESULTS/<run-id>/host.log")
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.deploy import deploy
    from edgebench.host.deploy_summary import summary
    from edgebench.host.errors import UserError

    if args.verbose:
        from edgebench.host import liblog

        liblog.verbose()
    specs, options = targets_from_args(args)
    if bool(args.bundle) == bool(args.models_dir):
        raise UserError("pass exactly one of --bundle DIR (made by bench-host bundle) or "
                        "--models-dir DIR (to bundle first)")
    bundle = args.bundle
    if args.models_dir:
        from edgebench.host.bundle import build_bundle
        from edgebench.host.run_record import refuse_finished

        if args.run_id:
            refuse_finished(args.results, args.run_id)
        args.run_id = args.run_id or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        bundle = build_bundle(args.models_dir, args.results / args.run_id / "bundle",
                              testset=args.testset, run_id=args.run_id)
    from edgebench.host.commands.agent_options import agent_options_from

    agent = agent_options_from(args, models=args.only)
    from edgebench.host.targets.labgrid_fleet import (
        deploy_fleet, labgrid_options_from, uses_labgrid)

    lab = labgrid_options_from(args)
    if uses_labgrid(specs, lab):   # labgrid places: each held around its own deploy
        deploy = partial(deploy_fleet, deploy, lab=lab)
    outcomes = deploy(bundle, specs, args.results, agent, options=options,
                      remote_python=args.remote_python, remote_dir=args.remote_dir,
                      retries=args.retries, progress=not args.no_progress,
                      backoff_s=args.backoff, lease_timeout_s=args.lease_timeout,
                      run_id=args.run_id, new_run=args.new_run)
    print(summary(outcomes))
    sys.stdout.flush()
    pulled = [o.results for o in outcomes if o.results and (o.results / "results.csv").is_file()]
    if pulled:
        from edgebench.host.commands.db_args import record_results

        record_results(args, pulled, args.results)
    return 0 if all(o.ok for o in outcomes) else 1
