"""Is a device ready to run the agent? The checks shared by `deploy` (preflight) and `doctor`.

One small script runs on the device's python and reports facts as JSON (it imports nothing
heavy: TFLite interpreters are found with find_spec, never imported, because importing
tensorflow takes minutes on a Pi). The host turns facts into checks with exact fixes."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Optional

from edgebench.host.agent_archive import device_script
from edgebench.host.errors import UserError
from edgebench.host.targets.base import Target

MIN_PYTHON = (3, 8)
MIN_FREE_BYTES = 64 << 20   # room for results and the agent's temp files beyond the bundle

# device/remote/doctor_facts.py, sent as source: any Python 3 must still report its version.
_FACTS_SCRIPT = device_script("doctor_facts")


@dataclass
class Check:
    name: str
    ok: Optional[bool]      # None: informational (a sensor that is absent is not a failure)
    detail: str
    fix: str = ""


@dataclass
class Report:
    target: str
    python: str
    facts: dict = field(default_factory=dict)
    checks: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok is not False for c in self.checks)

    def failures(self) -> list:
        return [c for c in self.checks if c.ok is False]

    def table(self) -> str:
        rows = [("check", "status", "detail")] + [
            (c.name, {True: "ok", False: "FAIL", None: "-"}[c.ok],
             c.detail + (f"  → {c.fix}" if c.fix and c.ok is False else ""))
            for c in self.checks]
        w0, w1 = (max(len(r[i]) for r in rows) for i in (0, 1))
        lines = [f"{self.target} ({self.python})"]
        lines += [f"  {a:<{w0}}  {b:<{w1}}  {c}" for a, b, c in rows]
        return "\n".join(lines)


def gather(target: Target, python: str, remote_root: str, power: bool = False) -> Report:
    """Run the facts script; a missing interpreter is itself a failed check, not an exception.
    power: also the power sources with a one-second reading each (doctor; a second longer)."""
    argv = [python, "-c", _FACTS_SCRIPT, remote_root] + (["/", "power"] if power else [])
    res = target.run(argv, timeout=60)
    report = Report(target=target.describe(), python=python)
    if res.exit_code == 127 or (not res.ok and "not found" in res.stderr):
        report.checks.append(Check("python", False, f"{python} not found on the device",
                                   "install it (sudo apt install python3 python3-numpy) or pass "
                                   "--remote-python /path/to/venv/bin/python"))
        return report
    try:
        report.facts = json.loads(res.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        detail = (res.stderr.strip().splitlines() or ["no output"])[-1]
        report.checks.append(Check("python", False, f"{python} failed: {detail}",
                                   "pass --remote-python with a working Python ≥ 3.8"))
        return report
    report.checks += _checks(report.facts, python)
    return report


def _interpreter_fix(f: dict, py: str) -> str:
    major, minor = f["python"][:2]
    machine, glibc = f.get("machine") or "", f.get("glibc") or "0"
    gv = tuple(int(x) for x in glibc.split(".")[:2] if x.isdigit()) or (0,)
    if machine in ("aarch64", "x86_64") and (3, 10) <= (major, minor) <= (3, 14) and gv >= (2, 27):
        return f"{py} -m pip install ai-edge-litert"
    if machine == "aarch64" and (3, 8) <= (major, minor) <= (3, 11):
        if gv >= (2, 34):
            return f"{py} -m pip install 'tflite-runtime==2.14.0' 'numpy<2'"
        return f"{py} -m pip install 'tflite-runtime==2.13.0' 'numpy<2'"
    if machine.startswith("armv7") and (3, 8) <= (major, minor) <= (3, 10):
        return f"{py} -m pip install 'tflite-runtime==2.13.0' 'numpy<2'"
    return (f"no prebuilt LiteRT or tflite-runtime wheel fits {machine} / Python {major}.{minor} / "
            f"glibc {glibc}: install Python 3.10+ in a venv (then ai-edge-litert), or tensorflow")


def _checks(f: dict, py: str) -> list:
    checks = []
    ver = tuple(f["python"])
    vtext = ".".join(map(str, ver))
    checks.append(Check("python", ver >= MIN_PYTHON, f"Python {vtext} at {f.get('executable')}",
                        "the agent needs Python ≥ 3.8: install a newer python3 or pass "
                        "--remote-python /path/to/venv/bin/python"))
    checks.append(Check("numpy", bool(f.get("numpy")), f"numpy {f.get('numpy') or 'missing'}",
                        f"{py} -m pip install numpy   (or: sudo apt install python3-numpy)"))
    found = {k: v for k, v in f.get("interpreters", {}).items() if v}
    checks.append(Check("interpreter", bool(found),
                        ", ".join(f"{k} {v}" for k, v in found.items()) or "no TFLite interpreter",
                        _interpreter_fix(f, py)))
    npv = f.get("numpy") or ""
    if set(found) == {"tflite_runtime"} and npv.split(".")[0].isdigit() and int(npv.split(".")[0]) >= 2:
        checks.append(Check("numpy<2", False, f"tflite-runtime fails with numpy {npv}",
                            f"{py} -m pip install 'numpy<2'   (or install ai-edge-litert)"))
    free = f.get("free_bytes")
    checks.append(Check("disk", None if free is None else free >= MIN_FREE_BYTES,
                        f"{_mb(free)} free at {f.get('free_path')}" if free is not None
                        else "free space unknown",
                        f"free some space on {f.get('free_path')} or pass --remote-dir on a "
                        f"bigger disk"))
    checks.append(Check("psutil", None, f"psutil {f.get('psutil') or 'absent (memory from /proc)'}"))
    return checks


def sensor_checks(f: dict) -> list:
    """Informational rows for doctor: what the agent will be able to record."""
    zones = f.get("thermal_zones") or []
    rows = [
        Check("device", None, f"{f.get('model') or 'unknown model'}, {f.get('machine')}, "
                              f"{f.get('cores')} cores, governor {f.get('governor') or 'n/a'}, "
                              f"{int(f['freq_khz']) // 1000 if (f.get('freq_khz') or '').isdigit() else '?'} MHz"),
        Check("temperature", None, ", ".join(f"{n} {t:.1f}°C" for n, t in zones[:4])
              or f.get("vcgencmd_temp") or "absent (no thermal zones)"),
        Check("throttling", _throttle_ok(f.get("throttled")),
              f.get("throttled") or "absent (no vcgencmd)",
              "under-voltage or thermal throttling reported: check the power supply and cooling"),
    ]
    return rows + power_checks(f)


def power_checks(f: dict) -> list:
    """What `--power auto` would read on the device: a row per source present (its board figure
    and rails over one second, or why it cannot be read, with the fix), the sources absent and
    why, and the temperature / frequency files the agent reads."""
    power = f.get("power")
    if power is None:   # facts without power sources: the hwmon rails as they read
        return [Check("power rails", None, "; ".join(f"{n}: {v} mV {c} mA" for n, v, c in
                                                     f.get("power_rails") or [])
                      or "absent (no INA3221 rails)")]
    rows = []
    for p in [p for p in power if p["found"]]:
        if p.get("hint"):
            rows.append(Check(f"power {p['source']}", None, f"present, not readable: {p['hint']}"))
        else:
            rails = ", ".join(f"{n} {w:.2f} W" for n, w in p["rails"])
            rows.append(Check(f"power {p['source']}", None,
                              f"board {p['board_w']:.2f} W over 1 s (board = {p['board']}); "
                              f"rails: {rails}"))
    readable = [p["source"] for p in power if p["found"] and not p.get("hint")]
    absent = "; ".join(f"{p['source']}: {p['hint']}" for p in power if not p["found"])
    rows.insert(0, Check("power rails", None,
                         (f"--power auto reads {readable[0]}" if readable else
                          "no readable power source: --power auto leaves the energy columns "
                          "empty") + (f" (absent: {absent})" if absent else "")))
    files = f.get("sensor_files") or []
    if files:
        rows.append(Check("sensor files", None, "; ".join(
            f"{p}{'' if ok else ' (' + hint + ')'}" for p, ok, hint in files)))
    return rows


def _throttle_ok(text: Optional[str]) -> Optional[bool]:
    if not text or "=" not in text:
        return None
    try:
        return int(text.split("=")[1], 16) & 0xF == 0
    except ValueError:
        return None


def _mb(n) -> str:
    return f"{n / (1 << 20):.0f} MiB"


def preflight(target: Target, python: str, remote_root: str, need_bytes: int = 0) -> Report:
    """Raise a UserError naming every fix when the device cannot run the agent."""
    report = gather(target, python, remote_root)
    free = report.facts.get("free_bytes")
    if free is not None and need_bytes and free < need_bytes + MIN_FREE_BYTES:
        report.checks.append(Check("disk", False, f"{_mb(free)} free, bundle needs "
                                                  f"{_mb(need_bytes + MIN_FREE_BYTES)}",
                                   "free space or pass --remote-dir on a bigger disk"))
    if not report.ok:
        raise UserError(f"{target.describe()}: device not ready: " + "; ".join(
            f"{c.detail} → {c.fix}" for c in report.failures()))
    return report
