"""`bench-host doctor`'s facts, gathered on the device: `python3 -c <this source> REMOTE_ROOT`
prints one JSON object (python, numpy, interpreters, free disk, board, sensors). Written for any
Python 3 on purpose (no f-strings, no annotations): an old interpreter must still report its
version, so that doctor can say it is too old."""


def main():
    import glob, json, os, platform, shutil, subprocess, sys
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
        try:
            import importlib.util
            if importlib.util.find_spec(mod) is None: return None
        except Exception: return None
        return dist_version(*dists)
    def run(argv):
        try:
            return subprocess.check_output(argv, stderr=subprocess.STDOUT, timeout=5).decode().strip()
        except Exception: return None
    root = sys.argv[1]
    probe = root
    while probe and not os.path.isdir(probe): probe = os.path.dirname(probe)
    free = None
    try:
        st = os.statvfs(probe or "/"); free = st.f_bavail * st.f_frsize
    except Exception: pass
    np = None
    try:
        import numpy; np = numpy.__version__
    except Exception: pass
    zones = []
    for z in sorted(glob.glob("/sys/class/thermal/thermal_zone*")):
        t = read(z + "/temp")
        if t and t.lstrip("-").isdigit(): zones.append([read(z + "/type") or z, int(t) / 1000.0])
    rails = []
    for lab in sorted(glob.glob("/sys/bus/i2c/drivers/ina3221*/*/hwmon/hwmon*/in*_label")):
        base = lab[:-len("_label")]; idx = base[len(os.path.dirname(base)) + 3:]
        d = os.path.dirname(lab)
        rails.append([read(lab), read(d + "/in" + idx + "_input"), read(d + "/curr" + idx + "_input")])
    vc = shutil.which("vcgencmd") if hasattr(shutil, "which") else None
    out = {
        "python": list(sys.version_info[:3]), "executable": sys.executable,
        "machine": platform.machine(), "glibc": platform.libc_ver()[1] or None,
        "numpy": np, "psutil": find("psutil", "psutil"),
        "interpreters": {"ai_edge_litert": find("ai_edge_litert", "ai-edge-litert"),
                         "tflite_runtime": find("tflite_runtime", "tflite-runtime"),
                         "tensorflow": find("tensorflow", "tensorflow", "tensorflow-cpu",
                                            "tensorflow-aarch64")},
        "free_bytes": free, "free_path": probe,
        "model": read("/proc/device-tree/model"), "cores": os.cpu_count(),
        "governor": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "freq_khz": read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq"),
        "thermal_zones": zones,
        "vcgencmd_temp": run([vc, "measure_temp"]) if vc else None,
        "throttled": run([vc, "get_throttled"]) if vc else None,
        "tegrastats": bool(shutil.which("tegrastats")) if hasattr(shutil, "which") else False,
        "power_rails": rails,
    }
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
