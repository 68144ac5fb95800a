"""Child process that runs the TFLite converter for a list of recipes.

The converter is native code and can take the whole process down (NaN calibration data gives a
segfault, a broken quantization an abort); in a child, that costs one recipe, not the run.
Protocol: one JSON line on stdout per event, {"recipe", "event": "start"} before a recipe and
{"recipe", "event": "done", "status", "error", "seconds", "size_bytes"} after it; the .tflite
goes to OUT_DIR/NAME.RECIPE.tflite. The converter's native log goes to LOG, which the parent
reads for the reason when the child dies.

    python -m edgebench.host.export.recipe_worker SAVED_MODEL OUT_DIR NAME IO CALIB.npy|- LOG RECIPE...
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
                log_path: Path | None) -> dict:
    """Convert one recipe to `out_dir/<name>.<recipe>.tflite`; the "done" event for it."""
    from edgebench.host.export.quantize import convert_recipe

    start = time.perf_counter()
    try:
        blob = convert_recipe(saved_model, recipe, calib, io, log_path)
    except Exception as exc:
        return {"recipe": recipe, "event": "done", "status": "failed", "size_bytes": None,
                "seconds": time.perf_counter() - start,
                "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]}
    path = out_dir / f"{name}.{recipe}.tflite"
    tmp = path.with_suffix(".tflite.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return {"recipe": recipe, "event": "done", "status": "ok", "error": "",
            "size_bytes": len(blob), "seconds": time.perf_counter() - start}


def main(argv: list[str]) -> int:
    import numpy as np

    saved_model, out_dir, name, io, calib_path, log_path, *recipes = argv
    calib = None if calib_path == "-" else np.load(calib_path)
    for recipe in recipes:
        _emit(recipe=recipe, event="start")
        _emit(**convert_one(Path(saved_model), Path(out_dir), name, recipe, calib, io,
                            Path(log_path)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
