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
RESULTS_SCHEMA_VERSION = 1

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
# Manifest (bundle/manifest.json):
#   schema, run_id, created (ISO 8601 UTC), testset ("testset.npz" or null),
#   models: [card + {"file": "models/<name>.tflite", "reference": "reference/<arch>.npy" or null}]
# testset.npz: images uint8 N×H×W×C, labels int64 N, class_names str[K]
# reference/<arch>.npy: float32 N×K logits of the float (PyTorch) model on the test set

RESULT_COLUMNS = (
    "schema_version", "run_id", "model", "architecture", "recipe", "sha256", "file_size_mb",
    "threads", "xnnpack", "runtime", "runtime_version", "status", "error",
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
SAMPLE_COLUMNS = ("schema_version", "run_id", "model", "sha256", "threads", "xnnpack", "runtime",
                  "run", "latency_ms")

GUIDE = """
Usage:
  python3 agent.py --bundle DIR --out DIR [--threads 1,2,4] [--warmup N] [--min-runs N]
      [--min-seconds S] [--max-seconds S] [--models NAME,...] [--runtime auto|litert|tflite-runtime|
      tensorflow] [--xnnpack on|off] [--cooldown-temp C] [--cooldown-timeout S] [--sysfs-root DIR]

What one row means (results.csv, RESULT_COLUMNS): one model x thread count, measured in a fresh
child process (a re-exec of this file with --child) so that its memory figures are that model's
alone. Inside the child: import the interpreter, RSS before load; load + allocate (load_ms); RSS
after load; one first inference (first_inference_ms); --warmup invokes; then invokes until both
--min-runs and --min-seconds are met, capped by --max-seconds. Only invoke() is between the two
time.perf_counter_ns reads; the input tensor is set once before. peak_rss_mb (VmHWM) is read after
the timed loop, before the test set is loaded, so it is the model's peak, not the test set's.
Accuracy runs the whole testset.npz through the model (inputs normalised per the card, quantized
with the model's own scale/zero point for int8/uint8/int16 inputs, outputs dequantized); it is
measured once per model and configuration and copied to the rows of its other thread counts
(outputs do not depend on the thread count). MB means 2**20 bytes. Raw samples: latency_samples.csv.

Choices worth knowing:
- A missing testset.npz (or a manifest with "testset": null) is not fatal: timing and memory
  still run, the accuracy columns stay empty, and `error` says "accuracy not measured: ..." on an
  otherwise ok row. The same note appears when the card has no input normalization (a bare
  .tflite bundled without --testset) or the test images do not fit the model's input.
- Resume: rows with status=ok already in OUT/results.csv for the same sha256, threads, xnnpack
  and runtime are skipped. Error rows are retried: the old error row is dropped (the file is
  rewritten atomically) and the new outcome appended. Samples without an ok row are dropped too.
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
  {"event": "model_start", "model", "index", "total", "threads": [..]}
  {"event": "skip", "model", "threads"}                      (already measured)
  {"event": "row", "model", "threads", "status", "p50_ms", "accuracy", "peak_rss_mb"}
  {"event": "error", "model", "threads", "message"}          (also "fatal": true before exit 2)
  {"event": "model_done", "model", "index", "total"}
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


def make_interpreter(name: str, module, path: str, threads: int, xnnpack: bool):
    if name == "tensorflow":
        cls, resolver = module.lite.Interpreter, module.lite.experimental.OpResolverType
    else:
        cls, resolver = module.Interpreter, module.OpResolverType
    kind = resolver.AUTO if xnnpack else resolver.BUILTIN_WITHOUT_DEFAULT_DELEGATES
    return cls(model_path=path, num_threads=threads, experimental_op_resolver_type=kind)


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


def child_run(job: dict, result: dict) -> None:
    """Fill `result` step by step, so a failure late in the run still reports what was measured."""
    module = import_runtime(job["runtime"])[0]
    result["rss_before_mb"] = memory_mb()[0]
    t0 = time.perf_counter_ns()
    interp = make_interpreter(job["runtime"], module, job["path"], job["threads"], job["xnnpack"])
    interp.allocate_tensors()
    result["load_ms"] = (time.perf_counter_ns() - t0) / 1e6
    result["rss_after_load_mb"] = memory_mb()[0]
    inputs, outputs = interp.get_input_details(), interp.get_output_details()
    if len(inputs) != 1:
        raise AgentError("model has %d inputs; the agent measures single-input classifiers"
                         % len(inputs))
    inp, out = inputs[0], outputs[0]
    shape = [int(s) for s in inp["shape"]]
    card = job["input"]
    if card.get("shape") and [int(s) for s in card["shape"]] != shape:
        raise AgentError("manifest says input shape %s but the model's input is %s"
                         % (list(card["shape"]), shape))
    in_scale, in_zp = float(inp["quantization"][0]), int(inp["quantization"][1])
    out_scale, out_zp = float(out["quantization"][0]), int(out["quantization"][1])
    norm = card.get("normalization")

    images = None
    if job.get("testset"):
        with np.load(job["testset"], allow_pickle=False) as data:
            images = data["images"][:1]
    if images is None or list(images.shape[1:]) != shape[1:]:
        images = np.random.default_rng(0).integers(0, 256, size=[1] + shape[1:], dtype=np.uint8)
    sample = to_model_input(images, norm, inp["dtype"], in_scale, in_zp)
    interp.set_tensor(inp["index"], sample)
    t0 = time.perf_counter_ns()
    interp.invoke()
    result["first_inference_ms"] = (time.perf_counter_ns() - t0) / 1e6
    invoke = interp.invoke
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
            interp.set_tensor(inp["index"], to_model_input(images[i:i + 1], norm, inp["dtype"],
                                                           in_scale, in_zp))
            invoke()
            logits.append(dequantize(interp.get_tensor(out["index"]), out_scale, out_zp).ravel())
        result["logits"] = np.stack(logits).tolist()
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
    return (str(row["sha256"]), str(row["threads"]), str(row["xnnpack"]), str(row["runtime"]))


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
    """results.csv + latency_samples.csv in OUT. On open, keeps ok rows (they are skipped on this
    run), drops error rows that this run retries and samples that have no ok row."""

    def __init__(self, out: str, planned_keys) -> None:
        self.results_path = os.path.join(out, "results.csv")
        self.samples_path = os.path.join(out, "latency_samples.csv")
        rows, rows_whole = read_csv(self.results_path, RESULT_COLUMNS)
        kept = [r for r in rows if r["status"] == "ok" or row_key(r) not in planned_keys]
        self.done = {row_key(r): r for r in kept if r["status"] == "ok"}
        samples, samples_whole = read_csv(self.samples_path, SAMPLE_COLUMNS)
        kept_samples = [s for s in samples if row_key(s) in self.done]
        # Rewritten (atomically) only when something goes: a retried error row, orphan samples,
        # or a line cut short by a kill, which the next append would otherwise run into.
        if len(kept) != len(rows) or not rows_whole:
            rewrite_csv(self.results_path, RESULT_COLUMNS, kept)
        if len(kept_samples) != len(samples) or not samples_whole:
            rewrite_csv(self.samples_path, SAMPLE_COLUMNS, kept_samples)
        self.results = self._open(self.results_path, RESULT_COLUMNS)
        self.samples = self._open(self.samples_path, SAMPLE_COLUMNS)

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

    def write(self, row: dict, samples_ns) -> None:
        # Samples first: a kill between the two leaves orphan samples (dropped on the next run),
        # never a row whose samples are missing.
        if samples_ns:
            base = [RESULTS_SCHEMA_VERSION, row["run_id"], row["model"], row["sha256"],
                    row["threads"], cell(row["xnnpack"]), row["runtime"]]
            self._append(self.samples, [base + [i, repr(round(ns / 1e6, 6))]
                                        for i, ns in enumerate(samples_ns)])
        self._append(self.results, [[cell(row.get(c)) for c in RESULT_COLUMNS]])

    def close(self) -> None:
        self.results.close()
        self.samples.close()


# ---------------------------------------------------------------------------------------------
# The parent: plan, run children, write rows
# ---------------------------------------------------------------------------------------------
def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def run_child(job: dict) -> dict:
    proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--child"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(json.dumps(job).encode(), timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        return {"status": "error", "error": "no result within %d s; child killed" % CHILD_TIMEOUT_S}
    err_text = err.decode("utf-8", "replace").strip()
    if err_text:
        sys.stderr.write(err_text + "\n")
    try:
        return json.loads(out.decode())
    except ValueError:
        last = err_text.splitlines()[-1] if err_text else ""
        if proc.returncode < 0:
            why = "child killed by signal %s" % signal.Signals(-proc.returncode).name
        else:
            why = "child exited with status %d" % proc.returncode
        return {"status": "error", "error": one_line(why + (": " + last if last else ""))}


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
        self.bundle = args.bundle
        self.testset, self.labels, self.image_shape, self.no_accuracy = self._load_testset()
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

    def base_row(self, entry: dict, threads: int) -> dict:
        env = self.env
        row = dict((k, env.get(k)) for k in ("device_model", "machine", "cpu", "cores", "os",
                                             "python", "numpy", "emulated", "hostname"))
        row.update(schema_version=RESULTS_SCHEMA_VERSION, run_id=self.manifest.get("run_id"),
                   model=entry.get("name"), architecture=entry.get("architecture"),
                   recipe=entry.get("recipe"), sha256=entry.get("sha256"), threads=threads,
                   xnnpack=self.args.xnnpack, runtime=self.runtime,
                   runtime_version=self.runtime_version)
        return row

    def measure(self, entry: dict, threads: int) -> tuple:
        """One row (and its samples) for one model at one thread count."""
        row = self.base_row(entry, threads)
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
                result = self._run_model(entry, path, threads)
        row["temp_after_c"] = soc_temp_c()
        flags = throttled_flags()
        if flags is not None:
            row["throttled"] = bool((flags | (flags_before or 0)) & 0xF)
            row["throttled_flags"] = hex(flags)
        for key in ("status", "error", "load_ms", "first_inference_ms", "warmup_runs",
                    "rss_before_mb", "rss_after_load_mb", "peak_rss_mb"):
            if key in result:
                row[key] = result[key]
        samples = result.get("samples_ns") or []
        if result.get("status") == "ok" and samples:
            row.update(latency_stats(samples))
        if result.get("status") == "ok":
            row.update(result.get("accuracy_fields") or {})
        return row, (samples if result.get("status") == "ok" else [])

    def _run_model(self, entry: dict, path: str, threads: int) -> dict:
        args = self.args
        cache_key = (entry.get("sha256"), self.runtime, args.xnnpack)
        block = self._accuracy_block(entry)
        need_accuracy = block is None and cache_key not in self.accuracy_cache
        job = {"path": path, "runtime": self.runtime, "threads": threads,
               "xnnpack": args.xnnpack == "on", "warmup": args.warmup, "min_runs": args.min_runs,
               "min_seconds": args.min_seconds, "max_seconds": args.max_seconds,
               "input": entry.get("input") or {}, "testset": self.testset,
               "accuracy": need_accuracy}
        result = run_child(job)
        if result.get("status") != "ok":
            return result
        if block:
            result["error"] = block
        elif need_accuracy:
            reference = None
            ref_name = entry.get("reference")
            if ref_name and os.path.isfile(os.path.join(self.bundle, ref_name)):
                reference = np.load(os.path.join(self.bundle, ref_name))
            self.accuracy_cache[cache_key] = accuracy_fields(
                result.pop("logits"), self.labels, reference, int(entry.get("positive_class", 1)))
        result["accuracy_fields"] = self.accuracy_cache.get(cache_key)
        return result

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
        """An ok row from an earlier run lends its accuracy to this run's other thread counts."""
        if row.get("accuracy") not in (None, ""):
            key = (row["sha256"], row["runtime"], row["xnnpack"])
            self.accuracy_cache.setdefault(key, dict((c, row[c]) for c in ACCURACY_COLUMNS))


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
    p.add_argument("--cooldown-temp", type=float, default=None,
                   help="before each model wait until the SoC is below this many degrees C")
    p.add_argument("--cooldown-timeout", type=float, default=300.0,
                   help="longest wait for --cooldown-temp, seconds (default 300)")
    p.add_argument("--sysfs-root", default="/", help="root for sensor files (tests)")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
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
    return args


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

    agent = Agent(args, manifest, runtime, version, env)
    plan = [(e, t) for e in entries for t in args.threads]
    planned = set(row_key(agent.base_row(e, t)) for e, t in plan)
    store = ResultStore(args.out, planned)
    for row in store.done.values():
        agent.remember(row)
    say("%s %s, %d model(s) x threads %s -> %s" % (runtime, version, len(entries), args.threads,
                                                    args.out))
    emit("start", run_id=manifest.get("run_id"), runtime=runtime, runtime_version=version,
         models=len(entries), rows=len(plan))
    written = skipped = errors = 0
    try:
        for index, entry in enumerate(entries, 1):
            name = entry.get("name")
            emit("model_start", model=name, index=index, total=len(entries), threads=args.threads)
            for threads in args.threads:
                key = row_key(agent.base_row(entry, threads))
                if key in store.done:
                    skipped += 1
                    emit("skip", model=name, threads=threads)
                    continue
                row, samples = agent.measure(entry, threads)
                store.write(row, samples)
                written += 1
                if row.get("status") == "ok":
                    say("%s x%d: p50 %.3f ms, peak %.1f MB%s" % (
                        name, threads, row["p50_ms"], row.get("peak_rss_mb") or float("nan"),
                        ", accuracy %s" % cell(row.get("accuracy"))
                        if row.get("accuracy") not in (None, "") else ""))
                else:
                    errors += 1
                    say("%s x%d: error: %s" % (name, threads, row.get("error")))
                    emit("error", model=name, threads=threads, message=row.get("error"))
                emit("row", model=name, threads=threads, status=row.get("status"),
                     p50_ms=row.get("p50_ms"), accuracy=row.get("accuracy"),
                     peak_rss_mb=row.get("peak_rss_mb"))
            emit("model_done", model=name, index=index, total=len(entries))
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
