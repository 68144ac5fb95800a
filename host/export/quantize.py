"""SavedModel (or, per route, the PyTorch model or its ONNX export) -> one model per recipe
(.tflite, or .onnx on the ort route), each with its model card and (optionally) verified.
A recipe that fails becomes a failed result with the reason; the others go on."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebench.host.errors import UserError
from edgebench.host.export.card import build_card, card_path_for, tool_versions, write_card
from edgebench.host.export.mixed import MixedOptions
from edgebench.host.export.recipes import IO_TYPES, RECIPES, parse_recipes
from edgebench.host.export.source import SourceInfo

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclass
class VerifyData:
    """What every recipe is checked against: NHWC float inputs (already normalised), the float
    model's logits on them, and the labels (None where unknown)."""
    inputs: np.ndarray
    reference: np.ndarray
    labels: np.ndarray | None = None
    reference_kind: str = "torch"  # or "onnxruntime"


@dataclass
class RecipeResult:
    recipe: str
    status: str  # "ok", "failed", or "unsupported" (the converter cannot build this recipe)
    error: str = ""
    tflite: Path | None = None  # the model file: a .tflite, or an .onnx on the ort route
    card: Path | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    verification: dict | None = field(default=None)
    extra: dict = field(default_factory=dict)  # card additions: census, worst_layers, mixed
    converter: str = "onnx2tf"  # converters/__init__.py

    def row(self, fp32_size: int | None) -> dict:
        """This result as a verify.csv row."""
        v = self.verification or {}
        ratio = (self.size_bytes / fp32_size) if self.size_bytes and fp32_size else None
        return {"recipe": self.recipe, "converter": self.converter, "status": self.status, "error": self.error,
                "float_layers": (self.extra.get("mixed") or {}).get("k"),
                "size_bytes": self.size_bytes, "size_ratio_vs_fp32": ratio,
                "max_abs_diff": v.get("max_abs_diff"), "agreement": v.get("agreement"),
                "accuracy": v.get("accuracy"), "n": v.get("n")}


@dataclass
class QuantizeOptions:
    """How quantize() builds its recipes (every field has the command line's default)."""
    io: str = "int8"  # the integer recipes' input/output type (recipes.IO_TYPES)
    verify: VerifyData | None = None  # check each model against the float model
    progress: bool = True
    isolate: bool = True  # convert in a child process: a native crash costs one recipe, not the run
    debug: bool = False  # <arch>.<recipe>.layers.csv for the integer recipes (export/debug.py)
    mixed: MixedOptions | None = None  # int8-mixed's float layers (export/mixed.py)
    converter: str = "onnx2tf"  # the route (converters/__init__.py)
    model: Any = None  # litert-torch's PyTorch model (None: the checkpoint the source names)


def quantize(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
             out_dir: Path, source: SourceInfo,
             options: QuantizeOptions | None = None) -> list[RecipeResult]:
    """Build each recipe from `saved_model` into `out_dir/<arch>.<recipe>.tflite` with its card
    `<arch>.<recipe>.json`; verify each against `options.verify` when given. Never raises for one
    recipe's failure: that recipe's result has status "failed" and the reason. Without
    `options.isolate` the converter runs in this process, which saves the child's TensorFlow
    start-up. `options.converter` picks the route (converters/__init__.py): litert-torch builds
    from the PyTorch model into `<arch>.litert-torch.<recipe>.tflite`; a recipe it cannot build
    is an "unsupported" result with the reason; ort writes `<arch>.ort.<recipe>.onnx`."""
    from tqdm import tqdm

    from edgebench.host.export.converters import CONVERTERS
    from edgebench.host.export.converters.job import ConversionJob

    opts = options or QuantizeOptions()
    if opts.io not in IO_TYPES:
        raise UserError(f"unknown --io {opts.io!r}; choose one of: {', '.join(IO_TYPES)}")
    recipes = parse_recipes(",".join(recipes))
    if calib_inputs is not None:
        _check_calibration(np.asarray(calib_inputs), source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    route = CONVERTERS[opts.converter]
    stem = route.stem(source.architecture)
    tools = tool_versions()
    results = [RecipeResult(r, "unsupported", route.unsupported[r], converter=route.name)
               for r in recipes if r in route.unsupported]
    recipes = [r for r in recipes if r not in route.unsupported]
    bar = tqdm(total=len(recipes), desc=f"quantize {stem}", unit="recipe",
               disable=not opts.progress)
    job = ConversionJob(saved_model, source, opts.model, recipes, calib_inputs, opts.io, out_dir,
                        stem, debug=opts.debug, mixed=(opts.mixed or MixedOptions()).check(),
                        verify=opts.verify, isolate=opts.isolate, tools=tools)
    conversion = route.run(job)
    finish = _RecipeFinisher(job, opts, route, conversion)
    for event in conversion.events:
        bar.update(1)
        bar.set_postfix_str(event["recipe"])
        results.append(finish(event))
    bar.close()
    order = {n: i for i, n in enumerate(RECIPES)}
    return sorted(results, key=lambda r: order[r.recipe])


class _RecipeFinisher:
    """One converter event -> its RecipeResult: the model censused, verified and given its
    card, or a failed result with no file of an earlier run left under its name."""

    def __init__(self, job, opts: QuantizeOptions, route, conversion):
        self.job, self.opts, self.route, self.conversion = job, opts, route, conversion

    def __call__(self, event: dict) -> RecipeResult:
        if event["status"] != "ok":
            return self._failed(event)
        from edgebench.host.export.model_census import model_census

        recipe, converter = event["recipe"], self.route.name
        if self.opts.debug and self.route.debug_unsupported and \
                RECIPES[recipe].activations != "float":
            event["error"] = self.route.debug_unsupported
        path = self.job.out_dir / f"{self.job.stem}.{recipe}{self.route.suffix}"
        result = RecipeResult(recipe, "ok", event.get("error", ""), tflite=path,
                              size_bytes=path.stat().st_size, seconds=event["seconds"],
                              converter=converter,
                              extra=dict(event.get("extra") or {}, census=model_census(path),
                                         converter=converter))
        if not self.opts.debug and not RECIPES[recipe].mixed:  # an earlier --debug run's table
            (self.job.out_dir / f"{self.job.stem}.{recipe}.layers.csv").unlink(missing_ok=True)
        if self.opts.verify is not None:
            failed = self._verify(result)
            if failed is not None:
                return failed
        result.card = write_card(card_path_for(path), self._card(result))
        return result

    def _failed(self, event: dict) -> RecipeResult:
        recipe = event["recipe"]
        for stale in self.job.out_dir.glob(f"{self.job.stem}.{recipe}.*"):
            if stale.suffix in (self.route.suffix, ".json") or \
                    stale.name.endswith(".layers.csv"):
                stale.unlink()  # from an earlier run: not this result
        return RecipeResult(recipe, "failed", event["error"], seconds=event["seconds"],
                            converter=self.route.name)

    def _verify(self, result: RecipeResult) -> RecipeResult | None:
        """Fill result.verification; a model that converted but does not run is set aside
        (.tflite.failed, .onnx.failed) and its failed result returned: not a model to ship."""
        from edgebench.host.export.verify import verify_model

        verify, path = self.opts.verify, result.tflite
        try:
            result.verification = verify_model(
                path, verify.inputs, verify.reference, verify.labels,
                desc=f"verify {result.recipe}" if self.opts.progress else False)
            result.verification["reference"] = verify.reference_kind
        except Exception as exc:
            path.replace(path.with_suffix(path.suffix + ".failed"))
            return RecipeResult(result.recipe, "failed", f"does not run: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0][:250] if str(exc) else ''}",
                                size_bytes=result.size_bytes, seconds=result.seconds,
                                converter=self.route.name)
        return None

    def _card(self, result: RecipeResult) -> dict:
        source = self.job.source
        upstream = self.conversion.timings.get("upstream_s", 0.0)
        return build_card(result.tflite, recipe=result.recipe, architecture=source.architecture,
                          normalization=source.normalization, class_names=source.class_names,
                          positive_class=source.positive_class, source=source.card_source(),
                          conversion_seconds=upstream + result.seconds,
                          tools=self.conversion.tools,
                          verification=result.verification, extra=result.extra)


def _check_calibration(calib: np.ndarray, source: SourceInfo) -> None:
    """Wrong-sized calibration images convert without a word, and NaN ones crash the converter
    (segfault): refuse both up front."""
    want = tuple(source.input_shape[1:])
    if calib.ndim != 4 or calib.shape[1:] != want:
        raise UserError(f"calibration inputs have shape {list(calib.shape)}; the model takes "
                        f"N×{want[0]}×{want[1]}×{want[2]} (NHWC)")
    if not np.isfinite(calib).all():
        raise UserError("calibration inputs contain NaN or infinite values")


def fp32_size(results: list[RecipeResult], out_dir: Path, architecture: str,
              suffix: str = ".tflite") -> int | None:
    """The fp32 file's size, from this run or from an earlier one in the same folder
    (`architecture`: the route's stem; `suffix`: its model files')."""
    for r in results:
        if r.recipe == "fp32" and r.status == "ok":
            return r.size_bytes
    old = Path(out_dir) / f"{architecture}.fp32{suffix}"
    return old.stat().st_size if old.is_file() else None
