"""The conversion route as library calls: checkpoint (or ONNX file) -> ONNX -> SavedModel ->
float32 .tflite, each file kept in one folder (beside the checkpoint by default)."""
from __future__ import annotations

import csv
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edgebench.host.errors import UserError
from edgebench.host.export.quantize import (QuantizeOptions, RecipeResult, VerifyData, fp32_size,
                                            quantize)
from edgebench.host.export.source import SourceInfo
from edgebench.host.export.tf_convert import ConversionError
from edgebench.host.export.verify import (VERIFY_COLUMNS, normalize, onnx_logits, torch_logits,
                                          write_verify_csv)


@dataclass
class ConvertResult:
    source: SourceInfo
    onnx: Path
    saved_model: Path
    tflite: Path  # the float32 .tflite
    card: Path
    verification: dict | None
    timings: dict = field(default_factory=dict)  # onnx_export_s, onnx2tf_s, tflite_s, total_s
    notes: list[str] = field(default_factory=list)
    census: dict | None = None  # of the float32 .tflite

    @property
    def fp32(self) -> RecipeResult:
        return RecipeResult("fp32", "ok", tflite=self.tflite, card=self.card,
                            size_bytes=self.tflite.stat().st_size,
                            seconds=self.timings.get("tflite_s", 0.0),
                            verification=self.verification,
                            extra={"census": self.census} if self.census else {})


def convert_checkpoint(checkpoint: Path, out_dir: Path | None = None,
                       verify_images: np.ndarray | None = None,
                       verify_labels: np.ndarray | None = None,
                       progress: bool = False, loaded=None) -> ConvertResult:
    """PyTorch checkpoint -> `<arch>.onnx`, `<arch>_saved_model/`, `<arch>.fp32.tflite` + card in
    `out_dir` (default: the checkpoint's folder). With `verify_images` (uint8 N×H×W×C) the fp32
    model is checked against PyTorch on them. `loaded` = build_from_checkpoint(checkpoint)'s
    (model, meta) when the caller already has them."""
    from edgebench.host.checkpoint import build_from_checkpoint
    from edgebench.host.export.onnx_export import export_onnx

    checkpoint = Path(checkpoint)
    model, meta = loaded if loaded is not None else build_from_checkpoint(checkpoint)
    out_dir = Path(out_dir) if out_dir else checkpoint.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    arch = meta.architecture
    bar = _stages(arch, 3, progress, "ONNX export")
    start = time.perf_counter()
    onnx_path = export_onnx(model, meta.in_channels, meta.img_size, out_dir / f"{arch}.onnx")
    onnx_s = time.perf_counter() - start
    verify = None
    if verify_images is not None:
        inputs = normalize(verify_images, meta.normalization())
        verify = VerifyData(inputs, torch_logits(model, inputs), verify_labels, "torch")
    bar.update(1)
    return _finish(onnx_path, out_dir, arch, onnx_s, verify, None, bar, _meta(checkpoint, meta))


def _meta(checkpoint: Path, meta) -> dict:
    return dict(checkpoint=str(Path(checkpoint).resolve()), class_names=list(meta.class_names),
                normalization=meta.normalization(), data_spec=meta.data_spec,
                split_seed=meta.split_seed, positive_class=meta.positive_class)


def checkpoint_source(checkpoint: Path, meta) -> SourceInfo:
    """What the routes other than onnx2tf need of a checkpoint (they make no ONNX or SavedModel:
    those fields are empty)."""
    return SourceInfo(architecture=meta.architecture,
                      input_shape=[1, meta.img_size, meta.img_size, meta.in_channels],
                      onnx="", saved_model="", **_meta(checkpoint, meta))


def convert_onnx(onnx_path: Path, out_dir: Path | None = None,
                 input_shape: tuple[int, ...] | None = None, name: str | None = None,
                 class_names: list[str] | None = None, normalization: dict | None = None,
                 verify_images: np.ndarray | None = None,
                 verify_labels: np.ndarray | None = None,
                 progress: bool = False) -> ConvertResult:
    """An ONNX classifier from any framework (NCHW image input) -> SavedModel -> fp32 .tflite.
    Without a PyTorch model the reference is onnxruntime; without `verify_images` it is checked on
    32 fixed random inputs (max |Δ| and agreement only)."""
    from edgebench.host.export.onnx_export import read_onnx_input

    onnx_path = Path(onnx_path)
    spec = read_onnx_input(onnx_path, input_shape)
    out_dir = Path(out_dir) if out_dir else onnx_path.parent
    out_dir.mkdir(parents=True, exist_ok=True)
    name = name or onnx_path.stem
    c = spec.channels
    normalization = normalization or {"pixel_scale": 1.0 / 255.0, "mean": [0.0] * c, "std": [1.0] * c}
    if verify_images is None:
        rng = np.random.default_rng(0)
        verify_images = rng.integers(0, 256, (32, *spec.hw, c), dtype=np.uint8)
        verify_labels = None
    verify = None
    if len(verify_images):
        inputs = normalize(verify_images, normalization)
        verify = VerifyData(inputs, onnx_logits(onnx_path, inputs), verify_labels, "onnxruntime")
    n_out = verify.reference.shape[1] if verify is not None else 2
    bar = _stages(name, 2, progress, "onnx2tf")
    return _finish(onnx_path, out_dir, name, 0.0, verify, input_shape, bar, dict(
        checkpoint=None, class_names=class_names or [f"class{i}" for i in range(n_out)],
        normalization=normalization, data_spec=None, split_seed=None, positive_class=1))


def _stages(name: str, total: int, progress: bool, first: str):
    from tqdm import tqdm

    bar = tqdm(total=total, desc=f"convert {name}", unit="stage", disable=not progress)
    bar.set_postfix_str(first)
    return bar


def _finish(onnx_path: Path, out_dir: Path, arch: str, onnx_s: float, verify: VerifyData | None,
            input_shape, bar, meta: dict) -> ConvertResult:
    from edgebench.host.export.tf_convert import onnx_to_saved_model

    saved_model = out_dir / f"{arch}_saved_model"
    bar.set_postfix_str("onnx2tf")
    tf_info = onnx_to_saved_model(onnx_path, saved_model, input_shape)
    bar.update(1)
    bar.set_postfix_str("float32 .tflite" + (" + verify" if verify is not None else ""))
    source = SourceInfo(architecture=arch, input_shape=tf_info["input_shape"],
                        onnx=str(Path(onnx_path).resolve()),
                        saved_model=str(saved_model.resolve()),
                        upstream_seconds=onnx_s + tf_info["seconds"],
                        timings={"onnx_export_s": round(onnx_s, 3),
                                 "onnx2tf_s": round(tf_info["seconds"], 3)},
                        notes=tf_info["notes"], **meta)
    source.save()
    # float32 needs no calibration and has not been seen to crash the converter: in-process
    (fp32,) = quantize(saved_model, ["fp32"], None, out_dir, source,
                       QuantizeOptions(verify=verify, progress=False, isolate=False))
    bar.update(1)
    bar.close()
    if fp32.status != "ok":
        raise ConversionError(f"float32 TFLite conversion failed for {arch}: {fp32.error}")
    timings = dict(source.timings, tflite_s=round(fp32.seconds, 3),
                   total_s=round(source.upstream_seconds + fp32.seconds, 3))
    return ConvertResult(source, Path(onnx_path), saved_model, fp32.tflite, fp32.card,
                         fp32.verification, timings, list(source.notes),
                         fp32.extra.get("census"))


def reference_for(source: SourceInfo, images: np.ndarray, labels: np.ndarray | None,
                  model=None) -> VerifyData:
    """The float reference for `images` (uint8 NHWC): PyTorch (`model`, or the checkpoint the
    SavedModel came from when it still exists), onnxruntime on the ONNX file otherwise."""
    inputs = normalize(images, source.normalization)
    if model is not None:
        return VerifyData(inputs, torch_logits(model, inputs), labels, "torch")
    if source.checkpoint and Path(source.checkpoint).is_file():
        from edgebench.host.checkpoint import build_from_checkpoint

        model, _ = build_from_checkpoint(Path(source.checkpoint))
        return VerifyData(inputs, torch_logits(model, inputs), labels, "torch")
    if not Path(source.onnx).is_file():
        raise UserError(f"no float reference to verify against: neither the checkpoint nor "
                        f"{source.onnx} exists (use --no-verify)")
    return VerifyData(inputs, onnx_logits(Path(source.onnx), inputs), labels, "onnxruntime")


def record_verification(out_dir: Path, results: list[RecipeResult], architecture: str) -> Path:
    """Merge this run's rows into `out_dir/verify.csv`, one row per model × converter × recipe:
    rows of other models (several models converted into one folder), converters and recipes not
    re-run are kept. A file written before the model (converter) column existed is taken as
    `architecture`'s (onnx2tf's); size_ratio_vs_fp32 is against the same route's fp32."""
    from edgebench.host.export.converters import CONVERTERS
    from edgebench.host.export.recipes import RECIPES

    path = Path(out_dir) / "verify.csv"
    rows: dict[tuple[str, str, str], dict] = {}
    if path.is_file():
        with open(path, newline="") as f:
            for r in csv.DictReader(f):
                if set(VERIFY_COLUMNS) - {"model", "float_layers", "converter"} <= set(r):
                    r["model"] = r.get("model") or architecture
                    r["converter"] = r.get("converter") or "onnx2tf"
                    rows[(r["model"], r["converter"], r["recipe"])] = r
    for conv in dict.fromkeys(r.converter for r in results):
        mine = [r for r in results if r.converter == conv]
        size = fp32_size(mine, out_dir, CONVERTERS[conv].stem(architecture),
                         CONVERTERS[conv].suffix)
        for r in mine:
            rows[(architecture, conv, r.recipe)] = dict(r.row(size), model=architecture)
    order = {n: i for i, n in enumerate(RECIPES)}
    routes = {n: i for i, n in enumerate(CONVERTERS)}
    models = list(dict.fromkeys(m for m, _, _ in rows))
    ordered = sorted(rows, key=lambda k: (models.index(k[0]), routes.get(k[1], len(routes)),
                                          order.get(k[2], len(order)), k[2]))
    return write_verify_csv(path, [rows[k] for k in ordered])


def convert_any(path: Path, out: Path | None, input_shape: str | None, verify: bool,
                data: str | None, quiet: bool = False) -> ConvertResult:
    """Convert a checkpoint or an .onnx file; verify on the test split of `data` (or the
    checkpoint's own data spec) when asked."""
    from edgebench.host.export.onnx_export import parse_shape

    path = Path(path)
    if not path.exists():
        raise UserError(f"not found: {path}")
    images = labels = None
    if path.suffix.lower() == ".onnx":
        shape = parse_shape(input_shape) if input_shape else None
        if verify and data:
            from edgebench.host.export.onnx_export import read_onnx_input

            spec = read_onnx_input(path, shape)
            images, labels = _test_split(data, spec.hw[0], spec.channels, 0)
        if not verify:  # no verification images: convert_onnx skips the check
            images = np.zeros((0, 1, 1, 1), np.uint8)
        return convert_onnx(path, out, input_shape=shape, verify_images=images,
                            verify_labels=labels, progress=not quiet)
    if path.is_dir():
        raise UserError(f"{path} is a folder; convert takes a checkpoint (.pt) or an .onnx file "
                        "(quantize takes a SavedModel folder)")
    loaded = None
    if verify:
        from edgebench.host.checkpoint import build_from_checkpoint

        loaded = build_from_checkpoint(path)
        meta = loaded[1]
        images, labels = _test_split(data or meta.data_spec, meta.img_size, meta.in_channels,
                                     meta.split_seed)
    return convert_checkpoint(path, out, verify_images=images, verify_labels=labels,
                              progress=not quiet, loaded=loaded)


def _test_split(spec: str, img_size: int, channels: int, seed: int):
    from edgebench.host.data import load_splits

    return load_splits(spec, img_size, channels, seed)["test"]
