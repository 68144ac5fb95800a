"""The conversion routes from PyTorch to TFLite, one row each, looked up by name
(`--converter help`): onnx2tf (PyTorch -> ONNX -> TensorFlow -> TFLite, the paper's route and the
default) and litert-torch (Google's direct exporter on torch.export, quantized by
ai-edge-quantizer), which runs in its own virtual environment (converters/litert_env.py).

Files of both routes coexist in one folder: onnx2tf keeps `<arch>.<recipe>.tflite`, every other
converter writes `<arch>.<converter>.<recipe>.tflite` (model name `<arch>.<converter>.<recipe>`);
`stem()` is the one place that knows this."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from edgebench.host.registry import describe, pick

DEFAULT_CONVERTER = "onnx2tf"


def _run_onnx2tf(job):
    from edgebench.host.export.converters import onnx2tf_route

    return onnx2tf_route.run(job)


def _run_litert_torch(job):
    from edgebench.host.export.converters import litert_route

    return litert_route.run(job)


@dataclass(frozen=True)
class Converter:
    name: str
    summary: str
    # How this route runs its recipes: ConversionJob -> Conversion (converters/job.py). The
    # routes import lazily: listing or naming converters needs neither TensorFlow nor torch.
    run: Callable
    # recipe -> why this route cannot build it (a row status, never a crash)
    unsupported: dict = field(default_factory=dict)
    # Why --debug's layer tables cannot be made on this route ("": they can)
    debug_unsupported: str = ""

    def stem(self, architecture: str) -> str:
        """The file/model stem of this route's models of `architecture`."""
        return architecture if self.name == DEFAULT_CONVERTER else f"{architecture}.{self.name}"


CONVERTERS: dict[str, Converter] = {c.name: c for c in (
    Converter("onnx2tf", "PyTorch -> ONNX (opset 18) -> onnx2tf SavedModel -> TFLiteConverter "
              "(the default; every recipe)", run=_run_onnx2tf),
    Converter("litert-torch", "PyTorch -> torch.export -> litert-torch 0.10.0, recipes by "
              "ai-edge-quantizer 0.10.0 (own venv; int8-mixed and --debug unsupported)",
              run=_run_litert_torch,
              unsupported={"int8-mixed": "int8-mixed keeps the layers TensorFlow's "
                           "QuantizationDebugger ranks worst in float; that debugger reads "
                           "SavedModels, which the litert-torch route never makes"},
              debug_unsupported="--debug: the layer debugger is TensorFlow's "
                                "QuantizationDebugger, which the litert-torch route does not use"),
)}


def parse_converters(text: str | None) -> list[str]:
    """'onnx2tf,litert-torch' -> names in the table's order; None/'' -> the default; an unknown
    name is a UserError listing the valid ones."""
    return pick(CONVERTERS, text or DEFAULT_CONVERTER, "converter")


def converters_help() -> str:
    return describe(CONVERTERS, "converter")


def converter_of(model_name: str) -> str:
    """The converter of a model named by stem() + '.<recipe>' (a result row's `model`)."""
    parts = str(model_name).split(".")
    return parts[1] if len(parts) >= 3 and parts[1] in CONVERTERS else DEFAULT_CONVERTER
