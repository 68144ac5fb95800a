"""Bad input to the agent run by hand on a device: a Python without numpy, a broken or hostile
manifest. Each ends as one stderr line and a non-zero exit, never a traceback, and the host's
load_bundle refuses the same manifest with the same words (device/schema.py holds the rules)."""
from __future__ import annotations

import glob
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from agent_helpers import run_agent
from edgebench.host.bundle_reader import load_bundle
from edgebench.host.errors import UserError
from tflite_factory import make_bundle

pytestmark = pytest.mark.timeout(300)

NO_NUMPY = "import importlib.util, sys; sys.exit(importlib.util.find_spec('numpy') is not None)"


@pytest.fixture(scope="module")
def python_without_numpy(tmp_path_factory) -> str:
    """pyenv's 3.8 (the oldest Python the agent supports) as it comes, or a bare venv of it when
    that one has numpy: either way an interpreter that cannot import numpy, checked."""
    found = sorted(glob.glob("/root/.pyenv/versions/3.8.*/bin/python3.8"))
    if not found:
        pytest.fail("Python 3.8 not found (pyenv's /root/.pyenv/versions/3.8.*)")
    python = found[-1]
    if subprocess.run([python, "-c", NO_NUMPY]).returncode != 0:
        venv = tmp_path_factory.mktemp("py38") / "venv"
        subprocess.run([python, "-m", "venv", "--without-pip", str(venv)], check=True)
        python = str(venv / "bin" / "python")
    assert subprocess.run([python, "-c", NO_NUMPY]).returncode == 0, "premise: numpy importable"
    return python


@pytest.fixture(scope="module")
def good_bundle(tmp_path_factory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("input") / "bundle", recipes=("fp32", "int8"))


@pytest.fixture
def bundle(good_bundle, tmp_path) -> Path:
    return Path(shutil.copytree(good_bundle, tmp_path / "bundle"))


def one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("agent: error: "), lines[0]
    return lines[0]


def test_help_works_without_numpy(python_without_numpy, good_bundle):
    proc = subprocess.run([python_without_numpy, str(good_bundle / "agent.pyz"), "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: agent.pyz") and "--bundle" in proc.stdout


def test_a_run_without_numpy_says_how_to_install_it(python_without_numpy, good_bundle, tmp_path):
    out = tmp_path / "out"
    proc = run_agent(good_bundle, out, python=python_without_numpy, timeout=60)
    line = one_error_line(proc)
    assert "numpy is not installed for " + python_without_numpy in line
    assert "Python 3.8." in line
    assert line.endswith(python_without_numpy + " -m pip install numpy"), line
    assert not (out / "results.csv").exists()


def write_manifest(bundle: Path, text: str) -> None:
    (bundle / "manifest.json").write_text(text)


def edit_manifest(bundle: Path, edit) -> None:
    manifest = json.loads((bundle / "manifest.json").read_text())
    edit(manifest)
    write_manifest(bundle, json.dumps(manifest))


def set_model(field: str, value):
    def edit(manifest):
        manifest["models"][0][field] = value
    return edit


def drop_model_field(field: str):
    def edit(manifest):
        del manifest["models"][0][field]
    return edit


def set_top(field: str, value):
    def edit(manifest):
        manifest[field] = value
    return edit


# (case id, how to spoil the manifest, words the one line must hold)
BAD = [
    ("empty", "", "not valid JSON"),
    ("invalid", "{\"schema\": ", "not valid JSON"),
    ("list", "[1, 2]", "not a JSON object"),
    ("hostile-name", set_model("name", "x;touch pwned;#"), "refusing model name in manifest"),
    ("escaping-file", set_model("file", "../../etc/passwd"), "refusing model file of"),
    ("absolute-reference", set_model("reference", "/etc/passwd"), "refusing reference file of"),
    ("hostile-run-id", set_top("run_id", "../run"), "refusing run id in manifest"),
    ("stale-schema", set_top("schema", "edgebench.manifest/0"), "bench-host bundle"),
    ("no-models", set_top("models", []), "lists no models"),
    ("no-file", drop_model_field("file"), "has no 'file'"),
    ("no-sha256", drop_model_field("sha256"), "has no 'sha256'"),
]


@pytest.mark.parametrize("spoil,words", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_a_bad_manifest_is_one_line_on_the_agent_and_the_host(bundle, tmp_path, spoil, words):
    if isinstance(spoil, str):
        write_manifest(bundle, spoil)
    else:
        edit_manifest(bundle, spoil)
    out = tmp_path / "out"
    line = one_error_line(run_agent(bundle, out, timeout=120))
    assert words in line, line
    assert not (out / "results.csv").exists()
    with pytest.raises(UserError) as refused:
        load_bundle(bundle)
    assert line == "agent: error: " + str(refused.value)


def test_deploy_refuses_a_stale_bundle_before_uploading(bundle, tmp_path):
    """A bundle whose manifest is of another schema: `bench-host deploy` says so in one line and
    creates nothing on the target, nor a run in the results folder."""
    from cli_runner import run_cli

    edit_manifest(bundle, set_top("schema", "edgebench.manifest/0"))
    device, results = tmp_path / "device", tmp_path / "results"
    code, out, err = run_cli("deploy", "--bundle", bundle, "--target", "local", "--remote-dir",
                             device, "--results", results, "--no-progress")
    assert code == 2 and "Traceback" not in err, err
    (line,) = err.strip().splitlines()
    assert "manifest schema 'edgebench.manifest/0'" in line and "bench-host bundle" in line, line
    assert not device.exists()
    assert not results.exists() or not any(results.iterdir())


def test_no_manifest_is_one_line(tmp_path):
    from edgebench.host.agent_archive import write_archive
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    write_archive(bundle)
    line = one_error_line(run_agent(bundle, tmp_path / "out", timeout=60))
    assert "is not a bundle (no manifest.json)" in line, line
    with pytest.raises(UserError) as refused:
        load_bundle(bundle)
    assert line == "agent: error: " + str(refused.value)
