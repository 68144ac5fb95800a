"""The onnx2tf route, parent side: the SavedModel onnx2tf made -> TFLiteConverter, one recipe at a
time in recipe_worker, in a child process (a native crash then costs one recipe, not the run) or,
without isolation, here (which saves the child's TensorFlow start-up)."""
from __future__ import annotations

import dataclasses
import json
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from edgebench.host.export.converters.job import Conversion, ConversionJob
from edgebench.host.export.mixed import MixedOptions
from edgebench.host.export.recipes import RECIPES


def run(job: ConversionJob) -> Conversion:
    convert = convert_isolated if job.isolate else convert_here
    events = convert(job.saved_model, job.recipes, job.calib_inputs, job.io, job.out_dir,
                     job.stem, job.debug, job.mixed, job.verify)
    return Conversion(events, {"upstream_s": job.source.upstream_seconds}, job.tools)


def convert_isolated(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
                     io: str, out_dir: Path, name: str, debug: bool = False,
                     mixed: MixedOptions | None = None, verify=None):
    """Run the converter in a child process (recipe_worker) and yield one result event per recipe,
    in order. A crash fails the recipe it happened in, and a fresh child takes the rest.
    `verify`: quantize.py's VerifyData (int8-mixed ranks layers against it)."""
    with tempfile.TemporaryDirectory(prefix="edgebench-quantize-") as tmp:
        log = Path(tmp) / "converter.log"
        options_path = _write_options(Path(tmp), log, recipes, calib_inputs, io, debug, mixed,
                                      verify)
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
            yield _crashed(crashed, rc, log, Path(tmp) / "worker.err")


def _write_options(tmp: Path, log: Path, recipes: list[str], calib_inputs, io: str, debug: bool,
                   mixed, verify) -> Path:
    """recipe_worker's options.json (arrays beside it as .npy): what every child reads."""
    opts = {"io": io, "calib": None, "log": str(log), "debug": debug,
            "mixed": dataclasses.asdict(mixed) if mixed else None,
            "verify_inputs": None, "verify_reference": None}
    if calib_inputs is not None:
        opts["calib"] = str(tmp / "calib.npy")
        np.save(opts["calib"], np.asarray(calib_inputs, dtype=np.float32))
    if verify is not None and any(RECIPES[r].mixed for r in recipes):
        opts["verify_inputs"] = str(tmp / "verify_inputs.npy")
        opts["verify_reference"] = str(tmp / "verify_reference.npy")
        np.save(opts["verify_inputs"], verify.inputs)
        np.save(opts["verify_reference"], verify.reference)
    options_path = tmp / "options.json"
    options_path.write_text(json.dumps(opts))
    return options_path


def _crashed(recipe: str, rc: int, log: Path, err: Path) -> dict:
    """The failed event of the recipe a child died in, with the last line it left."""
    how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
    text = (log.read_text(errors="replace") if log.is_file() else "") + \
        err.read_text(errors="replace")
    hint = [ln.strip() for ln in text.splitlines() if ln.strip()][-1:] or [""]
    return {"recipe": recipe, "event": "done", "status": "failed", "size_bytes": None,
            "seconds": 0.0, "extra": {},
            "error": f"converter crashed ({how}) {hint[0]}".strip()[:300]}


def convert_here(saved_model: Path, recipes: list[str], calib_inputs: np.ndarray | None,
                 io: str, out_dir: Path, name: str, debug: bool = False,
                 mixed: MixedOptions | None = None, verify=None):
    """convert_isolated's events, with the converter in this process."""
    from edgebench.host.export import recipe_worker

    pair = (verify.inputs, verify.reference) if verify is not None else None
    for recipe in recipes:
        yield recipe_worker.convert_one(Path(saved_model), Path(out_dir), name, recipe,
                                        calib_inputs, io, None, debug, mixed, pair)
