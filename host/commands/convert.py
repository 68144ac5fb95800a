"""`bench-host convert`: checkpoint (or any .onnx) -> ONNX -> TF SavedModel -> float32 .tflite,
every intermediate kept, the result checked against the float model."""
from __future__ import annotations

from pathlib import Path


def register(sub) -> None:
    from edgebench.host.commands.quantize import add_common

    p = sub.add_parser(
        "convert", help="PyTorch checkpoint or .onnx -> ONNX -> SavedModel -> float32 .tflite",
        description="Convert a checkpoint through ONNX (opset 18) and onnx2tf (NHWC) to a float32 "
                    "TFLite model, keeping <arch>.onnx, <arch>_saved_model/ and "
                    "<arch>.fp32.tflite + .json beside the checkpoint. An .onnx file from any "
                    "framework (NCHW image input) is converted the same way and verified against "
                    "onnxruntime. Works offline.")
    p.add_argument("source", type=Path, metavar="CHECKPOINT|MODEL.onnx")
    p.add_argument("--data", metavar="SPEC",
                   help="data spec to verify on (default: the checkpoint's own test split)")
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.export.pipeline import record_verification

    result = convert_any(args.source, args.out, args.input_shape, verify=args.verify,
                         data=args.data, quiet=args.quiet)
    print(f"onnx:        {result.onnx}")
    print(f"saved_model: {result.saved_model}")
    print(f"tflite:      {result.tflite} ({result.tflite.stat().st_size / 1024:.1f} KiB), "
          f"card {result.card.name}")
    t = result.timings
    print(f"time:        onnx {t['onnx_export_s']:.1f} s, onnx2tf {t['onnx2tf_s']:.1f} s, "
          f"tflite {t['tflite_s']:.1f} s")
    for note in result.notes:
        print(f"note:        {note}")
    v = result.verification
    if v:
        acc = f", accuracy {v['accuracy']:.3f}" if v.get("accuracy") is not None else ""
        print(f"verified:    max |Δ| {v['max_abs_diff']:.2e} vs {v['reference']}, agreement "
              f"{v['agreement']:.3f}{acc} on {v['n']} images")
    csv_path = record_verification(result.tflite.parent, [result.fp32], result.source.architecture)
    print(f"verify.csv:  {csv_path}")
    return 0


def convert_any(path: Path, out: Path | None, input_shape: str | None, verify: bool,
                data: str | None, quiet: bool = False):
    """Convert a checkpoint or an .onnx file; verify on the test split of `data` (or the
    checkpoint's own data spec) when asked."""
    from edgebench.host.errors import UserError
    from edgebench.host.export.onnx_export import parse_shape
    from edgebench.host.export.pipeline import convert_checkpoint, convert_onnx

    path = Path(path)
    if not path.exists():
        raise UserError(f"not found: {path}")
    images = labels = None
    if path.suffix.lower() == ".onnx":
        shape = parse_shape(input_shape) if input_shape else None
        if verify and data:
            from edgebench.host.export.onnx_export import read_onnx_input

            spec = read_onnx_input(path, shape)
            images, labels = _test_split(data, spec.hw[0], spec.channels, 0)
        return convert_onnx(path, out, input_shape=shape,
                            verify_images=images if verify else np_empty(),
                            verify_labels=labels, progress=not quiet)
    if path.is_dir():
        raise UserError(f"{path} is a folder; convert takes a checkpoint (.pt) or an .onnx file "
                        "(quantize takes a SavedModel folder)")
    if verify:
        from edgebench.host.checkpoint import load_checkpoint

        meta, _ = load_checkpoint(path)
        images, labels = _test_split(data or meta.data_spec, meta.img_size, meta.in_channels,
                                     meta.split_seed)
    return convert_checkpoint(path, out, verify_images=images, verify_labels=labels,
                              progress=not quiet)


def _test_split(spec: str, img_size: int, channels: int, seed: int):
    from edgebench.host.data import load_splits

    return load_splits(spec, img_size, channels, seed)["test"]


def np_empty():
    """No verification images: convert_onnx skips the check."""
    import numpy as np

    return np.zeros((0, 1, 1, 1), np.uint8)
