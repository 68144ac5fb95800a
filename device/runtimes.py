"""The TFLite runtimes the agent can use (ai_edge_litert, tflite_runtime, tensorflow.lite): import
one, build an Interpreter, load an external delegate."""
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


def runtime_help() -> str:
    return "runtimes:\n" + "\n".join("  %-15s %s" % item for item in RUNTIME_HELP.items())


def check_runtime(name: str) -> None:
    if name != "auto" and name not in RUNTIMES:
        raise AgentError("unknown runtime %r; choose one of: auto, %s"
                         % (name, ", ".join(RUNTIMES)))


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

