"""`bench-host run`: the whole pipeline on a profile (default: quick, on this machine)."""
from __future__ import annotations

import argparse
from pathlib import Path


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
    p.add_argument("--profile", default="quick", help="quick (default) or paper; 'help' lists them")
    p.add_argument("--data", help="data spec instead of the profile's (e.g. busi:PATH)")
    p.add_argument("--models", help="comma-separated models instead of the profile's")
    p.add_argument("--recipes", help="comma-separated recipes instead of the profile's")
    p.add_argument("--img-size", type=int, help="input size in px instead of the profile's")
    p.add_argument("--epochs", type=int, help="epochs instead of the profile's")
    p.add_argument("--run-id", help="results/<run-id>/ (default: the profile's name)")
    p.add_argument("--results", type=Path, default=Path("results"), help="results root (default results/)")
    p.add_argument("--robustness", metavar="NAMES|all",
                   help="also measure every model on the test set under MedMNIST-C's "
                        "breast-ultrasound corruptions ('all', a list, NAME:1+5; 'help' lists "
                        "them)")
    from edgebench.host.torch_device import AMP_HELP, DEVICE_HELP

    p.add_argument("--device", default="auto", help=f"training: {DEVICE_HELP}")
    p.add_argument("--amp", action="store_true", help=f"training: {AMP_HELP}")
    p.add_argument("--quiet", action="store_true", help="no progress output")
    from edgebench.host.commands.export_args import add_quantization_debug

    add_quantization_debug(p)  # --debug, and int8-mixed's --keep-float/--target-agreement
    from edgebench.host.commands.export_args import add_converter

    add_converter(p)  # --converter onnx2tf,litert-torch: every model through each route
    from edgebench.host.commands.agent_options import add_agent_args
    from edgebench.host.commands.target_args import add_target_args

    add_agent_args(p)
    add_target_args(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.profiles import PROFILES
    from edgebench.host.registry import describe, lookup

    if args.profile == "help":
        print(describe(PROFILES, "profile"))
        return 0
    from edgebench.host.data import corruptions

    if args.robustness == "help":
        print(corruptions.describe())
        return 0
    robustness = corruptions.parse(args.robustness) if args.robustness else None
    profile = lookup(PROFILES, args.profile, "profile")
    profile = profile.with_overrides(**_overrides(args))
    from edgebench.host.torch_device import resolve_device

    resolve_device(args.device, args.amp)  # a device this machine lacks: refused before any work

    from edgebench.host.commands.target_args import targets_from_args
    from edgebench.host.pipeline import run_pipeline

    from edgebench.host.commands.agent_options import agent_args_from
    from edgebench.host.commands.export_args import (converters_from, mixed_options,
                                                     ready_converters)

    converters = converters_from(args)
    if converters is None:
        return 0
    ready_converters(converters)
    mixed = mixed_options(args)
    targets, options = targets_from_args(args)
    agent_args = agent_args_from(argparse.Namespace(**dict(vars(args), threads=None)))
    result = run_pipeline(profile, args.results, args.run_id or profile.name, targets, options,
                          remote_python=args.remote_python, quiet=args.quiet, threads=args.threads,
                          agent_extra=agent_args, robustness=robustness, debug=args.debug,
                          mixed=mixed if mixed != type(mixed)() else None, device=args.device,
                          amp=args.amp, converters=converters)
    from edgebench.host.deploy import summary

    print(summary(result.outcomes))
    print(result.report.headline)
    print(f"\nreport: {result.report.markdown}  (also {result.report.html.name}, "
          f"{result.report.summary_csv.name} and plots in {result.report.out_dir})")
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
