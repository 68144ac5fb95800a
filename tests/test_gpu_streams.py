"""--streams on the GPU (LiteRT 2.3's CompiledModel on Mesa's lavapipe): CompiledModel keeps the
GIL through invoke (benchmarks/streams_gil.py), so streams after the first run in processes of
their own, and their lines say so; the CPU's Interpreter streams stay threads. A stream process
killed mid-scenario (what the OOM killer does on a small board) costs the row nothing: the
scenario is an error line with the reason, the row keeps its timing."""
from __future__ import annotations

import signal
import subprocess
import time
from dataclasses import replace

import psutil
import pytest

from agent_helpers import FAST, bundle_command, read_rows, run_agent
from test_accelerators import bundle, litert23, no_xdg_env, software_gpu  # noqa: F401 (fixtures)
from tflite_factory import ARCH

pytestmark = pytest.mark.timeout(900)
NOTE = "streams after the first ran in processes of their own (CompiledModel holds the GIL"


def test_gpu_streams_run_in_processes_cpu_streams_in_threads(bundle, litert23,  # noqa: F811
                                                             software_gpu, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--accelerators", "cpu,gpu", "--models", f"{ARCH}.fp32",
                     "--streams", "2", "--scenario-seconds", "1", python=litert23,
                     env=no_xdg_env(), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = read_rows(out / "scenarios.csv")[1]
    for unit, note in (("gpu", NOTE), ("cpu", "")):
        mine = [r for r in lines if r["compute_unit"] == unit]
        assert [int(r["stream"]) for r in mine] == [1, 2], lines
        for r in mine:
            assert r["status"] == "ok" and r["error"].startswith(note), r
            assert int(r["frames"]) > 0 and float(r["p50_ms"]) > 0
        # throughput: both streams' inferences over a window of at least the scenario's second
        total = sum(int(r["frames"]) for r in mine)
        assert {r["throughput_ips"] for r in mine} == {mine[0]["throughput_ips"]}
        assert 0 < float(mine[0]["throughput_ips"]) <= total / 1.0
    (row,) = [r for r in read_rows(out / "results.csv")[1] if r["compute_unit"] == "gpu"]
    assert row["status"] == "ok" and not row["error"], row


def stream_processes(agent: subprocess.Popen) -> list:
    """The agent's grandchildren: a row's child's own children are its stream processes."""
    try:
        return [p for p in psutil.Process(agent.pid).children(recursive=True)
                if p.ppid() != agent.pid]
    except psutil.NoSuchProcess:
        return []


def test_a_killed_stream_process_costs_the_row_nothing(bundle, litert23,  # noqa: F811
                                                       software_gpu, tmp_path):
    out = tmp_path / "out"
    streams = replace(FAST, accelerators="gpu", models=f"{ARCH}.fp32", streams=2,
                      scenario_seconds=30.0)
    cmd = bundle_command(bundle, out, streams, python=litert23)
    agent = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                             env=no_xdg_env())
    deadline, killed = time.monotonic() + 300, None
    while killed is None and time.monotonic() < deadline and agent.poll() is None:
        for stream in stream_processes(agent):
            stream.send_signal(signal.SIGKILL)
            killed = stream.pid
        time.sleep(0.05)
    _, err = agent.communicate(timeout=300)
    assert killed, "no stream process was seen"
    assert agent.returncode == 0, err[-3000:]
    (row,) = read_rows(out / "results.csv")[1]
    assert row["status"] == "ok" and float(row["p50_ms"]) > 0  # the row's timing is kept
    assert "scenario streams=2 failed: RuntimeError: stream 2: its process ended (status -9)" \
        in row["error"], row["error"]
    (line,) = read_rows(out / "scenarios.csv")[1]
    assert line["status"] == "error" and "stream 2: its process ended" in line["error"]
