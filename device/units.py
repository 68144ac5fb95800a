"""Compute units, the axis beside the thread count: one registry. A row's compute_unit is the name
as asked for ("gpu!" = gpu, and the whole model must run on it).
  cpu       the Interpreter of the chosen runtime (any runtime, old boards included)
  gpu, npu  LiteRT's CompiledModel (ai-edge-litert >= 2.3) with the CPU as fallback for ops the
            accelerator lacks; the GPU accelerator is WebGPU (Vulkan on Linux), the NPU one a
            vendor dispatch library. An .onnx row's gpu is ONNX Runtime's CUDA or WebGPU
            execution provider with the CPU provider as fallback (agent/ort_providers.py)
  delegate  --delegate LIB[:key=value;...]: the Interpreter with an external delegate
This module parses the units, checks what a unit needs on this device and reads what LiteRT's log
says about it; sessions.py runs a model on one."""
from __future__ import annotations

import glob
import os
import sys

from .common import AgentError, one_line
from .runtimes import import_runtime

COMPUTE_UNITS = {
    "cpu": {"api": "interpreter", "flags": (),
            "help": "CPU kernels through the Interpreter (XNNPACK unless --xnnpack off); .onnx "
                    "rows: CPUExecutionProvider"},
    "gpu": {"api": "compiled_model", "flags": ("GPU", "CPU"),
            "help": "GPU through LiteRT CompiledModel (WebGPU/Vulkan), CPU fallback; .onnx rows: "
                    "CUDA or WebGPU execution provider, CPU fallback"},
    "npu": {"api": "compiled_model", "flags": ("NPU", "CPU"),
            "help": "NPU through LiteRT CompiledModel and a vendor dispatch library, CPU fallback"},
}
GPU_ACCELERATOR_LIBS = ("libLiteRtWebGpuAccelerator.so", "libLiteRtOpenClAccelerator.so",
                        "libLiteRtGpuAccelerator.so")
SOFTWARE_ADAPTER_HINTS = ("cpu / software", "arch=software", "llvmpipe", "lavapipe", "swiftshader")


# What the report needs of a unit: every comparison is anchored on the baseline (fp32 on the
# device's CPU), and rows and legends list units in this order; external delegates
# ("delegate:NAME") come after, by name.
BASELINE_UNIT = "cpu"
UNIT_ORDER = ("cpu", "gpu", "gpu!", "npu", "npu!")


def unit_rank(unit: str) -> tuple:
    return (UNIT_ORDER.index(unit), "") if unit in UNIT_ORDER else (len(UNIT_ORDER), str(unit))


def unit_kind(unit: str) -> str:
    """baseline, accelerator or delegate: how the report draws and names a unit's rows."""
    if unit == BASELINE_UNIT:
        return "baseline"
    return "delegate" if str(unit).startswith("delegate") else "accelerator"


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
        from ai_edge_litert import compiled_model  # noqa: F401  (2.1+; absent before)
    except Exception as exc:
        raise AgentError("%s needs ai-edge-litert >= 2.3 (LiteRT's CompiledModel); this device "
                         "has %s (%s): pip install ai-edge-litert==2.3.0 (Python >= 3.10)"
                         % (unit["accelerator"], has, one_line(exc, 100)))
    return ai_edge_litert, import_runtime("litert")[1]


def _needs_gpu(folder: str, version: str) -> None:
    import ctypes
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


def _needs_npu(folder: str, version: str) -> None:
    import ctypes
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


# What a CompiledModel unit needs beyond the wheel: (LiteRT's folder, its version) -> None, or
# an AgentError that says what to install.
COMPUTE_UNITS["gpu"]["needs"] = _needs_gpu
COMPUTE_UNITS["npu"]["needs"] = _needs_npu


def check_unit_available(unit: dict, has: str) -> None:
    """Checked before the runtime is asked, so the error row says what is missing instead of
    LiteRT's bare status code."""
    litert, version = litert_compiled_model(unit, has)
    needs = COMPUTE_UNITS[unit["accelerator"]].get("needs")
    if needs:
        needs(os.path.dirname(litert.__file__), version)


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



def explain_compile_failure(unit: dict, log: str, exc: Exception) -> str:
    """LiteRT's exception carries only a source location; the reason is in its log."""
    if "No adapters found" in log or "Failed to initialize WebGPU" in log:
        return ("no GPU adapter: the GPU accelerator found no Vulkan device (is a Vulkan driver "
                "installed and is this user allowed to use it, e.g. in the render group?)")
    reasons = [line.strip() for line in log.splitlines()
               if line.lstrip().startswith(("ERROR", "E0000", "F0000")) or " ERROR:" in line]
    detail = reasons[-1] if reasons else "%s: %s" % (type(exc).__name__, exc)
    return "CompiledModel for %s failed: %s" % (unit["spec"], one_line(detail, 300))

