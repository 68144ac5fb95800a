"""Layer-wise quantization error through TensorFlow 2.19's QuantizationDebugger, and the
calibrated model that both the debugger and the int8-mixed recipe quantize from.

The debugger's own route (`QuantizationDebugger(converter=...)`) calibrates with
`_experimental_calibrate_only` and then quantizes the calibrated model with `mlir_quantize`; we
take the same two steps by hand so that one calibration serves the statistics and every mixed
model of a search (~0.1 s each instead of a full conversion), and so that we can ask
`mlir_quantize` for what the debugger does not: int16 activations, and int8 input/output on the
non-debug model (the debugger's `get_nondebug_quantized_model` has float I/O). Both steps use
TensorFlow internals (`tensorflow.lite.python.convert.mlir_quantize`, pinned at 2.19.0, tested).

Per layer (one row per quantized op output the debugger instruments): the tensor name (what
`denylisted_nodes` takes), op type, scale, zero point, RMSE/scale (the debugger guide's measure:
≈ 0.29 is plain rounding noise of a uniform quantizer, more means clipping or a poor range),
mean error (bias), max |error|, and the range of the float activations."""
from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import numpy as np

from edgebench.host.export.mixed import ENDS, INPUT_END, OUTPUT_END
from edgebench.host.export.native_log import import_tensorflow
from edgebench.host.export.recipes import RECIPES
from edgebench.host.files import write_atomic

LAYER_COLUMNS = ("rank", "tensor", "op", "scale", "zero_point", "rmse_over_scale", "mean_error",
                 "max_abs_error", "rmse", "float_min", "float_max", "elements",
                 "output_mse_alone")  # int8-mixed only: see sensitivity()
SENSITIVITY_IMAGES = 32
WORST_LAYERS = 5  # how many the model card names


def unavailable(recipe: str) -> str:
    """Why the layer debugger cannot inspect `recipe`, or "" when it can."""
    activations = RECIPES[recipe].activations
    if activations == "float":
        return f"{recipe} has no integer activations to debug"
    if activations == "int16":
        # Measured on TF 2.19: mlir_quantize(inference_type=QUANTIZED_INT16,
        # enable_numeric_verify=True) writes int16 tensors with zero point -1, and the model
        # fails to load ("DEQUANTIZE ... zero_point != 0"): no per-layer statistics for 16x8.
        return ("TensorFlow 2.19's QuantizationDebugger cannot instrument int16x8 models (its "
                "debug model does not load); no per-layer table")
    return ""


def _dataset(calib_inputs: np.ndarray):
    data = np.asarray(calib_inputs, dtype=np.float32)

    def gen():
        for x in data:
            yield [x[None]]
    return gen


def calibrate(saved_model: Path, recipe: str, calib_inputs: np.ndarray, io_type: str) -> bytes:
    """The float model with calibration statistics recorded, configured as `recipe` would be."""
    tf = import_tensorflow()
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    RECIPES[recipe].configure(conv, tf, _dataset(calib_inputs), io_type)
    conv._experimental_calibrate_only = True  # as QuantizationDebugger sets it
    # The calibrated model is still float: the I/O type is quantize_calibrated's to set (an int16
    # input type here makes the converter look for a QUANTIZE that is not there yet).
    conv.inference_input_type = conv.inference_output_type = tf.float32
    return conv.convert()


def quantize_calibrated(calibrated: bytes, recipe: str, io_type: str = "int8",
                        keep_float: list[str] | None = None, numeric_verify: bool = False) -> bytes:
    """Quantize a calibrated model; the tensors in `keep_float` stay float (QUANTIZE/DEQUANTIZE
    around them), and so do the model's ends named there (mixed.INPUT_END / OUTPUT_END: a float
    input or output). With `numeric_verify` the result is the debugger's instrumented model (float
    I/O); otherwise its I/O is `io_type` (int8/uint8/float; int16 for int16x8)."""
    tf = import_tensorflow()
    from tensorflow.lite.python import convert
    from tensorflow.lite.python.convert import _types_pb2

    keep = list(keep_float or [])
    int16 = RECIPES[recipe].activations == "int16"
    if numeric_verify or io_type == "float":
        io_dtype = tf.float32
    elif int16:
        io_dtype = tf.int16
    else:
        io_dtype = tf.uint8 if io_type == "uint8" else tf.int8
    layers = [t for t in keep if t not in ENDS]
    return convert.mlir_quantize(
        calibrated, disable_per_channel=False,
        inference_type=_types_pb2.QUANTIZED_INT16 if int16 else _types_pb2.QUANTIZED_INT8,
        input_data_type=tf.float32 if INPUT_END in keep else io_dtype,
        output_data_type=tf.float32 if OUTPUT_END in keep else io_dtype,
        enable_numeric_verify=numeric_verify, denylisted_nodes=layers or None)


def layer_statistics(calibrated: bytes, recipe: str, calib_inputs: np.ndarray) -> list[dict]:
    """One row per instrumented layer (LAYER_COLUMNS), worst RMSE/scale first."""
    tf = import_tensorflow()
    debug_model = quantize_calibrated(calibrated, recipe, numeric_verify=True)
    options = tf.lite.experimental.QuantizationDebugOptions(layer_direct_compare_metrics={
        "float_min": lambda f, q, s, z: float(np.min(f)),
        "float_max": lambda f, q, s, z: float(np.max(f))})
    import warnings

    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice
        warnings.simplefilter("ignore")
        debugger = tf.lite.experimental.QuantizationDebugger(
            quant_debug_model_content=debug_model, debug_dataset=_dataset(calib_inputs),
            debug_options=options)
        debugger.run()
    dump = io.StringIO()
    debugger.layer_statistics_dump(dump)
    rows = []
    for raw in csv.DictReader(io.StringIO(dump.getvalue())):
        scale = float(raw["scale"])
        mse = float(raw["mean_squared_error"])
        rmse = math.sqrt(mse) if mse >= 0 else float("nan")
        rows.append({"tensor": raw["tensor_name"], "op": raw["op_name"], "scale": scale,
                     "zero_point": int(float(raw["zero_point"])),
                     "rmse_over_scale": rmse / scale if scale > 0 else float("inf"),
                     "mean_error": float(raw["mean_error"]),
                     "max_abs_error": float(raw["max_abs_error"]), "rmse": rmse,
                     "float_min": float(raw["float_min"]), "float_max": float(raw["float_max"]),
                     "elements": int(float(raw["num_elements"]))})
    rows.sort(key=lambda r: -_finite(r["rmse_over_scale"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank
    return rows


def sensitivity(calibrated: bytes, recipe: str, io_type: str, rows: list[dict],
                inputs: np.ndarray, n: int = SENSITIVITY_IMAGES) -> None:
    """Add `output_mse_alone` to each row: the mean squared difference of the model's logits
    when only that layer is quantized (every other layer float, and float input/output) from the
    logits of the float model, on the first n calibration images. RMSE/scale is local (≈ 0.3 for
    nearly every layer of a healthy model) and misses how far an error travels; this measures
    what reaches the output, at the cost of one quantization and n inferences per layer.

    With an integer `io_type` the model's two ends get rows of their own (INPUT_END, OUTPUT_END:
    every layer float and only that end quantized), with their scale, zero point and rounding
    error, and the table is re-ranked by RMSE/scale."""
    names = [r["tensor"] for r in rows if r["tensor"] not in ENDS]
    rows[:] = [r for r in rows if r["tensor"] not in ENDS]
    x = np.asarray(inputs[:n], dtype=np.float32)
    reference = _logits(quantize_calibrated(calibrated, recipe, io_type, names + list(ENDS)), x)
    for row in rows:
        alone = [m for m in names if m != row["tensor"]] + list(ENDS)
        got = _logits(quantize_calibrated(calibrated, recipe, io_type, alone), x)
        row["output_mse_alone"] = float(np.mean((got - reference) ** 2))
    if io_type == "float" or RECIPES[recipe].activations != "int8":
        return
    for end, other in ((INPUT_END, OUTPUT_END), (OUTPUT_END, INPUT_END)):
        blob = quantize_calibrated(calibrated, recipe, io_type, names + [other])
        got, detail = _logits(blob, x, with_detail=end)
        values = x if end == INPUT_END else reference
        rows.append(dict(_rounding(values, detail), tensor=end,
                         op="INPUT" if end == INPUT_END else "OUTPUT",
                         output_mse_alone=float(np.mean((got - reference) ** 2))))
    rows.sort(key=lambda r: -_finite(r["rmse_over_scale"]))
    for rank, row in enumerate(rows, 1):
        row["rank"] = rank


def _rounding(values: np.ndarray, detail: dict) -> dict:
    """What quantizing `values` with this tensor's scale and zero point does to them."""
    from edgebench.host.export.verify import dequantize_output, quantize_input

    scale, zero_point = detail["quantization"]
    err = dequantize_output(quantize_input(values, detail), detail) - values
    rmse = float(np.sqrt(np.mean(err ** 2)))
    return {"scale": float(scale), "zero_point": int(zero_point),
            "rmse_over_scale": rmse / scale if scale > 0 else float("inf"),
            "mean_error": float(np.mean(err)), "max_abs_error": float(np.max(np.abs(err))),
            "rmse": rmse, "float_min": float(np.min(values)), "float_max": float(np.max(values)),
            "elements": int(values[0].size)}


def _logits(blob: bytes, inputs: np.ndarray, with_detail: str | None = None):
    """The model's dequantized logits on `inputs`; with `with_detail` (an end's name) also the
    interpreter's details of that end's tensor."""
    from ai_edge_litert.interpreter import Interpreter

    from edgebench.host.export.verify import dequantize_output, quantize_input

    interp = Interpreter(model_content=blob)
    interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    rows = []
    for x in inputs:
        interp.set_tensor(inp["index"], quantize_input(x[None], inp))
        interp.invoke()
        rows.append(dequantize_output(interp.get_tensor(out["index"]), out)[0])
    if with_detail:
        return np.stack(rows), (inp if with_detail == INPUT_END else out)
    return np.stack(rows)


def _finite(v: float) -> float:
    return v if math.isfinite(v) else 1e300


def layers_csv_path(out_dir: Path, name: str, recipe: str) -> Path:
    return Path(out_dir) / f"{name}.{recipe}.layers.csv"


def write_layers_csv(path: Path, rows: list[dict]) -> Path:
    path = Path(path)

    def write(f):
        w = csv.DictWriter(f, fieldnames=LAYER_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    write_atomic(path, write)
    return path


def read_layers_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def worst_layers(rows: list[dict], n: int = WORST_LAYERS) -> list[dict]:
    """The card's short list: the n worst layers by RMSE/scale, rounded for reading."""
    keys = ("rank", "tensor", "op", "scale", "rmse_over_scale", "mean_error", "float_min",
            "float_max")
    return [{k: (round(float(r[k]), 6) if isinstance(r[k], float) else r[k]) for k in keys}
            for r in rows[:n]]
