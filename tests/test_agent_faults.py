"""Failure injection on the real agent: every fault ends as an error row or a one-line error, never
as a lost run."""
from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import time
from dataclasses import replace

import pytest

from agent_helpers import FAST, bundle_command, by_model, events, read_rows, run_agent
from tflite_factory import make_bundle

pytestmark = pytest.mark.timeout(600)


@pytest.fixture
def bundle(tmp_path):
    return make_bundle(tmp_path / "bundle", recipes=("fp32", "fp16", "int8"))


def edit_manifest(bundle, name, **changes):
    path = bundle / "manifest.json"
    manifest = json.loads(path.read_text())
    for entry in manifest["models"]:
        if entry["name"] == name:
            for key, value in changes.items():
                if isinstance(value, dict):
                    entry[key] = dict(entry[key], **value)
                else:
                    entry[key] = value
    path.write_text(json.dumps(manifest))


def test_corrupt_model_is_an_error_row_and_the_others_are_measured(bundle, tmp_path):
    bad = bundle / "models" / "tinycnn.fp16.tflite"
    blob = bytearray(bad.read_bytes())
    blob[4:8] = b"XXXX"  # the flatbuffer identifier TFL3
    blob[64:] = random.Random(0).randbytes(len(blob) - 64)  # fixed: the same fault every run
    bad.write_bytes(bytes(blob))
    # The manifest matches the corrupt bytes, so it is the interpreter that must refuse them.
    edit_manifest(bundle, "tinycnn.fp16", sha256=hashlib.sha256(blob).hexdigest())
    out = tmp_path / "out"
    proc = run_agent(bundle, out)
    assert proc.returncode == 0, proc.stderr
    rows = by_model(read_rows(out / "results.csv")[1])
    assert rows["tinycnn.fp16"]["status"] == "error"
    assert rows["tinycnn.fp16"]["error"]
    assert rows["tinycnn.fp16"]["p50_ms"] == "" and rows["tinycnn.fp16"]["accuracy"] == ""
    for name in ("tinycnn.fp32", "tinycnn.int8"):
        assert rows[name]["status"] == "ok" and float(rows[name]["accuracy"]) > 0.5
    errs = [e for e in events(proc) if e["event"] == "error"]
    assert [e["model"] for e in errs] == ["tinycnn.fp16"]


def test_model_that_differs_from_its_manifest_hash_is_not_measured(bundle, tmp_path):
    path = bundle / "models" / "tinycnn.int8.tflite"
    path.write_bytes(path.read_bytes()[:-10])  # a truncated upload
    out = tmp_path / "out"
    assert run_agent(bundle, out).returncode == 0
    row = by_model(read_rows(out / "results.csv")[1])["tinycnn.int8"]
    assert row["status"] == "error" and "sha256" in row["error"]


def test_wrong_input_shape_in_manifest_is_an_error_row(bundle, tmp_path):
    edit_manifest(bundle, "tinycnn.fp32", input={"shape": [1, 64, 64, 3]})
    out = tmp_path / "out"
    assert run_agent(bundle, out).returncode == 0
    rows = by_model(read_rows(out / "results.csv")[1])
    assert rows["tinycnn.fp32"]["status"] == "error"
    assert rows["tinycnn.fp32"]["error"] == ("manifest says input shape [1, 64, 64, 3] but the "
                                             "model's input is [1, 32, 32, 1]")
    assert rows["tinycnn.fp16"]["status"] == "ok"


def test_missing_testset_still_times_and_says_why_accuracy_is_empty(bundle, tmp_path):
    (bundle / "testset.npz").unlink()
    out = tmp_path / "out"
    proc = run_agent(bundle, out)
    assert proc.returncode == 0, proc.stderr
    assert "testset.npz is missing from the bundle" in proc.stderr
    for row in read_rows(out / "results.csv")[1]:
        assert row["status"] == "ok" and float(row["p50_ms"]) > 0
        assert row["accuracy"] == row["n_test"] == row["agreement"] == ""
        assert row["error"] == "accuracy not measured: testset.npz is missing from the bundle"


def test_unknown_runtime_is_one_line_and_exit_2(bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--runtime", "onnx")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "unknown runtime 'onnx'" in proc.stderr and "litert" in proc.stderr
    assert not (out / "results.csv").exists()


def test_runtime_not_installed_is_one_line_and_exit_2(bundle, tmp_path):
    # This venv has no tflite_runtime (it is the old-device package).
    proc = run_agent(bundle, tmp_path / "out", "--runtime", "tflite-runtime")
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "no usable TFLite interpreter" in proc.stderr


def test_unknown_model_name_lists_the_bundle(bundle, tmp_path):
    proc = run_agent(bundle, tmp_path / "out", "--models", "resnet99")
    assert proc.returncode == 2 and "tinycnn.fp32" in proc.stderr


def test_sigkill_mid_run_keeps_rows_and_rerun_completes_only_the_rest(bundle, tmp_path):
    out = tmp_path / "out"
    cmd = bundle_command(bundle, out, replace(FAST, min_seconds=0.7, threads="1,2"))
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    rows_seen = 0
    for line in proc.stdout:  # kill right after the second row is reported
        if json.loads(line)["event"] == "row":
            rows_seen += 1
            if rows_seen == 2:
                os.kill(proc.pid, signal.SIGKILL)
                break
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _, survived = read_rows(out / "results.csv")
    assert 2 <= len(survived) < 6  # at most a row written between the event and the kill
    time.sleep(1.5)  # the child dies with its parent (PR_SET_PDEATHSIG): no orphan goes on
    orphans = subprocess.run(["pgrep", "-f", f"{bundle}/agent.pyz"], capture_output=True,
                             text=True).stdout.split()
    assert orphans == []

    again = run_agent(bundle, out, "--min-seconds", "0.1", "--threads", "1,2")
    assert again.returncode == 0, again.stderr
    done = events(again)[-1]
    assert done["skipped"] == len(survived) and done["rows"] == 6 - len(survived)
    _, rows = read_rows(out / "results.csv")
    assert rows[:len(survived)] == survived  # what was written before the kill is untouched
    keys = [(r["model"], r["threads"]) for r in rows]
    assert len(keys) == len(set(keys)) == 6
    _, samples = read_rows(out / "latency_samples.csv")
    assert len(samples) == sum(int(r["count"]) for r in rows)


def test_error_rows_are_retried_on_rerun(bundle, tmp_path):
    good = (bundle / "models" / "tinycnn.int8.tflite").read_bytes()
    (bundle / "models" / "tinycnn.int8.tflite").write_bytes(good[:100])
    out = tmp_path / "out"
    run_agent(bundle, out)
    assert by_model(read_rows(out / "results.csv")[1])["tinycnn.int8"]["status"] == "error"
    (bundle / "models" / "tinycnn.int8.tflite").write_bytes(good)  # the upload is repaired
    proc = run_agent(bundle, out)
    assert events(proc)[-1]["rows"] == 1 and events(proc)[-1]["skipped"] == 2
    rows = read_rows(out / "results.csv")[1]
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)


def test_a_line_cut_short_by_a_kill_is_dropped_not_appended_to(bundle, tmp_path):
    out = tmp_path / "out"
    assert run_agent(bundle, out, "--models", "tinycnn.fp32").returncode == 0
    whole_row = (out / "results.csv").read_text().splitlines()[1]
    with open(out / "results.csv", "a") as fh:  # what a kill in the middle of write() leaves
        fh.write(whole_row.replace("tinycnn.fp32", "tinycnn.int8")[:-20])
    with open(out / "latency_samples.csv", "a") as fh:
        fh.write("1,test-run,tinycnn.int8,abc,1,0,0.01")
    proc = run_agent(bundle, out)
    assert proc.returncode == 0, proc.stderr
    assert events(proc)[-1]["skipped"] == 1 and events(proc)[-1]["rows"] == 2
    _, rows = read_rows(out / "results.csv")
    assert [r["model"] for r in rows] == ["tinycnn.fp32", "tinycnn.fp16", "tinycnn.int8"]
    assert all(r["started_utc"].endswith("Z") for r in rows)
    _, samples = read_rows(out / "latency_samples.csv")
    assert "abc" not in {s["sha256"] for s in samples}
    assert len(samples) == sum(int(r["count"]) for r in rows)
