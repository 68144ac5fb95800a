"""The device side's shape, checked: small modules, nothing but the standard library, numpy, a
TFLite runtime (and optionally psutil / nvidia-ml-py) imported, and no device-side Python hidden
in the host's string literals (it lives in device/ modules, tested like any other code)."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEVICE = sorted(p for p in (REPO / "device").rglob("*.py") if "__pycache__" not in p.parts)
REMOTE = sorted((REPO / "device" / "remote").glob("*.py"))
HOST = sorted((REPO / "host").rglob("*.py"))
MAX_LINES = 400
ALLOWED = {"numpy", "ai_edge_litert", "tflite_runtime", "tensorflow", "onnxruntime", "psutil",
           "pynvml"}


def rel(path: Path) -> str:
    return path.relative_to(REPO / "device").as_posix()


@pytest.mark.parametrize("path", DEVICE, ids=rel)
def test_device_module_is_small(path):
    lines = path.read_text().count("\n")
    assert lines <= MAX_LINES, f"{rel(path)} has {lines} lines; split it (one job per module)"


def imported(path: Path):
    """(module name, relative level) of every import in a file, deferred ones included."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            yield from ((a.name, 0) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            yield node.module or "", node.level


@pytest.mark.parametrize("path", DEVICE, ids=rel)
def test_device_module_imports_only_what_a_device_has(path):
    for name, level in imported(path):
        if level:
            continue
        top = name.split(".")[0]
        own = name == "edgebench.device" or name.startswith("edgebench.device.")
        assert top in sys.stdlib_module_names or top in ALLOWED or own, (rel(path), name)


@pytest.mark.parametrize("path", REMOTE, ids=rel)
def test_remote_scripts_stand_alone(path):
    """device/remote/ is sent as source to a device that has nothing of ours: no import of the
    package, relative or absolute (numpy or pynvml only where a probe asks whether they are
    there)."""
    for name, level in imported(path):
        top = name.split(".")[0]
        assert not level and (top in sys.stdlib_module_names or top in ALLOWED), (rel(path), name)


def test_the_folders_are_the_axes():
    """The contract at the top, the rest in one folder per axis; a new module goes into one."""
    folders = {p.parent.relative_to(REPO / "device").as_posix() for p in DEVICE}
    assert folders == {".", "agent", "power", "remote", "scenarios"}, folders
    for folder in folders - {"."}:
        assert (REPO / "device" / folder / "__init__.py").exists(), folder


def code_in(text: str) -> bool:
    """A string that is a program: several lines that parse as Python and import or define."""
    if text.count("\n") < 3:
        return False
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return False
    return any(isinstance(n, (ast.Import, ast.ImportFrom, ast.FunctionDef)) for n in ast.walk(tree))


def test_the_detector_finds_a_script_and_passes_prose():
    assert code_in("import os\nimport sys\nsys.stdout.write(os.getcwd())\nprint()\n")
    assert not code_in("The bundle: everything the device needs.\n\n  manifest.json\n"
                       "models/*.tflite\n")


@pytest.mark.parametrize("path", HOST, ids=lambda p: str(p.relative_to(REPO)))
def test_no_device_python_in_host_strings(path):
    found = [node.lineno for node in ast.walk(ast.parse(path.read_text()))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and code_in(node.value)]
    assert not found, (f"{path.relative_to(REPO)} line {found}: Python in a string; move it into "
                       f"a device/ module and send its source (agent_archive.device_script)")
