"""`bench-host doctor`'s accelerator facts, gathered on the device: `python3 -c <this source>
PROBE_MODEL_B64 GPU_LIBS DELEGATE_LIB...` prints one JSON object: the LiteRT version and whether it has
CompiledModel and a GPU accelerator, the Vulkan loader and drivers, the GPU adapter LiteRT selects
(by compiling the probe model on the GPU in a child: LiteRT names its adapter only in its log),
NPU dispatch libraries, and where the named delegate libraries are. GPU_LIBS is the agent's own
list of LiteRT GPU accelerator libraries (units.GPU_ACCELERATOR_LIBS) as a comma-separated
string, so the list is written once. Any Python 3 (no f-strings), stdlib only."""


def main():
    import json, sys
    GPU_LIBS = [n for n in sys.argv[2].split(",") if n]
    out = {"litert": None, "compiled_model": False, "gpu_accelerator": None, "vulkan": None,
           "icds": [], "adapter": None, "adapter_error": None, "npu": [], "delegates": {}}
    litert_facts(out, GPU_LIBS)
    vulkan_facts(out)
    out["delegates"] = delegate_paths(sys.argv[3:])
    if out["compiled_model"] and out["gpu_accelerator"] and out["vulkan"] is True:
        gpu_adapter(out, sys.argv[1])
    sys.stdout.write(json.dumps(out) + "\n")


def litert_facts(out, gpu_libs):
    """LiteRT's version, whether it has CompiledModel and a GPU accelerator library, and its NPU
    dispatch libraries (each loaded, or why not)."""
    import ctypes, glob, os
    folder = None
    try:
        import importlib.util
        spec = importlib.util.find_spec("ai_edge_litert")
        if spec is not None and spec.origin:
            folder = os.path.dirname(spec.origin)
            try:
                from importlib import metadata
                out["litert"] = metadata.version("ai-edge-litert")
            except Exception:
                out["litert"] = "present"
    except Exception:
        pass
    if folder:
        out["compiled_model"] = os.path.isfile(os.path.join(folder, "compiled_model.py"))
        libs = [n for n in gpu_libs if os.path.isfile(os.path.join(folder, n))]
        out["gpu_accelerator"] = libs[0] if libs else None
        for lib in sorted(glob.glob(os.path.join(folder, "vendors", "*", "dispatch", "*.so"))):
            try:
                ctypes.CDLL(lib); err = None
            except OSError as e:
                err = str(e)
            out["npu"].append([lib.split(os.sep)[-3], os.path.basename(lib), err])


def vulkan_facts(out):
    """Whether the Vulkan loader loads (or why not), and the installed drivers' ICD files."""
    import ctypes, glob, os
    try:
        ctypes.CDLL("libvulkan.so.1"); out["vulkan"] = True
    except OSError as e:
        out["vulkan"] = str(e)
    for d in ("/usr/share/vulkan/icd.d", "/etc/vulkan/icd.d", "/usr/local/share/vulkan/icd.d"):
        out["icds"] += sorted(os.path.basename(p) for p in glob.glob(os.path.join(d, "*.json")))


def delegate_paths(names):
    """Where each named delegate library is, in the usual library folders and LD_LIBRARY_PATH."""
    import os
    dirs = ["/usr/lib", "/usr/local/lib", "/usr/lib/aarch64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
            "/usr/lib/arm-linux-gnueabihf"]
    dirs += [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(":") if p]
    found = {}
    for name in names:
        hits = [os.path.join(d, name) for d in dirs if os.path.isfile(os.path.join(d, name))]
        found[name] = hits[0] if hits else None
    return found


def gpu_adapter(out, model_b64):
    """The GPU adapter LiteRT selects, from the log of a child that compiles the probe model on
    the GPU (LiteRT names its adapter only there), or why none was."""
    import base64, os, subprocess, sys, tempfile, zlib
    work = tempfile.mkdtemp(prefix="edgebench-doctor-")
    model = os.path.join(work, "probe.tflite")
    with open(model, "wb") as fh:
        fh.write(zlib.decompress(base64.b64decode(model_b64)))
    env = dict(os.environ)
    if not env.get("XDG_RUNTIME_DIR") or not os.path.isdir(env["XDG_RUNTIME_DIR"]):
        env["XDG_RUNTIME_DIR"] = work
    probe = ("from ai_edge_litert import compiled_model as cm; "
             "cm.CompiledModel.from_file(%r, hardware_accel=cm.HardwareAccelerator.GPU"
             " | cm.HardwareAccelerator.CPU)" % model)
    try:
        p = subprocess.run([sys.executable, "-c", probe], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=120, env=env)
        log = p.stdout.decode("utf-8", "replace")
        lines = [l.split("Selected adapter:", 1)[1].strip() for l in log.splitlines()
                 if "Selected adapter:" in l]
        out["adapter"] = lines[-1] if lines else None
        if p.returncode != 0 or not lines:
            errs = [l.strip() for l in log.splitlines() if "ERROR" in l or "No adapters" in l]
            out["adapter_error"] = (errs[-1] if errs else "exit status %d" % p.returncode)[:300]
    except Exception as e:
        out["adapter_error"] = "probe failed: %s" % e
    try:
        os.remove(model); os.rmdir(work)
    except OSError:
        pass


if __name__ == "__main__":
    main()
