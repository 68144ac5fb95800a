"""The post-training quantization recipes, one row each, looked up by name (`--recipes help`).

Each recipe configures a `tf.lite.TFLiteConverter` made from the SavedModel; the order here is
the order they are built and reported."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from edgebench.host.registry import describe, pick

IO_TYPES = ("int8", "uint8", "float")  # the int8 recipes' input/output type


@dataclass(frozen=True)
class Recipe:
    name: str
    summary: str
    calibrated: bool  # needs a representative data set
    # configure(converter, tf, representative_dataset or None, io) sets the converter's options
    configure: Callable
    activations: str = "float"  # "int8" / "int16": what the layer debugger (--debug) inspects
    # Built from the calibrated model with the layers of largest error kept in float
    # (export/mixed.py) instead of by one converter call.
    mixed: bool = False


def _fp32(conv, tf, rep, io):
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]


def _dynamic(conv, tf, rep, io):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]


def _fp16(conv, tf, rep, io):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.target_spec.supported_types = [tf.float16]
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]


def _int8(conv, tf, rep, io):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    # INT8 only: an op without an int8 kernel fails the conversion instead of silently staying float
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    io_type = {"uint8": tf.uint8, "float": tf.float32}.get(io, tf.int8)
    conv.inference_input_type = conv.inference_output_type = io_type


def _int16x8(conv, tf, rep, io):
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    conv.representative_dataset = rep
    conv.target_spec.supported_ops = [
        tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8]
    conv.inference_input_type = tf.int16
    conv.inference_output_type = tf.int16


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("fp32", "float32 weights and activations (the reference)", False, _fp32),
    Recipe("dynamic", "dynamic-range: int8 weights, float activations quantized on the fly",
           False, _dynamic),
    Recipe("fp16", "float16 weights, float32 compute", False, _fp16),
    Recipe("int8", "full-integer: int8 weights and activations, int8 input/output (--io uint8|float)",
           True, _int8, "int8"),
    Recipe("int16x8", "int16 activations, int8 weights, int16 input/output (reference kernels: slow)",
           True, _int16x8, "int16"),
    Recipe("int8-mixed", "int8 with the layers (and input/output) of largest quantization error "
           "kept in float (--keep-float K, --target-agreement A: default 0.99, or "
           "--max-changed-images C)", True, _int8, "int8",
           mixed=True),
)}


# What `quantize` and the profiles build when not told: int8-mixed costs a debugger run and a
# search on top of int8, so it is chosen by name (or 'all').
DEFAULT_RECIPES = ("fp32", "dynamic", "fp16", "int8", "int16x8")


def parse_recipes(text: str) -> list[str]:
    """'fp32,int8' -> ['fp32', 'int8'] in the table's order; 'all' is every recipe; an unknown
    name is a UserError listing the valid ones."""
    return pick(RECIPES, text, "recipe")


def recipes_help() -> str:
    return describe(RECIPES, "recipe")
