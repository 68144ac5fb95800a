"""The device agent as a real subprocess on a bundle with every recipe: columns, sane numbers,
accuracy equal to what the host computes through the same interpreter, environment, events."""
from __future__ import annotations

import json
import os
import stat
import time

import numpy as np
import pytest

from agent_helpers import by_model, events, read_rows, run_agent
from edgebench.device import metrics as agent_mod
from edgebench.device.metrics import agreement, classification_metrics
from edgebench.device.schema import RESULT_COLUMNS, SAMPLE_COLUMNS
from edgebench.device.agent.timing import time_invokes
from tflite_factory import RECIPES, factory_dir, make_bundle, normalize

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("agent") / "bundle")


@pytest.fixture(scope="module")
def measured(bundle, tmp_path_factory):
    out = tmp_path_factory.mktemp("agent-out") / "out"
    proc = run_agent(bundle, out, "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    return proc, out


def host_logits(model_path, images: np.ndarray) -> np.ndarray:
    """What the host computes for the same model through the same interpreter (LiteRT), with its
    own quantization arithmetic (not the agent's code)."""
    from ai_edge_litert.interpreter import Interpreter

    it = Interpreter(model_path=str(model_path))
    it.allocate_tensors()
    (inp,), out = it.get_input_details(), it.get_output_details()[0]
    x = normalize(images)
    scale, zp = inp["quantization"]
    if np.dtype(inp["dtype"]).kind == "i":
        info = np.iinfo(inp["dtype"])
        x = np.clip(np.round(x / scale + zp), info.min, info.max).astype(inp["dtype"])
    logits = []
    for i in range(len(x)):
        it.set_tensor(inp["index"], x[i:i + 1])
        it.invoke()
        y = it.get_tensor(out["index"]).astype(np.float64)
        if out["quantization"][0]:
            y = (y - out["quantization"][1]) * out["quantization"][0]
        logits.append(y.ravel())
    return np.stack(logits)


@pytest.mark.trained
def test_every_recipe_gives_a_complete_sane_row_per_thread_count(measured):
    proc, out = measured
    header, rows = read_rows(out / "results.csv")
    assert tuple(header) == RESULT_COLUMNS
    assert sorted((r["model"], r["threads"]) for r in rows) == sorted(
        (f"tinycnn.{r}", t) for r in RECIPES for t in ("1", "2"))
    for r in rows:
        assert r["status"] == "ok", r["error"]
        assert r["error"] == ""
        assert r["runtime"] == "litert" and r["runtime_version"] == "2.1.0"
        assert r["xnnpack"] == "on" and r["run_id"] == "test-run"
        count = int(r["count"])
        assert count >= 20
        ms = [float(r[k]) for k in ("min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms")]
        assert 0 < ms[0] <= ms[1] <= ms[2] <= ms[3] <= ms[4] <= ms[5]
        assert ms[0] <= float(r["mean_ms"]) <= ms[5]
        assert float(r["load_ms"]) > 0 and float(r["first_inference_ms"]) > 0
        # the start-up (the interpreter's import) apart from the load; a second load warm
        assert float(r["accelerator_init_ms"]) > 0 and float(r["warm_load_ms"]) > 0
        assert int(r["warmup_runs"]) == 2
        before, after, peak = (float(r[k]) for k in ("rss_before_mb", "rss_after_load_mb",
                                                     "peak_rss_mb"))
        assert 5 < before <= after <= peak < 2000
        assert float(r["file_size_mb"]) > 0
        assert r["n_test"] == "48" and 0.5 < float(r["accuracy"]) <= 1.0
        assert int(r["tn"]) + int(r["fp"]) + int(r["fn"]) + int(r["tp"]) == 48


def test_samples_file_holds_every_timed_run(measured):
    _, out = measured
    header, samples = read_rows(out / "latency_samples.csv")
    assert tuple(header) == SAMPLE_COLUMNS
    _, rows = read_rows(out / "results.csv")
    for r in rows:
        mine = [float(s["latency_ms"]) for s in samples
                if s["sha256"] == r["sha256"] and s["threads"] == r["threads"]]
        assert len(mine) == int(r["count"])
        assert float(np.median(mine)) == pytest.approx(float(r["p50_ms"]), abs=1e-5)
        assert max(mine) == pytest.approx(float(r["max_ms"]), abs=1e-6)


def test_accuracy_equals_the_host_computation_through_the_same_interpreter(measured, bundle):
    _, out = measured
    rows = by_model([r for r in read_rows(out / "results.csv")[1] if r["threads"] == "1"])
    data = np.load(bundle / "testset.npz")
    reference = np.load(bundle / "reference" / "tinycnn.npy")
    for recipe in RECIPES:
        logits = host_logits(bundle / "models" / f"tinycnn.{recipe}.tflite", data["images"])
        host = classification_metrics(data["labels"], logits)
        row = rows[f"tinycnn.{recipe}"]
        for key in ("accuracy", "sensitivity", "specificity", "auc"):
            assert float(row[key]) == pytest.approx(host[key], abs=1e-6), (recipe, key)
        for key in ("tn", "fp", "fn", "tp"):
            assert int(row[key]) == host[key], (recipe, key)
        assert float(row["agreement"]) == pytest.approx(agreement(logits, reference), abs=1e-6)


@pytest.mark.trained
def test_int8_is_fed_quantized_inputs_not_raw_pixels(measured):
    # With raw uint8 pixels pushed into the int8 model, accuracy collapses to a constant class.
    rows = by_model([r for r in read_rows(measured[1] / "results.csv")[1] if r["threads"] == "1"])
    assert float(rows["tinycnn.int8"]["agreement"]) >= 0.9
    assert float(rows["tinycnn.int16x8"]["agreement"]) >= 0.9


def test_progress_is_json_lines_on_stdout_only(measured):
    proc, out = measured
    evs = events(proc)
    kinds = [e["event"] for e in evs]
    assert kinds[0] == "start" and kinds[-1] == "done"
    assert kinds.count("model_start") == kinds.count("model_done") == len(RECIPES)
    assert kinds.count("row") == 2 * len(RECIPES) and "error" not in kinds
    assert evs[-1]["rows"] == 10 and evs[-1]["errors"] == 0
    assert "p50" in proc.stderr  # human messages go to stderr


def test_metrics_match_a_pairwise_count():
    """The one metrics module (host and agent share it) against the definitions written out: AUC
    as the share of (positive, negative) pairs ranked right, ties counting one half."""
    rng = np.random.default_rng(3)
    for n in (1, 7, 50, 200):
        labels = rng.integers(0, 2, n)
        logits = np.round(rng.normal(size=(n, 2)), 1)  # rounding makes ties, which AUC averages
        got = agent_mod.classification_metrics(labels, logits)
        pred = logits.argmax(1)
        tp, tn = int(((labels == 1) & (pred == 1)).sum()), int(((labels == 0) & (pred == 0)).sum())
        assert (got["tp"], got["tn"], got["n"]) == (tp, tn, n)
        assert got["accuracy"] == pytest.approx((tp + tn) / n)
        z = np.exp(logits - logits.max(1, keepdims=True))
        score = z[:, 1] / z.sum(1)
        pos, neg = score[labels == 1], score[labels == 0]
        if len(pos) and len(neg):
            pairs = [(p > q) + 0.5 * (p == q) for p in pos for q in neg]
            assert got["auc"] == pytest.approx(np.mean(pairs)), n
        else:
            assert np.isnan(got["auc"])


def test_rerun_skips_what_is_done(measured, bundle):
    _, out = measured
    before = (out / "results.csv").read_text()
    proc = run_agent(bundle, out, "--threads", "1,2")
    assert proc.returncode == 0, proc.stderr
    assert events(proc)[-1] == {"event": "done", "rows": 0, "skipped": 10, "errors": 0,
                                "out": str(out)}
    assert (out / "results.csv").read_text() == before


def test_config_change_is_measured_anew(bundle, tmp_path):
    out = tmp_path / "out"
    assert run_agent(bundle, out, "--models", "tinycnn.fp32").returncode == 0
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32", "--xnnpack", "off")
    assert proc.returncode == 0, proc.stderr
    rows = read_rows(out / "results.csv")[1]
    assert [r["xnnpack"] for r in rows] == ["on", "off"]
    assert rows[0]["accuracy"] == rows[1]["accuracy"]


def test_tensorflow_runtime_gives_the_same_accuracy(bundle, measured, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--runtime", "tensorflow", "--models", "tinycnn.int8")
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(out / "results.csv")[1]
    assert row["status"] == "ok" and row["runtime"] == "tensorflow"
    litert = by_model(read_rows(measured[1] / "results.csv")[1])["tinycnn.int8"]
    assert row["accuracy"] == litert["accuracy"] and row["auc"] == litert["auc"]


def fake_sysfs(root, temp_milli="48500", vcgencmd="throttled=0x50005"):
    (root / "sys/class/thermal/thermal_zone0").mkdir(parents=True)
    (root / "sys/class/thermal/thermal_zone0/temp").write_text(temp_milli + "\n")
    (root / "sys/class/thermal/thermal_zone0/type").write_text("cpu-thermal\n")
    cpu = root / "sys/devices/system/cpu/cpu0/cpufreq"
    cpu.mkdir(parents=True)
    (cpu / "scaling_governor").write_text("ondemand\n")
    (cpu / "scaling_cur_freq").write_text("1500000\n")
    (root / "proc/device-tree").mkdir(parents=True)
    (root / "proc/device-tree/model").write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\x00")
    (root / "proc/cpuinfo").write_text("processor\t: 0\nCPU part\t: 0xd08\n")
    binfmt = root / "proc/sys/fs/binfmt_misc"
    binfmt.mkdir(parents=True)
    bin_dir = root / "bin"
    bin_dir.mkdir()
    exe = bin_dir / "vcgencmd"
    exe.write_text(f"#!/bin/sh\necho {vcgencmd}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


def test_environment_comes_from_the_sensor_root(bundle, tmp_path):
    root = tmp_path / "fakeroot"
    bin_dir = fake_sysfs(root)
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    env.pop("EDGEBENCH_EMULATED", None)
    # This process's own architecture has a qemu handler: it must be running under qemu-user.
    import platform
    (root / f"proc/sys/fs/binfmt_misc/qemu-{platform.machine()}").write_text("enabled\n")
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32", "--sysfs-root", str(root), env=env)
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(out / "results.csv")[1]
    assert row["device_model"] == "Raspberry Pi 4 Model B Rev 1.4"
    assert row["cpu"] == "Cortex-A72" and row["governor"] == "ondemand"
    assert float(row["freq_mhz"]) == 1500.0
    assert float(row["temp_before_c"]) == 48.5 == float(row["temp_after_c"])
    assert row["throttled"] == "true" and row["throttled_flags"] == "0x50005"
    assert row["emulated"] == "true"
    saved = json.loads((out / "env.json").read_text())
    assert saved["thermal_zones"] == {"thermal_zone0": {"type": "cpu-thermal", "temp_c": 48.5}}


def test_absent_sensors_are_empty_never_invented(bundle, tmp_path):
    root = tmp_path / "empty-root"
    root.mkdir()
    env = dict(os.environ, PATH="/usr/bin:/bin", EDGEBENCH_EMULATED="0")
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32", "--sysfs-root", str(root),
                     "--cooldown-temp", "10", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "no temperature sensor" in proc.stderr
    (row,) = read_rows(out / "results.csv")[1]
    for key in ("device_model", "governor", "freq_mhz", "temp_before_c", "temp_after_c",
                "throttled", "throttled_flags"):
        assert row[key] == "", key
    assert row["emulated"] == "false"
    saved = json.loads((out / "env.json").read_text())
    assert saved["device_model"] is None and saved["temp_c"] is None


def test_cooldown_waits_only_as_long_as_allowed(bundle, tmp_path):
    root = tmp_path / "hot"
    fake_sysfs(root, temp_milli="85000")
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32", "--sysfs-root", str(root),
                     "--cooldown-temp", "60", "--cooldown-timeout", "2")
    assert proc.returncode == 0, proc.stderr
    assert "waiting (at most 2 s) to cool below 60.0 C" in proc.stderr
    assert read_rows(out / "results.csv")[1][0]["status"] == "ok"


def test_factory_models_are_real_and_distinct():
    models = factory_dir() / "models"
    sizes = {r: (models / f"tinycnn.{r}.tflite").stat().st_size for r in RECIPES}
    assert len(set(sizes.values())) == len(RECIPES)
    assert sizes["int8"] < sizes["fp32"] and sizes["fp16"] < sizes["fp32"]


def test_timing_loop_honours_min_runs_min_seconds_and_the_cap():
    def busy(ns=200_000):
        end = time.perf_counter_ns() + ns
        while time.perf_counter_ns() < end:
            pass

    assert len(time_invokes(busy, 7, 0, 10 ** 10)) == 7
    start = time.perf_counter_ns()
    samples = time_invokes(busy, 1, 30_000_000, 10 ** 10)
    assert time.perf_counter_ns() - start >= 30_000_000
    assert all(s >= 200_000 for s in samples)  # the invoke is inside the clock
    # Every sample but the last ended before the cap (bounds that hold however loaded the host).
    start = time.perf_counter_ns()
    capped = time_invokes(busy, 10 ** 9, 10 ** 10, 20_000_000)
    assert time.perf_counter_ns() - start >= 20_000_000
    assert sum(capped[:-1]) < 20_000_000 and len(capped) < 10 ** 9


def test_inputs_are_normalised_then_quantized_with_the_models_parameters():
    pixels = np.array([0, 128, 255], np.uint8).reshape(1, 1, 3, 1)
    norm = {"pixel_scale": 1 / 255, "mean": [0.5], "std": [0.25]}
    x = (pixels / 255 - 0.5) / 0.25  # -2, 0.0078, 2
    q8 = agent_mod.to_model_input(pixels, norm, np.int8, 1 / 64, -3)
    np.testing.assert_array_equal(q8.ravel(), np.clip(np.round(x.ravel() * 64 - 3), -128, 127))
    q16 = agent_mod.to_model_input(pixels, norm, np.int16, 2 / 32767, 0)
    assert q16.dtype == np.int16 and q16.ravel()[0] == -32767 and q16.ravel()[2] == 32767
    f = agent_mod.to_model_input(pixels, norm, np.float32, 0.0, 0)
    np.testing.assert_allclose(f.ravel(), x.ravel(), atol=1e-6)
    out = agent_mod.dequantize(np.array([[110, -20]], np.int8), 0.5, 10)
    np.testing.assert_allclose(out, [[50.0, -15.0]])


def test_bad_thread_list_is_one_line(bundle, tmp_path):
    proc = run_agent(bundle, tmp_path / "out", "--threads", "1,two")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "--threads" in proc.stderr
