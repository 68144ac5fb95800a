"""Arguments shared by `bench-host convert`, `quantize` and `run` (not a command itself: command
modules import this, never each other)."""
from __future__ import annotations

from pathlib import Path


def add_common(p) -> None:
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: beside the SavedModel / checkpoint / .onnx)")
    p.add_argument("--input-shape", metavar="1,C,H,W",
                   help="input shape of an .onnx file whose input is dynamic")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing calibration images")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the numeric check against the float model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def add_converter(p) -> None:
    p.add_argument("--converter", default=None, metavar="NAMES",
                   help="conversion route(s), comma-separated: onnx2tf (default), "
                        "litert-torch (its own venv, made on first use) and/or ort (ONNX "
                        "Runtime .onnx models); 'help' lists them")


def converters_from(args) -> list[str] | None:
    """The parsed --converter list, or None after printing the listing for 'help'."""
    from edgebench.host.export.converters import converters_help, parse_converters

    if (getattr(args, "converter", None) or "").strip() == "help":
        print(converters_help())
        return None
    return parse_converters(getattr(args, "converter", None))


def ready_converters(converters: list[str]) -> None:
    """Create (first use) or check each converter's own venv before any work: a broken one is a
    one-line UserError naming the command that rebuilds it."""
    from edgebench.host.export.converters.env import ENVS, ensure_env

    for name in converters:
        if name in ENVS:
            ensure_env(name)


def add_quantization_debug(p) -> None:
    """--debug and int8-mixed's choice of float layers."""
    p.add_argument("--debug", action="store_true",
                   help="run TensorFlow's QuantizationDebugger for int8/int16x8: per-layer error "
                        "in <model>.<recipe>.layers.csv, the worst layers in the model card")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--keep-float", type=int, metavar="K", default=None,
                   help="int8-mixed: keep the K layers of largest error in float")
    g.add_argument("--target-agreement", type=float, metavar="A", default=None,
                   help="int8-mixed: keep as few layers in float as reach top-1 agreement A with "
                        "the float model on the verification images (default 0.99; on n images "
                        "it allows floor(n·(1−A)) changed: 0.99 on 90 images allows none)")
    g.add_argument("--max-changed-images", type=int, metavar="C", default=None,
                   dest="max_changed",
                   help="int8-mixed: the target as a count: at most C verification images may "
                        "change their top-1 class against the float model")
    p.add_argument("--max-float", type=int, metavar="N", default=None,
                   help="int8-mixed: search at most N float layers or ends (default: all)")


def mixed_options(args):
    """MixedOptions from the parsed arguments, checked (a UserError for bad values)."""
    from edgebench.host.export.mixed import MixedOptions

    # The search may keep the model's input/output float unless --io pinned their type.
    return MixedOptions(args.keep_float, args.target_agreement, args.max_float,
                        args.max_changed, search_ends=getattr(args, "io", None) is None).check()
