"""The device-side helpers that are sent as source (device/remote/doctor_facts.py,
accelerator_probe.py, upload_store.py), run the way the host runs them: `python -c SOURCE ...`
on this machine's interpreter, the oldest one we support included."""
from __future__ import annotations

import glob
import hashlib
import json
import subprocess
import sys

import pytest

from edgebench.device.units import GPU_ACCELERATOR_LIBS
from edgebench.host.agent_archive import device_script
from edgebench.host.doctor_accelerators import DELEGATES, PROBE_MODEL_B64


def run(python: str, name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", device_script(name), *map(str, args)],
                          capture_output=True, text=True, timeout=180)


def oldest_python() -> str:
    found = sorted(glob.glob("/root/.pyenv/versions/3.8.*/bin/python3.8"))
    return found[-1] if found else sys.executable


@pytest.mark.parametrize("python", [sys.executable, oldest_python()], ids=["host", "oldest"])
def test_doctor_facts_report_this_machine(python, tmp_path):
    done = run(python, "doctor_facts", tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["free_path"] == str(tmp_path) and facts["free_bytes"] > 0
    assert facts["cores"] >= 1 and len(facts["python"]) == 3


def test_accelerator_probe_finds_the_hosts_litert_and_no_gpu_library():
    """The host's LiteRT 2.1 has no GPU accelerator library (of the list the agent checks)."""
    done = run(sys.executable, "accelerator_probe", "".join(PROBE_MODEL_B64),
               ",".join(GPU_ACCELERATOR_LIBS), *DELEGATES)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["litert"] == "2.1.0" and facts["gpu_accelerator"] is None
    assert set(facts["delegates"]) == set(DELEGATES)


def test_upload_store_plans_and_commits_by_content(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    blob = b"a model"
    sha = hashlib.sha256(blob).hexdigest()
    (store / f".part-{sha}").write_bytes(blob[:3])
    plan = json.loads(run(sys.executable, "upload_store", "plan", store, 3600, sha).stdout)
    assert plan[sha] == [False, 3, hashlib.sha256(blob[:3]).hexdigest()]
    (store / f".part-{sha}").write_bytes(blob)
    done = run(sys.executable, "upload_store", "commit", store, sha)
    assert done.stdout.split() == ["ok", sha] and (store / sha).read_bytes() == blob


def test_doctor_lists_power_sources_with_a_reading_and_hints(tmp_path):
    """FIXTURES (power_fixtures.py): an Orin INA3221 hwmon tree and a Pi 5 `vcgencmd`; doctor's
    one-second readings are the fixture's figures, and what cannot be read says how to fix it."""
    import os

    from edgebench.host.doctor import sensor_checks
    from power_fixtures import fake_vcgencmd, orin_board_w, orin_hwmon, pi5_board_w, unreadable

    root = tmp_path / "root"
    hw = orin_hwmon(root)
    zone = root / "sys/class/thermal/thermal_zone0"
    zone.mkdir(parents=True)
    (zone / "temp").write_text("48500\n")
    bin_dir = fake_vcgencmd(tmp_path / "bin")
    env = dict(os.environ, PATH=f"{bin_dir}:/usr/bin:/bin")
    done = subprocess.run([sys.executable, "-c", device_script("doctor_facts"), str(tmp_path),
                           str(root), "power"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    power = {p["source"]: p for p in facts["power"]}
    assert [p["source"] for p in facts["power"]] == ["pi5-pmic", "ina3221", "rapl", "nvml"]
    assert abs(power["ina3221"]["board_w"] - orin_board_w()) < 1e-3
    assert power["ina3221"]["board"] == "VDD_IN"
    assert abs(power["pi5-pmic"]["board_w"] - pi5_board_w()) < 1e-3
    assert not power["rapl"]["found"] and "no RAPL domains" in power["rapl"]["hint"]
    assert facts["thermal_zones"] == [["/sys/class/thermal/thermal_zone0", 48.5]]
    rows = {c.name: c for c in sensor_checks(facts)}
    assert rows["power rails"].detail.startswith("--power auto reads pi5-pmic (absent: rapl: ")
    assert "pip install nvidia-ml-py" in rows["power rails"].detail
    assert "board 7.26 W over 1 s (board = VDD_IN); rails: VDD_CPU_GPU_CV 2.47 W" in \
        rows["power ina3221"].detail
    assert "/sys/class/thermal/thermal_zone0/temp; /sys/devices/system/cpu/cpu0/cpufreq/" \
           "scaling_cur_freq (absent (no cpufreq driver))" in rows["sensor files"].detail
    # Without vcgencmd, and with a rail this user cannot read: the hints.
    how = unreadable(hw / "curr1_input")
    done = subprocess.run([sys.executable, "-c", device_script("doctor_facts"), str(tmp_path),
                           str(root), "power"], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PATH="/usr/bin:/bin"))
    rows = {c.name: c for c in sensor_checks(json.loads(done.stdout.strip().splitlines()[-1]))}
    assert "pi5-pmic: vcgencmd not on PATH (Raspberry Pi OS: apt install raspi-utils" in \
        rows["power rails"].detail
    if how is None:
        pytest.skip("root, and no write-only kernel attribute to make a read fail with EACCES")
    assert rows["power ina3221"].detail == (
        "present, not readable: /sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3/curr1_input is "
        "not readable by this user: run the agent as root, or make it readable (udev rule / "
        "chmod a+r)")
    assert rows["power rails"].detail.startswith("no readable power source")
