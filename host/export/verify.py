"""Numeric verification of models against a float reference (PyTorch or onnxruntime): a .tflite
through a real TFLite interpreter with properly quantized inputs and dequantized outputs, an ONNX
Runtime .onnx through an onnxruntime session (float I/O: QDQ quantizes inside the graph)."""
from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np

from edgebench.host.files import write_atomic

# One row per model × converter × recipe (several models may share a folder); float_layers:
# int8-mixed's K; converter: export/converters (empty in files written before it: onnx2tf).
VERIFY_COLUMNS = ("model", "recipe", "status", "error", "size_bytes", "size_ratio_vs_fp32",
                  "max_abs_diff", "agreement", "accuracy", "n", "float_layers", "converter")


def normalize(images_u8: np.ndarray, normalization: dict) -> np.ndarray:
    """uint8 N×H×W×C -> the model's float input: (u8 * pixel_scale - mean) / std, per channel."""
    x = np.asarray(images_u8, dtype=np.float32) * np.float32(normalization["pixel_scale"])
    mean = np.asarray(normalization["mean"], dtype=np.float32)
    std = np.asarray(normalization["std"], dtype=np.float32)
    return ((x - mean) / std).astype(np.float32)


def quantize_input(x: np.ndarray, detail: dict) -> np.ndarray:
    """Float -> the interpreter's input dtype: q = clip(round(x / scale + zero_point))."""
    dtype = np.dtype(detail["dtype"])
    if not np.issubdtype(dtype, np.integer):
        return x.astype(dtype)
    scale, zero_point = detail["quantization"]
    info = np.iinfo(dtype)
    return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize_output(y: np.ndarray, detail: dict) -> np.ndarray:
    if not np.issubdtype(np.dtype(detail["dtype"]), np.integer):
        return y.astype(np.float32)
    scale, zero_point = detail["quantization"]
    return ((y.astype(np.float32) - zero_point) * scale).astype(np.float32)


def tflite_logits(path: Path, inputs: np.ndarray, threads: int = 2, desc: str | None = None) -> np.ndarray:
    """Run every NHWC float input (one at a time: the models have batch 1) through the .tflite."""
    from ai_edge_litert.interpreter import Interpreter
    from tqdm import tqdm

    from edgebench.host.export.native_log import stderr_to

    interp = Interpreter(model_path=str(path), num_threads=threads)
    with stderr_to(os.devnull):  # LiteRT's "INFO: Created TensorFlow Lite XNNPACK delegate"
        interp.allocate_tensors()
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    rows = []
    for x in tqdm(inputs, desc=desc or Path(path).name, unit="img", leave=False,
                  disable=desc is False):
        interp.set_tensor(inp["index"], quantize_input(x[None], inp))
        interp.invoke()
        rows.append(dequantize_output(interp.get_tensor(out["index"]), out)[0])
    return np.stack(rows) if rows else np.zeros((0, 0), np.float32)


def torch_logits(model, inputs: np.ndarray, batch: int = 64) -> np.ndarray:
    """PyTorch reference logits for NHWC float inputs (the model takes NCHW)."""
    import torch

    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(inputs), batch):
            x = torch.from_numpy(np.ascontiguousarray(inputs[i:i + batch].transpose(0, 3, 1, 2)))
            out.append(model(x).float().numpy())
    return np.concatenate(out)


def onnx_logits(onnx_path: Path, inputs: np.ndarray, threads: int | None = None,
                desc: str | bool | None = None) -> np.ndarray:
    """onnxruntime logits for NHWC float inputs to an NCHW ONNX model, one at a time (a file from
    elsewhere may fix its batch at 1). `desc` is accepted for tflite_logits' signature."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    return np.concatenate([sess.run(None, {name: x[None].transpose(0, 3, 1, 2)})[0]
                           for x in inputs]).astype(np.float32)


def compare(logits: np.ndarray, reference: np.ndarray, labels: np.ndarray | None = None) -> dict:
    """max |Δ| of the logits, top-1 agreement (fraction) and accuracy (None without labels)."""
    from edgebench.device.metrics import agreement

    logits, reference = np.asarray(logits, np.float64), np.asarray(reference, np.float64)
    if logits.shape != reference.shape:
        raise ValueError(f"logit shapes differ: {logits.shape} vs reference {reference.shape}")
    acc = None
    if labels is not None:
        acc = float((logits.argmax(1) == np.asarray(labels).reshape(-1)).mean())
    return {"max_abs_diff": float(np.abs(logits - reference).max()),
            "agreement": agreement(logits, reference), "accuracy": acc, "n": int(len(logits))}


def verify_tflite(path: Path, inputs: np.ndarray, reference: np.ndarray,
                  labels: np.ndarray | None = None, desc: str | None = None) -> dict:
    return compare(tflite_logits(path, inputs, desc=desc), reference, labels)


# model file suffix -> how its logits on NHWC float inputs are computed
MODEL_LOGITS = {".tflite": tflite_logits, ".onnx": onnx_logits}


def verify_model(path: Path, inputs: np.ndarray, reference: np.ndarray,
                 labels: np.ndarray | None = None, desc: str | bool | None = None) -> dict:
    """verify_tflite for any model file the routes write (.tflite, .onnx)."""
    logits = MODEL_LOGITS[Path(path).suffix](Path(path), inputs, threads=2, desc=desc)
    return compare(logits, reference, labels)


def write_verify_csv(path: Path, rows: list[dict]) -> Path:
    """One row per model × recipe; floats with enough digits to show a 1e-7 difference. Written
    to a temporary name and renamed, so an interrupted write keeps the old table."""
    path = Path(path)

    def write(f):
        w = csv.DictWriter(f, fieldnames=VERIFY_COLUMNS, extrasaction="ignore")
        w.writeheader()
        for row in rows:
            w.writerow({k: _fmt(row.get(k)) for k in VERIFY_COLUMNS})
    write_atomic(path, write)
    return path


def _fmt(v):
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return v
