"""A converter's own virtual environment, created on first use from pinned requirements.

litert-torch 0.10.0 needs ai-edge-litert 2.3.0, numpy 2.x and protobuf 7, the host needs
ai-edge-litert 2.1.0, numpy 1.26 and protobuf 4.25 (TensorFlow 2.19, onnx2tf): the two cannot
share a venv, so the converter runs as a child process with its own Python, like
export/recipe_worker.py. The venv lives in $EDGEBENCH_CONVERTER_ENVS (default
~/.cache/edgebench/converters)/<name>-<hash of the pins>, so a change of pins makes a new one.
It counts as ready only when `edgebench-env.json` says the install and an import check passed;
a folder without it (an interrupted install) is rebuilt, one whose Python no longer imports the
converter is refused with the command that rebuilds it.

    python -m edgebench.host.export.converters.env litert-torch [--rebuild]
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgebench.host.errors import UserError

MARKER = "edgebench-env.json"
_CHECKED: set[Path] = set()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # progress: off stdout, which commands parse


@dataclass(frozen=True)
class EnvSpec:
    name: str
    requirements: str  # file name beside this module
    check: str  # Python code that must run in the venv (the imports the worker needs)

    @property
    def requirements_path(self) -> Path:
        return Path(__file__).with_name(self.requirements)

    @property
    def pins_hash(self) -> str:
        return hashlib.sha256(self.requirements_path.read_bytes()).hexdigest()[:12]

    @property
    def path(self) -> Path:
        root = os.environ.get("EDGEBENCH_CONVERTER_ENVS") or \
            Path.home() / ".cache" / "edgebench" / "converters"
        return Path(root) / f"{self.name}-{self.pins_hash}"

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"

    def pins(self) -> dict:
        """{distribution: version} of the requirements file."""
        out = {}
        for line in self.requirements_path.read_text().splitlines():
            if "==" in line and not line.startswith("#"):
                name, version = line.split("==", 1)
                out[name.strip().lower()] = version.strip()
        return out

    def rebuild_command(self) -> str:
        return f"python -m edgebench.host.export.converters.env {self.name} --rebuild"


ENVS = {e.name: e for e in (
    EnvSpec("litert-torch", "litert_requirements.txt",
            "import litert_torch, ai_edge_quantizer, ai_edge_litert.interpreter"),
)}


def _ready(spec: EnvSpec) -> bool:
    try:
        return json.loads((spec.path / MARKER).read_text()).get("pins") == spec.pins_hash
    except (OSError, ValueError):
        return False


def check_env(spec: EnvSpec) -> str:
    """'' when the venv's Python runs the converter's imports, else the reason in one line."""
    if not spec.python.exists():
        return f"{spec.python} is missing"
    try:
        proc = subprocess.run([str(spec.python), "-c", spec.check], capture_output=True,
                              text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{spec.python} does not run: {exc}"
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or [f"exit {proc.returncode}"]
        return lines[-1].strip()[:200]
    return ""


def ensure_env(name: str, progress=_say) -> Path:
    """The Python of converter `name`'s venv, creating the venv on first use (minutes: about 2 GB
    from PyPI; torch 2.13.0 comes from pip's cache). A venv that was ready once but no longer
    runs the converter is a UserError naming the command that rebuilds it."""
    spec = ENVS[name]
    if spec.path in _CHECKED:
        return spec.python
    if _ready(spec):
        why = check_env(spec)
        if why:
            raise UserError(f"the {name} converter environment {spec.path} is broken ({why}); "
                            f"rebuild it: {spec.rebuild_command()}")
    else:
        build_env(spec, progress)
    _CHECKED.add(spec.path)  # the import check costs seconds: once per process
    return spec.python


def build_env(spec: EnvSpec, progress=_say) -> Path:
    if spec.path.exists():
        shutil.rmtree(spec.path)
    progress(f"{spec.name}: creating its converter environment in {spec.path} (first use; "
             f"about 2 GB, several minutes)")
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    log = spec.path.parent / f"{spec.path.name}.install.log"
    steps = [[sys.executable, "-m", "venv", str(spec.path)],
             [str(spec.python), "-m", "pip", "install", "--quiet", "--no-input",
              "-r", str(spec.requirements_path)]]
    with open(log, "w") as out:
        for cmd in steps:
            rc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT).returncode
            if rc != 0:
                tail = [ln for ln in log.read_text(errors="replace").splitlines()
                        if ln.strip() and not ln.startswith("WARNING")][-1:] or [f"exit {rc}"]
                raise UserError(f"cannot create the {spec.name} converter environment "
                                f"({tail[0].strip()[:200]}; log {log}); retry: "
                                f"{spec.rebuild_command()}")
    why = check_env(spec)
    if why:
        raise UserError(f"the new {spec.name} converter environment does not import the "
                        f"converter ({why}); log {log}")
    (spec.path / MARKER).write_text(json.dumps({"pins": spec.pins_hash}) + "\n")
    progress(f"{spec.name}: converter environment ready")
    return spec.python


def main(argv: list[str]) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m edgebench.host.export.converters.env",
                                description="Create (or with --rebuild, recreate) a converter's "
                                            "own virtual environment.")
    p.add_argument("converter", choices=sorted(ENVS))
    p.add_argument("--rebuild", action="store_true", help="delete and recreate it")
    args = p.parse_args(argv)
    try:
        spec = ENVS[args.converter]
        python = build_env(spec) if args.rebuild else ensure_env(args.converter)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
