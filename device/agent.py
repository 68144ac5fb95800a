#!/usr/bin/env python3
"""edgebench device agent: times, measures memory and accuracy of .tflite models on the device.

One self-contained file: it imports only the standard library, numpy, a TFLite interpreter
(ai_edge_litert, tflite_runtime or tensorflow.lite) and, where present, psutil. It must run on
Python 3.8 and newer. The host package reads the schema section below (the single definition of
the bundle manifest, the model card and the CSV columns shared by host and device).
"""
from __future__ import annotations

# ---------------------------------------------------------------------------------------------
# SCHEMA: shared by host and device, defined only here. Bump a version when a field changes
# meaning or disappears; adding a trailing CSV column is also a bump (readers check it).
# ---------------------------------------------------------------------------------------------
MODEL_CARD_SCHEMA = "edgebench.model-card/1"
MANIFEST_SCHEMA = "edgebench.manifest/1"
# 2: the compute-unit columns (compute_unit ... delegated_nodes); 3: round, predictions.csv
RESULTS_SCHEMA_VERSION = 3

# Model card (JSON beside every .tflite, and one entry per model in manifest.json):
#   schema, name ("resnet18.int8"), file, sha256, size_bytes, recipe, architecture,
#   input:  {shape [1,H,W,C], dtype, layout "NHWC", scale, zero_point,
#            normalization {pixel_scale, mean [C], std [C]}}   # x = (u8*pixel_scale - mean)/std
#   output: {shape, dtype, scale, zero_point}
#   class_names, positive_class (index of the positive class, "malignant"),
#   source {checkpoint, onnx, saved_model, data_spec, img_size, split_seed},
#   tools {torch, onnx, onnx2tf, tensorflow, ...}, conversion_seconds,
#   verification {max_abs_diff, agreement, accuracy, n, reference "torch"|"onnxruntime"}
#                (null when not verified)
#   Float tensors carry scale 0.0 and zero_point 0 (as the interpreter reports them). A card the
#   bundle derived from a bare .tflite (no card beside it) has "derived": true.
#   Optional keys, host-side only (the agent ignores them; host/export/card.py EXTRA_KEYS):
#   census {ops, kind "float"|"fp16-weights"|"dynamic-range"|"integer"|"mixed",
#           op_types {OP: {count, types {"in,types->out,types": n}}}, io {input, output},
#           integer_ops, float_op_count, float_ops [{index, op, output}], q_dq_pairs,
#           dequantize_in_graph, quantize_in_graph, requantize, custom_ops [name],
#           extreme_scales [{index, op, tensor, scale}]}   (every model; the bundle adds it)
#   layers_csv "<name>.layers.csv", worst_layers [{rank, tensor, op, scale, rmse_over_scale,
#           mean_error, float_min, float_max}]   (quantize --debug for int8; int8-mixed)
#   mixed {keep_float [tensor], k, layers, agreement, target_agreement, reached, tried [[k, a]],
#           note, ranking}   (int8-mixed only)
#   converter "onnx2tf"|"litert-torch"   (the route that built it; its models are named
#           <arch>.<converter>.<recipe> except onnx2tf's, <arch>.<recipe>)
# Manifest (bundle/manifest.json):
#   schema, run_id, created (ISO 8601 UTC), testset ("testset.npz" or null),
#   models: [card + {"file": "models/<name>.tflite", "reference": "reference/<arch>.npy" or null}]
# testset.npz: images uint8 N×H×W×C, labels int64 N, class_names str[K]
# reference/<arch>.npy: float32 N×K logits of the float (PyTorch) model on the test set

RESULT_COLUMNS = (
    "schema_version", "run_id", "model", "architecture", "recipe", "sha256", "file_size_mb",
    "threads", "xnnpack", "runtime", "runtime_version",
    "compute_unit", "round", "accelerator", "api", "accelerator_device", "software_accelerator",
    "fully_accelerated", "delegated_nodes",
    "status", "error",
    "load_ms", "first_inference_ms", "warmup_runs",
    "count", "mean_ms", "std_ms", "min_ms", "p50_ms", "p90_ms", "p95_ms", "p99_ms", "max_ms",
    "rss_before_mb", "rss_after_load_mb", "peak_rss_mb",
    "n_test", "accuracy", "sensitivity", "specificity", "auc", "tn", "fp", "fn", "tp",
    "agreement",
    "temp_before_c", "temp_after_c", "throttled", "throttled_flags",
    "device_model", "machine", "cpu", "cores", "governor", "freq_mhz", "os",
    "python", "numpy", "emulated", "hostname", "started_utc",
)
# results.csv: status "ok" | "error"; `error` holds the failure of an error row, and on an ok row a
# note on what could not be measured (e.g. "accuracy not measured: testset.npz is missing").
# The compute unit (schema 2): compute_unit is the unit as asked for and part of the row's key
# ("cpu", "gpu", "gpu!", "npu", "delegate:LIB[:k=v;...]"); accelerator is cpu|gpu|npu|delegate;
# api is interpreter|compiled_model; accelerator_device names what ran it (the GPU adapter as
# LiteRT selected it, the delegate library, or the CPU kernels); software_accelerator is true for
# a software GPU (llvmpipe, SwiftShader, any "CPU / Software" adapter), whose timings say nothing
# about real hardware; fully_accelerated is CompiledModel.is_fully_accelerated() (empty where the
# API does not tell); delegated_nodes is how many nodes of the model a delegate took, where known.
# round (schema 3): 1..--rounds; the plan runs that many times, models interleaved (A B C A B C),
# one row per round, so drift between rounds shows as their spread. Accuracy is measured in the
# first round a configuration runs in and copied to its other rounds and thread counts.
SAMPLE_COLUMNS = ("schema_version", "run_id", "model", "sha256", "threads", "xnnpack", "runtime",
                  "compute_unit", "round", "run", "latency_ms")
# predictions.csv (schema 3): one line per test image for each configuration whose accuracy was
# measured (model sha256 x runtime x xnnpack x compute_unit: threads and rounds do not change
# outputs): image is the index in testset.npz, predicted the argmax class, score the softmax
# probability of positive_class (the card's). The raw material of the host's paired tests.
PREDICTION_COLUMNS = ("schema_version", "run_id", "model", "sha256", "runtime", "xnnpack",
                      "compute_unit", "testset", "positive_class", "image", "label", "predicted",
                      "score")
# robustness.csv (schema 3): one line per configuration (as predictions.csv) x corrupted test set
# of the bundle's "robustness" entry (MedMNIST-C corruptions, written by bench-host bundle):
# accuracy etc. on that set, and agreement_fp32 = share of images whose class equals the class
# the same architecture's fp32 model gave on the same corrupted images under the same compute
# unit (empty where that fp32 row is not measured). predictions.csv carries those images too,
# testset "<corruption>-<severity>" ("clean" for testset.npz). status/error as in results.csv:
# a corrupted set missing on the device or of the wrong shape is an error line, the rest goes on.
ROBUSTNESS_COLUMNS = ("schema_version", "run_id", "model", "architecture", "recipe", "sha256",
                      "runtime", "xnnpack", "compute_unit", "corruption", "severity", "n",
                      "accuracy", "sensitivity", "specificity", "auc", "agreement_fp32",
                      "status", "error")

GUIDE = """
Usage:
  python3 agent.py --bundle DIR --out DIR [--threads 1,2,4] [--accelerators cpu,gpu,npu]
      [--delegate LIB[:key=value;...]] [--rounds N] [--warmup N] [--min-runs N] [--min-seconds S]
      [--max-seconds S] [--models NAME,...] [--runtime auto|litert|tflite-runtime|tensorflow]
      [--xnnpack on|off] [--robustness-images N] [--cooldown-temp C] [--cooldown-timeout S]
      [--sysfs-root DIR]

What one row means (results.csv, RESULT_COLUMNS): one model x compute unit x thread count x
round, measured in a fresh child process (a re-exec of this file with --child) so that its
memory figures are that model's alone. Inside the child: import the interpreter, RSS before
load; load + allocate (load_ms); RSS after load; one first inference (first_inference_ms);
--warmup invokes; then invokes until both --min-runs and --min-seconds are met, capped by
--max-seconds. Only invoke() is between the two time.perf_counter_ns reads (on an accelerator:
the run and the read of its output); the input is set once before. peak_rss_mb (VmHWM) is read
after the timed loop, before the test set is loaded, so it is the model's peak, not the test
set's. Accuracy runs the whole testset.npz through the model (inputs normalised per the card,
quantized with the model's own scale/zero point for int8/uint8/int16 inputs, outputs
dequantized); it is measured once per model and configuration and copied to the rows of its
other thread counts and rounds (outputs do not depend on them). MB means 2**20 bytes. Raw
samples: latency_samples.csv; per-image predictions: predictions.csv. When the bundle carries
corrupted test sets (bench-host bundle --robustness), the same child runs each of them after the
clean set (--robustness-images N: the first N images of each) and robustness.csv gets a line per
set; fp32 is measured first within each architecture so the others' agreement_fp32 can be given.

Choices worth knowing:
- Compute units (--accelerators; `--accelerators help` lists them): cpu is the Interpreter of
  the chosen runtime; gpu and npu run through LiteRT's CompiledModel (ai-edge-litert >= 2.3) with
  the CPU as fallback, and their timed region is run + read of the output, because the run alone
  only enqueues work on the accelerator. `gpu!`/`npu!` make a model that does not run wholly on
  the accelerator an error row. --delegate adds an Interpreter row with an external delegate.
  Accuracy is measured per compute unit, so fp16 arithmetic inside a GPU shows in the agreement.
  Without XDG_RUNTIME_DIR the agent makes a private one for the GPU driver.
- A missing testset.npz (or a manifest with "testset": null) is not fatal: timing and memory
  still run, the accuracy columns stay empty, and `error` says "accuracy not measured: ..." on an
  otherwise ok row. The same note appears when the card has no input normalization (a bare
  .tflite bundled without --testset) or the test images do not fit the model's input.
- Resume: rows with status=ok already in OUT/results.csv for the same sha256, threads, xnnpack,
  runtime and compute_unit are skipped. Error rows are retried: the old error row is dropped (the
  file is rewritten atomically) and the new outcome appended. Samples without an ok row are
  dropped too.
- The model file's sha256 is checked against the manifest; a mismatch is an error row.
- Sensors: every environment file (thermal zones, cpufreq, /proc/device-tree/model, /proc/cpuinfo,
  /etc/os-release, binfmt_misc) is read through host_path(), rooted at --sysfs-root. Absent
  sensors are empty cells / null in env.json, never guessed. temp_*_c is the hottest thermal zone.
  throttled = any of `vcgencmd get_throttled` bits 0-3 (under-voltage, capped, throttled, soft
  limit) set before or after the row; throttled_flags is the raw value after it.
- emulated: EDGEBENCH_EMULATED=1/0 forces it; otherwise true when binfmt_misc has an enabled
  qemu handler for this process's own architecture (a kernel only needs one when it cannot run
  that architecture natively, i.e. we are under qemu-user).

Progress: one JSON object per line on stdout; human messages go to stderr.
  {"event": "start", "run_id", "runtime", "runtime_version", "models", "rows"}
  {"event": "model_start", "model", "index", "total", "threads": [..], "units": [..], "round"}
  {"event": "skip", "model", "threads", "unit", "round"}     (already measured)
  {"event": "row", "model", "threads", "unit", "round", "status", "p50_ms", "accuracy",
   "peak_rss_mb"}
  {"event": "error", "model", "threads", "unit", "message"}  (also "fatal": true before exit 2)
  {"event": "model_done", "model", "index", "total", "round"}   (index/total count model x round)
  {"event": "done", "rows", "skipped", "errors", "out"}
Exit status: 0 when the run finished (error rows included), 2 for bad input (unknown runtime,
no interpreter, missing bundle, unknown model name), 1 for anything unexpected.
"""
__doc__ = (__doc__ or "") + GUIDE

import argparse
import csv
import glob
import hashlib
import io
import json
import math
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np

# name -> (module to import, distribution name for its version)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "tensorflow"),
}
CHILD_TIMEOUT_S = 3600  # a hung child becomes an error row instead of a hung run
COOLDOWN_POLL_S = 2.0
INT_DTYPES = ("int8", "uint8", "int16")


class AgentError(Exception):
    """Bad input: printed as one line, exit status 2."""


def emit(event: str, **fields) -> None:
    fields = dict({"event": event}, **fields)
    sys.stdout.write(json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


def say(message: str) -> None:
    sys.stderr.write("agent: " + message + "\n")
    sys.stderr.flush()


def one_line(text, limit: int = 400) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


# ---------------------------------------------------------------------------------------------
# Environment and sensors
# ---------------------------------------------------------------------------------------------
SYSFS_ROOT = "/"


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


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ---------------------------------------------------------------------------------------------
# Interpreters
# ---------------------------------------------------------------------------------------------
def import_runtime(name: str):
    """Import the interpreter module of a runtime; returns (module, version)."""
    module_name, dist = RUNTIMES[name]
    module = __import__(module_name, fromlist=["Interpreter"])
    if name == "tensorflow":
        return module, module.__version__
    top = sys.modules[module_name.split(".")[0]]
    version = getattr(top, "__version__", None)
    if not version:
        try:
            from importlib import metadata
            version = metadata.version(dist)
        except Exception:
            version = "unknown"
    return module, version


def resolve_runtime(requested: str):
    """(name, module, version) of the runtime to use; AgentError when none can be imported."""
    names = list(RUNTIMES) if requested == "auto" else [requested]
    problems = []
    for name in names:
        try:
            module, version = import_runtime(name)
            return name, module, version
        except Exception as exc:  # ImportError, or a broken install (numpy ABI mismatch, ...)
            problems.append("%s: %s" % (RUNTIMES[name][0], one_line(exc, 120)))
    raise AgentError("no usable TFLite interpreter (" + "; ".join(problems) + ")")


def make_interpreter(name: str, module, path: str, threads: int, xnnpack: bool, delegates=()):
    if name == "tensorflow":
        cls, resolver = module.lite.Interpreter, module.lite.experimental.OpResolverType
    else:
        cls, resolver = module.Interpreter, module.OpResolverType
    kind = resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    extra = {"experimental_delegates": list(delegates)} if delegates else {}
    return cls(model_path=path, num_threads=threads, experimental_op_resolver_type=kind, **extra)


def load_delegate(name: str, module, library: str, options: dict):
    """An external delegate through the runtime's load_delegate (Edge TPU, Arm NN, VX, ...)."""
    loader = module.lite.experimental.load_delegate if name == "tensorflow" else module.load_delegate
    if os.sep in library and not os.path.isfile(library):
        raise AgentError("delegate library missing: %s" % library)
    try:
        return loader(library, options or None)
    except (ValueError, RuntimeError, OSError, AttributeError) as exc:
        # AttributeError: a library without tflite_plugin_create_delegate (not a delegate).
        raise AgentError("delegate %s did not load: %s" % (library, one_line(exc, 200)))


# ---------------------------------------------------------------------------------------------
# Compute units: the axis beside the thread count. One registry; a row's compute_unit is the name
# as asked for ("gpu!" = gpu, and the whole model must run on it).
#   cpu       the Interpreter of the chosen runtime (any runtime, old boards included)
#   gpu, npu  LiteRT's CompiledModel (ai-edge-litert >= 2.3) with the CPU as fallback for ops the
#             accelerator lacks; the GPU accelerator is WebGPU (Vulkan on Linux), the NPU one a
#             vendor dispatch library
#   delegate  --delegate LIB[:key=value;...]: the Interpreter with an external delegate
# ---------------------------------------------------------------------------------------------
COMPUTE_UNITS = {
    "cpu": {"api": "interpreter", "flags": (),
            "help": "CPU kernels through the Interpreter (XNNPACK unless --xnnpack off)"},
    "gpu": {"api": "compiled_model", "flags": ("GPU", "CPU"),
            "help": "GPU through LiteRT CompiledModel (WebGPU/Vulkan), CPU fallback"},
    "npu": {"api": "compiled_model", "flags": ("NPU", "CPU"),
            "help": "NPU through LiteRT CompiledModel and a vendor dispatch library, CPU fallback"},
}
GPU_ACCELERATOR_LIBS = ("libLiteRtWebGpuAccelerator.so", "libLiteRtOpenClAccelerator.so",
                        "libLiteRtGpuAccelerator.so")
SOFTWARE_ADAPTER_HINTS = ("cpu / software", "arch=software", "llvmpipe", "lavapipe", "swiftshader")


def unit_help() -> str:
    lines = ["%-9s %s" % (k, v["help"]) for k, v in COMPUTE_UNITS.items()]
    lines.append("%-9s %s" % ("gpu!/npu!", "the same, and an error row unless the whole model "
                                           "runs on the accelerator"))
    return "\n".join(lines)


def parse_units(accelerators: str, delegates) -> list:
    """--accelerators and --delegate -> the list of compute units, each a dict that travels to the
    child in its job: spec (the row's compute_unit), accelerator, api, require_full, delegate."""
    units = []
    for name in [a.strip() for a in accelerators.split(",") if a.strip()]:
        base, require_full = (name[:-1], True) if name.endswith("!") else (name, False)
        if base not in COMPUTE_UNITS or (require_full and base == "cpu"):
            raise AgentError("unknown accelerator %r; choose from: %s (gpu!/npu! require full "
                             "acceleration); external delegates: --delegate LIB[:key=value;...]"
                             % (name, ", ".join(COMPUTE_UNITS)))
        units.append({"spec": name, "accelerator": base, "api": COMPUTE_UNITS[base]["api"],
                      "require_full": require_full, "delegate": None})
    for spec in delegates or ():
        library, _, opts = spec.partition(":")
        options = {}
        for item in [o for o in opts.split(";") if o.strip()]:
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise AgentError("--delegate %r: options are key=value pairs separated by ';'"
                                 % spec)
            options[key.strip()] = value.strip()
        if not library.strip():
            raise AgentError("--delegate needs a library, e.g. libedgetpu.so.1 or "
                             "/usr/lib/libarmnnDelegate.so:backends=CpuAcc")
        units.append({"spec": "delegate:" + spec, "accelerator": "delegate",
                      "api": "interpreter", "require_full": False,
                      "delegate": {"library": library.strip(), "options": options}})
    if not units:
        raise AgentError("--accelerators is empty and no --delegate was given: nothing to run on")
    if len(set(u["spec"] for u in units)) != len(units):
        raise AgentError("a compute unit is listed twice in --accelerators/--delegate")
    return units


def litert_compiled_model(unit: dict, has: str):
    """(module ai_edge_litert, version) when this device has LiteRT's CompiledModel, else an
    AgentError that says what to install; `has` names the runtime the device does have."""
    try:
        import ai_edge_litert
        from ai_edge_litert import compiled_model  # noqa: F401  (2.1+)
    except Exception as exc:
        raise AgentError("%s needs ai-edge-litert >= 2.3 (LiteRT's CompiledModel); this device "
                         "has %s (%s): pip install ai-edge-litert==2.3.0 (Python >= 3.10)"
                         % (unit["accelerator"], has, one_line(exc, 100)))
    return ai_edge_litert, import_runtime("litert")[1]


def check_unit_available(unit: dict, has: str) -> None:
    """What a CompiledModel unit needs beyond the wheel, checked before the runtime is asked, so
    the error row says what is missing instead of LiteRT's bare status code."""
    import ctypes
    litert, version = litert_compiled_model(unit, has)
    folder = os.path.dirname(litert.__file__)
    if unit["accelerator"] == "gpu":
        if not any(os.path.isfile(os.path.join(folder, lib)) for lib in GPU_ACCELERATOR_LIBS):
            raise AgentError("gpu needs ai-edge-litert >= 2.3: ai-edge-litert %s ships no GPU "
                             "accelerator (%s)" % (version, GPU_ACCELERATOR_LIBS[0]))
        if sys.platform.startswith("linux"):
            try:
                ctypes.CDLL("libvulkan.so.1")
            except OSError:
                raise AgentError("libvulkan.so.1 not found: the GPU accelerator needs the Vulkan "
                                 "loader and a driver (Debian: apt install libvulkan1 "
                                 "mesa-vulkan-drivers; Jetson: the NVIDIA L4T driver)")
    elif unit["accelerator"] == "npu":
        libs = sorted(glob.glob(os.path.join(folder, "vendors", "*", "dispatch", "*.so")))
        problems = []
        for lib in libs:
            try:
                ctypes.CDLL(lib)
                return
            except OSError as exc:
                problems.append("%s (%s)" % (lib.split(os.sep)[-3], one_line(exc, 160)))
        raise AgentError("NPU dispatch library missing: %s; install the vendor's NPU runtime"
                         % ("; ".join(problems) if problems else
                            "ai-edge-litert %s has no vendors/*/dispatch library" % version))


def adapter_from_log(text: str):
    """(adapter, software?) from the GPU accelerator's log: LiteRT prints the adapter it selected
    ("Selected adapter: llvmpipe (...), backend=Vulkan, adapterType=CPU / Software") and has no
    API that returns it."""
    found = None
    for line in text.splitlines():
        if "Selected adapter:" in line:
            found = line.split("Selected adapter:", 1)[1].strip()
    if not found:
        return None, None
    return found, any(h in found.lower() for h in SOFTWARE_ADAPTER_HINTS)


def partition_from_log(text: str):
    """Ops the accelerator took when it took only some ("1 operations will run on the GPU, and
    the remaining 5 operations will run on the CPU"); None when the log does not say."""
    import re
    found = re.search(r"(\d+) operations will run on the (?:GPU|NPU)", text)
    return int(found.group(1)) if found else None


class native_stderr:
    """Sends file descriptor 2 to a temporary file for the duration (the native runtime logs
    there), then copies what was written back to the real stderr; .text holds it."""

    def __enter__(self):
        import tempfile
        sys.stderr.flush()
        self._file = tempfile.TemporaryFile()
        self._saved = os.dup(2)
        os.dup2(self._file.fileno(), 2)
        self.text = ""
        return self

    def __exit__(self, *exc):
        sys.stderr.flush()
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._file.seek(0)
        self.text = self._file.read().decode("utf-8", "replace")
        self._file.close()
        sys.stderr.write(self.text)
        return False


# ---------------------------------------------------------------------------------------------
# Inputs, outputs, metrics (the agent's own copy of edgebench.host.metrics; a test compares them)
# ---------------------------------------------------------------------------------------------
def to_model_input(images_u8, normalization, dtype, scale: float, zero_point: int):
    """uint8 N×H×W×C pixels -> the model's input tensor: normalised per the card, then quantized
    with the model's own scale/zero point for integer inputs (never raw pixels into int8)."""
    dtype = np.dtype(dtype)
    if dtype.kind in "iu" and not scale:
        # An integer input without quantization parameters takes pixels as they are.
        return np.clip(images_u8, np.iinfo(dtype).min, np.iinfo(dtype).max).astype(dtype)
    norm = normalization or {"pixel_scale": 1.0 / 255.0, "mean": [0.0], "std": [1.0]}
    x = images_u8.astype(np.float32) * np.float32(norm["pixel_scale"])
    x = (x - np.asarray(norm["mean"], np.float32)) / np.asarray(norm["std"], np.float32)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return np.clip(np.round(x / scale + zero_point), info.min, info.max).astype(dtype)
    return x.astype(dtype)


def dequantize(values, scale: float, zero_point: int):
    values = np.asarray(values)
    if values.dtype.kind in "iu" and scale:
        return (values.astype(np.float32) - zero_point) * np.float32(scale)
    return values.astype(np.float32)


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def roc_auc(labels, scores) -> float:
    """Rank-sum AUC with tied scores averaged; NaN when one class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    values, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    first_rank = np.cumsum(counts) - counts + 1.0
    ranks = (first_rank + (counts - 1) / 2.0)[inverse]
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def classification_metrics(labels, logits, positive: int = 1) -> dict:
    labels = np.asarray(labels).astype(np.int64)
    logits = np.asarray(logits)
    pred = logits.argmax(axis=1)
    pos_true, pos_pred = labels == positive, pred == positive
    tp, tn = int((pos_true & pos_pred).sum()), int((~pos_true & ~pos_pred).sum())
    fp, fn = int((~pos_true & pos_pred).sum()), int((pos_true & ~pos_pred).sum())
    n = len(labels)
    nan = float("nan")
    return {"n": n, "accuracy": (tp + tn) / n if n else nan,
            "sensitivity": tp / (tp + fn) if tp + fn else nan,
            "specificity": tn / (tn + fp) if tn + fp else nan,
            "auc": roc_auc(pos_true, softmax(logits)[:, positive]),
            "tn": tn, "fp": fp, "fn": fn, "tp": tp}


def latency_stats(samples_ns) -> dict:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50, p90, p95, p99 = np.percentile(ms, [50, 90, 95, 99])
    std = ms.std(ddof=1) if len(ms) > 1 else 0.0
    return {"count": len(ms), "mean_ms": ms.mean(), "std_ms": std,
            "min_ms": ms.min(), "p50_ms": p50, "p90_ms": p90, "p95_ms": p95, "p99_ms": p99,
            "max_ms": ms.max()}


# ---------------------------------------------------------------------------------------------
# The child: one model, one thread count
# ---------------------------------------------------------------------------------------------
def memory_mb():
    """(current RSS, peak RSS) of this process in MB: VmRSS/VmHWM, else psutil / ru_maxrss."""
    try:
        with open("/proc/self/status") as fh:
            status = dict(line.split(":", 1) for line in fh if ":" in line)
        return (int(status["VmRSS"].split()[0]) / 1024.0, int(status["VmHWM"].split()[0]) / 1024.0)
    except (OSError, KeyError, ValueError):
        pass
    import resource
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak = peak / 1024.0 if sys.platform.startswith("linux") else peak / 2.0 ** 20
    try:
        import psutil
        return psutil.Process().memory_info().rss / 2.0 ** 20, peak
    except Exception:
        return None, peak


def time_invokes(invoke, min_runs: int, min_ns: int, max_ns: int) -> list:
    """Invoke until both min_runs and min_ns are reached, or max_ns has passed. Only invoke()
    sits between the two clock reads; the loop's own bookkeeping is outside them."""
    clock = time.perf_counter_ns
    samples = []
    add = samples.append
    start = clock()
    while True:
        t0 = clock()
        invoke()
        t1 = clock()
        add(t1 - t0)
        if (len(samples) >= min_runs and t1 - start >= min_ns) or t1 - start >= max_ns:
            return samples


class InterpreterSession:
    """cpu and delegate units: the Interpreter of the chosen runtime; invoke() is synchronous."""

    def __init__(self, job: dict, module):
        unit = job["unit"]
        delegates, lib = [], None
        if unit["delegate"]:
            lib = unit["delegate"]["library"]
            delegates = [load_delegate(job["runtime"], module, lib, unit["delegate"]["options"])]
        try:
            interp = make_interpreter(job["runtime"], module, job["path"], job["threads"],
                                      job["xnnpack"], delegates)
        except (ValueError, RuntimeError) as exc:
            if not lib:
                raise
            # TFLite appends its own note to the delegate's message without a separator.
            why = str(exc).replace("Restored original execution plan", "; restored the "
                                   "original execution plan")
            raise AgentError("delegate %s failed on this model: %s" % (lib, one_line(why, 240)))
        # Counted before allocate_tensors(): XNNPACK, the default delegate, is applied there and
        # adds delegate nodes of its own.
        taken = delegated_nodes(interp) if lib else None
        interp.allocate_tensors()
        inputs, outputs = interp.get_input_details(), interp.get_output_details()
        if len(inputs) != 1:
            raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                             % len(inputs))
        inp, out = inputs[0], outputs[0]
        self.shape = [int(s) for s in inp["shape"]]
        self.input_dtype = np.dtype(inp["dtype"])
        self.in_q = (float(inp["quantization"][0]), int(inp["quantization"][1]))
        self.out_q = (float(out["quantization"][0]), int(out["quantization"][1]))
        self._interp, self._in, self._out = interp, inp["index"], out["index"]
        self.invoke = interp.invoke
        self.info = {"accelerator_device": os.path.basename(lib) if lib else
                     ("XNNPACK" if job["xnnpack"] else "builtin kernels"),
                     "software_accelerator": None if lib else False}
        if lib:
            self.info["delegated_nodes"] = taken

    def set_input(self, x) -> None:
        self._interp.set_tensor(self._in, x)

    def output(self):
        return self._interp.get_tensor(self._out)


def delegated_nodes(interp):
    """How many of the model's nodes a delegate took, or None where the interpreter does not
    say. The Python API has no execution plan, but its op list keeps the replaced nodes and adds
    one DELEGATE node per partition, whose inputs are what the partition reads from outside and
    whose outputs what it hands on: walking back from those outputs through the original
    producers, never past a partition input, visits exactly the nodes it replaced."""
    try:
        ops = interp._get_ops_details()
    except Exception:
        return None
    producer, by_index = {}, {}
    for op in ops:
        by_index[int(op["index"])] = op
        if op["op_name"] != "DELEGATE":
            for t in op["outputs"]:
                producer[int(t)] = int(op["index"])
    taken = set()
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary = set(int(t) for t in op["inputs"])
        stack = [int(t) for t in op["outputs"]]
        while stack:
            node = producer.get(stack.pop())
            if node is None or node in taken:
                continue
            taken.add(node)
            stack.extend(int(t) for t in by_index[node]["inputs"]
                         if int(t) >= 0 and int(t) not in boundary)
    return len(taken)


class CompiledModelSession:
    """gpu and npu units: LiteRT's CompiledModel. On an asynchronous accelerator run_by_index()
    returns once the work is enqueued (0.06 ms against 1.4 ms for the finished inference on the
    test model), so invoke() is the run *and* the read of the output into host memory: the
    completed inference that an app pays for."""

    def __init__(self, job: dict, module=None):
        unit = job["unit"]
        check_unit_available(unit, "%s %s" % (job["runtime"], job["runtime_version"]))
        from ai_edge_litert import compiled_model as cm
        flags = 0
        for name in COMPUTE_UNITS[unit["accelerator"]]["flags"]:
            flags |= getattr(cm.HardwareAccelerator, name)
        failure = None
        with native_stderr() as log:
            try:
                if hasattr(cm, "Options"):
                    options = cm.Options(hardware_accelerators=flags,
                                         cpu_options=cm.CpuOptions(num_threads=job["threads"]))
                    model = cm.CompiledModel.from_file(job["path"], options=options)
                else:
                    model = cm.CompiledModel.from_file(job["path"], hardware_accel=flags)
            except Exception as exc:
                failure = exc
        if failure is not None:
            raise AgentError(explain_compile_failure(unit, log.text, failure))
        if unit["accelerator"] == "npu" and "NPU accelerator could not be loaded" in log.text:
            # With CPU fallback the model then runs on the CPU and still calls itself "fully
            # accelerated": that row would be a CPU row under an NPU label.
            raise AgentError("the NPU accelerator did not register (LiteRT: NPU accelerator "
                             "could not be loaded); no NPU was used")
        adapter, software = adapter_from_log(log.text)
        fully = bool(model.is_fully_accelerated())
        if unit["require_full"] and not fully:
            raise AgentError("not fully accelerated: some ops of this model fall back to the CPU "
                             "on the %s (%s asks for the whole model there)"
                             % (unit["accelerator"], unit["spec"]))
        signature = model.get_signature_by_index(0)
        if len(signature["inputs"]) != 1:
            raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                             % len(signature["inputs"]))
        inp = model.get_input_tensor_details(signature["key"])[signature["inputs"][0]]
        out = model.get_output_tensor_details(signature["key"])[signature["outputs"][0]]
        self.shape = [int(s) for s in inp["shape"]]
        self.input_dtype = np.dtype(inp["dtype"])
        # CompiledModel does not report quantization parameters: the card carries the model's own.
        card_in, card_out = job["input"], job.get("output") or {}
        self.in_q = (float(card_in.get("scale") or 0.0), int(card_in.get("zero_point") or 0))
        self.out_q = (float(card_out.get("scale") or 0.0), int(card_out.get("zero_point") or 0))
        self._model = model
        self._ins, self._outs = model.create_input_buffers(0), model.create_output_buffers(0)
        run, ins, outs, read = model.run_by_index, self._ins, self._outs, self._outs[0].read
        count, dtype, last = int(np.prod(out["shape"])), np.dtype(out["dtype"]), [None]

        def invoke():
            run(0, ins, outs)
            last[0] = read(count, dtype)

        self.invoke, self._last = invoke, last
        self.info = {"accelerator_device": adapter or (
                         "%s (adapter not reported)" % unit["accelerator"]),
                     "software_accelerator": software, "fully_accelerated": fully,
                     "delegated_nodes": partition_from_log(log.text)}

    def set_input(self, x) -> None:
        try:
            self._ins[0].write(np.ascontiguousarray(x))
        except ValueError as exc:  # e.g. int16x8: LiteRT 2.3's TensorBuffer has no int16 type
            raise AgentError("CompiledModel cannot take this model's %s input: %s"
                             % (self.input_dtype.name, one_line(exc, 120)))

    def output(self):
        return self._last[0]


def explain_compile_failure(unit: dict, log: str, exc: Exception) -> str:
    """LiteRT's exception carries only a source location; the reason is in its log."""
    if "No adapters found" in log or "Failed to initialize WebGPU" in log:
        return ("no GPU adapter: the GPU accelerator found no Vulkan device (is a Vulkan driver "
                "installed and is this user allowed to use it, e.g. in the render group?)")
    reasons = [line.strip() for line in log.splitlines()
               if line.lstrip().startswith(("ERROR", "E0000", "F0000")) or " ERROR:" in line]
    detail = reasons[-1] if reasons else "%s: %s" % (type(exc).__name__, exc)
    return "CompiledModel for %s failed: %s" % (unit["spec"], one_line(detail, 300))


SESSIONS = {"interpreter": InterpreterSession, "compiled_model": CompiledModelSession}


def child_run(job: dict, result: dict) -> None:
    """Fill `result` step by step, so a failure late in the run still reports what was measured."""
    api = job["unit"]["api"]
    module = import_runtime(job["runtime"])[0] if api == "interpreter" else None
    result["rss_before_mb"] = memory_mb()[0]
    t0 = time.perf_counter_ns()
    session = SESSIONS[api](job, module)
    result["load_ms"] = (time.perf_counter_ns() - t0) / 1e6
    result["rss_after_load_mb"] = memory_mb()[0]
    result.update(session.info)
    shape = session.shape
    card = job["input"]
    if card.get("shape") and [int(s) for s in card["shape"]] != shape:
        raise AgentError("manifest says input shape %s but the model's input is %s"
                         % (list(card["shape"]), shape))
    (in_scale, in_zp), (out_scale, out_zp) = session.in_q, session.out_q
    norm = card.get("normalization")

    images = None
    if job.get("testset"):
        with np.load(job["testset"], allow_pickle=False) as data:
            images = data["images"][:1]
    if images is None or list(images.shape[1:]) != shape[1:]:
        images = np.random.default_rng(0).integers(0, 256, size=[1] + shape[1:], dtype=np.uint8)
    session.set_input(to_model_input(images, norm, session.input_dtype, in_scale, in_zp))
    invoke = session.invoke
    t0 = time.perf_counter_ns()
    invoke()
    result["first_inference_ms"] = (time.perf_counter_ns() - t0) / 1e6
    for _ in range(job["warmup"]):
        invoke()
    result["warmup_runs"] = job["warmup"]
    samples = time_invokes(invoke, job["min_runs"], int(job["min_seconds"] * 1e9),
                           int(job["max_seconds"] * 1e9))
    result["samples_ns"] = samples
    result["peak_rss_mb"] = memory_mb()[1]  # before the test set is loaded: the model's peak

    if job.get("accuracy"):
        with np.load(job["testset"], allow_pickle=False) as data:
            images = data["images"]
        logits = []
        for i in range(len(images)):
            session.set_input(to_model_input(images[i:i + 1], norm, session.input_dtype,
                                             in_scale, in_zp))
            invoke()
            logits.append(dequantize(session.output(), out_scale, out_zp).ravel())
        result["logits"] = np.stack(logits).tolist()
        corrupted = {}
        for item in job.get("robustness") or ():
            with np.load(item["path"], allow_pickle=False) as data:
                images = data["images"][:job["robustness_images"]]
            logits = []
            for i in range(len(images)):
                session.set_input(to_model_input(images[i:i + 1], norm, session.input_dtype,
                                                 in_scale, in_zp))
                invoke()
                logits.append(dequantize(session.output(), out_scale, out_zp).ravel())
            corrupted[item["name"]] = np.stack(logits).tolist()
        result["robustness_logits"] = corrupted
    result["status"] = "ok"


def child_main() -> int:
    """--child: read one job (JSON) on stdin, write one result (JSON) on the original stdout.
    Anything the interpreter prints goes to stderr, so it cannot corrupt the result."""
    try:  # die with the parent (Linux): a SIGKILLed agent leaves no orphan measuring on
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass
    job = json.loads(sys.stdin.read())
    result_fd = os.dup(1)
    os.dup2(2, 1)
    result = {"status": "error"}
    try:
        child_run(job, result)
    except AgentError as exc:
        result.update(status="error", error=one_line(exc))
    except Exception as exc:
        result.update(status="error", error="%s: %s" % (type(exc).__name__, one_line(exc)))
    with os.fdopen(result_fd, "w") as fh:
        json.dump(result, fh)
    return 0


# ---------------------------------------------------------------------------------------------
# Results on disk: appended row by row, flushed and fsynced; resumable
# ---------------------------------------------------------------------------------------------
def row_key(row: dict) -> tuple:
    return (str(row["sha256"]), str(row["threads"]), str(row["xnnpack"]), str(row["runtime"]),
            str(row["compute_unit"]), str(row["round"]))


def output_key(row: dict) -> tuple:
    """What a model's outputs depend on: not the thread count nor the round, but the compute unit
    (fp16 inside a GPU) and the kernels (XNNPACK or not)."""
    return (str(row["sha256"]), str(row["runtime"]), str(row["xnnpack"]),
            str(row["compute_unit"]))


def cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (float, np.floating)):
        return "nan" if math.isnan(value) else repr(round(float(value), 6))
    return str(value)


def read_csv(path: str, columns) -> tuple:
    """(rows, whole) of a CSV this agent wrote. A kill can cut the last line short: only lines
    that end in a newline count, and whole is False when a cut tail was found."""
    if not os.path.isfile(path) or os.path.getsize(path) == 0:
        return [], True
    with open(path, newline="") as fh:
        text = fh.read()
    whole = text.endswith("\n")
    reader = csv.reader(io.StringIO(text[:text.rfind("\n") + 1]))
    header = next(reader, None)
    if tuple(header or ()) != tuple(columns):
        raise AgentError("%s was written with another schema; use a new --out folder" % path)
    return [dict(zip(columns, r)) for r in reader if len(r) == len(columns)], whole


def rewrite_csv(path: str, columns, rows) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerows([[r[c] for c in columns] for r in rows])
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class ResultStore:
    """results.csv + latency_samples.csv + predictions.csv in OUT. On open, keeps ok rows (they
    are skipped on this run), drops error rows that this run retries, and samples and predictions
    that have no ok row."""

    def __init__(self, out: str, planned_keys) -> None:
        self.results_path = os.path.join(out, "results.csv")
        self.samples_path = os.path.join(out, "latency_samples.csv")
        self.predictions_path = os.path.join(out, "predictions.csv")
        rows, rows_whole = read_csv(self.results_path, RESULT_COLUMNS)
        kept = [r for r in rows if r["status"] == "ok" or row_key(r) not in planned_keys]
        self.done = {row_key(r): r for r in kept if r["status"] == "ok"}
        measured = set(output_key(r) for r in self.done.values() if r["accuracy"] != "")
        # Rewritten (atomically) only when something goes: a retried error row, orphans, or a
        # line cut short by a kill, which the next append would otherwise run into.
        if len(kept) != len(rows) or not rows_whole:
            rewrite_csv(self.results_path, RESULT_COLUMNS, kept)
        self._prune(self.samples_path, SAMPLE_COLUMNS, lambda r: row_key(r) in self.done)
        kept_predictions = self._prune(self.predictions_path, PREDICTION_COLUMNS,
                                       lambda r: output_key(r) in measured)
        self.robustness_path = os.path.join(out, "robustness.csv")
        self._prune(self.robustness_path, ROBUSTNESS_COLUMNS, lambda r: output_key(r) in measured)
        # (output key, test set) -> predicted class per image: fp32's, for agreement_fp32
        self.predicted = {}
        for r in kept_predictions:
            self.predicted.setdefault((output_key(r), r["testset"]), {})[int(r["image"])] = \
                int(r["predicted"])
        self.results = self._open(self.results_path, RESULT_COLUMNS)
        self.samples = self._open(self.samples_path, SAMPLE_COLUMNS)
        self.predictions = self._open(self.predictions_path, PREDICTION_COLUMNS)
        self.robustness = self._open(self.robustness_path, ROBUSTNESS_COLUMNS)

    @staticmethod
    def _prune(path: str, columns, keep) -> list:
        lines, whole = read_csv(path, columns)
        kept = [r for r in lines if keep(r)]
        if len(kept) != len(lines) or not whole:
            rewrite_csv(path, columns, kept)
        return kept

    @staticmethod
    def _open(path: str, columns):
        fresh = not os.path.isfile(path) or os.path.getsize(path) == 0
        fh = open(path, "a", newline="")
        if fresh:
            csv.writer(fh).writerow(columns)
            fh.flush()
        return fh

    def _append(self, fh, rows) -> None:
        csv.writer(fh).writerows(rows)
        fh.flush()
        os.fsync(fh.fileno())

    def write(self, row: dict, samples_ns, predictions=None, robustness=None) -> None:
        # Predictions, robustness and samples first: a kill before the row leaves orphans
        # (dropped on the next run), never a row whose raw material is missing.
        if predictions:
            base = [RESULTS_SCHEMA_VERSION, row["run_id"], row["model"], row["sha256"],
                    row["runtime"], cell(row["xnnpack"]), row["compute_unit"]]
            self._append(self.predictions, [base + [t, positive, i, label, pred, cell(score)]
                                            for t, positive, i, label, pred, score in predictions])
            for t, _, i, _, pred, _ in predictions:
                self.predicted.setdefault((output_key(row), t), {})[i] = pred
        if robustness:
            self._append(self.robustness, [[cell(r.get(c)) for c in ROBUSTNESS_COLUMNS]
                                           for r in robustness])
        if samples_ns:
            base = [RESULTS_SCHEMA_VERSION, row["run_id"], row["model"], row["sha256"],
                    row["threads"], cell(row["xnnpack"]), row["runtime"], row["compute_unit"],
                    row["round"]]
            self._append(self.samples, [base + [i, repr(round(ns / 1e6, 6))]
                                        for i, ns in enumerate(samples_ns)])
        self._append(self.results, [[cell(row.get(c)) for c in RESULT_COLUMNS]])

    def close(self) -> None:
        for fh in (self.results, self.samples, self.predictions, self.robustness):
            fh.close()


# ---------------------------------------------------------------------------------------------
# The parent: plan, run children, write rows
# ---------------------------------------------------------------------------------------------
def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_child(job: dict, log_path: str, title: str) -> dict:
    """One child per row. What the runtime prints (LiteRT's GPU path logs dozens of lines per
    model) goes to OUT/runtime.log under a header naming the row, and to stderr only when the
    row failed."""
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(json.dumps(job).encode(), timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"status": "error", "error": "no result within %d s; child killed" % CHILD_TIMEOUT_S}
    err_text = err.decode("utf-8", "replace").strip()
    with open(log_path, "a") as fh:
        fh.write("=== %s %s\n%s\n" % (utc_now(), title, err_text))
    try:
        result = json.loads(out.decode())
    except ValueError:
        result = None
    if err_text and (result or {}).get("status") != "ok":
        sys.stderr.write("\n".join(err_text.splitlines()[-20:]) + "\n")
    if result is not None:
        return result
    last = err_text.splitlines()[-1] if err_text else ""
    if proc.returncode < 0:
        why = "child killed by signal %s" % signal.Signals(-proc.returncode).name
    else:
        why = "child exited with status %d" % proc.returncode
    return {"status": "error", "error": one_line(why + (": " + last if last else ""))}


def per_image(logits, labels, positive: int, testset: str = "clean") -> list:
    """predictions.csv lines (without the key): test set, positive class, image, label,
    predicted class, positive-class score."""
    logits = np.asarray(logits, dtype=np.float64)
    scores = softmax(logits)[:, positive]
    return [(testset, positive, i, int(label), int(pred), float(score)) for i, (label, pred, score)
            in enumerate(zip(labels, logits.argmax(axis=1), scores))]


def accuracy_fields(logits, labels, reference, positive: int) -> dict:
    logits = np.asarray(logits, dtype=np.float64)
    m = classification_metrics(labels, logits, positive)
    fields = dict((k, m[k]) for k in ("accuracy", "sensitivity", "specificity", "auc",
                                      "tn", "fp", "fn", "tp"))
    fields["n_test"] = m["n"]
    if reference is not None and reference.shape == logits.shape:
        fields["agreement"] = float((reference.argmax(1) == logits.argmax(1)).mean())
    return fields


ACCURACY_COLUMNS = ("n_test", "accuracy", "sensitivity", "specificity", "auc", "tn", "fp", "fn",
                    "tp", "agreement")


class Agent:
    """The parent side: turns (model, thread count) into rows, one child process each."""

    def __init__(self, args, manifest: dict, runtime: str, runtime_version: str, env: dict):
        self.args, self.manifest, self.env = args, manifest, env
        self.runtime, self.runtime_version = runtime, runtime_version
        self.litert_version = self._litert_version(runtime, runtime_version)
        self.bundle = args.bundle
        self.testset, self.labels, self.image_shape, self.no_accuracy = self._load_testset()
        self.corrupted, self.corrupted_errors = self._load_robustness()
        self.store = None   # the ResultStore, once open: fp32's predictions for agreement_fp32
        self.fp32_sha = {}  # architecture -> sha256 of its fp32 model (agreement_fp32)
        for e in manifest.get("models") or []:
            if e.get("recipe") == "fp32":
                self.fp32_sha.setdefault(e.get("architecture"), e.get("sha256"))
        self.accuracy_cache = {}

    def _load_testset(self):
        name = self.manifest.get("testset")
        path = os.path.join(self.bundle, name) if name else None
        if not path or not os.path.isfile(path):
            why = ("testset.npz is missing from the bundle" if name
                   else "the bundle has no test set")
            say("%s: timing and memory only, accuracy columns stay empty" % why)
            return None, None, None, "accuracy not measured: " + why
        with np.load(path, allow_pickle=False) as data:
            return path, data["labels"].astype(np.int64), list(data["images"].shape[1:]), None

    def _load_robustness(self):
        """([{name, corruption, severity, path}], [{corruption, severity, error}]): the corrupted
        test sets the bundle lists that can be measured, and why the others cannot."""
        spec = self.manifest.get("robustness") or {}
        usable, broken = [], []
        for item in spec.get("sets") or []:
            name = "%s-%s" % (item.get("corruption"), item.get("severity"))
            path = os.path.join(self.bundle, item.get("file", ""))
            error = None
            if self.testset is None:
                error = "no clean test set to take labels from"
            elif not os.path.isfile(path):
                error = "corrupted set missing on the device: %s" % item.get("file")
            else:
                try:
                    with np.load(path, allow_pickle=False) as data:
                        shape = list(data["images"].shape)
                    if shape[1:] != self.image_shape or shape[0] != len(self.labels):
                        error = ("corrupted set %s is %s but the test set is %s"
                                 % (item.get("file"), "x".join(map(str, shape)),
                                    "x".join(map(str, [len(self.labels)] + self.image_shape))))
                except Exception as exc:
                    error = "corrupted set %s unreadable: %s" % (item.get("file"), one_line(exc, 120))
            entry = {"name": name, "corruption": item.get("corruption"),
                     "severity": item.get("severity")}
            if error:
                broken.append(dict(entry, error=error))
            else:
                usable.append(dict(entry, path=path))
        return usable, broken

    def robustness_inferences(self, configurations: int) -> int:
        n = min(len(self.labels), self.args.robustness_images or len(self.labels)) \
            if self.labels is not None else 0
        return len(self.corrupted) * n * configurations

    def _accuracy_block(self, entry: dict):
        """Why accuracy cannot be measured for this model, or None when it can."""
        if self.no_accuracy:
            return self.no_accuracy
        if not entry.get("input", {}).get("normalization"):
            return "accuracy not measured: the model card has no input normalization"
        shape = list(entry["input"].get("shape") or [])[1:]
        if shape and shape != self.image_shape:
            return ("accuracy not measured: test images are %s but the model takes %s"
                    % ("x".join(map(str, self.image_shape)), "x".join(map(str, shape))))
        return None

    @staticmethod
    def _litert_version(runtime: str, runtime_version: str):
        """CompiledModel rows always run on ai-edge-litert, whatever --runtime picked for cpu."""
        if runtime == "litert":
            return runtime_version
        try:
            return import_runtime("litert")[1]
        except Exception:
            return None

    def base_row(self, entry: dict, threads: int, unit: dict, round_no: int) -> dict:
        env = self.env
        row = dict((k, env.get(k)) for k in ("device_model", "machine", "cpu", "cores", "os",
                                             "python", "numpy", "emulated", "hostname"))
        compiled = unit["api"] == "compiled_model"
        row.update(schema_version=RESULTS_SCHEMA_VERSION, run_id=self.manifest.get("run_id"),
                   model=entry.get("name"), architecture=entry.get("architecture"),
                   recipe=entry.get("recipe"), sha256=entry.get("sha256"), threads=threads,
                   xnnpack=self.args.xnnpack, runtime="litert" if compiled else self.runtime,
                   runtime_version=self.litert_version if compiled else self.runtime_version,
                   compute_unit=unit["spec"], round=round_no, accelerator=unit["accelerator"],
                   api=unit["api"])
        return row

    def measure(self, entry: dict, threads: int, unit: dict, round_no: int) -> tuple:
        """One row, its samples and (when its accuracy was measured now) its predictions, for one
        model at one thread count on one compute unit in one round."""
        row = self.base_row(entry, threads, unit, round_no)
        path = os.path.join(self.bundle, entry.get("file", ""))
        self.cooldown()
        row.update(started_utc=utc_now(), governor=governor(), freq_mhz=freq_mhz(),
                   temp_before_c=soc_temp_c())
        flags_before = throttled_flags()
        if not os.path.isfile(path):
            result = {"status": "error", "error": "model file missing: %s" % entry.get("file")}
        else:
            row["file_size_mb"] = os.path.getsize(path) / 2.0 ** 20
            digest = sha256_of(path)
            if entry.get("sha256") and digest != entry["sha256"]:
                result = {"status": "error", "error": "sha256 of %s is %s, the manifest says %s"
                          % (entry["file"], digest[:12], entry["sha256"][:12])}
            else:
                result = self._run_model(entry, path, threads, unit)
        row["temp_after_c"] = soc_temp_c()
        flags = throttled_flags()
        if flags is not None:
            row["throttled"] = bool((flags | (flags_before or 0)) & 0xF)
            row["throttled_flags"] = hex(flags)
        for key in ("status", "error", "load_ms", "first_inference_ms", "warmup_runs",
                    "rss_before_mb", "rss_after_load_mb", "peak_rss_mb", "accelerator_device",
                    "software_accelerator", "fully_accelerated", "delegated_nodes"):
            if key in result:
                row[key] = result[key]
        samples = result.get("samples_ns") or []
        if result.get("status") == "ok" and samples:
            row.update(latency_stats(samples))
        if result.get("status") != "ok":
            return row, [], None, None
        row.update(result.get("accuracy_fields") or {})
        return row, samples, result.get("predictions"), result.get("robustness_rows")

    def _run_model(self, entry: dict, path: str, threads: int, unit: dict) -> dict:
        args = self.args
        cache_key = output_key(dict(sha256=entry.get("sha256"), runtime=self.runtime,
                                    xnnpack=args.xnnpack, compute_unit=unit["spec"]))
        block = self._accuracy_block(entry)
        need_accuracy = block is None and cache_key not in self.accuracy_cache
        job = {"path": path, "runtime": self.runtime, "runtime_version": self.runtime_version,
               "threads": threads,
               "xnnpack": args.xnnpack == "on", "warmup": args.warmup, "min_runs": args.min_runs,
               "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
               "input": entry.get("input") or {}, "output": entry.get("output") or {},
               "testset": self.testset, "accuracy": need_accuracy, "unit": unit,
               "robustness": self.corrupted if need_accuracy else [],
               "robustness_images": args.robustness_images or None}
        title = "%s threads=%d unit=%s" % (entry.get("name"), threads, unit["spec"])
        result = run_child(job, os.path.join(args.out, "runtime.log"), title)
        if result.get("status") != "ok":
            if unit["delegate"] and "child killed by signal" in result.get("error", ""):
                result["error"] += " (in delegate %s)" % unit["delegate"]["library"]
            return result
        if block:
            result["error"] = block
        elif need_accuracy:
            reference = None
            ref_name = entry.get("reference")
            if ref_name and os.path.isfile(os.path.join(self.bundle, ref_name)):
                reference = np.load(os.path.join(self.bundle, ref_name))
            positive = int(entry.get("positive_class", 1))
            logits = result.pop("logits")
            self.accuracy_cache[cache_key] = accuracy_fields(logits, self.labels, reference,
                                                             positive)
            result["predictions"] = per_image(logits, self.labels, positive)
            result["robustness_rows"] = self._robustness_rows(
                entry, unit, result.pop("robustness_logits", {}), result["predictions"])
        result["accuracy_fields"] = self.accuracy_cache.get(cache_key)
        return result

    def _robustness_rows(self, entry: dict, unit: dict, corrupted: dict, predictions: list):
        """robustness.csv lines for one configuration; adds its corrupted-set predictions to
        `predictions` (predictions.csv lines)."""
        positive = int(entry.get("positive_class", 1))
        base = {"schema_version": RESULTS_SCHEMA_VERSION, "run_id": self.manifest.get("run_id"),
                "model": entry.get("name"), "architecture": entry.get("architecture"),
                "recipe": entry.get("recipe"), "sha256": entry.get("sha256"),
                "runtime": self.runtime if unit["api"] == "interpreter" else "litert",
                "xnnpack": self.args.xnnpack, "compute_unit": unit["spec"]}
        rows = [dict(base, corruption=b["corruption"], severity=b["severity"], status="error",
                     error=b["error"]) for b in self.corrupted_errors]
        fp32 = dict(base, sha256=self.fp32_sha.get(entry.get("architecture")))
        for item in self.corrupted:
            logits = np.asarray(corrupted.get(item["name"], []), dtype=np.float64)
            if not len(logits):
                continue
            labels = self.labels[:len(logits)]
            m = classification_metrics(labels, logits, positive)
            predicted = logits.argmax(axis=1)
            row = dict(base, corruption=item["corruption"], severity=item["severity"],
                       n=m["n"], status="ok", **dict((k, m[k]) for k in
                                                     ("accuracy", "sensitivity", "specificity",
                                                      "auc")))
            theirs = self.store.predicted.get((output_key(fp32), item["name"]))
            if entry.get("recipe") == "fp32":
                row["agreement_fp32"] = 1.0
            elif theirs and all(i in theirs for i in range(len(predicted))):
                row["agreement_fp32"] = float(np.mean([theirs[i] == p for i, p in
                                                       enumerate(predicted)]))
            rows.append(row)
            predictions.extend(per_image(logits, labels, positive, item["name"]))
        return rows

    def cooldown(self) -> None:
        limit = self.args.cooldown_temp
        if limit is None:
            return
        temp, waited = soc_temp_c(), 0.0
        if temp is None:
            say("no temperature sensor: --cooldown-temp has nothing to wait on")
            return
        while temp is not None and temp >= limit and waited < self.args.cooldown_timeout:
            if waited == 0:
                say("SoC at %.1f C; waiting (at most %.0f s) to cool below %.1f C"
                    % (temp, self.args.cooldown_timeout, limit))
            time.sleep(COOLDOWN_POLL_S)
            waited += COOLDOWN_POLL_S
            temp = soc_temp_c()

    def remember(self, row: dict) -> None:
        """An ok row from an earlier run lends its accuracy to this run's other thread counts and
        rounds (its predictions are in predictions.csv already)."""
        if row.get("accuracy") not in (None, ""):
            self.accuracy_cache.setdefault(output_key(row),
                                           dict((c, row[c]) for c in ACCURACY_COLUMNS))


class OneLineParser(argparse.ArgumentParser):
    def error(self, message):
        raise AgentError(message)


def parse_args(argv):
    p = OneLineParser(prog="agent.py", description=GUIDE.strip().splitlines()[0],
                      formatter_class=argparse.RawDescriptionHelpFormatter, epilog=GUIDE)
    p.add_argument("--bundle", help="bundle folder (manifest.json, models/, testset.npz)")
    p.add_argument("--out", help="results folder; re-running into it resumes")
    p.add_argument("--threads", default="1", help="comma-separated thread counts (default 1)")
    p.add_argument("--warmup", type=int, default=10, help="untimed runs first (default 10)")
    p.add_argument("--min-runs", type=int, default=50, help="at least this many timed runs")
    p.add_argument("--min-seconds", type=float, default=2.0, help="and at least this long")
    p.add_argument("--max-seconds", type=float, default=60.0, help="but never longer than this")
    p.add_argument("--models", default="", help="comma-separated model names (default: all)")
    p.add_argument("--runtime", default="auto", help="auto|litert|tflite-runtime|tensorflow")
    p.add_argument("--xnnpack", default="on", help="on|off (off: builtin kernels only)")
    p.add_argument("--accelerators", default="cpu",
                   help="comma-separated compute units, one row each (default cpu; 'help' "
                        "lists them): " + ", ".join(COMPUTE_UNITS) + ", gpu!, npu!")
    p.add_argument("--delegate", action="append", default=[], metavar="LIB[:KEY=VALUE;...]",
                   help="also measure on an external delegate loaded from LIB (repeatable), "
                        "e.g. libedgetpu.so.1 or libarmnnDelegate.so:backends=CpuAcc,CpuRef")
    p.add_argument("--robustness-images", type=int, default=0, metavar="N",
                   help="measure at most the first N images of each corrupted test set "
                        "(default: all)")
    p.add_argument("--rounds", type=int, default=1,
                   help="run the whole plan this many times, models interleaved (default 1)")
    p.add_argument("--cooldown-temp", type=float, default=None,
                   help="before each row (so before every round) wait until the SoC is below "
                        "this many degrees C")
    p.add_argument("--cooldown-timeout", type=float, default=300.0,
                   help="longest wait for --cooldown-temp, seconds (default 300)")
    p.add_argument("--sysfs-root", default="/", help="root for sensor files (tests)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.accelerators.strip() == "help":
        sys.stdout.write(unit_help() + "\n")
        raise SystemExit(0)
    args.units = parse_units(args.accelerators, args.delegate)
    if not args.bundle or not args.out:
        raise AgentError("--bundle and --out are required")
    if args.runtime != "auto" and args.runtime not in RUNTIMES:
        raise AgentError("unknown runtime %r; choose one of: auto, %s"
                         % (args.runtime, ", ".join(RUNTIMES)))
    if args.xnnpack not in ("on", "off"):
        raise AgentError("--xnnpack must be on or off, not %r" % args.xnnpack)
    try:
        args.threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        raise AgentError("--threads takes comma-separated integers, e.g. 1,2,4")
    if not args.threads or min(args.threads) < 1:
        raise AgentError("--threads takes positive integers, e.g. 1,2,4")
    if args.warmup < 0 or args.min_runs < 1 or args.min_seconds < 0 or args.max_seconds <= 0:
        raise AgentError("--warmup >= 0, --min-runs >= 1, --min-seconds >= 0, --max-seconds > 0")
    if args.rounds < 1:
        raise AgentError("--rounds takes a positive integer (the plan's repetitions)")
    if args.robustness_images < 0:
        raise AgentError("--robustness-images takes a positive count (0: every image)")
    return args


def private_runtime_dir() -> None:
    """Mesa and Dawn want XDG_RUNTIME_DIR, a private 0700 folder; an SSH session without PAM has
    none, and they then log errors on every model. Children inherit the one made here."""
    current = os.environ.get("XDG_RUNTIME_DIR")
    if current and os.path.isdir(current) and os.access(current, os.W_OK):
        return
    import tempfile
    os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="edgebench-xdg-")


def select_models(manifest: dict, names: str) -> list:
    entries = manifest.get("models") or []
    if not names:
        return entries
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = [e.get("name") for e in entries]
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise AgentError("unknown model %s; the bundle has: %s"
                         % (", ".join(unknown), ", ".join(map(str, known))))
    return [e for e in entries if e.get("name") in wanted]


def run(args) -> int:
    global SYSFS_ROOT
    SYSFS_ROOT = args.sysfs_root
    manifest_path = os.path.join(args.bundle, "manifest.json")
    if not os.path.isfile(manifest_path):
        raise AgentError("no manifest.json in %s: not a bundle" % args.bundle)
    with open(manifest_path) as fh:
        manifest = json.load(fh)
    if manifest.get("schema") != MANIFEST_SCHEMA:
        raise AgentError("manifest schema %r; this agent reads %s"
                         % (manifest.get("schema"), MANIFEST_SCHEMA))
    entries = select_models(manifest, args.models)
    runtime, _, version = resolve_runtime(args.runtime)
    os.makedirs(args.out, exist_ok=True)
    env = environment(runtime, version)
    with open(os.path.join(args.out, "env.json.tmp"), "w") as fh:
        json.dump(env, fh, indent=1)
    os.replace(os.path.join(args.out, "env.json.tmp"), os.path.join(args.out, "env.json"))

    # fp32 first within each architecture (otherwise in the manifest's order), so its
    # predictions on the corrupted sets exist when the other recipes' agreement_fp32 needs them.
    first_seen = {}
    for e in entries:
        first_seen.setdefault(e.get("architecture"), len(first_seen))
    entries = sorted(entries, key=lambda e: (first_seen[e.get("architecture")],
                                             e.get("recipe") != "fp32"))
    agent = Agent(args, manifest, runtime, version, env)
    units = args.units
    if any(u["api"] == "compiled_model" for u in units):
        private_runtime_dir()
    rounds = range(1, args.rounds + 1)
    plan = [(r, e, u, t) for r in rounds for e in entries for u in units for t in args.threads]
    planned = set(row_key(agent.base_row(e, t, u, r)) for r, e, u, t in plan)
    store = ResultStore(args.out, planned)
    agent.store = store
    for row in store.done.values():
        agent.remember(row)
    if agent.corrupted or agent.corrupted_errors:
        configs = len(entries) * len(units)
        count = agent.robustness_inferences(configs)
        say("robustness: %d corrupted set(s) x %d configuration(s) = %d extra inferences%s"
            % (len(agent.corrupted), configs, count, "; %d set(s) unusable: %s" % (
                len(agent.corrupted_errors), agent.corrupted_errors[0]["error"])
               if agent.corrupted_errors else ""))
        emit("robustness", sets=len(agent.corrupted), inferences=count,
             unusable=len(agent.corrupted_errors))
    say("%s %s, %d model(s) x units %s x threads %s x %d round(s) -> %s" % (
        runtime, version, len(entries), ",".join(u["spec"] for u in units), args.threads,
        args.rounds, args.out))
    emit("start", run_id=manifest.get("run_id"), runtime=runtime, runtime_version=version,
         models=len(entries), rows=len(plan))
    written = skipped = errors = 0
    # Rounds outermost: A B C A B C, so drift and a neighbour's load spread over every model
    # instead of landing on whichever was measured during it.
    steps = [(r, e) for r in rounds for e in entries]
    try:
        for index, (round_no, entry) in enumerate(steps, 1):
            name = entry.get("name")
            emit("model_start", model=name, index=index, total=len(steps), threads=args.threads,
                 units=[u["spec"] for u in units], round=round_no)
            for unit, threads in [(u, t) for u in units for t in args.threads]:
                spec = unit["spec"]
                key = row_key(agent.base_row(entry, threads, unit, round_no))
                if key in store.done:
                    skipped += 1
                    emit("skip", model=name, threads=threads, unit=spec, round=round_no)
                    continue
                row, samples, predictions, robust = agent.measure(entry, threads, unit, round_no)
                store.write(row, samples, predictions, robust)
                written += 1
                if row.get("status") == "ok":
                    say("%s x%d on %s: p50 %.3f ms, peak %.1f MB%s" % (
                        name, threads, spec, row["p50_ms"],
                        row.get("peak_rss_mb") or float("nan"),
                        ", accuracy %s" % cell(row.get("accuracy"))
                        if row.get("accuracy") not in (None, "") else ""))
                else:
                    errors += 1
                    say("%s x%d on %s: error: %s" % (name, threads, spec, row.get("error")))
                    emit("error", model=name, threads=threads, unit=spec,
                         message=row.get("error"))
                emit("row", model=name, threads=threads, unit=spec, round=round_no,
                     status=row.get("status"),
                     p50_ms=row.get("p50_ms"), accuracy=row.get("accuracy"),
                     peak_rss_mb=row.get("peak_rss_mb"))
            emit("model_done", model=name, index=index, total=len(steps), round=round_no)
    finally:
        store.close()
    emit("done", rows=written, skipped=skipped, errors=errors, out=args.out)
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
        if args.child:
            return child_main()
        return run(args)
    except AgentError as exc:
        say("error: %s" % exc)
        emit("error", message=str(exc), fatal=True)
        return 2
    except KeyboardInterrupt:
        say("interrupted; rows written so far are kept and a re-run resumes")
        return 130


if __name__ == "__main__":
    sys.exit(main())
