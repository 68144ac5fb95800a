"""onnx-simplifier run the way onnx2tf runs it, at a third of the cost.

onnx2tf simplifies its input by running the `onnxsim` command three times in a row, each a
process of its own that imports onnx, onnxsim and onnxruntime and reads and writes the whole
model: 60 % of onnx2tf's time on VGG16 (shared/TOOLCHAIN.md, issue 29). Here the same
simplification (the command's defaults and the same --overwrite-input-shape) runs in one child
process, pass after pass, and stops at the fixed point: a pass that changes nothing would change
nothing the next time either. onnx2tf is then told not to simplify again. The graph it converts
is the one its own three passes would give (tests/test_export_speed.py checks the models).

A child, as onnx2tf does it, because onnx-simplifier is native code that has crashed on some
graphs: a crash here costs the shortcut, not the run (onnx2tf then simplifies as it always did).

    python -m edgebench.host.export.onnx_simplify MODEL.onnx NAME:D0,D1,...
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PASSES = 3  # onnx2tf's count
# Graphs onnx2tf treats specially around its own onnxsim runs (shape fixes for Einsum/OneHot,
# outputs with non-positive dimensions cleared first): left to onnx2tf as they are.
_LEFT_TO_ONNX2TF = {"Einsum", "OneHot"}
LEFT_ALONE = 3  # the child's exit status for such a graph


def simplify_in_place(path: Path, overwrite_input_shape: str, timeout: float = 600) -> bool:
    """Simplify `path` in place as onnx2tf's three onnxsim runs would; True when done (pass
    onnx2tf not_use_onnxsim=True), False when onnx2tf should simplify it itself."""
    try:
        proc = subprocess.run([sys.executable, "-m", __name__, str(path), overwrite_input_shape],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              timeout=timeout)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


def _left_to_onnx2tf(model) -> bool:
    if any(node.op_type in _LEFT_TO_ONNX2TF for node in model.graph.node):
        return True
    for output in model.graph.output:
        dims = output.type.tensor_type.shape.dim
        if any(d.HasField("dim_value") and d.dim_value < 1 for d in dims):
            return True
    return False


def main(argv: list) -> int:
    import onnx
    from onnxsim import simplify
    from onnxsim.onnx_simplifier import DEFAULT_TENSOR_SIZE_THRESHOLDHOLD

    path, shape = Path(argv[0]), argv[1]
    name, _, dims = shape.rpartition(":")
    model = onnx.load(str(path))
    if _left_to_onnx2tf(model):
        return LEFT_ALONE
    before = model.SerializeToString()
    for _ in range(PASSES):
        # The arguments the `onnxsim` command passes for `onnxsim IN OUT --overwrite-input-shape
        # NAME:DIMS` (onnx_simplifier.main), positionally as it does.
        optimized, _ = simplify(model, 0, True, False, {name: [int(d) for d in dims.split(",")]},
                                {}, [], False, False, None, False, None, False, None,
                                DEFAULT_TENSOR_SIZE_THRESHOLDHOLD, False)
        after = optimized.SerializeToString()
        if after == before:
            break
        # Through bytes, as the command's save and the next run's load would.
        model, before = onnx.load_from_string(after), after
    onnx.save(onnx.load_from_string(before), str(path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
