"""The model card: the JSON beside every model (.tflite, or .onnx for ONNX Runtime) that the bundle
and the device agent read.
Its schema is defined in device/schema.py (ModelCard and the comment above it); this module
builds, writes and reads it."""
from __future__ import annotations

import json
import os
from importlib import metadata
from pathlib import Path

import numpy as np

from edgebench.device.schema import (
    CARD_EXTRA_KEYS, CARD_INPUT_KEYS, CARD_KEYS, CARD_OUTPUT_KEYS, CARD_SOURCE_KEYS,
    CARD_VERIFICATION_KEYS, MODEL_CARD_SCHEMA, ModelCard,
)
from edgebench.host.errors import UserError
from edgebench.host.export.source import portable_path
from edgebench.host.files import sha256_file, write_atomic

INPUT_KEYS, OUTPUT_KEYS, SOURCE_KEYS = CARD_INPUT_KEYS, CARD_OUTPUT_KEYS, CARD_SOURCE_KEYS
VERIFICATION_KEYS = CARD_VERIFICATION_KEYS
# Optional, written where they apply (the agent ignores them): census (export/census.py, every
# model), layers_csv + worst_layers (the layer debugger, export/debug.py), mixed (int8-mixed's
# float layers and search, export/mixed.py), converter (the route that built it,
# export/converters; absent: onnx2tf); `derived` is the bundle's own (bundle.derive_card).
EXTRA_KEYS = tuple(k for k in CARD_EXTRA_KEYS if k != "derived")
# source.checkpoint_sha256 identifies the checkpoint wherever it lies; optional (not in
# SOURCE_KEYS), so cards written before it still load and the schema version stays.
SOURCE_HASH = "checkpoint_sha256"
_SOURCE_PATHS = ("checkpoint", "onnx", "saved_model")
__all__ = ["CARD_KEYS", "EXTRA_KEYS", "INPUT_KEYS", "OUTPUT_KEYS", "SOURCE_HASH", "SOURCE_KEYS",
           "VERIFICATION_KEYS", "build_card", "card_path_for", "portable_source", "read_card",
           "tensor_info", "tool_versions", "validate_card", "write_card"]
_TOOLS = ("torch", "onnx", "onnx2tf", "onnxruntime", "tensorflow", "tf-keras", "ai-edge-litert",
          "numpy")



def card_path_for(tflite_path: Path) -> Path:
    """resnet18.int8.tflite -> resnet18.int8.json (an .onnx the same way)"""
    return Path(tflite_path).with_suffix(".json")


def portable_source(source: dict, card_dir: Path) -> dict:
    """The card's `source` with no host layout in it: cards travel in the bundle to every device
    and into a lab's shared database. Paths are relative to the card's own folder (the anchor
    the bundle resolves them from; in a run that is results/<run>/models/<arch>/, beside the
    checkpoint), and the checkpoint also carries its sha256."""
    out = {k: source.get(k) for k in SOURCE_KEYS}
    ckpt = source.get("checkpoint")
    out[SOURCE_HASH] = source.get(SOURCE_HASH) or (
        sha256_file(Path(ckpt)) if ckpt and os.path.isabs(ckpt) and Path(ckpt).is_file() else None)
    for key in _SOURCE_PATHS:
        if out.get(key) and os.path.isabs(out[key]):
            out[key] = portable_path(Path(out[key]), Path(card_dir))
    return out


def tool_versions() -> dict:
    out = {}
    for dist in _TOOLS:
        try:
            out[dist.replace("-", "_")] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist.replace("-", "_")] = None
    return out


def tensor_info(detail: dict) -> dict:
    """shape/dtype/scale/zero_point of one TFLite tensor, as the interpreter reports them: a float
    tensor has scale 0.0 and zero_point 0 (TFLite's own "not quantized")."""
    scale, zero_point = detail["quantization"]
    return {"shape": [int(d) for d in detail["shape"]], "dtype": np.dtype(detail["dtype"]).name,
            "scale": float(scale), "zero_point": int(zero_point)}


def build_card(tflite_path: Path, *, recipe: str, architecture: str, normalization: dict,
               class_names: list[str], positive_class: int, source: dict,
               conversion_seconds: float, tools: dict | None = None,
               verification: dict | None = None, extra: dict | None = None) -> dict:
    """The card of a .tflite or an ONNX Runtime .onnx (`tflite_path` is either: the suffix picks
    how its input and output are read, MODEL_IO)."""
    model_path = Path(tflite_path)
    card_input, card_output = MODEL_IO[model_path.suffix](model_path)
    card_input["normalization"] = {"pixel_scale": float(normalization["pixel_scale"]),
                                   "mean": [float(m) for m in normalization["mean"]],
                                   "std": [float(s) for s in normalization["std"]]}
    return ModelCard(
        name=model_path.name[:-len(model_path.suffix)], file=model_path.name,
        sha256=sha256_file(model_path), size_bytes=model_path.stat().st_size,
        recipe=recipe, architecture=architecture,
        input={k: card_input[k] for k in INPUT_KEYS}, output=card_output,
        class_names=list(class_names), positive_class=int(positive_class),
        source=portable_source(source, model_path.parent),
        tools=tools if tools is not None else tool_versions(),
        conversion_seconds=round(float(conversion_seconds), 3), verification=verification,
        extra={k: v for k, v in (extra or {}).items() if k in EXTRA_KEYS},
    ).to_json()


def _tflite_io(path: Path) -> tuple[dict, dict]:
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path))
    (inp,), (out,) = interp.get_input_details(), interp.get_output_details()
    return dict(tensor_info(inp), layout="NHWC"), tensor_info(out)


def _onnx_io(path: Path) -> tuple[dict, dict]:
    """An ONNX model's single input and first output: float tensors (QDQ quantizes inside the
    graph), so scale 0.0 and zero_point 0 as a float TFLite tensor reports them."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {i.name for i in graph.initializer}
    (inp,) = [i for i in graph.input if i.name not in weights]

    def info(value) -> dict:
        t = value.type.tensor_type
        return {"shape": [int(d.dim_value) for d in t.shape.dim],
                "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(t.elem_type)).name,
                "scale": 0.0, "zero_point": 0}

    return dict(info(inp), layout="NCHW"), info(graph.output[0])


# model file suffix -> its (card input, card output); input.layout is what the runtime takes
MODEL_IO = {".tflite": _tflite_io, ".onnx": _onnx_io}
LAYOUTS = {".tflite": "NHWC", ".onnx": "NCHW"}


def write_card(path: Path, card: dict) -> Path:
    validate_card(card, str(path))
    path = Path(path)
    write_atomic(path, json.dumps(card, indent=2) + "\n")
    return path


def read_card(path: Path) -> dict:
    path = Path(path)
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise UserError(f"model card not found: {path}") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read model card {path}: {exc}") from None
    validate_card(card, str(path))
    return card


def validate_card(card: dict, where: str = "model card") -> None:
    """Raise UserError unless `card` has this schema version and every field it defines."""
    if not isinstance(card, dict) or card.get("schema") != MODEL_CARD_SCHEMA:
        found = card.get("schema") if isinstance(card, dict) else type(card).__name__
        raise UserError(f"{where}: expected schema {MODEL_CARD_SCHEMA}, found {found!r}")
    checks = [("", card, CARD_KEYS), ("input.", card.get("input"), INPUT_KEYS),
              ("output.", card.get("output"), OUTPUT_KEYS), ("source.", card.get("source"), SOURCE_KEYS)]
    if card.get("verification") is not None:
        checks.append(("verification.", card["verification"], VERIFICATION_KEYS))
    for prefix, part, keys in checks:
        if not isinstance(part, dict):
            raise UserError(f"{where}: field {prefix.rstrip('.')!r} must be an object")
        missing = [prefix + k for k in keys if k not in part]
        if missing:
            raise UserError(f"{where}: missing field(s) {', '.join(missing)}")
    suffix = Path(str(card.get("file") or "")).suffix
    layout = LAYOUTS.get(suffix, "NHWC")
    if card["input"]["layout"] != layout:
        raise UserError(f"{where}: input.layout must be {layout} for a {suffix or 'model'} file")
