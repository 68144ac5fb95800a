"""`bench-host doctor`'s facts, gathered on the device: `python3 -c <this source> REMOTE_ROOT
[SYSFS_ROOT [power]]` prints one JSON object (python, numpy, interpreters, free disk, board,
sensors, the power sources the agent's --power can read with a one-second reading of each, and
the sensor files it reads). Written for any Python 3 on purpose (no f-strings, no annotations): an old
interpreter must still report its version, so that doctor can say it is too old. SYSFS_ROOT
re-roots the sensor files like the agent's --sysfs-root (tests); "power" asks for the power
sources and their one-second reading (doctor does; deploy's preflight does not wait for it)."""


def main():
    import json, os, platform, shutil, sys
    root = sys.argv[1]
    sp, sysglob = rooted(sys.argv[2] if len(sys.argv) > 2 else "/")
    probe, free = free_space(root)
    vc = shutil.which("vcgencmd") if hasattr(shutil, "which") else None
    out = {
        "python": list(sys.version_info[:3]), "executable": sys.executable,
        "machine": platform.machine(), "glibc": platform.libc_ver()[1] or None,
        "numpy": numpy_version(), "psutil": find("psutil", "psutil"),
        "interpreters": {"ai_edge_litert": find("ai_edge_litert", "ai-edge-litert"),
                         "tflite_runtime": find("tflite_runtime", "tflite-runtime"),
                         "tensorflow": find("tensorflow", "tensorflow", "tensorflow-cpu",
                                            "tensorflow-aarch64")},
        "free_bytes": free, "free_path": probe,
        "model": read(sp("/proc/device-tree/model")), "cores": os.cpu_count(),
        "governor": read(sp("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")),
        "freq_khz": read(sp("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")),
        "thermal_zones": thermal_zones(sp, sysglob),
        "vcgencmd_temp": run([vc, "measure_temp"]) if vc else None,
        "throttled": run([vc, "get_throttled"]) if vc else None,
        "tegrastats": bool(shutil.which("tegrastats")) if hasattr(shutil, "which") else False,
        "power_rails": ina3221_rails(sp, sysglob),
        "power": power_facts(sp, sysglob, vc) if "power" in sys.argv[3:] else None,
        "sensor_files": sensor_files(sp, sysglob),
    }
    sys.stdout.write(json.dumps(out) + "\n")


def read(p):
    try:
        with open(p) as f: return f.read().strip().strip("\x00")
    except Exception: return None


def dist_version(*names):
    try:
        from importlib import metadata
    except ImportError:
        return "present"
    for n in names:
        try: return metadata.version(n)
        except Exception: pass
    return "present"


def find(mod, *dists):
    """The installed version of module `mod` (from the first of its distributions that names
    one), "present" without one, None when it is not importable."""
    try:
        import importlib.util
        if importlib.util.find_spec(mod) is None: return None
    except Exception: return None
    return dist_version(*dists)


def run(argv):
    import subprocess
    try:
        return subprocess.check_output(argv, stderr=subprocess.STDOUT, timeout=5).decode().strip()
    except Exception: return None


def rooted(sysroot):
    """(sp, sysglob): a sensor path under SYSFS_ROOT, and a glob under it answering the paths as
    the device names them (so tests can re-root /sys)."""
    import glob, os
    def sp(p): return os.path.join(sysroot, p.lstrip("/"))
    def sysglob(pat): return ["/" + os.path.relpath(p, sp("/")) for p in sorted(glob.glob(sp(pat)))]
    return sp, sysglob


def free_space(root):
    """(the deepest folder of REMOTE_ROOT that exists, its free bytes): the root itself may not
    be there yet."""
    import os
    probe = root
    while probe and not os.path.isdir(probe): probe = os.path.dirname(probe)
    free = None
    try:
        st = os.statvfs(probe or "/"); free = st.f_bavail * st.f_frsize
    except Exception: pass
    return probe, free


def numpy_version():
    try:
        import numpy; return numpy.__version__
    except Exception: return None


def thermal_zones(sp, sysglob):
    zones = []
    for z in sysglob("/sys/class/thermal/thermal_zone*"):
        t = read(sp(z + "/temp"))
        if t and t.lstrip("-").isdigit():
            zones.append([read(sp(z + "/type")) or z, int(t) / 1000.0])
    return zones


def ina3221_rails(sp, sysglob):
    """[label, millivolts, milliamps] of each INA3221 channel the hwmon driver exposes."""
    import os
    rails = []
    for lab in sysglob("/sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/in*_label"):
        base = lab[:-len("_label")]; idx = base[len(os.path.dirname(base)) + 3:]
        d = os.path.dirname(lab)
        rails.append([read(sp(lab)), read(sp(d + "/in" + idx + "_input")),
                      read(sp(d + "/curr" + idx + "_input"))])
    return rails


def sensor_files(sp, sysglob):
    """The files the agent reads for temperature and frequency: [path, readable, hint]."""
    import errno, os
    out = []
    paths = [z + "/temp" for z in sysglob("/sys/class/thermal/thermal_zone*")]
    paths += ["/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq",
              "/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"]
    for p in paths:
        try:
            open(sp(p)).close(); out.append([p, True, None])
        except (IOError, OSError) as e:
            hint = "permission denied: run the agent as root or make it readable" \
                if e.errno in (errno.EACCES, errno.EPERM) else "absent (no cpufreq driver)" \
                if e.errno == errno.ENOENT else str(e)
            out.append([p, False, hint])
    return out


def power_facts(sp, sysglob, vc):
    """Each power source of the agent's --power that is present here: its rails and board
    figure over one second (a counter's difference, else the mean of two readings 1 s apart), or
    why it cannot be read (with the hint). Sources that are absent are listed with the reason."""
    num = number_reader(sp)
    # [name, read() -> {rail: W or J}, counter, board rails or None (= all)]; read() None: absent,
    # and counter then says why
    sources = [pmic_source(vc), ina3221_source(sp, sysglob, num), rapl_source(sp, sysglob, num),
               nvml_source()]
    return one_second_readings(sources)


def number_reader(sp):
    """num(path): a sensor file's number, or ValueError saying why it cannot be read."""
    import errno
    def num(p):
        try:
            with open(sp(p)) as f: return float(f.read().strip())
        except (IOError, OSError) as e:
            if e.errno in (errno.EACCES, errno.EPERM):
                raise ValueError(p + " is not readable by this user: run the agent as root, or "
                                 "make it readable (udev rule / chmod a+r)")
            raise ValueError("cannot read " + p)
    return num


def pmic_source(vc):
    import re, subprocess
    def pmic():
        out = subprocess.check_output([vc, "pmic_read_adc"], timeout=5).decode()
        a, v = {}, {}
        for m in re.finditer(r"(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-0-9.eE+]+)", out):
            (a if m.group(2) == "A" else v)[m.group(1)] = float(m.group(3))
        return dict((r, a[r] * v[r]) for r in a if r in v)
    if vc:
        return ["pi5-pmic", pmic, False, None]
    return ["pi5-pmic", None, "vcgencmd not on PATH (Raspberry Pi OS: apt install "
            "raspi-utils; the PMIC is on the Pi 5 only)", None]


def ina3221_source(sp, sysglob, num):
    import os
    ina = {}
    for lab in sysglob("/sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in[1-3]_label"):
        d, i = os.path.dirname(lab), os.path.basename(lab)[2]
        if os.path.exists(sp(d + "/curr" + i + "_input")):
            try: name = open(sp(lab)).read().strip()
            except (IOError, OSError): name = lab
            ina[name] = (d + "/in" + i + "_input", d + "/curr" + i + "_input")
    for lab in sysglob("/sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_[0-9]"):
        try: name = open(sp(lab)).read().strip()
        except (IOError, OSError): name = lab
        ina[name] = (os.path.dirname(lab) + "/in_power" + lab[-1] + "_input",)
    def ina_read():
        return dict((r, num(f[0]) * num(f[1]) / 1e6 if len(f) == 2 else num(f[0]) / 1e3)
                    for r, f in ina.items())
    board = [r for r in ("VDD_IN", "POM_5V_IN", "5V_IN") if r in ina][:1] or None
    return ["ina3221", ina_read if ina else None, False if ina else
            "no INA3221 rails under /sys/bus/i2c/drivers/ina3221*", board]


def rapl_source(sp, sysglob, num):
    rapl = dict((read_name(sp(d + "/name")) or d, d) for d in
                sysglob("/sys/class/powercap/intel-rapl:[0-9]*") if d.count(":") == 1)
    def rapl_read():
        return dict((r, num(d + "/energy_uj") / 1e6) for r, d in rapl.items())
    pk = [r for r in rapl if r.startswith("package")] or None
    return ["rapl", rapl_read if rapl else None,
            True if rapl else "no RAPL domains under /sys/class/powercap", pk]


def nvml_source():
    try:
        import pynvml
        pynvml.nvmlInit()
        hs = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(pynvml.nvmlDeviceGetCount())]
        return ["nvml", lambda: dict(("gpu%d" % i, pynvml.nvmlDeviceGetPowerUsage(h)
                                      / 1e3) for i, h in enumerate(hs)), False, None]
    except ImportError:
        return ["nvml", None, "nvidia-ml-py not installed (pip install nvidia-ml-py)", None]
    except Exception as e:
        return ["nvml", None, "NVML did not start (no NVIDIA driver?): %s" % e, None]


def one_second_readings(sources):
    """Every present source read twice, one second apart (all of them in the same second)."""
    import time
    first, out = {}, []
    for name, fn, counter, board in sources:
        if fn is None:
            out.append({"source": name, "found": False, "hint": counter}); continue
        try: first[name] = (time.time(), fn())
        except Exception as e:
            out.append({"source": name, "found": True, "hint": str(e)})
    if first: time.sleep(1.0)
    for name, fn, counter, board in sources:
        if name not in first: continue
        t0, a = first[name]
        try: b, dt = fn(), time.time() - t0
        except Exception as e:
            out.append({"source": name, "found": True, "hint": str(e)}); continue
        w = dict((r, (b[r] - a[r]) / dt if counter else (a[r] + b[r]) / 2.0) for r in b if r in a)
        rails = board or sorted(w)
        out.append({"source": name, "found": True, "hint": None,
                    "rails": [[r, round(x, 4)] for r, x in sorted(w.items())],
                    "board": ",".join(rails), "board_w": round(sum(w[r] for r in rails), 4)})
    order = ["pi5-pmic", "ina3221", "rapl", "nvml"]  # --power auto's order
    return sorted(out, key=lambda o: order.index(o["source"]))


def read_name(p):
    try:
        with open(p) as f: return f.read().strip()
    except (IOError, OSError): return None


if __name__ == "__main__":
    main()
