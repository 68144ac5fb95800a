"""PyTorch -> ONNX (opset 18, weights inside the file), and reading an ONNX file's input."""
from __future__ import annotations

import contextlib
import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

from edgebench.host.errors import UserError

OPSET = 18


@dataclass(frozen=True)
class OnnxInput:
    name: str
    shape: tuple[int, ...]  # NCHW, batch 1, every dimension known

    @property
    def channels(self) -> int:
        return self.shape[1]

    @property
    def hw(self) -> tuple[int, int]:
        return self.shape[2], self.shape[3]

    @property
    def nhwc(self) -> list[int]:
        return [1, self.shape[2], self.shape[3], self.shape[1]]


def export_onnx(model, in_channels: int, img_size: int, path: Path) -> Path:
    """Write `model` (eval mode) as a self-contained opset-18 ONNX file with input `input`
    (1×C×H×W float32) and output `logits`."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.zeros(1, in_channels, img_size, img_size),)
    tmp = path.with_suffix(".tmp.onnx")
    # The dynamo exporter prints its own progress lines on stdout; they would interleave with ours.
    # "torchvision is not installed" and similar exporter chatter is not the user's business.
    logging.getLogger("torch.onnx").setLevel(logging.ERROR)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        model.eval()
        # external_data=False: torch 2.13 otherwise writes the weights to a side `.onnx.data` file,
        # and onnx2tf / Netron / a user copying one file would lose them.
        torch.onnx.export(model, example, str(tmp), dynamo=True, external_data=False,
                          opset_version=OPSET, input_names=["input"], output_names=["logits"],
                          verbose=False)
    tmp.replace(path)
    return path


def read_onnx_input(path: Path, input_shape: tuple[int, ...] | None = None) -> OnnxInput:
    """The single 4-D NCHW image input of an ONNX file; `input_shape` fills dynamic dimensions.
    A file that is not ONNX, or has another kind of input, is a UserError."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX file not found: {path}")
    try:
        graph = onnx.load(str(path), load_external_data=False).graph
    except Exception as exc:
        raise UserError(f"cannot read ONNX file {path}: {type(exc).__name__}") from None
    initializers = {init.name for init in graph.initializer}
    inputs = [i for i in graph.input if i.name not in initializers]
    if len(inputs) != 1:
        raise UserError(f"{path} has {len(inputs)} inputs; edgebench converts image classifiers "
                        "with exactly one input")
    inp = inputs[0]
    dims = inp.type.tensor_type.shape.dim
    found = tuple(d.dim_value if d.HasField("dim_value") else None for d in dims)
    if input_shape is not None:
        if len(input_shape) != len(found):
            raise UserError(f"--input-shape {','.join(map(str, input_shape))} has {len(input_shape)} "
                            f"dimensions but input {inp.name!r} of {path.name} has {len(found)}")
        for given, have in zip(input_shape, found):
            if have not in (None, 0) and given != have:
                raise UserError(f"--input-shape {','.join(map(str, input_shape))} contradicts the "
                                f"fixed shape {list(found)} of input {inp.name!r}")
        found = tuple(input_shape)
    if len(found) != 4:
        raise UserError(f"input {inp.name!r} of {path.name} has shape {list(found)}; expected an "
                        "NCHW image batch [1,C,H,W]")
    if any(d in (None, 0) for d in found):
        raise UserError(f"input {inp.name!r} of {path.name} has dynamic shape {list(found)}; "
                        "give it with --input-shape 1,C,H,W")
    if found[0] != 1 or found[1] not in (1, 3, 4):
        raise UserError(f"input {inp.name!r} of {path.name} has shape {list(found)}; expected "
                        "NCHW [1,C,H,W] with C in 1, 3 or 4")
    return OnnxInput(inp.name, tuple(int(d) for d in found))


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(p) for p in text.replace("x", ",").split(","))
    except ValueError:
        raise UserError(f"--input-shape {text!r}: expected integers like 1,3,224,224") from None
    if not shape or any(d <= 0 for d in shape):
        raise UserError(f"--input-shape {text!r}: dimensions must be positive")
    return shape
