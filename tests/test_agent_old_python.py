"""The old-device path: the agent under Python 3.9 (Raspberry Pi OS Bullseye) and 3.8 (Jetson
JetPack 5) with tflite-runtime 2.14 and numpy < 2. Each venv (.venv-py39, .venv-py38, git-ignored
by `.venv-*/`) is made once and reused; on a fresh machine the fixture builds it, and fails loudly
if it cannot (never a silent skip)."""
from __future__ import annotations

import glob
import shutil
import subprocess

import pytest

from agent_helpers import AGENT, REPO, by_model, events, read_rows, run_agent
from build_lock import build_lock
from tflite_factory import RECIPES, make_bundle

pytestmark = pytest.mark.timeout(900)

PINS = ["tflite-runtime==2.14.0", "numpy<2"]
CHECK = ("import numpy, tflite_runtime; "
         "assert tflite_runtime.__version__ == '2.14.0', tflite_runtime.__version__; "
         "assert int(numpy.__version__.split('.')[0]) < 2, numpy.__version__")


def find_python(version: str) -> str | None:
    found = sorted(glob.glob(f"/root/.pyenv/versions/{version}.*/bin/python{version}"))
    return found[-1] if found else shutil.which(f"python{version}")


@pytest.fixture(scope="session", params=["3.9", "3.8"])
def old_python(request) -> str:
    version = request.param
    with build_lock(REPO / f".venv-py{version.replace('.', '')}"):
        return _old_python(version)


def _old_python(version: str) -> str:
    venv = REPO / f".venv-py{version.replace('.', '')}"
    python = venv / "bin" / "python"
    if python.exists() and subprocess.run([str(python), "-c", CHECK]).returncode == 0:
        return str(python)
    base = find_python(version)
    if base is None:
        pytest.fail(f"the old-device tests need Python {version} (pyenv's "
                    f"/root/.pyenv/versions/{version}.* or python{version} on PATH); none found")
    shutil.rmtree(venv, ignore_errors=True)
    steps = [[base, "-m", "venv", str(venv)],
             [str(python), "-m", "pip", "install", "-q", *PINS],
             [str(python), "-c", CHECK]]
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            pytest.fail(f"could not build {venv} ({' '.join(step[-3:])}): "
                        f"{(done.stderr or done.stdout).strip()[-800:]}")
    return str(python)


def old_python_version(python: str) -> str:
    """"3.9" for a Python 3.9.x interpreter."""
    done = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                          capture_output=True, text=True)
    return done.stdout.strip()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("old-python") / "bundle")


def test_old_device_stack_measures_all_but_dynamic_range(old_python, bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, python=old_python)
    assert proc.returncode == 0, proc.stderr
    header, rows = read_rows(out / "results.csv")
    rows = by_model(rows)
    assert set(rows) == {f"tinycnn.{r}" for r in RECIPES}
    for name, row in rows.items():
        assert row["runtime"] == "tflite-runtime" and row["runtime_version"] == "2.14.0"
        assert row["python"].startswith(old_python_version(old_python) + ".")
        assert row["numpy"].startswith("1.")
        if name == "tinycnn.dynamic":
            # tflite-runtime 2.14 lacks the FULLY_CONNECTED version dynamic-range models use.
            assert row["status"] == "error"
            assert "FULLY_CONNECTED" in row["error"]
        else:
            assert row["status"] == "ok", row["error"]
            assert float(row["p50_ms"]) <= float(row["p90_ms"]) <= float(row["max_ms"])
            assert float(row["agreement"]) >= 0.9
    assert events(proc)[-1]["errors"] == 1


def test_old_device_accuracy_equals_litert(old_python, bundle, tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    models = "tinycnn.fp32,tinycnn.int8"
    assert run_agent(bundle, old, "--models", models, python=old_python).returncode == 0
    assert run_agent(bundle, new, "--models", models).returncode == 0
    old_rows, new_rows = (by_model(read_rows(p / "results.csv")[1]) for p in (old, new))
    for name in models.split(","):
        for key in ("accuracy", "sensitivity", "specificity", "tn", "fp", "fn", "tp"):
            assert old_rows[name][key] == new_rows[name][key], (name, key)


def test_agent_source_is_python38_syntax():
    base = find_python("3.8")
    if base is None:
        pytest.fail("Python 3.8 not found (pyenv's /root/.pyenv/versions/3.8.* or python3.8)")
    sources = sorted(str(p) for p in AGENT.rglob("*.py"))
    assert len(sources) > 5, sources
    done = subprocess.run([base, "-c", "import ast, sys\nfor p in sys.argv[1:]: "
                                       "ast.parse(open(p).read(), p, feature_version=(3, 8))",
                           *sources], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_gpu_on_tflite_runtime_is_an_error_row_that_says_what_to_install(old_python, bundle,
                                                                         tmp_path):
    out = tmp_path / "out"
    proc = run_agent(bundle, out, "--models", "tinycnn.int8", "--accelerators", "cpu,gpu,npu",
                     python=old_python)
    assert proc.returncode == 0, proc.stderr
    rows = {r["compute_unit"]: r for r in read_rows(out / "results.csv")[1]}
    assert rows["cpu"]["status"] == "ok"
    for unit in ("gpu", "npu"):
        assert rows[unit]["status"] == "error"
        assert rows[unit]["error"].startswith(
            f"{unit} needs ai-edge-litert >= 2.3 (LiteRT's CompiledModel); this device has "
            f"tflite-runtime 2.14.0")
        assert "pip install ai-edge-litert==2.3.0" in rows[unit]["error"]


def test_a_child_crash_is_an_error_row_and_the_plan_goes_on(old_python, bundle, test_delegates,
                                                            tmp_path):
    """agent.pyz on the old stack, the whole plan: a delegate that kills its child (SIGSEGV in
    Prepare) costs only its own rows; the child it re-executed from the archive measured the rest."""
    out = tmp_path / "out"
    crash = str(test_delegates["crash"])
    proc = run_agent(bundle, out, "--models", "tinycnn.fp32,tinycnn.int8", "--delegate", crash,
                     python=old_python)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {(r["model"], r["compute_unit"]): r for r in read_rows(out / "results.csv")[1]}
    assert len(rows) == 4
    for model in ("tinycnn.fp32", "tinycnn.int8"):
        assert rows[(model, "cpu")]["status"] == "ok", rows[(model, "cpu")]["error"]
        row = rows[(model, "delegate:" + crash)]
        assert row["status"] == "error"
        assert row["error"].startswith("child killed by signal SIGSEGV"), row["error"]
        assert row["python"].startswith(old_python_version(old_python) + ".")
    assert events(proc)[-1]["errors"] == 2
