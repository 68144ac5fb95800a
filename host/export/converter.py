"""One recipe through TensorFlow's TFLite converter, in this process: the step that the quantize
stage and its isolated worker (recipe_worker) share, below both of them so neither imports the
other's module."""
from __future__ import annotations

import contextlib
import re
import tempfile
from pathlib import Path

import numpy as np

from edgebench.host.errors import UserError
from edgebench.host.export.native_log import import_tensorflow, stderr_to
from edgebench.host.export.recipes import RECIPES


def _reason(exc: BaseException, log: str) -> str:
    """One line: the converter's own 'error:' line when it logged one, else the exception's."""
    text = log + "\n" + str(exc)
    hits = [m.group(1).strip() for m in re.finditer(r"error: (.+)", text)]
    line = hits[0] if hits else (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{type(exc).__name__}: {line}"[:300]


@contextlib.contextmanager
def native_step(log_path: Path | None = None):
    """TensorFlow native code inside: its log goes to `log_path` (a temporary file by default),
    and an exception becomes a RuntimeError with the converter's own reason in one line."""
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(log_path) if log_path else Path(tmp) / "converter.log"
        try:
            with stderr_to(log):
                yield
        except Exception as exc:
            raise RuntimeError(_reason(exc, log.read_text(errors="replace"))) from None


def convert_recipe(saved_model: Path, recipe: str, calib_inputs: np.ndarray | None = None,
                   io: str = "int8", log_path: Path | None = None) -> bytes:
    """The .tflite bytes of one recipe, in this process; calibrated recipes need `calib_inputs`
    (NHWC float). The converter's native log goes to `log_path` (a temporary file by default)."""
    tf = import_tensorflow()

    spec = RECIPES[recipe]
    rep = None
    if spec.calibrated:
        if calib_inputs is None or len(calib_inputs) == 0:
            raise UserError(f"recipe {recipe} needs calibration images")
        data = np.asarray(calib_inputs, dtype=np.float32)

        def rep():
            for x in data:
                yield [x[None]]
    conv = tf.lite.TFLiteConverter.from_saved_model(str(saved_model))
    spec.configure(conv, tf, rep, io)
    with native_step(log_path):
        return conv.convert()
