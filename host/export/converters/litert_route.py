"""The litert-torch route, parent side: PyTorch model -> torch.export (here, with the host's
torch) -> a child process in the converter's own venv (litert_worker.py) that converts and
quantizes. Yields the same events as onnx2tf_route.convert_isolated, so one loop (quantize.py)
verifies, censuses and writes cards for both routes.

The model is wrapped to take NHWC input, the layout every model card declares and the device
agent feeds; litert-torch folds the transpose into its layout pass."""
from __future__ import annotations

import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np

from edgebench.host.export.converters.env import ENVS, ensure_env
from edgebench.host.export.converters.job import Conversion, ConversionJob


def run(job: ConversionJob) -> Conversion:
    """The route's events, timings ({upstream_s: torch.export's seconds}, filled as they run) and
    tool versions: those of its own venv, not the host's."""
    model = job.model
    if model is None:
        if not job.source.checkpoint or not Path(job.source.checkpoint).is_file():
            why = ("litert-torch converts PyTorch models: this SavedModel came from an .onnx file"
                   if not job.source.checkpoint else f"checkpoint {job.source.checkpoint} is gone")
            return Conversion(iter([{"recipe": r, "event": "done", "status": "failed",
                                     "error": why, "seconds": 0.0} for r in job.recipes]),
                              {}, job.tools)
        from edgebench.host.checkpoint import build_from_checkpoint

        model, _ = build_from_checkpoint(Path(job.source.checkpoint))
    timings: dict = {}
    pins = ENVS["litert-torch"].pins()
    tools = dict({k: None for k in job.tools}, torch=pins.get("torch"), numpy=pins.get("numpy"),
                 ai_edge_litert=pins.get("ai-edge-litert"), litert_torch=pins.get("litert-torch"),
                 ai_edge_quantizer=pins.get("ai-edge-quantizer"))
    events = litert_events(model, job.source.input_shape, job.recipes, job.calib_inputs, job.io,
                           job.out_dir, job.stem, timings)
    return Conversion(events, timings, tools)


def nhwc_module(model):
    import torch

    class Nhwc(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.permute(0, 3, 1, 2))

    return Nhwc(model).eval()


def export_program(model, input_shape: list[int], path: Path) -> float:
    """torch.export the NHWC-wrapped model to `path` (.pt2); seconds taken. A model torch.export
    cannot trace (data-dependent control flow, ...) raises with torch's reason."""
    import torch

    start = time.perf_counter()
    sample = torch.zeros([int(d) for d in input_shape])
    with torch.no_grad():
        program = torch.export.export(nhwc_module(model.eval()), (sample,))
    torch.export.save(program, str(path))
    Path(str(path) + ".json").write_text(json.dumps({"input_shape": list(input_shape)}))
    return time.perf_counter() - start


def _failed(recipe: str, error: str) -> dict:
    return {"recipe": recipe, "event": "done", "status": "failed", "error": error[:300],
            "seconds": 0.0, "size_bytes": None, "extra": {}}


def litert_events(model, input_shape: list[int], recipes: list[str], calib_inputs, io: str,
                  out_dir: Path, stem: str, timings: dict | None = None):
    """One done event per recipe, in order; `timings` gets upstream_s (torch.export's seconds).
    Every failure is a failed event naming its step (torch.export, litert_torch.convert,
    ai-edge-quantizer, or the child's crash)."""
    python = ensure_env("litert-torch")
    with tempfile.TemporaryDirectory(prefix="edgebench-litert-") as tmp:
        program = Path(tmp) / "model.pt2"
        try:
            seconds = export_program(model, input_shape, program)
        except Exception as exc:
            text = (str(exc).strip().splitlines() or [""])[0]
            for r in recipes:
                yield _failed(r, f"torch.export failed: {type(exc).__name__}: {text}")
            return
        if timings is not None:
            timings["upstream_s"] = round(seconds, 3)
        opts = {"io": io, "calib": None}
        if calib_inputs is not None:
            opts["calib"] = str(Path(tmp) / "calib.npy")
            np.save(opts["calib"], np.asarray(calib_inputs, dtype=np.float32))
        options = Path(tmp) / "options.json"
        options.write_text(json.dumps(opts))
        worker = Path(__file__).with_name("litert_worker.py")
        pending = list(recipes)
        err_path = Path(tmp) / "worker.err"
        with open(err_path, "wb") as err:
            proc = subprocess.Popen([str(python), str(worker), str(program), str(out_dir), stem,
                                     str(options), *recipes], stdout=subprocess.PIPE, stderr=err,
                                    text=True, cwd=tmp)
            for line in proc.stdout:
                if line.startswith("{"):
                    event = json.loads(line)
                    if event["event"] == "done" and event["recipe"] in pending:
                        pending.remove(event["recipe"])
                        yield event
            rc = proc.wait()
        if pending:  # the child died: the rest fail with its last words
            how = f"signal {signal.Signals(-rc).name}" if rc < 0 else f"exit status {rc}"
            lines = [ln.strip() for ln in err_path.read_text(errors="replace").splitlines()
                     if ln.strip()]
            for r in pending:
                last = lines[-1] if lines else ""
                yield _failed(r, f"litert-torch worker crashed ({how}) {last}")
