"""ONNX Runtime rows in the agent (issue 28): an `.onnx` model in a bundle is measured with ONNX
Runtime on the CPU, through the same child, timing, accuracy and result files as a LiteRT row,
beside a `.tflite` of the same weights (tests/onnx_factory.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import onnxruntime
import pytest

from agent_helpers import by_model, events, read_rows, run_agent
from onnx_factory import add_onnx_model, copy_bundle, make_ort_bundle

pytestmark = pytest.mark.timeout(600)

ORT = "tinycnn.ort.fp32"
TWIN = "tinycnn.fp32"
# Makes `import onnxruntime` fail in the agent and its children, as on a device without it.
HIDE_ORT = '''import sys


class HideOnnxRuntime:
    def find_spec(self, name, path=None, target=None):
        if name == "onnxruntime" or name.startswith("onnxruntime."):
            raise ModuleNotFoundError("No module named %r" % name, name=name)
        return None


sys.meta_path.insert(0, HideOnnxRuntime())
'''


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_ort_bundle(tmp_path_factory.mktemp("ort") / "bundle")


@pytest.fixture(scope="module")
def measured(bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("ort-out") / "out"
    proc = run_agent(bundle, out, "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    return proc, out


def rows_of(out, model=None) -> list:
    rows = read_rows(out / "results.csv")[1]
    return [r for r in rows if model is None or r["model"] == model]


def test_ort_row_is_measured_like_its_tflite_twin(measured):
    _, out = measured
    ort_rows, twin_rows = rows_of(out, ORT), rows_of(out, TWIN)
    assert sorted(int(r["threads"]) for r in ort_rows) == [1, 2]
    assert sorted(int(r["threads"]) for r in twin_rows) == [1, 2]
    for row in ort_rows + twin_rows:
        assert row["status"] == "ok", row["error"]
        assert float(row["p50_ms"]) > 0 and float(row["load_ms"]) > 0
        assert float(row["warm_load_ms"]) > 0 and float(row["first_inference_ms"]) > 0
        assert float(row["peak_rss_mb"]) > 0 and row["compute_unit"] == "cpu"
    for row in ort_rows:
        assert row["runtime"] == "onnxruntime"
        assert row["runtime_version"] == onnxruntime.__version__
        # xnnpack does not apply to ONNX Runtime: the tristate's "not recorded" (blank)
        assert row["xnnpack"] == ""
        assert row["api"] == "inference_session"
        assert row["accelerator_device"] == "CPUExecutionProvider"
        assert row["error"] == ""
    for row in twin_rows:
        assert row["runtime"] != "onnxruntime" and row["xnnpack"] == "on"


def test_ort_accuracy_and_predictions_equal_the_tflite_twin(measured):
    _, out = measured
    ort, twin = by_model(rows_of(out, ORT)), by_model(rows_of(out, TWIN))
    for column in ("accuracy", "n_test", "sensitivity", "specificity", "auc", "agreement"):
        assert ort[ORT][column] != "", column
        assert float(ort[ORT][column]) == pytest.approx(float(twin[TWIN][column]), abs=1e-9)
    predictions = read_rows(out / "predictions.csv")[1]
    predicted = {}
    for line in predictions:
        predicted.setdefault(line["model"], {})[int(line["image"])] = line["predicted"]
        if line["model"] == ORT:
            assert line["runtime"] == "onnxruntime" and line["xnnpack"] == ""
    assert len(predicted[ORT]) == len(predicted[TWIN]) == int(ort[ORT]["n_test"])
    assert predicted[ORT] == predicted[TWIN]


def test_rerun_skips_the_ort_rows_already_measured(measured, bundle):
    _, out = measured
    before = (out / "results.csv").read_text()
    proc = run_agent(bundle, out, "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    assert events(proc)[-1] == {"event": "done", "rows": 0, "skipped": 4, "errors": 0,
                                "out": str(out)}
    assert (out / "results.csv").read_text() == before


def test_models_selects_the_ort_row_and_rounds_repeat_it(bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", ORT, "--rounds", "2")
    assert proc.returncode == 0, proc.stderr
    rows = rows_of(out)
    assert [(r["model"], r["round"], r["status"]) for r in rows] == [(ORT, "1", "ok"),
                                                                     (ORT, "2", "ok")]


def test_ort_missing_is_an_error_row_naming_the_install(bundle, tmp_path):
    shim = tmp_path / "shim"
    shim.mkdir()
    (shim / "sitecustomize.py").write_text(HIDE_ORT)
    env = dict(os.environ, PYTHONPATH=str(shim))
    out = tmp_path / "out"
    proc = run_agent(bundle, out, env=env)
    assert proc.returncode == 0, proc.stderr
    rows = by_model(rows_of(out))
    assert rows[TWIN]["status"] == "ok", rows[TWIN]["error"]
    assert rows[ORT]["status"] == "error"
    assert rows[ORT]["runtime"] == "onnxruntime"
    assert "onnxruntime is not installed" in rows[ORT]["error"]
    assert "pip install onnxruntime" in rows[ORT]["error"]
    assert "\n" not in rows[ORT]["error"]
    assert [e["event"] for e in events(proc)].count("error") == 1


def test_onnx_input_that_does_not_match_the_test_set_is_a_one_line_error_row(bundle, tmp_path):
    mixed = copy_bundle(bundle, tmp_path / "bundle")
    # a three-channel model under a card (and a test set) of one channel
    add_onnx_model(mixed, name="tinycnn.ort.rgb", channels=3, card_channels=1)
    out = tmp_path / "out"
    proc = run_agent(mixed, out, "--models", f"{TWIN},tinycnn.ort.rgb")
    assert proc.returncode == 0, proc.stderr
    rows = by_model(rows_of(out))
    assert rows[TWIN]["status"] == "ok"
    bad = rows["tinycnn.ort.rgb"]
    assert bad["status"] == "error"
    assert bad["error"] == ("manifest says input shape [1, 1, 32, 32] (NCHW) but the model's "
                            "input is [1, 3, 32, 32]")


def test_a_gpu_unit_without_a_gpu_provider_is_an_error_row_naming_the_install(bundle, tmp_path):
    """The host venv's onnxruntime (CPU and Azure providers only) as a device's: its gpu row says
    which providers gpu takes and what to install; npu is not an ORT unit at all (said without
    a child). The gpu unit on a real provider: tests/test_agent_ort_gpu.py."""
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--accelerators", "cpu,gpu,npu")
    assert proc.returncode == 0, proc.stderr
    rows = {(r["model"], r["compute_unit"]): r for r in rows_of(out)}
    assert rows[(ORT, "cpu")]["status"] == "ok", rows[(ORT, "cpu")]["error"]
    assert rows[(TWIN, "cpu")]["status"] == "ok", rows[(TWIN, "cpu")]["error"]
    gpu = rows[(ORT, "gpu")]
    assert gpu["status"] == "error" and gpu["runtime"] == "onnxruntime"
    assert gpu["error"] == (
        "gpu needs CUDAExecutionProvider or WebGpuExecutionProvider; onnxruntime %s here has %s: "
        "pip install onnxruntime-gpu (NVIDIA: CUDAExecutionProvider) or onnxruntime-webgpu "
        "(WebGpuExecutionProvider: Vulkan, Metal, Direct3D 12), in place of onnxruntime"
        % (onnxruntime.__version__, ", ".join(onnxruntime.get_available_providers())))
    npu = rows[(ORT, "npu")]
    assert npu["status"] == "error" and npu["error"].startswith(
        "onnxruntime rows run on cpu, gpu here, not on npu")
    # the tflite twin's gpu row is LiteRT's business (ok or not on this machine), never ORT's
    assert "onnxruntime" not in rows[(TWIN, "gpu")]["error"].lower()


def test_streams_fps_and_soak_run_on_an_ort_row(bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", ORT, "--streams", "2", "--fps", "200",
                     "--scenario-seconds", "0.5", "--soak", "1", "--soak-interval", "0.5")
    assert proc.returncode == 0, proc.stderr
    (row,) = rows_of(out)
    assert row["status"] == "ok", row["error"]
    scenarios = read_rows(out / "scenarios.csv")[1]
    assert {s["scenario"] for s in scenarios} == {"fps=200", "streams=2"}
    assert all(s["status"] == "ok" for s in scenarios), [s["error"] for s in scenarios]
    assert all(s["runtime"] == "onnxruntime" for s in scenarios)
    soak = read_rows(out / "soak.csv")[1]
    assert len(soak) >= 2 and all(s["runtime"] == "onnxruntime" for s in soak)


def test_the_guide_and_runtime_help_mention_ort_rows(bundle, tmp_path):
    agent = str(bundle / "agent.pyz")
    helped = subprocess.run([sys.executable, agent, "--runtime", "help"], capture_output=True,
                            text=True, timeout=60)
    assert helped.returncode == 0 and "onnxruntime" in helped.stdout and ".onnx" in helped.stdout
    guide = subprocess.run([sys.executable, agent, "--help"], capture_output=True, text=True,
                           timeout=60)
    assert ".onnx" in guide.stdout and "ONNX Runtime" in guide.stdout
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert any(e["file"].endswith(".onnx") for e in manifest["models"])
