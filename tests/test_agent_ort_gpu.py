"""ONNX Runtime rows on a GPU (issue 28): the gpu unit of .onnx models through onnxruntime-webgpu's
WebGpuExecutionProvider on a real (software) Vulkan driver, Mesa's lavapipe, which tests/run.sh
installs for the LiteRT GPU tests. The device venv (.venv-ort-webgpu, git-ignored) holds
onnxruntime-webgpu and numpy only, as a GPU box with no TFLite runtime would. A QDQ int8 model
(the ort route's own int8 builder) leaves its QuantizeLinear nodes to the CPU: the row names them.
Where onnxruntime has no GPU provider at all: tests/test_agent_ort.py."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from agent_helpers import REPO, events, read_rows, run_agent
from build_lock import build_lock
from delegates.build import SYSTEM_PYTHON, BuildError, litert23_python
from onnx_factory import make_ort_bundle, ort_card
from tflite_factory import ARCH, factory_dir, normalize, synthetic_images

pytestmark = pytest.mark.timeout(600)

LAVAPIPE_ICD = Path("/usr/share/vulkan/icd.d/lvp_icd.json")
REQUIRE_ENV = "EDGEBENCH_REQUIRE_EMULATION"
VENV = REPO / ".venv-ort-webgpu"
# numpy as LiteRT 2.3's venv pins it (onnxruntime-webgpu 1.27 takes numpy >= 1.21.6).
PINS = ["onnxruntime-webgpu==1.27.0", "numpy==2.4.6"]
CHECK = ("import onnxruntime as o; assert o.__version__ == '1.27.0', o.__version__; "
         "assert 'WebGpuExecutionProvider' in o.get_available_providers()")
WEBGPU, CPU_EP = "WebGpuExecutionProvider", "CPUExecutionProvider"
FP32, INT8 = f"{ARCH}.ort.fp32", f"{ARCH}.ort.int8"
TWINS = (f"{ARCH}.fp32", f"{ARCH}.int8")  # the .tflite of the same weights, on LiteRT


def webgpu_python() -> str:
    """A Python with exactly PINS in VENV, rebuilt when the pins (its key, kept inside it)
    change; pytest.fail when it cannot be made."""
    with build_lock(VENV):
        return _webgpu_python()


def _webgpu_python() -> str:
    python, key = VENV / "bin" / "python", VENV / "edgebench-pins.txt"
    wanted = "\n".join(PINS) + "\n"
    if key.is_file() and key.read_text() == wanted and subprocess.run(
            [str(python), "-c", CHECK], capture_output=True).returncode == 0:
        return str(python)
    shutil.rmtree(VENV, ignore_errors=True)
    for step in ([SYSTEM_PYTHON, "-m", "venv", str(VENV)],
                 [str(python), "-m", "pip", "install", "-q", *PINS],
                 [str(python), "-c", CHECK]):
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"could not build {VENV} ({' '.join(step[-3:])}): "
                        f"{(done.stderr or done.stdout).strip()[-800:]}")
    key.write_text(wanted)
    return str(python)


@pytest.fixture(scope="module")
def software_gpu() -> None:
    if not LAVAPIPE_ICD.is_file():
        message = (f"{LAVAPIPE_ICD} missing: ONNX Runtime's WebGPU rows need Mesa's lavapipe from "
                   f"bookworm-backports (tests/run.sh installs it)")
        if os.environ.get(REQUIRE_ENV):
            pytest.fail(message)
        pytest.skip(message)


def add_ort_int8(bundle: Path) -> None:
    """tinycnn.ort.int8.onnx: the fp32 .onnx quantized by the ort route's int8 builder (static
    QDQ, S8S8, per-channel), calibrated on 32 synthetic images, with its card in the manifest."""
    from edgebench.host.export.converters.ort_route import BUILDERS

    images, _ = synthetic_images(32, seed=7)
    out = bundle / "models" / f"{INT8}.onnx"
    with tempfile.TemporaryDirectory() as tmp:
        BUILDERS["int8"](bundle / "models" / f"{FP32}.onnx", out,
                         SimpleNamespace(calib_inputs=normalize(images)), Path(tmp))
    tflite_card = json.loads((factory_dir() / "models" / f"{ARCH}.fp32.json").read_text())
    manifest = json.loads((bundle / "manifest.json").read_text())
    twin = next(e for e in manifest["models"] if e["name"] == FP32)
    manifest["models"].append(dict(ort_card(tflite_card, out, "int8", 1), name=INT8,
                                   file=f"models/{out.name}", reference=twin.get("reference")))
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=1))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    bundle = make_ort_bundle(tmp_path_factory.mktemp("ort-gpu") / "bundle",
                             recipes=("fp32", "int8"))
    add_ort_int8(bundle)
    return bundle


@pytest.fixture(scope="module")
def gpu_run(bundle, software_gpu, tmp_path_factory):
    """One results folder: the ORT models on cpu, gpu and gpu! from the WebGPU venv (no TFLite
    runtime there), then their .tflite twins on cpu and gpu from LiteRT 2.3's venv into the
    same folder (the same run: the agent keeps the rows it does not plan), for the report."""
    out = tmp_path_factory.mktemp("ort-gpu-out") / "local"
    proc = run_agent(bundle, out, "--models", f"{FP32},{INT8}", "--accelerators", "cpu,gpu,gpu!",
                     python=webgpu_python())
    assert proc.returncode == 0, proc.stderr[-3000:]
    # no TFLite interpreter in that venv, and none needed for .onnx models
    assert json.loads((out / "env.json").read_text())["runtime"] == "none"
    try:
        litert = litert23_python()
    except BuildError as e:
        pytest.fail(str(e))
    twins = run_agent(bundle, out, "--models", ",".join(TWINS), "--accelerators", "cpu,gpu",
                      python=litert)
    assert twins.returncode == 0, twins.stderr[-3000:]
    rows = {(r["model"], r["compute_unit"]): r for r in read_rows(out / "results.csv")[1]}
    return proc, rows, out


def placement(row: dict) -> list[tuple[str, str, str]]:
    """fallback_nodes as (provider, op_type, node) triples (device/schema.py's format)."""
    cell = row["fallback_nodes"]
    return [tuple(entry.split(":", 2)) for entry in cell.split(";")] if cell else []


def test_fp32_runs_every_node_on_webgpu(gpu_run):
    _, rows, _ = gpu_run
    for unit in ("gpu", "gpu!"):
        row = rows[(FP32, unit)]
        assert row["status"] == "ok", row["error"]
        assert (row["runtime"], row["runtime_version"], row["api"], row["accelerator"]) == (
            "onnxruntime", "1.27.0", "inference_session", "gpu")
        assert row["accelerator_device"].startswith(WEBGPU + " (llvmpipe")
        assert row["software_accelerator"] == "true"  # lavapipe is a CPU device
        assert row["fully_accelerated"] == "true" and row["fallback_nodes"] == ""
        assert int(float(row["delegated_nodes"])) >= 8  # the tinycnn's nodes, after fusion
        assert row["error"] == ""  # no placement note, no failure to read one
        assert float(row["p50_ms"]) > 0 and float(row["load_ms"]) > 0


def test_int8_names_its_quantizelinear_nodes_on_the_cpu(gpu_run):
    _, rows, _ = gpu_run
    row = rows[(INT8, "gpu")]
    assert row["status"] == "ok", row["error"]
    fallback = placement(row)
    # QDQ's QuantizeLinear has no WebGPU kernel in 1.27: one per quantized activation
    assert len(fallback) >= 5
    assert {(p, op) for p, op, _ in fallback} == {(CPU_EP, "QuantizeLinear")}
    names = [node for _, _, node in fallback]
    assert len(set(names)) == len(names) and "input_QuantizeLinear" in names
    assert row["fully_accelerated"] == "false"
    assert int(float(row["delegated_nodes"])) > len(fallback)  # the rest ran on WebGPU
    note = row["error"]
    assert note.startswith(f"{len(fallback)} of ")
    assert (f"nodes ran on {CPU_EP}, outside {WEBGPU}: QuantizeLinear \u00d7{len(fallback)} ("
            in note)
    assert all(name in note for name in names[:8])


def test_cpu_rows_have_no_placement_pass(gpu_run):
    _, rows, _ = gpu_run
    for model in (FP32, INT8):
        row = rows[(model, "cpu")]
        assert row["status"] == "ok", row["error"]
        assert row["accelerator_device"] == CPU_EP and row["software_accelerator"] == "false"
        assert (row["fully_accelerated"], row["delegated_nodes"], row["fallback_nodes"],
                row["error"]) == ("", "", "", "")


def test_gpu_outputs_equal_the_cpu_rows(gpu_run):
    _, rows, out = gpu_run
    for model in (FP32, INT8):
        cpu, gpu = rows[(model, "cpu")], rows[(model, "gpu")]
        for column in ("n_test", "accuracy", "sensitivity", "specificity", "auc", "agreement"):
            assert gpu[column] != "" and float(gpu[column]) == pytest.approx(
                float(cpu[column]), abs=1e-9), (model, column)
    predicted = {}
    for line in read_rows(out / "predictions.csv")[1]:
        predicted.setdefault((line["model"], line["compute_unit"]), {})[int(line["image"])] = (
            line["predicted"], float(line["score"]))
    for model in (FP32, INT8):
        cpu, gpu = predicted[(model, "cpu")], predicted[(model, "gpu")]
        assert len(cpu) == len(gpu) == 48
        assert all(gpu[i][0] == cpu[i][0] for i in cpu), model
        assert max(abs(gpu[i][1] - cpu[i][1]) for i in cpu) < 1e-4, model


def test_gpu_bang_refuses_the_model_that_falls_back(gpu_run):
    proc, rows, _ = gpu_run
    row = rows[(INT8, "gpu!")]
    assert row["status"] == "error"
    assert row["error"] == (f"not fully accelerated: some nodes of this model have no kernel on "
                            f"{WEBGPU} (gpu! asks for the whole model there; the gpu unit names "
                            f"them)")
    assert [e["unit"] for e in events(proc) if e["event"] == "error"] == ["gpu!"]


def test_a_webgpu_provider_without_an_adapter_is_an_error_row_not_a_cpu_row(bundle,
                                                                            software_gpu,
                                                                            tmp_path):
    """onnxruntime's Python wrapper quietly retries a provider that fails on the CPU alone: the
    row must say so instead of timing the CPU under gpu's name."""
    env = dict(os.environ, VK_ICD_FILENAMES=str(tmp_path / "no-driver.json"))
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", FP32, "--accelerators", "cpu,gpu",
                     python=webgpu_python(), env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = {r["compute_unit"]: r for r in read_rows(out / "results.csv")[1]}
    assert rows["cpu"]["status"] == "ok", rows["cpu"]["error"]
    gpu = rows["gpu"]
    assert gpu["status"] == "error" and gpu["p50_ms"] == ""
    assert gpu["error"].startswith(f"{WEBGPU} did not start: Failed to get a WebGPU adapter")
    assert "Vulkan driver" in gpu["error"] and "fell back to the CPU" in gpu["error"]


def test_report_names_the_provider_and_the_nodes_off_it(gpu_run, tmp_path):
    from edgebench.host.report import build_report, load_results, runtimes
    from edgebench.host.report.tables import build_summary

    _, rows, out = gpu_run
    for twin in TWINS:
        assert rows[(twin, "gpu")]["status"] == "ok", rows[(twin, "gpu")]["error"]
    rs = load_results([out])
    summary = build_summary(rs.rows, rs.samples, rs.predictions, rs.power)
    table = runtimes.table(runtimes.pairs(summary, rs.samples, rs.predictions))
    by = {(r["recipe"], r["unit"]): r for _, r in table.iterrows()}
    assert set(by) == {("fp32", "cpu"), ("fp32", "gpu"), ("int8", "cpu"), ("int8", "gpu")}
    assert by[("int8", "gpu")]["runtimes"].endswith(f"onnxruntime 1.27.0 on {WEBGPU}, software")
    assert "on " not in by[("int8", "cpu")]["runtimes"].split("·")[1]
    fallback = len(placement(rows[(INT8, "gpu")]))
    assert by[("int8", "gpu")]["ORT nodes off its provider"] == (
        f"QuantizeLinear \u00d7{fallback} on {CPU_EP}")
    assert by[("fp32", "gpu")]["ORT nodes off its provider"] == "none"
    assert by[("fp32", "cpu")]["ORT nodes off its provider"] == ""
    paths = build_report([out], tmp_path / "report")
    md = paths.markdown.read_text()
    assert f"gpu ({WEBGPU}, software)" in md
    assert f"outside {WEBGPU}: QuantizeLinear \u00d7{fallback}" in md
    header = read_rows(paths.summary_csv)[0]
    assert "fallback_nodes" in header
