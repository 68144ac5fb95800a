"""SavedModel -> one .tflite per recipe, each with its model card and (optionally) verified.
A recipe that fails becomes a failed result with the reason; the others go on."""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

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
    tflite: Path | None = None
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


def convert_isolated(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
                     io: str, out_dir: Path, name: str, debug: bool = False,
                     mixed: MixedOptions | None = None, verify: VerifyData | None = None):
    """Run the converter in a child process (recipe_worker) and yield one result event per recipe,
    in order. A crash fails the recipe it happened in, and a fresh child takes the rest."""
    import dataclasses
    import signal
    import subprocess
    import sys

    with tempfile.TemporaryDirectory(prefix="edgebench-quantize-") as tmp:
        log = Path(tmp) / "converter.log"
        opts = {"io": io, "calib": None, "log": str(log), "debug": debug,
                "mixed": dataclasses.asdict(mixed) if mixed else None,
                "verify_inputs": None, "verify_reference": None}
        if calib_inputs is not None:
            opts["calib"] = str(Path(tmp) / "calib.npy")
            np.save(opts["calib"], np.asarray(calib_inputs, dtype=np.float32))
        if verify is not None and any(RECIPES[r].mixed for r in recipes):
            opts["verify_inputs"] = str(Path(tmp) / "verify_inputs.npy")
            opts["verify_reference"] = str(Path(tmp) / "verify_reference.npy")
            np.save(opts["verify_inputs"], verify.inputs)
            np.save(opts["verify_reference"], verify.reference)
        options_path = Path(tmp) / "options.json"
        options_path.write_text(json.dumps(opts))
        pending = list(recipes)
        while pending:
            cmd = [sys.executable, "-m", "edgebench.host.export.recipe_worker", str(saved_model),
                   str(out_dir), name, str(options_path), *pending]
            with open(Path(tmp) / "worker.err", "wb") as err:
                proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err, text=True)
                current = None
                for line in proc.stdout:
                    if not line.startswith("{"):
                        continue  # a library printing on stdout
                    event = json.loads(line)
                    if event["event"] == "start":
                        current = event["recipe"]
                    elif event["recipe"] in pending:
                        pending.remove(event["recipe"])
                        current = None
                        yield event
                rc = proc.wait()
            if not pending:
                break
            crashed = current or pending[0]
            pending.remove(crashed)
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            text = (log.read_text(errors="replace") if log.is_file() else "") + \
                (Path(tmp) / "worker.err").read_text(errors="replace")
            hint = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or [""]
            yield {"recipe": crashed, "event": "done", "status": "failed", "size_bytes": None,
                   "seconds": 0.0, "extra": {},
                   "error": f"converter crashed ({how}) {hint[0]}".strip()[:300]}


def convert_here(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
                 io: str, out_dir: Path, name: str, debug: bool = False,
                 mixed: MixedOptions | None = None, verify: VerifyData | None = None):
    """convert_isolated's events, with the converter in this process."""
    from edgebench.host.export import recipe_worker

    pair = (verify.inputs, verify.reference) if verify is not None else None
    for recipe in recipes:
        yield recipe_worker.convert_one(Path(saved_model), Path(out_dir), name, recipe,
                                        calib_inputs, io, None, debug, mixed, pair)


def quantize(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
             out_dir: Path, source: SourceInfo, *, io: str = "int8",
             verify: VerifyData | None = None, progress: bool = True,
             isolate: bool = True, debug: bool = False,
             mixed: MixedOptions | None = None, converter: str = "onnx2tf",
             model=None) -> list[RecipeResult]:
    """Build each recipe from `saved_model` into `out_dir/<arch>.<recipe>.tflite` with its card
    `<arch>.<recipe>.json`; verify each against `verify` when given. Never raises for one
    recipe's failure: that recipe's result has status "failed" and the reason. `isolate` runs
    the converter in a child process (a native crash then costs one recipe, not the run);
    without it the converter runs here, which saves the child's TensorFlow start-up. `debug`
    writes `<arch>.<recipe>.layers.csv` for the integer recipes (export/debug.py); `mixed`
    chooses int8-mixed's float layers (export/mixed.py). `converter` picks the route
    (converters/__init__.py): litert-torch builds from the PyTorch `model` (default: the
    checkpoint `source` names) into `<arch>.litert-torch.<recipe>.tflite`; a recipe it cannot build
    is an "unsupported" result with the reason."""
    from tqdm import tqdm

    from edgebench.host.export.census import op_census
    from edgebench.host.export.converters import CONVERTERS
    from edgebench.host.export.verify import verify_tflite

    if io not in IO_TYPES:
        raise UserError(f"unknown --io {io!r}; choose one of: {', '.join(IO_TYPES)}")
    recipes = parse_recipes(",".join(recipes))
    if calib_inputs is not None:
        _check_calibration(np.asarray(calib_inputs), source)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    route = CONVERTERS[converter]
    stem = route.stem(source.architecture)
    tools = tool_versions()
    results = [RecipeResult(r, "unsupported", route.unsupported[r], converter=converter)
               for r in recipes if r in route.unsupported]
    recipes = [r for r in recipes if r not in route.unsupported]
    bar = tqdm(total=len(recipes), desc=f"quantize {stem}", unit="recipe",
               disable=not progress)
    mixed = (mixed or MixedOptions()).check()
    timings = {"upstream_s": source.upstream_seconds}  # seconds before the TFLite step
    if converter == "onnx2tf":
        run = convert_isolated if isolate else convert_here
        events = run(saved_model, recipes, calib_inputs, io, out_dir, stem, debug, mixed, verify)
    else:
        events, timings, tools = _litert(source, model, recipes, calib_inputs, io, out_dir, stem,
                                          tools)
    for event in events:
        recipe, seconds = event["recipe"], event["seconds"]
        bar.update(1)
        bar.set_postfix_str(recipe)
        if event["status"] != "ok":
            for stale in out_dir.glob(f"{stem}.{recipe}.*"):
                if stale.suffix in (".tflite", ".json") or stale.name.endswith(".layers.csv"):
                    stale.unlink()  # from an earlier run: not this result
            results.append(RecipeResult(recipe, "failed", event["error"], seconds=seconds,
                                        converter=converter))
            continue
        if debug and converter != "onnx2tf" and RECIPES[recipe].activations != "float":
            event["error"] = ("--debug: the layer debugger is TensorFlow's QuantizationDebugger, "
                              "which the litert-torch route does not use")
        path = out_dir / f"{stem}.{recipe}.tflite"
        blob_size = path.stat().st_size
        result = RecipeResult(recipe, "ok", event.get("error", ""), tflite=path,
                              size_bytes=blob_size, seconds=seconds, converter=converter,
                              extra=dict(event.get("extra") or {}, census=op_census(path),
                                         converter=converter))
        if not debug and not RECIPES[recipe].mixed:  # a layers table of an earlier --debug run
            stale_layers = out_dir / f"{stem}.{recipe}.layers.csv"
            stale_layers.unlink(missing_ok=True)
        if verify is not None:
            try:
                result.verification = verify_tflite(path, verify.inputs, verify.reference,
                                                    verify.labels,
                                                    desc=f"verify {recipe}" if progress else False)
                result.verification["reference"] = verify.reference_kind
            except Exception as exc:  # converted but does not run: not a model to ship
                path.replace(path.with_suffix(".tflite.failed"))
                results.append(RecipeResult(recipe, "failed", f"does not run: {type(exc).__name__}: "
                                            f"{str(exc).splitlines()[0][:250] if str(exc) else ''}",
                                            size_bytes=blob_size, seconds=seconds,
                                            converter=converter))
                continue
        card = build_card(path, recipe=recipe, architecture=source.architecture,
                          normalization=source.normalization, class_names=source.class_names,
                          positive_class=source.positive_class, source=source.card_source(),
                          conversion_seconds=timings.get("upstream_s", 0.0) + seconds,
                          tools=tools,
                          verification=result.verification, extra=result.extra)
        result.card = write_card(card_path_for(path), card)
        results.append(result)
    bar.close()
    order = {n: i for i, n in enumerate(RECIPES)}
    return sorted(results, key=lambda r: order[r.recipe])


def _litert(source: SourceInfo, model, recipes, calib_inputs, io, out_dir, stem, tools):
    """(events, timings {upstream_s: torch.export's seconds} filled as they run, tool versions)
    of the litert-torch route: the tools of its own venv, not the host's."""
    from edgebench.host.export.converters.litert_route import litert_events

    if model is None:
        if not source.checkpoint or not Path(source.checkpoint).is_file():
            why = ("litert-torch converts PyTorch models: this SavedModel came from an .onnx file"
                   if not source.checkpoint else f"checkpoint {source.checkpoint} is gone")
            return iter([{"recipe": r, "event": "done", "status": "failed", "error": why,
                          "seconds": 0.0} for r in recipes]), {}, tools
        from edgebench.host.checkpoint import build_from_checkpoint

        model, _ = build_from_checkpoint(Path(source.checkpoint))
    from edgebench.host.export.converters.env import ENVS

    timings: dict = {}
    pins = ENVS["litert-torch"].pins()
    tools = dict({k: None for k in tools}, torch=pins.get("torch"), numpy=pins.get("numpy"),
                 ai_edge_litert=pins.get("ai-edge-litert"), litert_torch=pins.get("litert-torch"),
                 ai_edge_quantizer=pins.get("ai-edge-quantizer"))
    return litert_events(model, source.input_shape, recipes, calib_inputs, io, out_dir, stem,
                         timings), timings, tools


def _check_calibration(calib: np.ndarray, source: SourceInfo) -> None:
    """Wrong-sized calibration images convert without a word, and NaN ones crash the converter
    (segfault): refuse both up front."""
    want = tuple(source.input_shape[1:])
    if calib.ndim != 4 or calib.shape[1:] != want:
        raise UserError(f"calibration inputs have shape {list(calib.shape)}; the model takes "
                        f"N×{want[0]}×{want[1]}×{want[2]} (NHWC)")
    if not np.isfinite(calib).all():
        raise UserError("calibration inputs contain NaN or infinite values")


def fp32_size(results: list[RecipeResult], out_dir: Path, architecture: str) -> int | None:
    """The fp32 file's size, from this run or from an earlier one in the same folder."""
    for r in results:
        if r.recipe == "fp32" and r.status == "ok":
            return r.size_bytes
    old = Path(out_dir) / f"{architecture}.fp32.tflite"
    return old.stat().st_size if old.is_file() else None
