"""Child process of the litert-torch route; runs with the converter venv's own Python, so it
imports nothing from edgebench (whose host needs other numpy/protobuf/ai-edge-litert versions).

The parent has already run torch.export on the model wrapped to take NHWC input (the layout every
edgebench model card has) and saved it with torch.export.save (the same torch, 2.13.0, on both
sides). Here: litert_torch.convert -> the fp32 .tflite, then each quantized recipe from it with
ai-edge-quantizer, calibrated on the same images as the onnx2tf route. Protocol as
export/recipe_worker.py: one JSON line per event on stdout, {"recipe", "event": "start"} then
{"recipe", "event": "done", "status", "error", "seconds", "size_bytes", "extra"}; each model goes
to OUT_DIR/STEM.RECIPE.tflite.

    python litert_worker.py PROGRAM.pt2 OUT_DIR STEM OPTIONS.json RECIPE...

OPTIONS.json: {"calib": CALIB.npy (NHWC float32) or null, "io": "int8"|"uint8"}.
"""
from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _emit(**event) -> None:
    sys.__stdout__.write(json.dumps(event) + "\n")
    sys.__stdout__.flush()


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:250]


def convert_fp32(program: Path, out: Path) -> None:
    import torch
    import litert_torch

    module = torch.export.load(str(program)).module()
    shape = [int(d) for d in json.loads(Path(str(program) + ".json").read_text())["input_shape"]]
    litert_torch.convert(module, (torch.zeros(shape),)).export(str(out))


def _recipe(name: str, qt) -> None:
    """Configure the ai-edge-quantizer Quantizer `qt` for edgebench recipe `name`."""
    from ai_edge_quantizer import qtyping, recipe

    if name == "dynamic":
        qt.load_quantization_recipe(recipe.dynamic_wi8_afp32())
    elif name == "fp16":  # float16 weights, float compute: the quantizer's float casting
        qt.add_weight_only_config(regex=".*", operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
                                  num_bits=16, algorithm_key="float_casting")
    elif name == "int8":
        qt.load_quantization_recipe(recipe.static_wi8_ai8())
    elif name == "int16x8":
        qt.load_quantization_recipe(recipe.static_wi8_ai16())
    else:
        raise ValueError(f"no ai-edge-quantizer recipe for {name}")


def quantize_one(fp32: Path, name: str, calib, io: str) -> bytes:
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    from ai_edge_quantizer import quantizer

    if name == "int8" and io == "uint8":
        raise ValueError("ai-edge-quantizer writes int8 input/output only (no uint8 I/O)")
    qt = quantizer.Quantizer(str(fp32))
    _recipe(name, qt)
    calibration = None
    if qt.need_calibration:
        if calib is None or len(calib) == 0:
            raise ValueError(f"recipe {name} needs calibration images")
        signatures = Interpreter(model_path=str(fp32)).get_signature_list()
        key = next(iter(signatures))
        (arg,) = signatures[key]["inputs"]
        calibration = qt.calibrate({key: [{arg: x[None].astype(np.float32)} for x in calib]},
                                   num_threads=1)
    return bytes(qt.quantize(calibration, enable_progress_report=False).quantized_model)


def main(argv: list[str]) -> int:
    import contextlib

    program, out_dir, stem, options_path, *recipes = argv
    opts = json.loads(Path(options_path).read_text())
    out_dir = Path(out_dir)
    calib = None
    if opts.get("calib"):
        import numpy as np

        calib = np.load(opts["calib"])
    scratch = tempfile.TemporaryDirectory(prefix="edgebench-litert-")
    fp32 = Path(scratch.name) / "fp32.tflite"
    start = time.perf_counter()
    failed = ""
    # litert-torch and the quantizer print progress on stdout: keep it off the event stream
    with contextlib.redirect_stdout(sys.stderr):
        try:
            convert_fp32(Path(program), fp32)
        except Exception as exc:
            failed = f"litert_torch.convert failed: {_line(exc)}"
    fp32_s = time.perf_counter() - start
    for name in recipes:
        _emit(recipe=name, event="start")
        start = time.perf_counter()
        if failed:
            _emit(recipe=name, event="done", status="failed", error=failed, seconds=0.0,
                  size_bytes=None, extra={})
            continue
        try:
            with contextlib.redirect_stdout(sys.stderr):
                blob = fp32.read_bytes() if name == "fp32" else \
                    quantize_one(fp32, name, calib, opts.get("io", "int8"))
        except Exception as exc:
            _emit(recipe=name, event="done", status="failed", seconds=time.perf_counter() - start,
                  error=f"ai-edge-quantizer failed: {_line(exc)}", size_bytes=None, extra={})
            continue
        path = out_dir / f"{stem}.{name}.tflite"
        tmp = path.with_suffix(".tflite.tmp")
        tmp.write_bytes(blob)
        tmp.replace(path)
        seconds = time.perf_counter() - start + fp32_s  # each recipe needs the fp32 model
        _emit(recipe=name, event="done", status="ok", error="", seconds=seconds,
              size_bytes=len(blob), extra={})
    scratch.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
