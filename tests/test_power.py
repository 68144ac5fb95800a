"""--power: the real agent (a subprocess, real TFLite) reading the FIXTURE layouts of
power_fixtures.py under --sysfs-root; each energy figure is checked against the one computed by
hand from the fixture's own files, within 1 %. Then the faults: a source that vanishes mid-row,
one too slow for the window, unreadable files, a named source that is absent, none found."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from agent_helpers import FAST, bundle_command, events, read_rows, run_agent
from edgebench.device.agent import environment
from edgebench.device.power import MIN_WINDOW_SAMPLES, Meter, check_power, power_help
from edgebench.device.schema import POWER_SAMPLES, RESULT_COLUMNS
from power_fixtures import (ORIN_RAILS, PI5_RAILS, RaplWriter, fake_vcgencmd, iio_board_w,
                            iio_tree, orin_board_w, orin_hwmon, pi5_board_w, unreadable)
from tflite_factory import make_bundle

pytestmark = pytest.mark.timeout(600)
FAST_IDLE = replace(FAST, power_idle_seconds=0.5)  # a short idle baseline too
BARE_PATH = "/usr/bin:/bin"  # no vcgencmd: this machine is not a Pi


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("power") / "bundle", recipes=("fp32", "int8"))


def env_with(path: str = BARE_PATH) -> dict:
    return dict(os.environ, PATH=path)


def measure(bundle, out, root, power, *extra, env=None, models="tinycnn.fp32"):
    proc = run_agent(bundle, out, "--models", models, "--sysfs-root", str(root), "--power", power,
                     *extra, options=FAST_IDLE, env=env or env_with())
    assert proc.returncode == 0, proc.stderr
    return proc, read_rows(out / "results.csv")[1]


def power_lines(out) -> list:
    header, lines = read_rows(out / "power_samples.csv")
    assert tuple(header) == POWER_SAMPLES.names
    return lines


def near(value, expected, rel=0.01) -> bool:
    return abs(float(value) - expected) <= rel * abs(expected)


def check_energy(row: dict, board_w: float) -> None:
    """The row's figures against the board power computed by hand from the fixture's files:
    energy per inference = board W x the window / the inferences in it."""
    assert row["status"] == "ok", row["error"]
    window, count = float(row["power_window_s"]), int(row["count"])
    assert int(row["power_samples"]) >= MIN_WINDOW_SAMPLES
    assert near(row["avg_power_w"], board_w) and near(row["idle_power_w"], board_w)
    assert near(row["energy_mj"], board_w * window * 1e3 / count)
    # Constant power: nothing above idle (to 1 % of the total).
    assert abs(float(row["energy_above_idle_mj"])) <= 0.01 * float(row["energy_mj"])
    assert 5 <= float(row["power_hz"]) <= 11
    # The window is the timed loop's: at least --min-seconds, raised for 20 samples at ~10 Hz.
    assert 2.0 <= window <= 5.5
    assert "timed loop held" in row["error"]


def test_help_lists_every_source_with_what_it_needs():
    text = power_help()
    for name in ("none", "auto", "pi5-pmic", "ina3221", "rapl", "nvml", "cmd:CMD"):
        assert any(line.startswith(name + " ") for line in text.splitlines()), name
    assert "vcgencmd" in text and "carrier board" in text and "nvidia-ml-py" in text
    proc = subprocess.run([sys.executable, "-m", "edgebench.device", "--power", "help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and proc.stdout.strip() == text
    check_power("cmd:echo 1")
    with pytest.raises(Exception, match="unknown --power 'pmic'"):
        check_power("pmic")


def test_orin_hwmon_energy_from_vdd_in(bundle, tmp_path):
    root = tmp_path / "orin"
    orin_hwmon(root)
    proc, (row,) = measure(bundle, tmp_path / "out", root, "ina3221")
    check_energy(row, orin_board_w())
    assert row["power_source"] == "ina3221"
    assert row["power_rails"].startswith("VDD_IN (") and "carrier board" in row["power_rails"]
    lines = power_lines(tmp_path / "out")
    assert {l["phase"] for l in lines} == {"idle", "timed"}
    assert {l["rail"] for l in lines} == {r[0] for r in ORIN_RAILS} | {"board"}
    timed = [l for l in lines if l["phase"] == "timed" and l["rail"] == "VDD_SOC"]
    # Every reading inside the window, and the one on each side of it the edges came from.
    assert len(timed) == int(row["power_samples"]) + 2
    assert float(timed[0]["t_s"]) < 0 < float(timed[-1]["t_s"]) - float(row["power_window_s"])
    assert near(timed[0]["watts"], 5.064 * 0.624)


def test_older_jetpack_iio_tree_found_by_auto(bundle, tmp_path):
    root = tmp_path / "tx2"
    iio_tree(root)
    proc, (row,) = measure(bundle, tmp_path / "out", root, "auto")
    assert "power: auto found ina3221 (board = VDD_IN" in proc.stderr
    check_energy(row, iio_board_w())
    assert row["power_source"] == "ina3221"


def test_rapl_counter_wrapping_in_the_window(bundle, tmp_path):
    root = tmp_path / "x86"
    # 6 W against a 3 J range: the counter wraps every 0.5 s, several times in the window.
    writer = RaplWriter(root, watts=6.0, range_uj=3_000_000, start_uj=2_500_000)
    writer.start()
    try:
        proc, (row,) = measure(bundle, tmp_path / "out", root, "rapl")
    finally:
        writer.stop()
    assert writer.wraps >= 8, writer.wraps  # wrapped during the row, window included
    check_energy(row, 6.0)
    assert row["power_rails"] == "sum:package-0 (CPU packages only)"
    watts = [float(l["watts"]) for l in power_lines(tmp_path / "out")
             if l["phase"] == "timed" and l["rail"] == "board"]
    # Each reading's mean power over its 0.1 s jitters with the fixture writer's thread; the wraps
    # would show as -24 W readings (3 J lost in 0.1 s) were they not corrected.
    assert len(watts) >= MIN_WINDOW_SAMPLES and all(near(w, 6.0, 0.2) for w in watts)


def test_pi5_pmic_pairs_rails_by_name(bundle, tmp_path):
    root = tmp_path / "pi5"
    root.mkdir()
    bin_dir = fake_vcgencmd(tmp_path / "bin")
    proc, (row,) = measure(bundle, tmp_path / "out", root, "pi5-pmic",
                           env=env_with(f"{bin_dir}:{BARE_PATH}"))
    check_energy(row, pi5_board_w())
    counted = sorted(n for n, r in PI5_RAILS.items() if r[0] is not None and r[2] is not None)
    assert row["power_rails"] == "sum:%s (not counted: HDMI (current only), BATT (voltage only), " \
                                 "EXT5V (voltage only))" % ",".join(counted)
    # Counting the current-only rail at any voltage, or pairing by channel, would not be 1 %:
    assert not near(row["avg_power_w"], pi5_board_w() + 0.017 * 5.0)


def test_auto_with_no_source_leaves_energy_empty_with_the_reason(bundle, tmp_path):
    root = tmp_path / "bare"
    root.mkdir()
    proc, (row,) = measure(bundle, tmp_path / "out", root, "auto")
    assert row["status"] == "ok" and row["p50_ms"] != ""
    for column in ("power_source", "power_samples", "avg_power_w", "energy_mj",
                   "energy_above_idle_mj", "idle_power_w"):
        assert row[column] == "", column
    assert row["error"].startswith("power not measured: no power source found (pi5-pmic: "
                                   "vcgencmd not on PATH")
    assert "rapl: no RAPL domains" in row["error"] and "nvml: " in row["error"]
    assert not (tmp_path / "out" / "power_samples.csv").exists()


def test_named_source_absent_is_an_error_row_per_row_and_a_rerun_retries(bundle, tmp_path):
    """Design: a source the user named that is not here makes every row an error row (checked
    before the child starts: no time spent measuring), the run finishes (exit 0) like any error
    row, and a re-run where the source works measures those rows."""
    root, out = tmp_path / "pi4", tmp_path / "out"
    root.mkdir()
    started = time.monotonic()
    proc, rows = measure(bundle, out, root, "pi5-pmic", models="tinycnn.fp32,tinycnn.int8")
    assert time.monotonic() - started < 30
    assert "power: pi5-pmic unavailable here: vcgencmd not on PATH" in proc.stderr
    assert [r["status"] for r in rows] == ["error", "error"]
    for r in rows:
        assert r["error"].startswith("power source pi5-pmic unavailable: vcgencmd not on PATH "
                                     "(Raspberry Pi OS: apt install raspi-utils")
        assert r["count"] == "" and r["energy_mj"] == ""
    assert [e["event"] for e in events(proc)].count("error") == 2
    bin_dir = fake_vcgencmd(tmp_path / "bin")
    proc, rows = measure(bundle, out, root, "pi5-pmic", models="tinycnn.fp32,tinycnn.int8",
                         env=env_with(f"{bin_dir}:{BARE_PATH}"))
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert all(near(r["avg_power_w"], pi5_board_w()) for r in rows)


def test_source_vanishing_mid_row_keeps_the_row_without_energy(bundle, tmp_path):
    root, out = tmp_path / "orin", tmp_path / "out"
    hw = orin_hwmon(root)
    options = replace(FAST_IDLE, min_seconds=6.0, max_seconds=10.0, models="tinycnn.fp32",
                      power="ina3221")
    cmd = bundle_command(bundle, out, options, "--sysfs-root", root)
    # stderr is read by the watcher alone (line by line, as the agent says them).
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env=env_with())
    seen, removed = [], []

    def watch():
        for line in proc.stderr:
            seen.append(line)
            if line.startswith("agent: power: ina3221"):
                # The row has opened the source by now; its 6 s timed loop is still to come.
                time.sleep(2.0)
                shutil.rmtree(hw.parent.parent)  # the whole 1-0040 device goes
                removed.append(time.monotonic())

    watcher = threading.Thread(target=watch)
    watcher.start()
    proc.wait(timeout=120)
    watcher.join()
    assert proc.returncode == 0, "".join(seen)
    assert removed and not hw.exists()
    (row,) = read_rows(out / "results.csv")[1]
    assert row["status"] == "ok" and int(row["count"]) > 0
    assert row["energy_mj"] == "" and row["power_source"] == "" and row["avg_power_w"] == ""
    assert "power source ina3221 failed during the window: cannot read /sys/bus/i2c/drivers/" \
           "ina3221/1-0040/hwmon/hwmon3/in" in row["error"]


def test_source_too_slow_for_the_window_says_so(bundle, tmp_path):
    root = tmp_path / "meter"
    root.mkdir()
    # A meter that takes 1.2 s per reading, against a timed window of at most 1 s.
    proc, (row,) = measure(bundle, tmp_path / "out", root, "cmd:sleep 1.2; echo 4.25",
                           "--max-seconds", "1")
    assert row["status"] == "ok" and row["energy_mj"] == "" and row["power_source"] == ""
    assert "fewer than 2 readings in the 0.5 s idle baseline" in row["error"]
    assert "(capped by --max-seconds)" in row["error"]
    assert "power source cmd too slow for the window: " in row["error"]


def test_unreadable_rail_gives_the_permission_hint(bundle, tmp_path):
    root = tmp_path / "orin"
    hw = orin_hwmon(root)
    how = unreadable(hw / "curr2_input")
    if how is None:
        pytest.skip("running as root with no write-only kernel attribute to link to: no way to "
                    "make a read fail with EACCES here")
    proc, (row,) = measure(bundle, tmp_path / "out", root, "auto")
    assert row["status"] == "ok" and row["energy_mj"] == "", how
    assert "ina3221: /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/curr2_input is not " \
           "readable by this user (permission denied): run the agent as root, or make it " \
           "readable" in row["error"], how


def test_power_samples_are_pruned_with_their_row_on_resume(bundle, tmp_path):
    root, out = tmp_path / "orin", tmp_path / "out"
    orin_hwmon(root)
    measure(bundle, out, root, "ina3221")
    first = power_lines(out)
    # The row is lost (as if the agent died between its samples and the row): the re-run drops
    # the orphan samples and measures the row again, with its own samples only.
    header = (out / "results.csv").read_text().splitlines()[0]
    (out / "results.csv").write_text(header + "\n")
    proc, (row,) = measure(bundle, out, root, "ina3221")
    again = power_lines(out)
    timed = [l for l in again if l["phase"] == "timed" and l["rail"] == "board"]
    assert len(timed) == int(row["power_samples"]) + 2
    assert first and len({l["t_s"] for l in again} & {l["t_s"] for l in first}) < 3


def test_power_columns_of_any_window_while_sampling(tmp_path):
    """Meter.columns for live windows, as soak intervals and scenarios ask for them."""
    root = tmp_path / "orin"
    orin_hwmon(root)
    environment.set_root(str(root))
    try:
        meter = Meter("ina3221", hz=20.0, idle_s=0.3)
        assert meter.resolve().startswith("power: ina3221")
        assert meter.begin_row() == {"note": None}
        t0 = time.monotonic_ns()
        time.sleep(1.2)
        t1 = time.monotonic_ns()
        time.sleep(0.2)
        cols = meter.columns(t0, t1, 100, phase="soak")  # the sampler still runs
        assert cols["power_source"] == "ina3221" and cols["power_error"] is None
        assert cols["power_samples"] >= MIN_WINDOW_SAMPLES
        assert near(cols["energy_mj"], orin_board_w() * (t1 - t0) / 1e9 * 1e3 / 100)
        assert near(cols["avg_power_w"], orin_board_w())
        assert near(cols["energy_above_idle_mj"] + 1.0, 1.0)
        t2 = time.monotonic_ns()
        cols, notes = meter.timed((t1, t2), 10)
        assert cols["power_source"] == "ina3221"
        assert notes == ["power: only %d samples in the %.2f s window (fewer than 20: the source "
                         "is slow here, or --max-seconds cut the window)"
                         % (cols["power_samples"], (t2 - t1) / 1e9)]
        # The sampler runs on after the timed window (a soak may follow) until end_row().
        time.sleep(0.5)
        later = time.monotonic_ns()
        time.sleep(0.2)
        soak = meter.columns(t2, later, 5, phase="soak")
        assert soak["power_error"].startswith("power: only") and near(soak["avg_power_w"],
                                                                       orin_board_w())
        lines = meter.end_row()
        assert sorted({p for p, *_ in lines}) == ["idle", "soak", "timed"]
        assert {rail for _, _, rail, _ in lines} == {r[0] for r in ORIN_RAILS} | {"board"}
    finally:
        environment.set_root("/")


def test_results_header_has_the_power_columns():
    for column in ("power_source", "power_rails", "power_samples", "power_hz", "power_window_s",
                   "idle_power_w", "avg_power_w", "energy_mj", "energy_above_idle_mj"):
        assert column in RESULT_COLUMNS


def test_energy_arithmetic_on_known_series():
    """The sampler's arithmetic alone, on series whose integral is known exactly: power P(t) = t W
    read every 0.1 s (trapezoid, edges interpolated: exact for a line), and its energy counter
    E(t) = t^2/2 J (the difference of the counter interpolated at the edges)."""
    from edgebench.device.power.sampler import energy_j, rate_hz, watts_lines

    ns = 10 ** 9
    times = [i * ns // 10 for i in range(31)]
    power = [(t, t / ns) for t in times]
    t0, t1 = ns // 4, 11 * ns // 4
    exact = ((t1 / ns) ** 2 - (t0 / ns) ** 2) / 2  # 3.75 J
    assert abs(energy_j(power, t0, t1, counter=False) - exact) < 1e-9
    counter = [(t, (t / ns) ** 2 / 2) for t in times]
    # Interpolating a parabola between readings 0.1 s apart errs by at most 0.1^2/8 J per edge.
    assert abs(energy_j(counter, t0, t1, counter=True) - exact) <= 2 * 0.01 / 8
    assert energy_j(power, t0, 4 * ns, counter=False) is None  # no reading after the window
    assert abs(rate_hz([(t, {}) for t in times], 0, 3 * ns) - 10.0) < 1e-9
    lines = watts_lines([(t, {"board": e}) for t, e in counter], counter=True)
    assert len(lines) == 30 and abs(lines[-1][2] - 2.95) < 1e-9  # mean power over (2.9, 3.0]
