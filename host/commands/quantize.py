"""`bench-host quantize`: one .tflite per post-training quantization recipe, each with its model
card, verified through a TFLite interpreter against the float model (verify.csv)."""
from __future__ import annotations

from pathlib import Path

HELP_RECIPES = "comma-separated recipes (default all: fp32,dynamic,fp16,int8,int16x8); 'help' lists them"


def register(sub) -> None:
    p = sub.add_parser(
        "quantize", help="post-training quantization: one .tflite + card per recipe",
        description="Build <arch>.<recipe>.tflite and <arch>.<recipe>.json for each recipe from a "
                    "SavedModel written by `bench-host convert` (a checkpoint or .onnx file is "
                    "converted first). Full-integer recipes calibrate on N images of the training "
                    "split with the inference preprocessing. A recipe that fails is a failed row in "
                    "verify.csv; the others go on (exit status 1 when any failed).")
    p.add_argument("source", type=Path, metavar="SAVEDMODEL|CHECKPOINT|MODEL.onnx")
    p.add_argument("--recipes", default="all", help=HELP_RECIPES)
    p.add_argument("--io", default="int8", choices=("int8", "uint8"),
                   help="input/output type of the int8 recipe (default int8; uint8 like the paper)")
    p.add_argument("--calib", type=int, default=200, metavar="N",
                   help="calibration images drawn from the training split (default 200)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--calib-data", type=Path, metavar="FILE.npz",
                     help="calibration (and test) images from an npz: train_images or images "
                          "(uint8 N×H×W[×C]); test_images/test_labels, if present, for verification")
    src.add_argument("--data", metavar="SPEC",
                     help="data spec to calibrate and verify on (default: the checkpoint's own)")
    add_common(p)
    p.set_defaults(func=run)


def add_common(p) -> None:
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: beside the SavedModel / checkpoint / .onnx)")
    p.add_argument("--input-shape", metavar="1,C,H,W",
                   help="input shape of an .onnx file whose input is dynamic")
    p.add_argument("--seed", type=int, default=0, help="seed for drawing calibration images")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="skip the numeric check against the float model")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args) -> int:
    from edgebench.host.errors import UserError
    from edgebench.host.export.recipes import parse_recipes, recipes_help

    if args.recipes.strip() == "help":
        print(recipes_help())
        return 0
    recipes = parse_recipes(args.recipes)
    if args.calib < 1:
        raise UserError("--calib must be at least 1")

    from edgebench.host.commands.convert import convert_any
    from edgebench.host.export.pipeline import record_verification, reference_for
    from edgebench.host.export.quantize import quantize
    from edgebench.host.export.source import load_source
    from edgebench.host.export.verify import normalize

    path = args.source
    if path.is_dir():  # the folder as given: it may have moved since `convert` wrote it
        source, out_dir = load_source(path), args.out or path.parent
        source.saved_model = str(path.resolve())
    else:  # a checkpoint or an .onnx file: convert first (without its own verification)
        result = convert_any(path, args.out, args.input_shape, verify=False, data=args.data,
                             quiet=args.quiet)
        source, out_dir = result.source, result.tflite.parent
    calib, test_images, test_labels = pick_images(source, args.calib_data, args.data, args.calib,
                                                  args.seed)
    needs_calib = [r for r in recipes if r in ("int8", "int16x8")]
    if needs_calib and calib is None:
        raise UserError(f"recipe(s) {', '.join(needs_calib)} need calibration images: give "
                        "--calib-data FILE.npz or --data SPEC")
    verify = None
    if args.verify:
        if test_images is None:  # a model from elsewhere with no data: fixed random images
            import numpy as np

            h, w, c = source.input_shape[1:]
            test_images = np.random.default_rng(0).integers(0, 256, (32, h, w, c), dtype=np.uint8)
        verify = reference_for(source, test_images, test_labels)
    calib_inputs = normalize(calib, source.normalization) if calib is not None else None
    results = quantize(Path(source.saved_model), recipes, calib_inputs, out_dir, source,
                       io=args.io, verify=verify, progress=not args.quiet)
    csv_path = record_verification(out_dir, results, source.architecture)
    print_results(results, csv_path)
    return 1 if any(r.status != "ok" for r in results) else 0


def pick_images(source, calib_data: Path | None, data: str | None, n: int, seed: int):
    """(calibration uint8 N×H×W×C or None, test images or None, test labels or None)."""
    import numpy as np

    if calib_data is not None:
        return _from_npz(calib_data, source, n, seed)
    spec = data or source.data_spec
    if not spec:
        return None, None, None
    from edgebench.host.data import load_splits

    splits = load_splits(spec, source.img_size, source.channels,
                         source.split_seed if source.split_seed is not None else 0)
    train_images = splits["train"][0]
    rng = np.random.default_rng(seed)
    pick = rng.choice(len(train_images), size=min(n, len(train_images)), replace=False)
    test_images, test_labels = splits["test"]
    return train_images[np.sort(pick)], test_images, test_labels


def _from_npz(path: Path, source, n: int, seed: int):
    import numpy as np

    from edgebench.host.errors import UserError

    try:
        blob = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise UserError(f"calibration file not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read calibration file {path}: {exc}") from None
    key = next((k for k in ("train_images", "images") if k in blob.files), None)
    if key is None:
        raise UserError(f"{path} has no 'train_images' or 'images' array (found: "
                        f"{', '.join(blob.files) or 'nothing'})")
    calib = _as_nhwc(blob[key], source, f"{path}:{key}")
    pick = np.random.default_rng(seed).choice(len(calib), size=min(n, len(calib)), replace=False)
    if "test_images" in blob.files:
        test = _as_nhwc(blob["test_images"], source, f"{path}:test_images")
        labels = np.asarray(blob["test_labels"]).reshape(-1) if "test_labels" in blob.files else None
        return calib[np.sort(pick)], test, labels
    return calib[np.sort(pick)], calib[:200], None


def _as_nhwc(images, source, where: str):
    import numpy as np

    from edgebench.host.errors import UserError

    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., None]
    want = tuple(source.input_shape[1:])
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != want:
        raise UserError(f"{where}: expected uint8 images N×{want[0]}×{want[1]}×{want[2]} "
                        f"(the model's input), got {images.dtype} {list(images.shape)}")
    if len(images) == 0:
        raise UserError(f"{where} is empty")
    return images


def print_results(results, csv_path) -> None:
    print(f"{'recipe':<9} {'status':<7} {'size KiB':>9} {'max|Δ|':>9} {'agree':>6} {'acc':>6}  file")
    for r in results:
        v = r.verification or {}
        f = lambda x, spec: format(x, spec) if isinstance(x, (int, float)) else "-"  # noqa: E731
        size = f(r.size_bytes / 1024 if r.size_bytes else None, ".1f")
        where = str(r.tflite) if r.status == "ok" else r.error
        print(f"{r.recipe:<9} {r.status:<7} {size:>9} {f(v.get('max_abs_diff'), '.2e'):>9} "
              f"{f(v.get('agreement'), '.3f'):>6} {f(v.get('accuracy'), '.3f'):>6}  {where}")
    if csv_path:
        print(f"verification: {csv_path}")
