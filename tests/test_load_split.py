"""The load split into start-up, cold load and warm load. The trivial model the agent compiles on
an accelerator to time its start-up apart (device/agent/trivial_model.py) is a real .tflite that
computes y = x + x, so the start-up it measures is a real compile and run, not a no-op; the warm
load runs once the cold session is gone."""
from __future__ import annotations

import json

import numpy as np

from edgebench.device.agent.trivial_model import trivial_model


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


def test_the_warm_load_runs_after_the_cold_session_is_released(tmp_path, test_delegates):
    """The warm load is "what a load costs once the process, the runtime and the accelerator are
    up", not a load beside a live cold session (twice the memory, issue 32). The `single` test
    delegate refuses a second live instance, as an NPU driver with one device handle does: the
    warm load succeeds only if the cold session (and its delegate) was destroyed first."""
    from agent_helpers import read_rows, run_agent
    from tflite_factory import make_bundle

    bundle = make_bundle(tmp_path / "bundle", recipes=("fp32",))
    log = tmp_path / "single.jsonl"
    spec = f"{test_delegates['single']}:report={log}"
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32", "--accelerators", "cpu",
                     "--delegate", spec)
    assert proc.returncode == 0, proc.stderr
    (row,) = [r for r in read_rows(out / "results.csv")[1] if r["compute_unit"] != "cpu"]
    assert row["status"] == "ok", row["error"]
    assert "warm load failed" not in row["error"], row["error"]
    assert float(row["load_ms"]) > 0 and float(row["warm_load_ms"]) > 0
    assert row["accuracy"] != ""
    events = [json.loads(line)["event"] for line in log.read_text().splitlines()]
    assert events[:4] == ["create", "prepare", "destroy", "create"], events
