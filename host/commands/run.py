"""`bench-host run`: the whole pipeline on a profile (default: quick, on this machine)."""
from __future__ import annotations

import argparse
from pathlib import Path

from edgebench.host.commands.registry_args import add_registry_option


def register(sub) -> None:
    p = sub.add_parser(
        "run", help="the whole pipeline: train → convert → quantize → bundle → deploy → report",
        description="Train every model of a profile, convert and quantize it with every recipe, "
                    "measure the models on the targets (this machine unless --target/--inventory) "
                    "and write the report. Stages whose inputs are unchanged are skipped, so an "
                    "interrupted run picks up where it stopped.",
        epilog="examples:\n  bench-host run\n  bench-host run --target pi@192.168.1.20\n"
               "  bench-host run --profile paper --data busi:~/Dataset_BUSI_with_GT\n"
               "  bench-host run --target pi5 --accelerators cpu,gpu",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_registry_option(p, "--profile", default="quick",
                        help="quick (default) or paper; 'help' lists them")
    add_registry_option(p, "--data", help="data spec instead of the profile's (e.g. busi:PATH)")
    add_registry_option(p, "--models", help="comma-separated models instead of the profile's")
    add_registry_option(p, "--recipes", help="comma-separated recipes instead of the profile's")
    p.add_argument("--img-size", type=int, help="input size in px instead of the profile's")
    p.add_argument("--epochs", type=int, help="epochs instead of the profile's")
    p.add_argument("--run-id", help="results/<run-id>/ (default: the profile's name)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default results/)")
    add_registry_option(p, "--robustness", metavar="NAMES|all",
                        help="also measure every model on the test set under MedMNIST-C's "
                             "breast-ultrasound corruptions ('all', a list, NAME:1+5; 'help' lists "
                             "them)")
    from edgebench.host.torch_device import AMP_HELP, DEVICE_HELP

    p.add_argument("--device", default="auto", help=f"training: {DEVICE_HELP}")
    p.add_argument("--amp", action="store_true", help=f"training: {AMP_HELP}")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    p.add_argument("--verbose", action="store_true",
                   help="show the libraries' log lines (paramiko, the agent's stderr) on the "
                        "terminal too; they always go to RESULTS/<run-id>/host.log")
    from edgebench.host.commands.export_args import add_quantization_debug

    add_quantization_debug(p)  # --debug, and int8-mixed's --keep-float/--target-agreement
    from edgebench.host.commands.export_args import add_converter

    add_converter(p)  # --converter onnx2tf,litert-torch: every model through each route
    from edgebench.host.commands.agent_options import add_agent_args
    from edgebench.host.commands.target_args import add_target_args

    add_agent_args(p)
    add_target_args(p)
    from edgebench.host.commands.db_args import add_db_arg

    add_db_arg(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.profiles import PROFILES
    from edgebench.host.registry import lookup

    from edgebench.host.data import corruptions

    robustness = corruptions.parse(args.robustness) if args.robustness else None
    profile = lookup(PROFILES, args.profile, "profile")
    profile = profile.with_overrides(**_overrides(args))
    from edgebench.host.torch_device import resolve_device

    resolve_device(args.device, args.amp)  # a device this machine lacks: refused before any work

    from edgebench.host.commands.target_args import targets_from_args
    from edgebench.host.errors import UserError
    from edgebench.host.pipeline import run_pipeline

    from edgebench.host.commands.agent_options import agent_options_from
    from edgebench.host.commands.db_args import report_links
    from edgebench.host.commands.export_args import (converters_from, mixed_options,
                                                     ready_converters)

    converters = converters_from(args)
    if converters is None:
        return 0
    ready_converters(converters)
    mixed = mixed_options(args)
    if args.verbose:
        from edgebench.host import liblog

        liblog.verbose()
    targets, options = targets_from_args(args)
    if args.labgrid_tags or any(t.kind == "labgrid" for t in targets):
        raise UserError("labgrid places are measured with bench-host deploy --target "
                        "labgrid:PLACE (bench-host run does not hold places yet)")
    agent = agent_options_from(args, models=None)  # run's --models are what to train
    from edgebench.host import liblog

    # The whole run's library and native lines (TensorFlow's during conversion) in host.log.
    with liblog.to_file(Path(args.results) / "host.log"):
        result = run_pipeline(profile, args.results, args.run_id or profile.name, targets,
                              options, remote_python=args.remote_python,
                              remote_dir=args.remote_dir, quiet=args.quiet,
                              agent=agent, robustness=robustness, debug=args.debug,
                              mixed=mixed if mixed != type(mixed)() else None,
                              device=args.device, amp=args.amp,
                              report_links=report_links(args, args.results),
                              converters=converters)
    from edgebench.host.deploy_summary import summary

    print(summary(result.outcomes))
    print(result.report.headline)
    print(f"\nreport: {result.report.markdown}  (also {result.report.html.name}, "
          f"{result.report.summary_csv.name} and plots in {result.report.out_dir})")
    from edgebench.host.commands.db_args import record_results

    record_results(args, [result.report.out_dir], args.results)
    return 0 if all(o.ok for o in result.outcomes) else 1


def _overrides(args) -> dict:
    from edgebench.host.errors import UserError
    from edgebench.host.export.recipes import parse_recipes
    from edgebench.host.registry import lookup
    from edgebench.models import MODELS, canonical_name

    out = {}
    if args.data:
        out["data"] = args.data
    if args.models:
        names = tuple(m.strip() for m in args.models.split(",") if m.strip())
        for name in names:
            lookup(MODELS, name, "model")
        names = tuple(dict.fromkeys(canonical_name(n) for n in names))  # conv -> vgg16
        if not names:
            raise UserError("--models names no model")
        out["models"] = names
    if args.recipes:
        out["recipes"] = tuple(parse_recipes(args.recipes))
    if args.img_size:
        out["img_size"] = args.img_size
    if args.epochs:
        out["epochs"] = args.epochs
    return out
