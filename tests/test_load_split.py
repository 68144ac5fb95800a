"""The trivial model the agent compiles on an accelerator to time its start-up apart
(device/trivial_model.py): a real .tflite that computes y = x + x, so the start-up it measures is
a real compile and run, not a no-op."""
from __future__ import annotations

import numpy as np

from edgebench.device.trivial_model import trivial_model


def test_the_trivial_model_doubles_its_input():
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_content=trivial_model())
    interp.allocate_tensors()
    inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
    assert list(inp["shape"]) == [1, 4] and inp["dtype"] == np.float32
    x = np.array([[0.5, -1.0, 3.0, 7.25]], np.float32)
    interp.set_tensor(inp["index"], x)
    interp.invoke()
    np.testing.assert_array_equal(interp.get_tensor(out["index"]), x + x)
