"""The op census of any model file a route writes, looked up by its suffix: a .tflite from its
flatbuffer (census.py), an ONNX Runtime .onnx from its graph (onnx_census.py); both give the same
keys, so cards, listings and the report read them alike."""
from __future__ import annotations

from pathlib import Path

from edgebench.host.export.census import op_census
from edgebench.host.export.onnx_census import onnx_census

CENSUS_BY_SUFFIX = {".tflite": op_census, ".onnx": onnx_census}


def model_census(path: Path) -> dict:
    """The census of `path`; an unknown suffix is read as a .tflite (which refuses non-TFLite)."""
    return CENSUS_BY_SUFFIX.get(Path(path).suffix, op_census)(path)
