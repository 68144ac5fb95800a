"""Which runtime family ("engine") a result row ran on: LiteRT (any of the agent's .tflite
runtimes: litert, tflite-runtime, tensorflow) or a runtime a model's file format fixes (ONNX
Runtime for .onnx). Two rows of different engines are two runtimes, never two versions of one
series: the Runtimes section pairs them on purpose, compare and the Converters section must not.

Looked up from the agent's own runtime registry (device/runtimes.py) and the host's converter
registry (export/converters), so a new file runtime needs no change here."""
from __future__ import annotations

from edgebench.device.runtimes import BY_NAME, FILE_RUNTIMES, ONNXRUNTIME
from edgebench.host.export.converters import CONVERTERS, DEFAULT_CONVERTER

LITERT = "litert"
ORT = ONNXRUNTIME
# How the report names each engine.
ENGINE_LABELS = {LITERT: "LiteRT", ORT: "ONNX Runtime"}


def engine_of(runtime) -> str:
    """The engine of a results row's `runtime` column: a file runtime's own name, else LiteRT
    (every other runtime the agent has runs .tflite files; old results may spell it otherwise)."""
    return BY_NAME[runtime]["name"] if runtime in BY_NAME else LITERT


def engine_of_converter(converter) -> str:
    """The engine a conversion route's models run on: the file runtime its suffix fixes, else
    LiteRT. Known from the model's name, so an error row (no runtime recorded) has one too."""
    route = CONVERTERS.get(converter, CONVERTERS[DEFAULT_CONVERTER])
    spec = FILE_RUNTIMES.get(route.suffix)
    return spec["name"] if spec else LITERT


def engine_label(engine: str) -> str:
    return ENGINE_LABELS.get(engine, engine)


def series_label(runtime, converter) -> str:
    """"ONNX Runtime", "LiteRT" or "LiteRT (litert-torch)": a row's engine, and its route where
    that engine has several (LiteRT: the default route goes unnamed)."""
    engine = engine_of_converter(converter) if converter in CONVERTERS else engine_of(runtime)
    label = engine_label(engine)
    if engine == LITERT and converter not in (None, DEFAULT_CONVERTER):
        label += f" ({converter})"
    return label
