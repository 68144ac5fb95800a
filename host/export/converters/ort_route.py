"""The ort route: the ONNX file PyTorch exported (the one onnx2tf starts from) -> one ONNX Runtime
model per recipe, `<arch>.ort.<recipe>.onnx`, built here with onnxruntime.quantization. Yields the
same events as the other routes, so quantize.py verifies, censuses and writes cards for all.

No recipe saves a graph ONNX Runtime optimised for this host: its extended/layout rewrites (NCHWc
and the like) are specific to the CPU that made them, and the device optimises at load anyway.
int8 goes through ORT's recommended pre-processing, whose optimisation is the basic,
hardware-independent level (constant folding, Conv+BatchNorm fusion)."""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.host.export.converters.job import Conversion, ConversionJob

# ORT's quantization docs ("Data type selection"): S8S8 with QDQ is the default and the first
# choice on CPU; per-channel weights for CNNs, whose per-filter ranges differ widely. No
# reduce_range: it is for U8S8 saturation on non-VNNI x86, and S8S8 targets ARM boards too.
INT8_SETTINGS = {"quant_format": "QDQ", "activation_type": "QInt8", "weight_type": "QInt8",
                 "per_channel": True, "reduce_range": False, "calibrate_method": "MinMax"}


def run(job: ConversionJob) -> Conversion:
    """The route's events and timings ({upstream_s: the ONNX export's seconds, 0 when the
    exported file already exists}); tool versions are the host's (onnxruntime, onnx among them)."""
    timings: dict = {"upstream_s": 0.0}
    return Conversion(_events(job, timings), timings, job.tools)


def _events(job: ConversionJob, timings: dict):
    with tempfile.TemporaryDirectory(prefix="edgebench-ort-") as tmp:
        try:
            source = exported_onnx(job, Path(tmp), timings)
        except Exception as exc:
            for recipe in job.recipes:
                yield _done(recipe, 0.0, error=f"ONNX export failed: {_first_line(exc)}")
            return
        for recipe in job.recipes:
            start = time.perf_counter()
            out = job.out_dir / f"{job.stem}.{recipe}.onnx"
            try:
                BUILDERS[recipe](source, out, job, Path(tmp))
            except Exception as exc:
                out.unlink(missing_ok=True)
                yield _done(recipe, time.perf_counter() - start,
                            error=f"{recipe}: {_first_line(exc)}")
                continue
            yield _done(recipe, time.perf_counter() - start, size=out.stat().st_size)


def exported_onnx(job: ConversionJob, tmp: Path, timings: dict) -> Path:
    """The ONNX file `convert` exported when it is still there (the same graph onnx2tf converted),
    else an export of the PyTorch model (the job's, or the source's checkpoint) into `tmp`."""
    from edgebench.host.export.onnx_export import export_onnx

    if job.source.onnx and Path(job.source.onnx).is_file():
        return Path(job.source.onnx)
    model = job.model
    if model is None:
        if not job.source.checkpoint or not Path(job.source.checkpoint).is_file():
            raise FileNotFoundError(f"neither {job.source.onnx or 'an exported .onnx'} nor the "
                                    "checkpoint exists")
        from edgebench.host.checkpoint import build_from_checkpoint

        model, _ = build_from_checkpoint(Path(job.source.checkpoint))
    _, height, width, channels = job.source.input_shape
    assert height == width, "the export takes square images"
    start = time.perf_counter()
    path = export_onnx(model, int(channels), int(height), tmp / f"{job.source.architecture}.onnx")
    timings["upstream_s"] = round(time.perf_counter() - start, 3)
    return path


def _fp32(source: Path, out: Path, job: ConversionJob, tmp: Path) -> None:
    """The exported graph as it is, checked and with its shapes inferred (no optimisation)."""
    import onnx

    model = onnx.shape_inference.infer_shapes(onnx.load(str(source)), check_type=True)
    onnx.checker.check_model(model, full_check=True)
    _save(model, out)


def _int8(source: Path, out: Path, job: ConversionJob, tmp: Path) -> None:
    """Static QDQ on the calibration images of every route's int8 (NHWC float -> NCHW)."""
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    if job.calib_inputs is None or len(job.calib_inputs) == 0:
        raise ValueError("int8 needs calibration images")
    prepared = tmp / "int8.pre.onnx"
    quant_pre_process(str(source), str(prepared))
    s = INT8_SETTINGS
    quantize_static(str(prepared), str(out), _CalibrationImages(prepared, job.calib_inputs),
                    quant_format=getattr(QuantFormat, s["quant_format"]),
                    activation_type=getattr(QuantType, s["activation_type"]),
                    weight_type=getattr(QuantType, s["weight_type"]),
                    per_channel=s["per_channel"], reduce_range=s["reduce_range"],
                    calibrate_method=getattr(CalibrationMethod, s["calibrate_method"]))


def _fp16(source: Path, out: Path, job: ConversionJob, tmp: Path) -> None:
    """float16 weights and compute, float32 input and output (Casts at both ends), so a card's
    float input feeds every recipe alike."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    _save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), out)


BUILDERS = {"fp32": _fp32, "int8": _int8, "fp16": _fp16}


class _CalibrationImages:
    """onnxruntime's CalibrationDataReader over NHWC float images, one NCHW batch of 1 each."""

    def __init__(self, model: Path, images):
        import onnx

        graph = onnx.load(str(model), load_external_data=False).graph
        weights = {i.name for i in graph.initializer}
        self.name = next(i.name for i in graph.input if i.name not in weights)
        self.images = np.asarray(images, dtype=np.float32).transpose(0, 3, 1, 2)
        self.next = 0

    def get_next(self):
        if self.next >= len(self.images):
            return None
        self.next += 1
        return {self.name: np.ascontiguousarray(self.images[self.next - 1:self.next])}

    def rewind(self):
        self.next = 0


def _save(model, out: Path) -> None:
    """Weights inside the file (one file ships), written whole or not at all."""
    from edgebench.host.files import write_atomic

    write_atomic(out, model.SerializeToString())


def _done(recipe: str, seconds: float, size: int | None = None, error: str = "") -> dict:
    return {"recipe": recipe, "event": "done", "status": "failed" if error else "ok",
            "error": error[:300], "seconds": round(seconds, 3), "size_bytes": size, "extra": {}}


def _first_line(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).strip().splitlines() or [''])[0][:250]}"
