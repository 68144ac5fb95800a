"""`bench-host quantize`: one .tflite per post-training quantization recipe, each with its model
card, verified through a TFLite interpreter against the float model (verify.csv)."""
from __future__ import annotations

import sys
from pathlib import Path

from edgebench.host.commands.export_args import add_common, add_converter, add_quantization_debug
from edgebench.host.commands.registry_args import add_registry_option

HELP_RECIPES = ("comma-separated recipes (default: fp32,dynamic,fp16,int8,int16x8; 'all' adds "
                "int8-mixed); 'help' lists them")


def register(sub) -> None:
    p = sub.add_parser(
        "quantize", help="post-training quantization: one .tflite + card per recipe",
        description="Build <arch>.<recipe>.tflite and <arch>.<recipe>.json for each recipe from a "
                    "SavedModel written by `bench-host convert` (a checkpoint or .onnx file is "
                    "converted first). Full-integer recipes calibrate on N images of the training "
                    "split with the inference preprocessing. A recipe that fails is a failed row in "
                    "verify.csv; the others go on (exit status 1 when any failed, or when "
                    "int8-mixed missed its target agreement).")
    p.add_argument("source", type=Path, metavar="SAVEDMODEL|CHECKPOINT|MODEL.onnx")
    add_registry_option(p, "--recipes", default=None, help=HELP_RECIPES)
    p.add_argument("--io", default=None, choices=("int8", "uint8", "float"),
                   help="input/output type of the int8 recipes (default int8; uint8 like the "
                        "paper; float keeps the input and output unquantized). Given, it pins "
                        "int8-mixed's ends; not given, int8-mixed's search may keep them float")
    p.add_argument("--calib", type=int, default=200, metavar="N",
                   help="calibration images drawn from the training split (default 200)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calib-data", type=Path, metavar="FILE.npz",
                     help="calibration (and test) images from an npz: train_images or images "
                          "(uint8 N×H×W[×C]); test_images/test_labels, if present, for verification")
    add_registry_option(src, "--data", metavar="SPEC",
                        help="data spec to calibrate and verify on (default: the checkpoint's own)")
    add_quantization_debug(p)
    add_converter(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.commands.export_args import (converters_from, mixed_options,
                                                     ready_converters)
    from edgebench.host.errors import UserError
    from edgebench.host.export.recipes import DEFAULT_RECIPES, parse_recipes

    converters = converters_from(args)
    if converters is None:
        return 0
    recipes = parse_recipes(args.recipes or ",".join(DEFAULT_RECIPES))
    if args.calib < 1:
        raise UserError("--calib must be at least 1")
    mixed = mixed_options(args)

    from edgebench.host.export.calibration import pick_images
    from edgebench.host.export.quantize import QuantizeOptions, quantize
    from edgebench.host.export.verify import normalize

    source, out_dir = _source(args, converters)
    ready_converters(converters)
    calib, test_images, test_labels = pick_images(source, args.calib_data, args.data, args.calib,
                                                  args.seed)
    _check_inputs(args, recipes, calib, mixed)
    verify = _verification(source, test_images, test_labels) if args.verify else None
    calib_inputs = normalize(calib, source.normalization) if calib is not None else None
    results = []
    for converter in converters:  # the same calibration and verification images for each route
        results += quantize(Path(source.saved_model), recipes, calib_inputs, out_dir, source,
                            QuantizeOptions(io=args.io or "int8", verify=verify,
                                            progress=not args.quiet, debug=args.debug,
                                            mixed=mixed, converter=converter))
    return _report(results, out_dir, source)


def _source(args, converters):
    """(SourceInfo, output folder) of args.source: a converted folder as it is, a checkpoint
    as it is when only routes that need no SavedModel run, else converted first (without its
    own verification)."""
    from edgebench.host.errors import UserError
    from edgebench.host.export.pipeline import convert_any
    from edgebench.host.export.source import load_source

    path = args.source
    if path.is_dir():  # the folder as given: it may have moved since `convert` wrote it
        source, out_dir = load_source(path), args.out or path.parent
        source.saved_model = str(path.resolve())
        return source, out_dir
    if "onnx2tf" not in converters and path.suffix.lower() != ".onnx":  # no SavedModel needed
        from edgebench.host.checkpoint import build_from_checkpoint
        from edgebench.host.export.pipeline import checkpoint_source

        if not path.is_file():
            raise UserError(f"not found: {path}")
        return checkpoint_source(path, build_from_checkpoint(path)[1]), args.out or path.parent
    result = convert_any(path, args.out, args.input_shape, verify=False, data=args.data,
                         quiet=args.quiet)
    return result.source, result.tflite.parent


def _check_inputs(args, recipes: list[str], calib, mixed) -> None:
    """Refuse up front what a recipe would fail on: no calibration images, or int8-mixed with
    neither verification images to search on nor a fixed K."""
    from edgebench.host.errors import UserError
    from edgebench.host.export.recipes import RECIPES

    needs_calib = [r for r in recipes if RECIPES[r].calibrated]
    if needs_calib and calib is None:
        raise UserError(f"recipe(s) {', '.join(needs_calib)} need calibration images: give "
                        "--calib-data FILE.npz or --data SPEC")
    if "int8-mixed" in recipes and not args.verify and mixed.keep_float is None:
        raise UserError("int8-mixed searches for its target agreement on the verification "
                        "images: give --keep-float K with --no-verify")


def _verification(source, test_images, test_labels):
    from edgebench.host.export.pipeline import reference_for

    if test_images is None:  # a model from elsewhere with no data: fixed random images
        import numpy as np

        h, w, c = source.input_shape[1:]
        test_images = np.random.default_rng(0).integers(0, 256, (32, h, w, c), dtype=np.uint8)
    return reference_for(source, test_images, test_labels)


def _report(results, out_dir: Path, source) -> int:
    """verify.csv and the results table; the exit status (1: a recipe failed or int8-mixed
    missed its target)."""
    from edgebench.host.export.pipeline import record_verification

    csv_path = record_verification(out_dir, results, source.architecture)
    print_results(results, csv_path)
    for r in results:
        if r.status == "ok" and r.error:
            print(f"{r.recipe}: {r.error}", file=sys.stderr)
    missed = [r for r in results if (r.extra.get("mixed") or {}).get("reached") is False]
    return 1 if any(r.status == "failed" for r in results) or missed else 0


def print_results(results, csv_path) -> None:
    from edgebench.host.export.census import summary_line

    routes = len({r.converter for r in results}) > 1
    print(f"{'recipe':<10} {'status':<7} {'size KiB':>9} {'max|Δ|':>9} {'agree':>6} {'acc':>6}  file")
    for r in results:
        if routes and r is next(x for x in results if x.converter == r.converter):
            print(f"-- {r.converter}")
        v = r.verification or {}
        f = lambda x, spec: format(x, spec) if isinstance(x, (int, float)) else "-"  # noqa: E731
        size = f(r.size_bytes / 1024 if r.size_bytes else None, ".1f")
        where = str(r.tflite) if r.status == "ok" else r.error
        print(f"{r.recipe:<10} {r.status:<7} {size:>9} {f(v.get('max_abs_diff'), '.2e'):>9} "
              f"{f(v.get('agreement'), '.3f'):>6} {f(v.get('accuracy'), '.3f'):>6}  {where}")
        extra = r.extra or {}
        if extra.get("census"):
            print(f"{'':<10} ops: {summary_line(extra['census'])}")
        if extra.get("mixed"):
            m = extra["mixed"]
            ends = ", ".join(m.get("float_ends") or []) or "none"
            print(f"{'':<10} float layers: {m['k']} of {m['layers']}, float ends: {ends}"
                  + (f" ({m.get('target') or m['target_agreement']}: "
                     f"{'reached' if m['reached'] else 'NOT reached'})"
                     if m.get("target_agreement") is not None else ""))
        if extra.get("worst_layers"):
            w = extra["worst_layers"][0]
            print(f"{'':<10} worst layer: {w['op']} {w['tensor'][:60]} RMSE/scale "
                  f"{w['rmse_over_scale']:.3g} ({extra['layers_csv']})")
    if csv_path:
        print(f"verification: {csv_path}")
