"""The compute-unit axis on real parts: the GPU path through LiteRT 2.3's CompiledModel on a real
(software) Vulkan driver, Mesa's lavapipe, which tests/run.sh installs from bookworm-backports;
the C test delegates of tests/delegates/ through load_delegate; and every way a unit can be
unavailable, each an error row while the other rows of the run go on."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from agent_helpers import events, read_rows, run_agent
from delegates.build import BuildError, litert23_python
from tflite_factory import ARCH, RECIPES, make_bundle
from edgebench.device.options import AgentOptions, agent_command

pytestmark = pytest.mark.timeout(900)

LAVAPIPE_ICD = Path("/usr/share/vulkan/icd.d/lvp_icd.json")
GPU_RECIPES = ("fp32", "dynamic", "fp16", "int8")  # int16x8: LiteRT 2.3 has no int16 buffers


@pytest.fixture(scope="module")
def litert23() -> str:
    try:
        return litert23_python()
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="module")
def software_gpu() -> None:
    if not LAVAPIPE_ICD.is_file():
        pytest.fail(f"{LAVAPIPE_ICD} missing: the GPU tests need Mesa's lavapipe from "
                    f"bookworm-backports (tests/run.sh installs it)")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("accel") / "bundle", recipes=RECIPES)


def no_xdg_env() -> dict:
    """An SSH session without PAM has no XDG_RUNTIME_DIR: the agent must cope by itself."""
    env = dict(os.environ)
    env.pop("XDG_RUNTIME_DIR", None)
    return env


def rows_by(out: Path) -> dict[tuple[str, str], dict]:
    _, rows = read_rows(out / "results.csv")
    return {(r["model"], r["compute_unit"]): r for r in rows}


@pytest.fixture(scope="module")
def gpu_run(bundle, litert23, software_gpu, tmp_path_factory):
    out = tmp_path_factory.mktemp("gpu-out")
    proc = run_agent(bundle, out, "--accelerators", "cpu,gpu,gpu!,npu", python=litert23,
                     env=no_xdg_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc, rows_by(out), out


def test_gpu_rows_name_the_software_adapter(gpu_run):
    _, rows, out = gpu_run
    for recipe in GPU_RECIPES:
        row = rows[(f"{ARCH}.{recipe}", "gpu")]
        assert row["status"] == "ok", row["error"]
        assert (row["accelerator"], row["api"], row["runtime"]) == ("gpu", "compiled_model",
                                                                    "litert")
        assert row["runtime_version"] == "2.3.0"
        assert "llvmpipe" in row["accelerator_device"] and "Vulkan" in row["accelerator_device"]
        assert row["software_accelerator"] == "true" and row["fully_accelerated"] == "true"
        # start-up and shader compilation come before the first inference and the timed runs
        assert float(row["accelerator_init_ms"]) + float(row["load_ms"]) > float(row["p50_ms"])
        cpu = rows[(f"{ARCH}.{recipe}", "cpu")]
        assert (cpu["accelerator"], cpu["api"], cpu["software_accelerator"]) == (
            "cpu", "interpreter", "false")
    # the runtime's log is kept, not thrown away nor sprayed over stderr
    assert "Selected adapter" in (out / "runtime.log").read_text()


def test_gpu_load_is_start_up_then_cold_then_warm(gpu_run):
    """The accelerator's start-up (LiteRT's environment, Dawn, the Vulkan driver) is timed apart
    from each model's load, so no model pays it for the others; a second load of the same model
    in the same child (warm) is what the report compares across recipes."""
    _, rows, out = gpu_run
    for recipe in GPU_RECIPES:
        row = rows[(f"{ARCH}.{recipe}", "gpu")]
        init, cold, warm = (float(row[k]) for k in ("accelerator_init_ms", "load_ms",
                                                    "warm_load_ms"))
        assert init > 0 and 0 < warm <= cold, (recipe, init, cold, warm)
        # the shared environment starts once: the model's cold load is not a second start-up
        assert cold < init, (recipe, init, cold)
        assert row["error"] == "", row["error"]  # no "start-up not timed apart" note
        cpu = rows[(f"{ARCH}.{recipe}", "cpu")]
        assert float(cpu["accelerator_init_ms"]) > 0 and float(cpu["warm_load_ms"]) > 0
    # LiteRT names the adapter once per environment (the trivial model's compile); every row
    # still names it
    assert all("llvmpipe" in rows[(f"{ARCH}.{r}", "gpu")]["accelerator_device"]
               for r in GPU_RECIPES)


def test_gpu_accuracy_is_the_whole_test_set_through_the_gpu(gpu_run):
    _, rows, _ = gpu_run
    for recipe in GPU_RECIPES:
        gpu, cpu = rows[(f"{ARCH}.{recipe}", "gpu")], rows[(f"{ARCH}.{recipe}", "cpu")]
        n = int(gpu["n_test"])
        assert n == int(cpu["n_test"]) == 48
        # fp16 arithmetic inside the GPU may flip a borderline image; the agreement with the
        # float reference says so on the row, so the difference is reported, never hidden
        assert abs(float(gpu["accuracy"]) - float(cpu["accuracy"])) <= 1.0 / n + 1e-9
        assert gpu["agreement"] != "" and float(gpu["agreement"]) >= 1.0 - 1.0 / n - 1e-9
        confusion = sum(int(gpu[k]) for k in ("tn", "fp", "fn", "tp"))
        assert confusion == n


def test_gpu_units_that_cannot_run_a_model_are_error_rows(gpu_run):
    _, rows, _ = gpu_run
    int16 = rows[(f"{ARCH}.int16x8", "gpu")]
    assert int16["status"] == "error" and "int16" in int16["error"]
    # gpu! on a model the GPU takes only partly: LiteRT puts 5 of 6 int16 ops on the CPU
    partial = rows[(f"{ARCH}.int16x8", "gpu!")]
    assert partial["status"] == "error" and "not fully accelerated" in partial["error"]
    for recipe in GPU_RECIPES:
        assert rows[(f"{ARCH}.{recipe}", "gpu!")]["status"] == "ok"
        npu = rows[(f"{ARCH}.{recipe}", "npu")]
        assert npu["status"] == "error" and "NPU dispatch library missing" in npu["error"]
        assert "libopenvino" in npu["error"]  # names what is missing
    for recipe in RECIPES:  # the CPU rows of the same run are untouched by all of that
        assert rows[(f"{ARCH}.{recipe}", "cpu")]["status"] == "ok"


TIMING_PROBE = r"""
import json, sys, time, numpy as np
from ai_edge_litert import compiled_model as cm
m = cm.CompiledModel.from_file(sys.argv[1], hardware_accel=cm.HardwareAccelerator.GPU
                               | cm.HardwareAccelerator.CPU)
sig = m.get_signature_by_index(0)
det = m.get_input_tensor_details(sig["key"])[sig["inputs"][0]]
out = m.get_output_tensor_details(sig["key"])[sig["outputs"][0]]
ins, outs = m.create_input_buffers(0), m.create_output_buffers(0)
ins[0].write(np.zeros(det["shape"], det["dtype"]))
n = int(np.prod(out["shape"]))
def median(step, k=60):
    s = []
    for _ in range(k):
        t = time.perf_counter_ns(); step(); s.append(time.perf_counter_ns() - t)
    return float(np.median(s)) / 1e6
for _ in range(10):
    m.run_by_index(0, ins, outs); outs[0].read(n, out["dtype"])
sync = median(lambda: (m.run_by_index(0, ins, outs), outs[0].read(n, out["dtype"])))
enqueue = median(lambda: m.run_by_index(0, ins, outs))
outs[0].read(n, out["dtype"])
print(json.dumps({"sync_ms": sync, "enqueue_ms": enqueue}))
"""


def test_gpu_timing_is_completed_inferences_not_enqueues(gpu_run, bundle, litert23):
    """The agent's GPU p50 against a bare loop on the same model measured right after it: the
    synchronous loop (run + read) is what the agent must match, the enqueue alone what it must
    not report. Margins are wide (the enqueue is ~20x faster here), so load cannot flip them."""
    _, rows, _ = gpu_run
    model = bundle / "models" / f"{ARCH}.fp32.tflite"
    done = subprocess.run([litert23, "-c", TIMING_PROBE, str(model)], capture_output=True,
                          text=True, env=no_xdg_env() | {"XDG_RUNTIME_DIR": str(bundle.parent)},
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    bare = json.loads(done.stdout.strip().splitlines()[-1])
    p50 = float(rows[(f"{ARCH}.fp32", "gpu")]["p50_ms"])
    assert bare["enqueue_ms"] * 4 < bare["sync_ms"], bare  # the trap is real on this driver
    assert p50 > 4 * bare["enqueue_ms"], (p50, bare)
    assert p50 > 0.5 * bare["sync_ms"], (p50, bare)


def test_no_gpu_adapter_and_no_vulkan_loader(bundle, litert23, software_gpu, tmp_path):
    # No Vulkan driver: the loader finds no ICD, Dawn no adapter.
    env = no_xdg_env() | {"VK_ICD_FILENAMES": str(tmp_path / "none.json")}
    proc = run_agent(bundle, tmp_path / "o1", "--accelerators", "cpu,gpu", "--models",
                     f"{ARCH}.fp32", python=litert23, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = rows_by(tmp_path / "o1")
    assert rows[(f"{ARCH}.fp32", "cpu")]["status"] == "ok"
    assert rows[(f"{ARCH}.fp32", "gpu")]["error"].startswith("no GPU adapter")
    # No Vulkan loader: libvulkan.so.1 made unloadable in a private mount namespace.
    real = os.path.realpath("/usr/lib/x86_64-linux-gnu/libvulkan.so.1")
    if not os.path.isfile(real) or os.geteuid() != 0:
        pytest.fail("this test hides libvulkan.so.1 with a bind mount: needs root and the loader")
    gpu = AgentOptions(accelerators="gpu", models=f"{ARCH}.fp32", warmup=1, min_runs=5,
                       min_seconds=0.0)
    agent = agent_command(litert23, bundle / "agent.pyz", bundle, tmp_path / "o2", gpu)
    cmd = "mount --bind /dev/null %s && exec %s" % (real, shlex.join(agent))
    done = subprocess.run(["unshare", "-m", "sh", "-c", cmd], capture_output=True, text=True,
                          env=no_xdg_env(), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    row = rows_by(tmp_path / "o2")[(f"{ARCH}.fp32", "gpu")]
    assert row["status"] == "error" and row["error"].startswith("libvulkan.so.1 not found")


def test_gpu_on_a_runtime_without_the_gpu_accelerator(bundle, tmp_path):
    """The host venv's LiteRT 2.1.0 (onnx2tf's pin) has CompiledModel but no GPU accelerator."""
    proc = run_agent(bundle, tmp_path / "o", "--accelerators", "cpu,gpu", "--models",
                     f"{ARCH}.int8")
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = rows_by(tmp_path / "o")
    assert rows[(f"{ARCH}.int8", "cpu")]["status"] == "ok"
    assert "ai-edge-litert 2.1.0 ships no GPU accelerator" in rows[(f"{ARCH}.int8", "gpu")]["error"]


def test_unknown_accelerator_is_one_line_with_the_list(bundle, tmp_path):
    proc = run_agent(bundle, tmp_path / "o", "--accelerators", "cpu,tpu")
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "unknown accelerator 'tpu'" in proc.stderr and "cpu, gpu, npu" in proc.stderr
    assert not (tmp_path / "o" / "results.csv").exists()
    listing = subprocess.run([sys.executable, str(bundle / "agent.pyz"), "--accelerators", "help"],
                             capture_output=True, text=True)
    assert listing.returncode == 0 and "gpu!" in listing.stdout and "CompiledModel" in listing.stdout


def test_external_delegates_say_what_happened(bundle, litert23, test_delegates, tmp_path):
    """noop takes nothing, claim takes the two FULLY_CONNECTED nodes of the float model and
    computes them, prepare_fails refuses, crash kills its child, a missing library and a
    library that is no delegate are refused: each its own row, the CPU rows unaffected."""
    lib = {k: str(v) for k, v in test_delegates.items()}
    units = [lib["noop"] + ":mode=test", lib["claim"] + ":op=FULLY_CONNECTED",
             lib["prepare_fails"], lib["crash"], str(tmp_path / "libmissing.so"),
             lib["not_a_delegate"]]
    args = ["--models", f"{ARCH}.fp32,{ARCH}.int8"]
    for spec in units:
        args += ["--delegate", spec]
    proc = run_agent(bundle, tmp_path / "o", *args, python=litert23)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = rows_by(tmp_path / "o")
    for model in (f"{ARCH}.fp32", f"{ARCH}.int8"):
        unit = {name: rows[(model, "delegate:" + spec)] for name, spec in
                zip(("noop", "claim", "prepare_fails", "crash", "missing", "not"), units)}
        cpu = rows[(model, "cpu")]
        assert cpu["status"] == "ok"
        noop = unit["noop"]
        assert noop["status"] == "ok" and noop["delegated_nodes"] == "0"
        assert (noop["accelerator"], noop["api"]) == ("delegate", "interpreter")
        assert noop["accelerator_device"] == "libedgebench_noop.so"
        assert noop["accuracy"] == cpu["accuracy"]
        assert "failed on this model" in unit["prepare_fails"]["error"]
        assert "Prepare refused the graph on purpose" in unit["prepare_fails"]["error"]
        assert unit["crash"]["error"].startswith("child killed by signal SIGSEGV")
        assert unit["missing"]["error"] == "delegate library missing: " + units[4]
        assert "undefined symbol: tflite_plugin_create_delegate" in unit["not"]["error"]
    claim = rows[(f"{ARCH}.fp32", "delegate:" + units[1])]
    assert claim["status"] == "ok" and claim["delegated_nodes"] == "2"
    assert claim["accuracy"] == rows[(f"{ARCH}.fp32", "cpu")]["accuracy"]
    # the int8 model has no float FULLY_CONNECTED for claim to take
    assert rows[(f"{ARCH}.int8", "delegate:" + units[1])]["delegated_nodes"] == "0"
    kinds = [e["event"] for e in events(proc)]
    assert kinds[0] == "start" and kinds[-1] == "done"


@pytest.mark.ssh
def test_deploy_gpu_over_ssh_then_report_and_doctor(bundle, litert23, software_gpu, ssh_env,
                                                     sshd, known_hosts, remote_dir, tmp_path):
    """The real path: bundle over the loopback sshd to a device whose python is the LiteRT 2.3
    environment, `--accelerators cpu,gpu`, CSVs pulled, the report shows GPU rows beside the
    CPU rows; doctor on the same device names the adapter."""
    import pandas as pd

    from agent_helpers import FAST
    from edgebench.host.commands.doctor import check
    from edgebench.host.deploy import deploy
    from edgebench.host.report import build_report
    from edgebench.host.targets import ConnectOptions, parse_target

    spec = parse_target(sshd.target)
    spec.python, spec.remote_dir = litert23, remote_dir
    options = ConnectOptions(known_hosts=str(known_hosts), identity_files=[str(ssh_env.client_key)],
                             allow_agent=False, look_for_keys=False, connect_timeout=5)
    [outcome] = deploy(bundle, [spec], tmp_path / "results",
                       replace(FAST, accelerators="cpu,gpu"), options=options, progress=False)
    assert outcome.ok, outcome.error
    rows = rows_by(outcome.results)
    for recipe in GPU_RECIPES:
        gpu = rows[(f"{ARCH}.{recipe}", "gpu")]
        assert gpu["status"] == "ok" and "llvmpipe" in gpu["accelerator_device"], gpu["error"]
    assert (outcome.results / "runtime.log").is_file()  # pulled with the CSVs

    report = build_report([outcome.results], tmp_path / "report")
    md = report.markdown.read_text()
    assert "| tinycnn | int8 | cpu | interpreter |" in md
    assert "| tinycnn | int8 | gpu (llvmpipe, software) | compiled_model |" in md
    assert "software accelerator: timings not representative" in md
    summary = pd.read_csv(report.summary_csv)
    gpu = summary[(summary["compute_unit"] == "gpu") & (summary["status"] == "ok")]
    assert len(gpu) == len(GPU_RECIPES) and gpu["speedup_vs_cpu"].notna().all()
    assert gpu["speedup_vs_fp32"].notna().all() and gpu["software_accelerator"].all()
    assert summary.loc[summary["compute_unit"] == "cpu", "speedup_vs_cpu"].isna().all()

    ok, text = check(spec, options, None, None)
    assert ok, text
    assert "GPU adapter" in text and "llvmpipe" in text and "software GPU" in text
    assert "ai-edge-litert 2.3.0, CompiledModel yes" in text
