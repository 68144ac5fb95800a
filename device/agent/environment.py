"""The device's environment: sensors and identity (thermal zones, cpufreq, throttling, board,
CPU, OS, whether we run under qemu). Every system file is read through host_path(), rooted at
--sysfs-root so tests can stage a fake /sys and /proc. Absent sensors are None, never guessed."""
from __future__ import annotations

import glob
import os
import platform
import shutil
import socket
import subprocess

import numpy as np

from ..common import utc_now

SYSFS_ROOT = "/"  # set once by set_root() before anything is read


def set_root(root: str) -> None:
    """Re-root every sensor read (--sysfs-root); the agent calls it once, before reading."""
    global SYSFS_ROOT
    SYSFS_ROOT = root


def host_path(path: str) -> str:
    """The one place that maps a system path (/sys/..., /proc/...) to a file; tests re-root it."""
    return os.path.join(SYSFS_ROOT, path.lstrip("/"))


def read_text(path: str):
    try:
        with open(host_path(path), "rb") as fh:
            return fh.read().decode("utf-8", "replace").replace("\x00", "").strip()
    except OSError:
        return None


def thermal_zones() -> dict:
    zones = {}
    for temp_file in sorted(glob.glob(host_path("sys/class/thermal/thermal_zone*/temp"))):
        zone = os.path.dirname(temp_file)
        try:
            with open(temp_file) as fh:
                milli = float(fh.read().strip())
        except (OSError, ValueError):
            continue
        kind = read_text(os.path.join("/", os.path.relpath(zone, host_path("/")), "type"))
        zones[os.path.basename(zone)] = {"type": kind, "temp_c": milli / 1000.0}
    return zones


def soc_temp_c():
    temps = [z["temp_c"] for z in thermal_zones().values()]
    return max(temps) if temps else None


def governor():
    return read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")


def freq_mhz():
    khz = read_text("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    try:
        return float(khz) / 1000.0
    except (TypeError, ValueError):
        return None


def throttled_flags():
    """`vcgencmd get_throttled` as an int, or None where there is no vcgencmd (not a Pi)."""
    exe = shutil.which("vcgencmd")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "get_throttled"], capture_output=True, text=True, timeout=5)
        return int(out.stdout.strip().split("=")[-1], 16)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None


# ARM "CPU part" numbers for boards whose /proc/cpuinfo has no model name (Raspberry Pi OS 64).
ARM_PARTS = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55",
             "0xd07": "Cortex-A57", "0xd08": "Cortex-A72", "0xd09": "Cortex-A73",
             "0xd0b": "Cortex-A76", "0xd41": "Cortex-A78", "0xc07": "Cortex-A7",
             "0xc09": "Cortex-A9", "0xc0f": "Cortex-A15", "0x004": "NVIDIA Carmel"}


def cpu_name() -> str:
    info = read_text("/proc/cpuinfo") or ""
    fields = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    if fields.get("model name"):
        return fields["model name"]
    if fields.get("cpu part") in ARM_PARTS:
        return ARM_PARTS[fields["cpu part"]]
    return fields.get("hardware") or platform.processor() or platform.machine()


def device_model() -> str:
    model = read_text("/proc/device-tree/model") or read_text("/sys/firmware/devicetree/base/model")
    if model:
        return model
    vendor, product = read_text("/sys/class/dmi/id/sys_vendor"), read_text(
        "/sys/class/dmi/id/product_name")
    return " ".join(p for p in (vendor, product) if p) or None


def os_name() -> str:
    pretty = ""
    for line in (read_text("/etc/os-release") or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            pretty = line.split("=", 1)[1].strip().strip('"')
    kernel = platform.system() + " " + platform.release()
    return (pretty + " (" + kernel + ")") if pretty else kernel


def is_emulated() -> bool:
    forced = os.environ.get("EDGEBENCH_EMULATED", "").strip().lower()
    if forced in ("1", "true", "yes"):
        return True
    if forced in ("0", "false", "no"):
        return False
    machine = platform.machine().lower()
    arch = "arm" if machine.startswith("arm") else machine
    handler = read_text("/proc/sys/fs/binfmt_misc/qemu-" + arch)
    return bool(handler) and handler.splitlines()[0].strip() == "enabled"


def environment(runtime: str, runtime_version: str) -> dict:
    flags = throttled_flags()
    return {
        "device_model": device_model(), "machine": platform.machine(), "cpu": cpu_name(),
        "cores": os.cpu_count(), "governor": governor(), "freq_mhz": freq_mhz(),
        "thermal_zones": thermal_zones(), "temp_c": soc_temp_c(),
        "throttled_flags": None if flags is None else hex(flags),
        "os": os_name(), "python": platform.python_version(), "numpy": np.__version__,
        "runtime": runtime, "runtime_version": runtime_version, "emulated": is_emulated(),
        "hostname": socket.gethostname(), "sysfs_root": SYSFS_ROOT,
        "created_utc": utc_now(),
    }

