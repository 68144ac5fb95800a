"""The runtimes the agent can use: the TFLite ones (ai_edge_litert, tflite_runtime,
tensorflow.lite: import one, build an Interpreter, load an external delegate), which --runtime
picks for every .tflite row, and the runtimes a model's file format fixes (FILE_RUNTIMES: ONNX
Runtime for .onnx), imported only by the rows of such a model."""
from __future__ import annotations

import os
import sys

from .common import AgentError, one_line

# name -> (module to import, distribution name for its version)
RUNTIMES = {
    "litert": ("ai_edge_litert.interpreter", "ai-edge-litert"),
    "tflite-runtime": ("tflite_runtime.interpreter", "tflite-runtime"),
    "tensorflow": ("tensorflow", "tensorflow"),
}
RUNTIME_HELP = {
    "auto": "the first of the ones below that imports (default)",
    "litert": "ai-edge-litert (LiteRT), Google's current runtime; gpu/npu need it (>= 2.3)",
    "tflite-runtime": "tflite-runtime, the older standalone wheel (stopped at 2.14; old boards)",
    "tensorflow": "full TensorFlow's tf.lite (heavy; when nothing else is installed)",
}

# The runtime a model's file format fixes, by file extension (a .tflite runs on the --runtime
# above): its module, the distributions that may provide it (for the version without importing
# it), the API the rows name (the api column, and sessions.SESSIONS' key), the compute units it
# runs on here with the execution providers of each (the first of them the installed runtime
# has; agent/ort_providers.py), what to install for a unit whose providers are all missing, and
# what to install where the runtime itself is missing.
# TensorRT is not among gpu's providers: onnxruntime-gpu lists TensorrtExecutionProvider whether
# or not TensorRT's libraries are there, and it builds its engine while the session loads
# (minutes on a board, unless an engine cache is configured), so taking it first would make a
# gpu row's load time mean something else. It wants a unit of its own (units.py).
ONNXRUNTIME = "onnxruntime"
ORT_CPU_PROVIDER = "CPUExecutionProvider"
FILE_RUNTIMES = {
    ".onnx": {"name": ONNXRUNTIME, "module": "onnxruntime",
              "dists": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-webgpu"),
              "api": "inference_session", "units": ("cpu", "gpu"),
              "providers": {"cpu": (ORT_CPU_PROVIDER,),
                            "gpu": ("CUDAExecutionProvider", "WebGpuExecutionProvider")},
              "provider_install": {
                  "gpu": "pip install onnxruntime-gpu (NVIDIA: CUDAExecutionProvider) or "
                         "onnxruntime-webgpu (WebGpuExecutionProvider: Vulkan, Metal, Direct3D "
                         "12), in place of onnxruntime"},
              "elsewhere": "npu execution providers and external delegates are not wired to "
                           "ONNX Runtime rows",
              "install": "pip install onnxruntime",
              # ORT 1.20 dropped Python 3.8 and 3.9; 1.19.2 has their wheels (x86_64, aarch64)
              "install_before": ((3, 10), "pip install onnxruntime==1.19.2 (the last with "
                                          "wheels for Python 3.8 and 3.9)"),
              "help": "ONNX Runtime, for .onnx models: cpu on CPUExecutionProvider (--threads: "
                      "intra-op threads, no spinning); gpu/gpu! on CUDAExecutionProvider or "
                      "WebGpuExecutionProvider, the first the installed onnxruntime has, with "
                      "the CPU taking the nodes it lacks (gpu!: none allowed)"},
}
BY_NAME = dict((spec["name"], spec) for spec in FILE_RUNTIMES.values())


def runtime_help() -> str:
    lines = ["runtimes (of .tflite models):"]
    lines += ["  %-15s %s" % item for item in RUNTIME_HELP.items()]
    lines.append("fixed by the model's file (not a --runtime choice):")
    lines += ["  %-15s %s" % (spec["name"], spec["help"]) for spec in FILE_RUNTIMES.values()]
    return "\n".join(lines)


def file_runtime(path: str):
    """The FILE_RUNTIMES entry of a model file, or None for a .tflite (the --runtime's)."""
    return FILE_RUNTIMES.get(os.path.splitext(path or "")[1].lower())


def install_hint(name: str) -> str:
    """What to pip install for a file-format runtime on this Python."""
    spec = BY_NAME[name]
    before = spec.get("install_before")
    if before and sys.version_info[:2] < before[0]:
        return before[1]
    return spec["install"]


def installed_version(name: str):
    """A file-format runtime's version from its distribution's metadata, without importing it
    (the parent never imports ONNX Runtime); None where it is not installed."""
    from importlib import metadata
    for dist in BY_NAME[name]["dists"]:
        try:
            return metadata.version(dist)
        except Exception:
            continue
    return None


def import_file_runtime(name: str):
    """(module, version) of a file-format runtime; AgentError naming the install when it is
    missing or does not import (a broken install: a numpy ABI mismatch, a missing library)."""
    spec = BY_NAME[name]
    try:
        module = __import__(spec["module"])
    except ImportError as exc:
        if getattr(exc, "name", None) == spec["module"]:
            raise AgentError("%s is not installed: %s" % (name, install_hint(name))) from None
        raise AgentError("%s does not import (%s): %s" % (name, one_line(exc, 160),
                                                          install_hint(name))) from None
    return module, getattr(module, "__version__", None) or installed_version(name) or "unknown"


def check_runtime(name: str) -> None:
    if name != "auto" and name not in RUNTIMES:
        raise AgentError("unknown runtime %r; choose one of: auto, %s (the TFLite interpreter of "
                         ".tflite models; %s)" % (name, ", ".join(RUNTIMES), "; ".join(
                             "%s models always run on %s" % (ext, spec["name"])
                             for ext, spec in FILE_RUNTIMES.items())))


def import_runtime(name: str):
    """Import the interpreter module of a runtime (or a file-format runtime's module); returns
    (module, version)."""
    if name in BY_NAME:
        return import_file_runtime(name)
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

