"""`bench-host convert`: checkpoint (or any .onnx) -> ONNX -> TF SavedModel -> float32 .tflite,
every intermediate kept, the result checked against the float model."""
from __future__ import annotations

from pathlib import Path

from edgebench.host.commands.export_args import add_common, add_converter
from edgebench.host.commands.registry_args import add_registry_option


def register(sub) -> None:
    p = sub.add_parser(
        "convert", help="PyTorch checkpoint or .onnx -> ONNX -> SavedModel -> float32 .tflite",
        description="Convert a checkpoint through ONNX (opset 18) and onnx2tf (NHWC) to a float32 "
                    "TFLite model, keeping <arch>.onnx, <arch>_saved_model/ and "
                    "<arch>.fp32.tflite + .json beside the checkpoint. An .onnx file from any "
                    "framework (NCHW image input) is converted the same way and verified against "
                    "onnxruntime. Works offline.")
    p.add_argument("source", type=Path, metavar="CHECKPOINT|MODEL.onnx")
    add_registry_option(p, "--data", metavar="SPEC",
                        help="data spec to verify on (default: the checkpoint's own test split)")
    add_converter(p)
    add_common(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from edgebench.host.commands.export_args import converters_from, ready_converters

    converters = converters_from(args)
    if converters is None:
        return 0
    ready_converters(converters)
    from edgebench.host import liblog

    rc = 0
    # TensorFlow's native lines (export/native_log) go to host.log beside the models.
    with liblog.to_file(Path(args.out or args.source.parent) / "host.log"):
        if "onnx2tf" in converters:
            rc = _onnx2tf(args)
        for name in converters:
            if name != "onnx2tf":
                rc = max(rc, _other_route(args, name))
    return rc


def _other_route(args, converter: str) -> int:
    """A route without ONNX/SavedModel: the checkpoint straight to its float32 .tflite."""
    from edgebench.host.commands.quantize import print_results
    from edgebench.host.errors import UserError
    from edgebench.host.export.pipeline import (_test_split, checkpoint_source,
                                                record_verification, reference_for)
    from edgebench.host.export.quantize import QuantizeOptions, quantize

    path = args.source
    if path.suffix.lower() == ".onnx" or not path.is_file():
        raise UserError(f"{converter} converts PyTorch checkpoints; {path} is "
                        + ("an .onnx file" if path.is_file() else "not a file"))
    from edgebench.host.checkpoint import build_from_checkpoint

    model, meta = build_from_checkpoint(path)
    source = checkpoint_source(path, meta)
    verify = None
    if args.verify:
        images, labels = _test_split(args.data or meta.data_spec, meta.img_size, meta.in_channels,
                                     meta.split_seed)
        verify = reference_for(source, images, labels, model)
    out = args.out or path.parent
    results = quantize(path, ["fp32"], None, out, source,
                       QuantizeOptions(verify=verify, progress=not args.quiet,
                                       converter=converter, model=model))
    print_results(results, record_verification(out, results, meta.architecture))
    return 0 if all(r.status == "ok" for r in results) else 1


def _onnx2tf(args) -> int:
    from edgebench.host.export.census import summary_line
    from edgebench.host.export.pipeline import convert_any, record_verification

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
    census = result.fp32.extra.get("census")
    if census:
        print(f"ops:         {summary_line(census)}")
    v = result.verification
    if v:
        acc = f", accuracy {v['accuracy']:.3f}" if v.get("accuracy") is not None else ""
        print(f"verified:    max |Δ| {v['max_abs_diff']:.2e} vs {v['reference']}, agreement "
              f"{v['agreement']:.3f}{acc} on {v['n']} images")
    csv_path = record_verification(result.tflite.parent, [result.fp32], result.source.architecture)
    print(f"verify.csv:  {csv_path}")
    return 0
