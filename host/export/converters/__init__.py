"""The conversion routes from PyTorch to a deployable model, one row each, looked up by name
(`--converter help`): onnx2tf (PyTorch -> ONNX -> TensorFlow -> TFLite, the paper's route and the
default), litert-torch (Google's direct exporter on torch.export, quantized by
ai-edge-quantizer), which runs in its own virtual environment (converters/env.py), and ort
(the same exported ONNX -> ONNX Runtime models, quantized by onnxruntime.quantization).

Files of every route coexist in one folder: onnx2tf keeps `<arch>.<recipe>.tflite`, every other
converter writes `<arch>.<converter>.<recipe><suffix>` (model name `<arch>.<converter>.<recipe>`;
suffix .tflite, or .onnx for ort); `stem()` and `model_file()` are the one place that knows this."""
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


def _run_ort(job):
    from edgebench.host.export.converters import ort_route

    return ort_route.run(job)


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
    # The model files' suffix: what the bundle ships and the agent picks its runtime by
    suffix: str = ".tflite"

    def stem(self, architecture: str) -> str:
        """The file/model stem of this route's models of `architecture`."""
        return architecture if self.name == DEFAULT_CONVERTER else f"{architecture}.{self.name}"

    def model_file(self, architecture: str, recipe: str) -> str:
        """The file name of one recipe's model: resnet18.ort.int8.onnx"""
        return f"{self.stem(architecture)}.{recipe}{self.suffix}"


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
    Converter("ort", "PyTorch -> ONNX (opset 18, the export onnx2tf starts from) -> ONNX Runtime "
              ".onnx: fp32 as exported, int8 static QDQ (per-channel, S8S8), fp16 weights with "
              "float I/O", run=_run_ort, suffix=".onnx",
              unsupported={
                  "dynamic": "ONNX Runtime's dynamic quantization is meant for MatMul/Gemm models "
                             "(its docs recommend static quantization for CNNs): with int8 weights "
                             "its ConvInteger has no CPU kernel, with uint8 weights every "
                             "convolution re-quantizes its input on each inference; int8 is the "
                             "CNN recipe here",
                  "int16x8": "ONNX Runtime's CPU kernels have no int16 convolution: a 16-bit QDQ "
                             "graph would compute in float between Q/DQ pairs",
                  "int8-mixed": "int8-mixed ranks layers with TensorFlow's QuantizationDebugger, "
                                "which reads SavedModels, not ONNX Runtime graphs"},
              debug_unsupported="--debug: the layer debugger is TensorFlow's "
                                "QuantizationDebugger, which the ort route does not use"),
)}


def parse_converters(text: str | None) -> list[str]:
    """'onnx2tf,ort' -> names in the table's order; None/'' -> the default; an unknown
    name is a UserError listing the valid ones."""
    return pick(CONVERTERS, text or DEFAULT_CONVERTER, "converter")


def converters_help() -> str:
    return describe(CONVERTERS, "converter")


def converter_of(model_name: str) -> str:
    """The converter of a model named by stem() + '.<recipe>' (a result row's `model`)."""
    parts = str(model_name).split(".")
    return parts[1] if len(parts) >= 3 and parts[1] in CONVERTERS else DEFAULT_CONVERTER
