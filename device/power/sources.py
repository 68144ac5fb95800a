"""The power sources the agent can read, one class each (power.py keeps the registry). A source
opens (or raises PowerUnavailable with what is missing and how to get it), names its rails and
which of them make up the board figure, and read()s one sample: {rail: value} with a "board"
entry. A power source's values are watts; a COUNTER source's (RAPL, NVML's energy counter) are
cumulative joules, wrap-corrected here, and the sampler takes differences. Every system file is
read through environment.host_path(), so --sysfs-root re-roots them (the tests' fixtures)."""
from __future__ import annotations

import errno
import glob
import os
import re
import shutil
import subprocess

from ..agent import environment
from ..common import one_line

CMD_TIMEOUT_S = 10.0  # a cmd: source that hangs gives an error sample, not a hung sampler
# Rails that are a board's input where a source has one (Orin, Xavier NX: VDD_IN; Nano: POM_5V_IN)
INPUT_RAILS = ("VDD_IN", "POM_5V_IN", "5V_IN")


class PowerUnavailable(Exception):
    """The source cannot be read here: one line, what is missing and the hint."""


def read_number(path: str) -> float:
    """One number from a sysfs file (re-rooted); a failed read says which file and, for a
    permission error, what to do about it."""
    try:
        with open(environment.host_path(path)) as fh:
            text = fh.read().strip()
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM):
            raise PowerUnavailable("%s is not readable by this user (permission denied): run the "
                                   "agent as root, or make it readable (e.g. a udev rule or "
                                   "chmod a+r)" % path)
        raise PowerUnavailable("cannot read %s: %s" % (path, exc.strerror or exc))
    try:
        return float(text)
    except ValueError:
        raise PowerUnavailable("%s holds %r, not a number" % (path, text[:40]))


def sys_glob(pattern: str) -> list:
    """System paths (as on the device, '/sys/...') matching a pattern under --sysfs-root."""
    root = environment.host_path("/")
    return sorted("/" + os.path.relpath(p, root) for p in glob.glob(environment.host_path(
        pattern)))


def board_of(rails: list, why: str) -> tuple:
    """(rails summed into "board", power_rails text): the input rail when there is one, else the
    sum of every rail."""
    for name in INPUT_RAILS:
        if name in rails:
            return [name], "%s (%s)" % (name, why)
    return list(rails), "sum:" + ",".join(rails)


class Source(object):
    name = ""
    counter = False
    needs = ""

    def __init__(self, arg: str = ""):
        self.arg = arg
        self.rails, self.board_rails, self.power_rails = [], [], ""

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> dict:
        raise NotImplementedError

    def with_board(self, values: dict) -> dict:
        values["board"] = sum(values[r] for r in self.board_rails)
        return values

    def close(self) -> None:
        pass


class Pi5Pmic(Source):
    """Raspberry Pi 5: `vcgencmd pmic_read_adc` prints each rail's current and voltage on their
    own lines, with channel numbers that do not line up, so rails are paired by name."""
    name = "pi5-pmic"
    needs = ("vcgencmd on PATH (Raspberry Pi OS: package raspi-utils) on a Raspberry Pi 5; board "
             "= sum of the PMIC rails (USB-C input EXT5V and BATT have voltage only: not counted)")
    LINE = re.compile(r"^\s*(\S+)_([AV])\s+(current|volt)\(\d+\)=\s*([-0-9.eE+]+)\s*[AV]\s*$")

    def open(self) -> None:
        self.exe = shutil.which("vcgencmd")
        if not self.exe:
            raise PowerUnavailable("vcgencmd not on PATH (Raspberry Pi OS: apt install "
                                   "raspi-utils; the PMIC is on the Pi 5 only)")
        amps, volts = self._adc()
        self.rails = sorted(set(amps) & set(volts))
        if not self.rails:
            raise PowerUnavailable("vcgencmd pmic_read_adc printed no rail with both current "
                                   "and voltage (not a Pi 5?)")
        self.board_rails = list(self.rails)
        skipped = ["%s (current only)" % r for r in sorted(set(amps) - set(volts))]
        skipped += ["%s (voltage only)" % r for r in sorted(set(volts) - set(amps))]
        self.power_rails = "sum:" + ",".join(self.rails) + (
            " (not counted: %s)" % ", ".join(skipped) if skipped else "")

    def _adc(self) -> tuple:
        try:
            out = subprocess.run([self.exe, "pmic_read_adc"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=CMD_TIMEOUT_S)
        except (OSError, subprocess.SubprocessError) as exc:
            raise PowerUnavailable("vcgencmd pmic_read_adc failed: %s" % one_line(exc, 120))
        if out.returncode != 0:
            raise PowerUnavailable("vcgencmd pmic_read_adc exited %d: %s" % (
                out.returncode, one_line(out.stderr.decode("utf-8", "replace"), 120)))
        amps, volts = {}, {}
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            found = self.LINE.match(line)
            if found:
                rail, kind, value = found.group(1), found.group(2), float(found.group(4))
                (amps if kind == "A" else volts)[rail] = value
        return amps, volts

    def read(self) -> dict:
        amps, volts = self._adc()
        missing = [r for r in self.rails if r not in amps or r not in volts]
        if missing:
            raise PowerUnavailable("vcgencmd pmic_read_adc no longer lists %s" % missing[0])
        return self.with_board(dict((r, amps[r] * volts[r]) for r in self.rails))


class Ina3221(Source):
    """Jetson INA3221: the mainline hwmon driver (JetPack 5+: inN_label, inN_input mV,
    currN_input mA) or, on older JetPack, NVIDIA's iio driver (rail_name_N, in_powerN_input
    mW)."""
    name = "ina3221"
    needs = ("Jetson INA3221 under /sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/ (JetPack 5+) or "
             "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/ (older JetPack), readable by this "
             "user; board = VDD_IN (the module's input: the carrier board is not included), "
             "else the sum of the rails")
    HWMON = "/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in[1-3]_label"
    IIO = "/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_[0-9]"

    def open(self) -> None:
        # rail -> ("hwmon", volts file, amps file) | ("iio", milliwatts file)
        self.files = {}
        for label in sys_glob(self.HWMON):
            folder, index = os.path.dirname(label), os.path.basename(label)[2]
            name = self._label(label)
            volts = os.path.join(folder, "in%s_input" % index)
            amps = os.path.join(folder, "curr%s_input" % index)
            if environment.read_text(os.path.join(folder, "in%s_enable" % index)) == "0":
                continue  # a disabled channel reads as an error, not as 0 W
            if name and os.path.exists(environment.host_path(amps)):
                self.files[name] = ("hwmon", volts, amps)
        for label in sys_glob(self.IIO):
            folder, index = os.path.dirname(label), label[-1]
            name = self._label(label)
            if name:
                self.files[name] = ("iio", os.path.join(folder, "in_power%s_input" % index))
        if not self.files:
            raise PowerUnavailable("no INA3221 rails under /sys/bus/i2c/drivers/ina3221*/ "
                                   "(not a Jetson, or its power monitor driver is not loaded)")
        self.rails = sorted(self.files)
        self.board_rails, self.power_rails = board_of(
            self.rails, "the module's input; the carrier board is not included")
        self.read()  # a permission problem shows now, as the reason, not as an empty row later

    @staticmethod
    def _label(path: str):
        try:
            with open(environment.host_path(path)) as fh:
                return fh.read().strip() or None
        except OSError as exc:
            if exc.errno in (errno.EACCES, errno.EPERM):
                read_number(path)  # raises the permission hint
            return None

    def read(self) -> dict:
        values = {}
        for rail, spec in self.files.items():
            if spec[0] == "hwmon":
                values[rail] = read_number(spec[1]) * read_number(spec[2]) / 1e6
            else:
                values[rail] = read_number(spec[1]) / 1e3
        return self.with_board(values)


class Rapl(Source):
    """RAPL through powercap: energy_uj is a counter that wraps at max_energy_range_uj. The
    package domains make up "board" (the CPU packages: DRAM and the rest of the machine are
    not in it)."""
    name = "rapl"
    counter = True
    needs = ("RAPL under /sys/class/powercap/intel-rapl:*/energy_uj (x86; root-only to read "
             "since Linux 5.10); board = sum of the package domains (CPU packages only)")
    DOMAINS = "/sys/class/powercap/intel-rapl:[0-9]*"

    def open(self) -> None:
        self.domains = {}  # rail -> folder
        for folder in sys_glob(self.DOMAINS):
            if ":" in os.path.basename(folder)[len("intel-rapl:"):]:
                continue  # a subdomain (core, uncore, dram inside a package): in its package
            name = environment.read_text(folder + "/name") or os.path.basename(folder)
            self.domains[name] = folder
        if not self.domains:
            raise PowerUnavailable("no RAPL domains under /sys/class/powercap (not x86, or the "
                                   "intel_rapl_common module is not loaded)")
        self.rails = sorted(self.domains)
        packages = [r for r in self.rails if r.startswith("package")]
        self.board_rails = packages or list(self.rails)
        self.power_rails = "sum:" + ",".join(self.board_rails) + (
            " (CPU packages only)" if packages else "")
        self.range_j = dict((r, read_number(f + "/max_energy_range_uj") / 1e6)
                            for r, f in self.domains.items())
        self.last, self.offset = {}, dict((r, 0.0) for r in self.rails)
        self.read()

    def read(self) -> dict:
        values = {}
        for rail, folder in self.domains.items():
            raw = read_number(folder + "/energy_uj") / 1e6
            if rail in self.last and raw < self.last[rail]:
                self.offset[rail] += self.range_j[rail]  # wrapped since the previous read
            self.last[rail] = raw
            values[rail] = raw + self.offset[rail]
        return self.with_board(values)


class Nvml(Source):
    """NVIDIA GPUs through NVML (nvidia-ml-py): the total-energy counter (mJ) where every GPU has
    it, else the board power (mW). One rail per GPU; board = their sum (the GPUs only)."""
    name = "nvml"
    needs = ("an NVIDIA GPU, its driver and nvidia-ml-py (pip install nvidia-ml-py); board = "
             "sum of the GPUs' power (the GPU boards only, not the host)")

    def open(self) -> None:
        try:
            import pynvml
        except ImportError:
            raise PowerUnavailable("nvidia-ml-py is not installed (pip install nvidia-ml-py)")
        try:
            pynvml.nvmlInit()
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception as exc:
            raise PowerUnavailable("NVML did not start (no NVIDIA driver?): %s" % one_line(exc,
                                                                                            120))
        if not self.handles:
            raise PowerUnavailable("NVML found no GPU")
        self.nvml = pynvml
        self.rails = ["gpu%d" % i for i in range(len(self.handles))]
        self.board_rails = list(self.rails)
        try:
            for h in self.handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            self.counter = True
        except Exception:
            self.counter = False
        self.power_rails = "sum:" + ",".join(self.rails) + (
            " (energy counter)" if self.counter else " (power readings)")
        self.read()

    def read(self) -> dict:
        try:
            if self.counter:
                raw = [self.nvml.nvmlDeviceGetTotalEnergyConsumption(h) / 1e3
                       for h in self.handles]
            else:
                raw = [self.nvml.nvmlDeviceGetPowerUsage(h) / 1e3 for h in self.handles]
        except Exception as exc:
            raise PowerUnavailable("NVML read failed: %s" % one_line(exc, 120))
        return self.with_board(dict(zip(self.rails, raw)))

    def close(self) -> None:
        try:
            self.nvml.nvmlShutdown()
        except Exception:
            pass


class Command(Source):
    """cmd:COMMAND: the user's own meter (a USB power meter, Joulescope, a PDU): the command runs
    once per sample through the shell and the last number it prints is the board's watts."""
    name = "cmd"
    needs = ("cmd:COMMAND runs COMMAND (through /bin/sh) once per sample and takes the last "
             "number it prints as watts; board = that figure, whatever the meter covers")
    NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")

    def open(self) -> None:
        if not self.arg.strip():
            raise PowerUnavailable("cmd: needs a command, e.g. cmd:'my-meter --watts'")
        self.power_rails = "cmd"  # one figure, the board's: no rails of its own
        self.read()

    def read(self) -> dict:
        try:
            out = subprocess.run(self.arg, shell=True, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, timeout=CMD_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise PowerUnavailable("cmd: %r printed nothing within %.0f s" % (self.arg,
                                                                              CMD_TIMEOUT_S))
        except OSError as exc:
            raise PowerUnavailable("cmd: %r did not run: %s" % (self.arg, exc))
        numbers = self.NUMBER.findall(out.stdout.decode("utf-8", "replace"))
        if out.returncode != 0 or not numbers:
            raise PowerUnavailable("cmd: %r exited %d and printed %s" % (
                self.arg, out.returncode, "no number" if not numbers else numbers[-1]))
        return {"board": float(numbers[-1])}
