"""FIXTURES of the power sources' real layouts, staged under the agent's --sysfs-root (and a fake
`vcgencmd` on PATH): every reading they give is made up here, named as a fixture, and the tests
compute the expected energy by hand from these same files. Layouts as the boards show them:
- Jetson Orin (JetPack 5/6, mainline hwmon ina3221 driver): /sys/bus/i2c/drivers/ina3221/
  1-0040/hwmon/hwmon*/in[1-3]_label, inN_input (mV), currN_input (mA), plus in4 ("Sum of shunt
  voltages") and in7 that have no current and are not rails.
- Older JetPack (NVIDIA's iio ina3221x driver, TX2 rails): /sys/bus/i2c/drivers/ina3221x/
  0-004N/iio:deviceN/rail_name_N, in_powerN_input (mW), in_currentN_input, in_voltageN_input.
- RAPL: /sys/class/powercap/intel-rapl:0/{name,energy_uj,max_energy_range_uj}, a subdomain
  intel-rapl:0:0 (core) inside it; a writer thread advances energy_uj at a known power and
  wraps it at max_energy_range_uj, as the kernel's counter does.
- Raspberry Pi 5: `vcgencmd pmic_read_adc` lines "NAME_A current(N)=...A" / "NAME_V volt(M)=...V"
  with channel numbers that do not line up, a rail with current but no voltage line, and
  EXT5V_V / BATT_V with voltage only."""
from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

# Orin Nano rails: (label, mV, mA); board = VDD_IN
ORIN_RAILS = (("VDD_IN", 5072, 1432), ("VDD_CPU_GPU_CV", 5056, 488), ("VDD_SOC", 5064, 624))
# TX2 rails: (i2c address, iio device, channel, name, mW); board = VDD_IN
IIO_RAILS = (("0-0040", 0, 0, "VDD_SYS_GPU", 152), ("0-0040", 0, 1, "VDD_SYS_SOC", 687),
             ("0-0041", 1, 0, "VDD_IN", 4152), ("0-0041", 1, 1, "VDD_SYS_CPU", 916))
# Pi 5 PMIC: name -> (current channel, A, voltage channel, V); None: that line is absent
PI5_RAILS = {"3V7_WL_SW": (0, 0.0891, 8, 3.7440), "3V3_SYS": (1, 0.0527, 9, 3.3120),
             "1V8_SYS": (2, 0.1862, 10, 1.8002), "DDR_VDD2": (3, 0.0215, 11, 1.1050),
             "DDR_VDDQ": (4, 0.0011, 12, 0.6003), "VDD_CORE": (7, 6.22421, 15, 0.861733),
             "HDMI": (6, 0.0170, None, None),           # current only: not counted
             "EXT5V": (None, None, 24, 5.1485), "BATT": (None, None, 25, 0.0)}


def orin_hwmon(root: Path) -> Path:
    hw = root / "sys/bus/i2c/drivers/ina3221/1-0040/hwmon/hwmon3"
    hw.mkdir(parents=True)
    for i, (label, mv, ma) in enumerate(ORIN_RAILS, 1):
        (hw / f"in{i}_label").write_text(label + "\n")
        (hw / f"in{i}_input").write_text(f"{mv}\n")
        (hw / f"curr{i}_input").write_text(f"{ma}\n")
    (hw / "in4_label").write_text("Sum of shunt voltages\n")
    (hw / "in4_input").write_text("0\n")
    (hw / "in7_label").write_text("sum input voltage\n")
    (hw / "in7_input").write_text("5072\n")
    return hw


def orin_board_w() -> float:
    label, mv, ma = ORIN_RAILS[0]
    return mv * ma / 1e6


def iio_tree(root: Path) -> None:
    for address, device, channel, name, mw in IIO_RAILS:
        d = root / f"sys/bus/i2c/drivers/ina3221x/{address}/iio:device{device}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"rail_name_{channel}").write_text(name + "\n")
        (d / f"in_power{channel}_input").write_text(f"{mw}\n")
        (d / f"in_voltage{channel}_input").write_text("19000\n")
        (d / f"in_current{channel}_input").write_text(f"{mw * 1000 // 19000}\n")


def iio_board_w() -> float:
    return [mw for _, _, _, name, mw in IIO_RAILS if name == "VDD_IN"][0] / 1e3


def pi5_output() -> str:
    lines = []
    for name, (ci, amps, vi, volts) in PI5_RAILS.items():
        if ci is not None:
            lines.append(f"{name + '_A':>15} current({ci})={amps:.8f}A")
    for name, (ci, amps, vi, volts) in PI5_RAILS.items():
        if vi is not None:
            lines.append(f"{name + '_V':>15} volt({vi})={volts:.8f}V")
    return "\n".join(lines) + "\n"


def pi5_board_w() -> float:
    return sum(amps * volts for ci, amps, vi, volts in PI5_RAILS.values()
               if ci is not None and vi is not None)


def fake_vcgencmd(bin_dir: Path) -> Path:
    """A `vcgencmd` that answers pmic_read_adc with the Pi 5 fixture and get_throttled with 0."""
    bin_dir.mkdir(parents=True, exist_ok=True)
    data = bin_dir / "pmic_read_adc.txt"
    data.write_text(pi5_output())
    exe = bin_dir / "vcgencmd"
    exe.write_text(f'#!/bin/sh\ncase "$1" in\n  pmic_read_adc) cat "{data}";;\n'
                   f'  get_throttled) echo throttled=0x0;;\n  *) exit 1;;\nesac\n')
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return bin_dir


class RaplWriter(threading.Thread):
    """A RAPL package domain whose energy_uj advances at `watts` and wraps at range_uj (written
    every 2 ms, atomically by rename, from the clock: the energy between two instants is
    watts x their distance, whatever the sampling)."""

    def __init__(self, root: Path, watts: float, range_uj: int, start_uj: int = 0):
        threading.Thread.__init__(self, daemon=True)
        self.watts, self.range_uj, self.start_uj = watts, range_uj, start_uj
        self.pkg = root / "sys/class/powercap/intel-rapl:0"
        (self.pkg / "intel-rapl:0:0").mkdir(parents=True)
        (self.pkg / "name").write_text("package-0\n")
        (self.pkg / "max_energy_range_uj").write_text(f"{range_uj}\n")
        (self.pkg / "intel-rapl:0:0/name").write_text("core\n")
        (self.pkg / "intel-rapl:0:0/energy_uj").write_text("0\n")
        (self.pkg / "intel-rapl:0:0/max_energy_range_uj").write_text(f"{range_uj}\n")
        (root / "sys/class/powercap/intel-rapl").mkdir(exist_ok=True)  # the control type
        self.halt = threading.Event()
        self.wraps = 0
        self.t0 = time.monotonic()
        self._write()

    def _write(self) -> None:
        total = self.start_uj + self.watts * 1e6 * (time.monotonic() - self.t0)
        self.wraps = int(total // self.range_uj)
        tmp = self.pkg / ".energy_uj.tmp"
        tmp.write_text(f"{int(total % self.range_uj)}\n")
        os.replace(tmp, self.pkg / "energy_uj")

    def run(self) -> None:
        while not self.halt.wait(0.002):
            self._write()

    def stop(self) -> None:
        self.halt.set()
        self.join(5)


def unreadable(path: Path) -> str | None:
    """Make `path` fail to read with EACCES, also for root (who passes any chmod): a link to a
    write-only kernel attribute (/sys/bus/pci/rescan: kernfs refuses to open it for reading).
    Returns None when neither works here (the caller skips that assertion and says why)."""
    if os.geteuid() != 0:
        path.chmod(0)
        return "chmod 000"
    for target in ("/sys/bus/pci/rescan", "/sys/kernel/mm/ksm/run_ignored"):
        try:
            open(target).close()
        except PermissionError:
            path.unlink()
            path.symlink_to(target)
            return "link to " + target
        except OSError:
            continue
    return None
