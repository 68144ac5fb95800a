"""The soak (--soak) through the real agent on a real TFLite model, with FIXTURE sensors: a thermal
zone whose temperature rises, a scaling_cur_freq that drops and a fake vcgencmd whose throttle
flags switch on, all rewritten under --sysfs-root by a writer thread while the agent runs. The
curves in soak.csv must follow those files; a soak cut short by a SIGKILLed agent must resume
without losing or repeating an interval."""
from __future__ import annotations

import os
import signal
import stat
import subprocess
import threading
import time
from dataclasses import replace

import pytest

from agent_helpers import FAST, bundle_command, events, read_rows, run_agent
from tflite_factory import make_bundle

INTERVAL = 0.5


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("soak") / "bundle", recipes=("fp32",))


def put(path, text: str) -> None:
    """Atomically, so the agent never reads a half-written sensor file."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


class FixtureSensors:
    """A FIXTURE sysfs tree (thermal_zone0, thermal_zone1, cpu0's cpufreq) and a fake vcgencmd,
    rewritten every 20 ms: the hotter zone rises 10 C per second from 40 C, the frequency drops
    100 MHz per half second from 2000 MHz (floor 600), the throttle flags turn 0x50005 after
    1.0 s."""

    def __init__(self, root):
        self.root = root
        self.zone = root / "sys/class/thermal/thermal_zone1"
        cool = root / "sys/class/thermal/thermal_zone0"
        for zone, kind in ((cool, "gpu-thermal"), (self.zone, "cpu-thermal")):
            zone.mkdir(parents=True)
            (zone / "type").write_text(kind + "\n")
        (cool / "temp").write_text("30000\n")  # the cooler zone: never the one reported
        self.cpu = root / "sys/devices/system/cpu/cpu0/cpufreq"
        self.cpu.mkdir(parents=True)
        (self.cpu / "scaling_governor").write_text("ondemand\n")
        self.bin = root / "bin"
        self.bin.mkdir()
        self.flags = root / "throttled.txt"
        exe = self.bin / "vcgencmd"
        exe.write_text(f"#!/bin/sh\ncat {self.flags}\n")
        exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
        self.start = time.monotonic()
        self.stop = threading.Event()
        self.write(0.0)
        self.thread = threading.Thread(target=self.run, daemon=True)

    def values(self, t: float) -> tuple:
        temp_milli = int(40000 + 10000 * t)
        freq_khz = max(600000, 2000000 - 100000 * int(t / 0.5))
        flags = "0x50005" if t >= 1.0 else "0x0"
        return temp_milli, freq_khz, flags

    def write(self, t: float) -> None:
        temp, freq, flags = self.values(t)
        put(self.zone / "temp", f"{temp}\n")
        put(self.cpu / "scaling_cur_freq", f"{freq}\n")
        put(self.flags, f"throttled={flags}\n")

    def run(self) -> None:
        while not self.stop.wait(0.02):
            self.write(time.monotonic() - self.start)

    def env(self) -> dict:
        return dict(os.environ, PATH=f"{self.bin}:{os.environ['PATH']}")

    def __enter__(self):
        self.start = time.monotonic()
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


def soak_lines(out):
    return [r for r in read_rows(out / "soak.csv")[1]]


def test_soak_curves_follow_the_fixture_sensors(bundle, tmp_path):
    out = tmp_path / "out"
    sensors = FixtureSensors(tmp_path / "fixture-root")
    with sensors:
        proc = run_agent(bundle, out, "--soak", "2.5", "--soak-interval", str(INTERVAL),
                         "--sysfs-root", str(sensors.root), env=sensors.env())
        ran_for = time.monotonic() - sensors.start
    assert proc.returncode == 0, proc.stderr
    (row,) = read_rows(out / "results.csv")[1]
    assert row["status"] == "ok" and row["error"] == ""
    lines = soak_lines(out)
    assert [int(r["interval"]) for r in lines] == [1, 2, 3, 4, 5]
    assert float(lines[0]["t_start_s"]) == 0.0
    for a, b in zip(lines, lines[1:]):
        assert float(b["t_start_s"]) == float(a["t_end_s"])
    assert 2.5 <= float(lines[-1]["t_end_s"]) < 2.6
    temps = [float(r["temp_c"]) for r in lines]
    freqs = [float(r["freq_mhz"]) for r in lines]
    flags = [r["throttled_flags"] for r in lines]
    # The hottest zone, read by the child as each interval ends: 10 C/s means about 5 C more per
    # half-second interval (the writer's 20 ms steps blur that by 0.2 C at most).
    assert all(40.0 <= t <= 40.0 + 10.0 * ran_for for t in temps)
    assert all(b - a >= 3.5 for a, b in zip(temps, temps[1:])), temps
    assert all(b <= a for a, b in zip(freqs, freqs[1:])) and freqs[0] > freqs[-1], freqs
    assert set(freqs) <= {2000.0 - 100.0 * k for k in range(15)}
    assert set(flags) <= {"0x0", "0x50005"} and flags[-1] == "0x50005"
    assert flags == sorted(flags, key=lambda f: f == "0x50005")  # once throttled, stays
    for r in lines:
        assert int(r["count"]) > 0 and 0 < float(r["p50_ms"]) <= float(r["p90_ms"])
        assert r["avg_power_w"] == ""  # no --power: empty, never invented
        assert r["model"] == "tinycnn.fp32" and r["sha256"] == row["sha256"]
    # A soak is long work: each interval is a progress event too, as it ends (deploy's bar)
    soaks = [e for e in events(proc) if e["event"] == "soak"]
    assert [e["interval"] for e in soaks] == [1, 2, 3, 4, 5]
    for event, line in zip(soaks, lines):
        assert event["model"] == "tinycnn.fp32" and event["unit"] == row["compute_unit"]
        assert event["soak_s"] == 2.5
        assert event["t_end_s"] == pytest.approx(float(line["t_end_s"]), abs=1e-6)
        assert event["p50_ms"] == pytest.approx(float(line["p50_ms"]), rel=1e-6)
        assert event["temp_c"] == pytest.approx(float(line["temp_c"]), abs=1e-6)


def test_a_killed_soak_resumes_without_losing_intervals(bundle, tmp_path):
    out = tmp_path / "out"
    soaking = replace(FAST, soak=3.0, soak_interval=INTERVAL)
    proc = subprocess.Popen(bundle_command(bundle, out, soaking), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    soak = out / "soak.csv"
    while time.monotonic() < deadline and proc.poll() is None:
        if soak.is_file() and soak.read_text().count("\n") >= 3:  # header + 2 intervals
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the agent ended before the soak could be interrupted"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    time.sleep(0.3)
    before = soak_lines(out)
    assert 2 <= len(before) < 6
    assert read_rows(out / "results.csv")[1] == []  # the row was never written

    again = run_agent(bundle, out, options=soaking)
    assert again.returncode == 0, again.stderr
    assert f"resumes after interval {len(before)}" in again.stderr
    (row,) = read_rows(out / "results.csv")[1]
    assert row["status"] == "ok" and float(row["p50_ms"]) > 0  # measured anew
    lines = soak_lines(out)
    assert lines[:len(before)] == before  # finished intervals kept as they were
    assert [int(r["interval"]) for r in lines] == list(range(1, len(lines) + 1))
    for a, b in zip(lines, lines[1:]):
        assert float(b["t_start_s"]) == float(a["t_end_s"])
    # Only the remaining seconds ran: the whole soak adds up to 3 s, not 3 s + what was done.
    assert 3.0 <= float(lines[-1]["t_end_s"]) < 3.1
    assert len(lines) == 6

    third = run_agent(bundle, out, options=soaking)  # done: skipped, nothing added
    assert third.returncode == 0 and soak_lines(out) == lines
    assert "soaked" not in third.stderr

    # A longer --soak over a row that is done: it is kept as measured, and the run says so
    # (a soak goes with its row's timed loop; soaking it again would need the row measured anew)
    longer = run_agent(bundle, out, "--soak", "5", "--soak-interval", str(INTERVAL))
    assert longer.returncode == 0 and soak_lines(out) == lines
    soaked = float(lines[-1]["t_end_s"])
    assert (f"--soak 5 s: 1 row measured before soaked {soaked:.1f} s at most; kept as measured "
            "(a soak goes with its row's timed loop): measure into a new output folder to soak "
            "in full") in longer.stderr
