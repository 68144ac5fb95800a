"""Compiling the test delegates, and the LiteRT 2.3 environment (the device side) they are also
checked under."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DELEGATES = ("noop", "prepare_fails", "crash", "claim", "not_a_delegate", "single")

LITERT23_VENV = REPO / ".venv-litert23"
# numpy pinned exactly: LiteRT 2.3 takes numpy 1.26 or 2.x; 2.4.6 is the newest 2.x here.
LITERT23_PINS = ["ai-edge-litert==2.3.0", "numpy==2.4.6"]
LITERT23_CHECK = ("import ai_edge_litert, numpy; "
                  "assert ai_edge_litert.__version__ == '2.3.0', ai_edge_litert.__version__; "
                  "assert numpy.__version__ == '2.4.6', numpy.__version__")
# The system interpreter, not the project venv's: a base interpreter under /root is unreadable
# for the loopback test user (TOOLCHAIN.md), and a device has no project venv either.
SYSTEM_PYTHON = "/usr/bin/python3"


class BuildError(RuntimeError):
    pass


def build_delegates(out_dir: Path) -> dict[str, Path]:
    """Compiles each delegate to OUT_DIR/libedgebench_<name>.so; {name: path}."""
    gcc = shutil.which("gcc")
    if gcc is None:
        raise BuildError("the test delegates need gcc (apt-get install gcc)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    built = {}
    for name in DELEGATES:
        lib = out_dir / f"libedgebench_{name}.so"
        cmd = [gcc, "-shared", "-fPIC", "-O2", "-Wall", "-Wextra", "-std=gnu11",
               "-o", str(lib), str(HERE / f"{name}.c")]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise BuildError(f"gcc failed on {name}.c: {done.stderr.strip()[-800:]}")
        built[name] = lib
    return built


def litert23_python() -> str:
    """A Python with exactly LITERT23_PINS, made once in .venv-litert23 (git-ignored) and reused.
    Raises BuildError when it cannot be made (no silent skip)."""
    from build_lock import build_lock

    with build_lock(LITERT23_VENV):
        return _litert23_python()


def _litert23_python() -> str:
    python = LITERT23_VENV / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", LITERT23_CHECK],
                                          capture_output=True).returncode == 0:
        return str(python)
    shutil.rmtree(LITERT23_VENV, ignore_errors=True)
    steps = [[SYSTEM_PYTHON, "-m", "venv", str(LITERT23_VENV)],
             [str(python), "-m", "pip", "install", "-q", *LITERT23_PINS],
             [str(python), "-c", LITERT23_CHECK]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            raise BuildError(f"could not build {LITERT23_VENV} ({' '.join(step[-3:])}): "
                             f"{(done.stderr or done.stdout).strip()[-800:]}")
    return str(python)
