"""Child process that runs the TFLite converter for a list of recipes.

The converter is native code and can take the whole process down (NaN calibration data gives a
segfault, a broken quantization an abort); in a child, that costs one recipe, not the run.
Protocol: one JSON line on stdout per event, {"recipe", "event": "start"} before a recipe and
{"recipe", "event": "done", "status", "error", "seconds", "size_bytes", "extra"} after it; the
.tflite goes to OUT_DIR/NAME.RECIPE.tflite (and with --debug, or for int8-mixed, the layer table
to OUT_DIR/NAME.RECIPE.layers.csv); "extra" holds the model card's additions (worst_layers,
mixed). The converter's native log goes to the options' "log", which the parent reads for the
reason when the child dies.

    python -m edgebench.host.export.recipe_worker SAVED_MODEL OUT_DIR NAME OPTIONS.json RECIPE...

OPTIONS.json: {"io", "calib": CALIB.npy or null, "log", "debug", "mixed": MixedOptions fields,
"verify_inputs": .npy or null, "verify_reference": .npy or null}.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _emit(**event) -> None:
    sys.stdout.write(json.dumps(event) + "\n")
    sys.stdout.flush()


def convert_one(saved_model: Path, out_dir: Path, name: str, recipe: str, calib, io: str,
                log_path: Path | None, debug: bool = False, mixed=None, verify=None) -> dict:
    """Convert one recipe to `out_dir/<name>.<recipe>.tflite`; the "done" event for it.
    `verify` = (inputs, reference logits) for the int8-mixed search; `mixed` its MixedOptions."""
    from edgebench.host.export.recipes import RECIPES

    start = time.perf_counter()
    extra: dict = {}
    try:
        spec = RECIPES[recipe]
        if spec.mixed:
            blob, extra = _mixed(saved_model, out_dir, name, recipe, calib, io, log_path, mixed,
                                 verify)
        else:
            from edgebench.host.export.converter import convert_recipe

            blob = convert_recipe(saved_model, recipe, calib, io, log_path)
            if debug and spec.activations != "float":
                extra = _debug_note(saved_model, out_dir, name, recipe, calib, io, log_path)
    except Exception as exc:
        return {"recipe": recipe, "event": "done", "status": "failed", "size_bytes": None,
                "seconds": time.perf_counter() - start, "extra": {},
                "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}
    path = out_dir / f"{name}.{recipe}.tflite"
    _write(path, blob)
    return {"recipe": recipe, "event": "done", "status": "ok", "error": extra.pop("_note", ""),
            "size_bytes": len(blob), "seconds": time.perf_counter() - start, "extra": extra}


def _write(path: Path, blob: bytes) -> None:
    from edgebench.host.files import write_atomic

    write_atomic(path, blob)


def _debug_note(saved_model, out_dir, name, recipe, calib, io, log_path) -> dict:
    """--debug beside a recipe that converted: a debugger that cannot run costs the table, never
    the model; the reason becomes the recipe's note."""
    from edgebench.host.export.debug import unavailable

    why = unavailable(recipe)
    if why:
        return {"_note": f"--debug: {why}"}
    try:
        return _debug(saved_model, out_dir, name, recipe, calib, io, log_path)[2]
    except Exception as exc:
        return {"_note": f"--debug: layer debugger failed: {str(exc).splitlines()[0][:200]}"}


# (SavedModel, the recipe's converter settings, I/O type, calibration images) -> (calibrated
# model, layer rows): int8 with --debug and int8-mixed calibrate alike and run the same debugger
# (~15 s for ResNet18 at 32 px), one after the other in this process; the second takes the
# first's result.
_DEBUGGED: dict = {}


def _debug(saved_model, out_dir, name, recipe, calib, io, log_path):
    """Calibrate, run the layer debugger, write the layers CSV: (calibrated model, card keys)."""
    import copy
    import hashlib

    from edgebench.host.export import debug
    from edgebench.host.export.converter import native_step
    from edgebench.host.export.recipes import RECIPES

    if calib is None or len(calib) == 0:
        raise ValueError(f"recipe {recipe} needs calibration images")
    spec = RECIPES[recipe]
    key = (str(saved_model), spec.configure, spec.activations, io,
           hashlib.sha256(calib.tobytes()).hexdigest(), calib.shape, str(calib.dtype))
    if key not in _DEBUGGED:
        with native_step(log_path):
            calibrated = debug.calibrate(saved_model, recipe, calib, io)
            _DEBUGGED[key] = (calibrated, debug.layer_statistics(calibrated, recipe, calib))
    calibrated, rows = _DEBUGGED[key]
    rows = copy.deepcopy(rows)  # int8-mixed adds its sensitivity columns to its own copy
    csv_path = debug.write_layers_csv(debug.layers_csv_path(out_dir, name, recipe), rows)
    return calibrated, rows, {"layers_csv": csv_path.name, "worst_layers": debug.worst_layers(rows)}


def _mixed(saved_model, out_dir, name, recipe, calib, io, log_path, options, verify):
    """int8-mixed: rank the layers, choose K (export/mixed.py), quantize with them in float."""
    import tempfile

    from edgebench.host.export import debug, mixed
    from edgebench.host.export.converter import native_step
    from edgebench.host.export.verify import compare, tflite_logits

    options = options or mixed.MixedOptions()
    calibrated, rows, extra = _debug(saved_model, out_dir, name, recipe, calib, io, log_path)
    with native_step(log_path):
        debug.sensitivity(calibrated, recipe, io, rows, calib)
    debug.write_layers_csv(debug.layers_csv_path(out_dir, name, recipe), rows)
    # The ends are searched unless --io pinned them (or K is given: K counts layers only).
    search_ends = options.search_ends and options.keep_float is None and io != "float"
    ranked = mixed.rank(rows, ends=search_ends)
    base_io = "int8" if io == "float" else io  # the integer type of the ends kept integer
    built: dict[tuple, bytes] = {}
    scratch = tempfile.TemporaryDirectory(prefix="edgebench-mixed-")
    probe = Path(scratch.name) / "probe.tflite"

    def build(keep: list[str]) -> bytes:
        key = tuple(sorted(keep)) + ((mixed.INPUT_END, mixed.OUTPUT_END) if io == "float" else ())
        if key not in built:
            with native_step(log_path):
                built[key] = debug.quantize_calibrated(calibrated, recipe, base_io, list(key))
        return built[key]

    def evaluate(keep: list[str]):
        blob = build(keep)
        if verify is None:
            return None
        _write(probe, blob)
        return compare(tflite_logits(probe, verify[0], desc=False), verify[1])["agreement"]

    if options.keep_float is None and verify is None:
        raise ValueError("int8-mixed needs verification data to search for a target agreement; "
                         "give --keep-float K (or drop --no-verify)")
    try:
        choice = mixed.choose(ranked, evaluate, options, name,
                              len(verify[0]) if verify is not None else None, io)
    finally:
        scratch.cleanup()
    extra["mixed"] = dict(choice.card(), ranking="output_mse_alone, then rmse_over_scale")
    if choice.note:
        extra["_note"] = choice.note
    ends = [e for e in mixed.ENDS if e.strip("()") in choice.float_ends]
    return build(choice.keep_float + ends), extra


def main(argv: list[str]) -> int:
    import numpy as np

    from edgebench.host.export.mixed import MixedOptions

    saved_model, out_dir, name, options_path, *recipes = argv
    opts = json.loads(Path(options_path).read_text())
    calib = np.load(opts["calib"]) if opts.get("calib") else None
    verify = None
    if opts.get("verify_inputs"):
        verify = (np.load(opts["verify_inputs"]), np.load(opts["verify_reference"]))
    mixed = MixedOptions(**opts["mixed"]) if opts.get("mixed") else None
    for recipe in recipes:
        _emit(recipe=recipe, event="start")
        _emit(**convert_one(Path(saved_model), Path(out_dir), name, recipe, calib, opts["io"],
                            Path(opts["log"]), opts.get("debug", False), mixed, verify))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
