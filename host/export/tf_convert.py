"""ONNX -> TensorFlow SavedModel (NHWC) through onnx2tf's Python API, offline and int8-safe.

Three things onnx2tf does on its own that we must not let it do (shared/TOOLCHAIN.md):
1. it rewrites its input .onnx in place (onnxsim, op renaming): it gets a private copy;
2. it runs `onnxsim` as a subprocess found on PATH, three times: we simplify the same way in one
   process (onnx_simplify.py); where we leave it to onnx2tf, our interpreter's bin/ goes first on
   PATH;
3. for 3-channel inputs it downloads a sample image batch from GitHub: we hand it a local one.
And one thing it does that breaks full-integer quantization: it lowers a padded MaxPool to a pad
with float32.min, which gives the quantizer a 1e36 scale. onnx2tf zero-pads instead when its
`output_integer_quantized_tflite` option is on, but that option also makes it build its own
quantized models (minutes, and another download). We switch the option on for the MaxPool
converter alone, and only where the pooled tensor is provably non-negative (after ReLU/ReLU6),
where zero padding gives exactly the same maximum.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.host.errors import UserError

# The MaxPool switch leans on onnx2tf internals (ops.MaxPool.make_node reading the keyword);
# tests/test_export_convert.py checks it on this exact version.
TESTED_ONNX2TF = "1.29.24"
_NONNEG_OPS = {"Relu", "Sigmoid", "Softmax", "Abs", "Exp", "Softplus"}
_PASS_THROUGH_OPS = {"MaxPool", "Identity", "Flatten", "Reshape", "Transpose", "Concat",
                     "AveragePool", "GlobalAveragePool", "GlobalMaxPool", "Dropout"}


class ConversionError(UserError):
    """The converter could not take the model (unsupported op, bad graph)."""


def _is_nonnegative(tensor, depth: int = 0) -> bool:
    """True when the tensor (an onnx_graphsurgeon Variable) can never hold a negative value."""
    producers = getattr(tensor, "inputs", None) or []
    if depth > 16 or len(producers) != 1:
        return False
    node = producers[0]
    if node.op in _NONNEG_OPS:
        return True
    if node.op == "Clip":
        lo = node.inputs[1] if len(node.inputs) > 1 else None
        values = getattr(lo, "values", None)
        if values is not None:
            return bool(np.all(np.asarray(values) >= 0))
        return float(node.attrs.get("min", -np.inf)) >= 0
    if node.op in _PASS_THROUGH_OPS:
        data = [t for t in node.inputs[:1 if node.op != "Concat" else None]]
        return bool(data) and all(_is_nonnegative(t, depth + 1) for t in data)
    return False


@contextlib.contextmanager
def _tamed_onnx2tf(notes: list[str]):
    import onnx2tf.onnx2tf as core
    import onnx2tf.ops.MaxPool as maxpool

    original_download = core.download_test_image_data
    original_maxpool = maxpool.make_node

    def local_sample() -> np.ndarray:
        # Only used for onnx2tf's own output-shape checks; any images of this shape do.
        return np.random.default_rng(0).random((20, 128, 128, 3), dtype=np.float32)

    def maxpool_make_node(*, graph_node, tf_layers_dict, **kwargs):
        zero_pad = _is_nonnegative(graph_node.inputs[0])
        if not zero_pad and any(p for p in graph_node.attrs.get("pads", [])):
            notes.append(f"MaxPool {graph_node.name}: input may be negative, kept -inf padding "
                         "(full-integer recipes may lose accuracy)")
        kwargs = dict(kwargs, output_integer_quantized_tflite=zero_pad
                      or bool(kwargs.get("output_integer_quantized_tflite")))
        return original_maxpool(graph_node=graph_node, tf_layers_dict=tf_layers_dict, **kwargs)

    core.download_test_image_data = local_sample
    maxpool.make_node = maxpool_make_node
    old_path = os.environ.get("PATH", "")
    os.environ["PATH"] = str(Path(sys.executable).parent) + os.pathsep + old_path
    try:
        yield
    finally:
        core.download_test_image_data = original_download
        maxpool.make_node = original_maxpool
        os.environ["PATH"] = old_path


def _last_error(log: str) -> str:
    clean = re.sub(r"\x1b\[[0-9;]*m", "", log)
    lines = [ln.strip() for ln in clean.splitlines() if "ERROR" in ln or "Error" in ln]
    return lines[-1] if lines else ""


def onnx_to_saved_model(onnx_path: Path, saved_model_dir: Path,
                        input_shape: tuple[int, ...] | None = None) -> dict:
    """Convert `onnx_path` (NCHW image input) to a SavedModel with one NHWC float32 input and a
    `serving_default` signature. Returns {"seconds", "notes", "input_shape" (NHWC)}.
    Raises ConversionError naming the op when onnx2tf cannot convert one."""
    from edgebench.host.export.native_log import import_tensorflow, native_to_log

    import_tensorflow()
    import onnx2tf
    import tf_keras

    from edgebench.host.export.onnx_export import read_onnx_input
    from edgebench.host.export.onnx_simplify import simplify_in_place

    onnx_input = read_onnx_input(onnx_path, input_shape)
    saved_model_dir = Path(saved_model_dir)
    notes: list[str] = []
    start = time.perf_counter()
    log = io.StringIO()
    with tempfile.TemporaryDirectory(prefix="edgebench-onnx2tf-") as work:
        private = Path(work) / "model.onnx"
        shutil.copyfile(onnx_path, private)  # onnx2tf rewrites its input in place
        overwrite = [f"{onnx_input.name}:{','.join(map(str, onnx_input.shape))}"]
        simplified = simplify_in_place(private, overwrite[0])
        try:
            with native_to_log("onnx2tf"), _tamed_onnx2tf(notes), contextlib.redirect_stdout(log):
                model = onnx2tf.convert(
                    input_onnx_file_path=str(private),
                    output_folder_path=str(Path(work) / "out"),
                    overwrite_input_shape=overwrite,
                    disable_model_save=True,  # we write the SavedModel ourselves, below
                    non_verbose=True,
                    not_use_onnxsim=simplified,  # done above, in one process, not three
                )
        except ModuleNotFoundError as exc:
            op = (exc.name or "").rpartition(".")[2]
            node = getattr(exc, "onnx_op_name", None)
            raise ConversionError(
                f"onnx2tf {onnx2tf.__version__} cannot convert ONNX op {op!r}"
                + (f" (node {node})" if node else "") + f" in {Path(onnx_path).name}") from None
        except SystemExit:
            raise ConversionError(f"onnx2tf failed on {Path(onnx_path).name}: "
                                  f"{_last_error(log.getvalue()) or 'see EDGEBENCH_DEBUG=1'}") from None
        except Exception as exc:
            node = getattr(exc, "onnx_op_name", None)
            raise ConversionError(
                f"onnx2tf failed on {Path(onnx_path).name}"
                + (f" at node {node}" if node else "")
                + f": {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None

        if not isinstance(model, tf_keras.Model) or len(model.inputs) != 1:
            raise ConversionError(f"onnx2tf produced no single-input model from {Path(onnx_path).name}")
        got = [int(d) if d is not None else None for d in model.inputs[0].shape]
        if got != onnx_input.nhwc:
            raise ConversionError(f"onnx2tf gave input shape {got}, expected NHWC {onnx_input.nhwc}")
        with native_to_log("SavedModel"):
            _write_saved_model(model, saved_model_dir)
    return {"seconds": time.perf_counter() - start, "notes": notes, "input_shape": onnx_input.nhwc}


def _write_saved_model(model, saved_model_dir: Path) -> None:
    """An ExportArchive with one `serving_default` endpoint: about 1 s where tf.saved_model.save
    takes ~37 s, and (unlike from_concrete_functions under Keras 3) it keeps the weights."""
    import tensorflow as tf
    import tf_keras

    tmp = saved_model_dir.with_name(saved_model_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    archive = tf_keras.export.ExportArchive()
    archive.track(model)
    spec = tf.TensorSpec(model.inputs[0].shape, tf.float32, "input")
    archive.add_endpoint(name="serving_default", fn=lambda x: model(x), input_signature=[spec])
    with contextlib.redirect_stdout(io.StringIO()):
        archive.write_out(str(tmp))
    shutil.rmtree(saved_model_dir, ignore_errors=True)
    tmp.replace(saved_model_dir)
