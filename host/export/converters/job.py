"""What quantize() hands a conversion route (ConversionJob) and what the route hands back
(Conversion): the contract every row of CONVERTERS runs its recipes by."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator


@dataclass
class ConversionJob:
    saved_model: Path  # the onnx2tf route's input
    source: Any  # export/source.py's SourceInfo: shapes, checkpoint, upstream seconds
    model: Any  # the PyTorch model for routes that start from it (None: the source's checkpoint)
    recipes: list
    calib_inputs: Any  # NHWC float calibration images, or None
    io: str
    out_dir: Path
    stem: str  # Converter.stem(): the file names' start
    debug: bool = False
    mixed: Any = None  # export/mixed.py's MixedOptions, checked
    verify: Any = None  # quantize.py's VerifyData, or None
    isolate: bool = True  # convert in a child process
    tools: dict = field(default_factory=dict)  # the host's tool versions (card.tool_versions)


@dataclass
class Conversion:
    events: Iterator[dict]  # one "done" event per recipe, in order (recipe_worker's shape)
    # upstream_s: seconds spent before the TFLite step; a route may fill it while events run
    timings: dict
    tools: dict  # the tool versions the model cards record
