"""`bench-host doctor --target …`: is each device ready (python, numpy, a TFLite interpreter,
disk), and which sensors will the agent be able to record (temperature, throttling, power)?"""
from __future__ import annotations

import concurrent.futures
import sys


def register(subparsers) -> None:
    from edgebench.host.commands.target_args import add_target_args

    p = subparsers.add_parser(
        "doctor", help="check devices: python, numpy, interpreter, disk, sensors, accelerators",
        description="Connect to each target and print a table of checks with the exact fix for "
                    "anything missing, plus the sensors present (temperature, throttling, power "
                    "rails) and what the device can accelerate with (LiteRT's CompiledModel, the "
                    "GPU adapter LiteRT selects, NPU dispatch libraries, Edge TPU / Arm NN / VX "
                    "delegates). Exit status 1 when a device is not ready.")
    add_target_args(p)
    p.set_defaults(func=run)


def check(spec, options, remote_python, remote_dir) -> tuple:
    """(ok, text) for one target; never raises for a device problem."""
    from edgebench.host.deploy import default_remote_dir, python_for
    from edgebench.host.doctor import gather, sensor_checks
    from edgebench.host.doctor_accelerators import gather_accelerators
    from edgebench.host.errors import UserError
    from edgebench.host.targets import LinkDropped, open_target

    try:
        with open_target(spec, options) as target:
            python = python_for(spec, remote_python)
            root = target.expand(spec.remote_dir or remote_dir or default_remote_dir())
            report = gather(target, python, root, power=True)
            if report.facts:
                report.checks += sensor_checks(report.facts)
                report.checks += gather_accelerators(target, python)
            return report.ok, report.table()
    except (UserError, LinkDropped) as exc:
        return False, f"{spec.name}\n  FAIL  {exc}"


def run(args) -> int:
    from edgebench.host.commands.target_args import targets_from_args

    from edgebench.host.targets.labgrid_fleet import (
        doctor_places, labgrid_options_from, uses_labgrid)

    specs, options = targets_from_args(args)
    lab = labgrid_options_from(args)
    if uses_labgrid(specs, lab):   # places are held while they are checked
        results = doctor_places(lambda s: check(s, options, args.remote_python, args.remote_dir),
                                specs, lab)
    else:
        with concurrent.futures.ThreadPoolExecutor(max_workers=len(specs)) as pool:
            results = list(pool.map(
                lambda s: check(s, options, args.remote_python, args.remote_dir), specs))
    for _, text in results:
        print(text)
    bad = sum(not ok for ok, _ in results)
    if bad:
        print(f"doctor: {bad} of {len(results)} device(s) not ready", file=sys.stderr)
    sys.stdout.flush()
    return 1 if bad else 0
