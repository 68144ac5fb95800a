"""agent.pyz: the device package as one reproducible zipapp. The same sources give the same
bytes (so a bundle's content id, and with it resume on the device, survives a rebuild); the
archive runs on its own, re-executes itself for the child, and keeps the guide as --help."""
from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile

import pytest

from agent_helpers import AGENT, by_model, events, read_rows, run_agent
from edgebench.host import agent_archive
from tflite_factory import make_bundle

pytestmark = pytest.mark.timeout(600)


def test_same_sources_give_the_same_bytes_even_after_touching_them(tmp_path):
    first = agent_archive.archive_bytes()
    later = time.time() + 3600
    sources = sorted(AGENT.rglob("*.py"))
    saved = {p: (p.stat().st_atime, p.stat().st_mtime) for p in sources}
    try:
        for p in sources:
            os.utime(p, (later, later))
        second = agent_archive.archive_bytes()
    finally:
        for p, times in saved.items():
            os.utime(p, times)
    assert first == second
    written = agent_archive.write_archive(tmp_path)
    assert written.name == "agent.pyz" and written.read_bytes() == first


def test_the_archive_holds_sorted_sources_with_fixed_stamps_and_no_bytecode(tmp_path):
    path = agent_archive.write_archive(tmp_path)
    assert path.read_bytes().startswith(b"#!/usr/bin/env python3\n")
    with zipfile.ZipFile(path) as zf:
        infos = zf.infolist()
    names = [i.filename for i in infos]
    assert names == sorted(names)
    assert "__main__.py" in names and "edgebench/device/agent/cli.py" in names
    # Every module of the package, subpackages included, as Python itself walks it.
    import pkgutil

    import edgebench.device as device
    walked = {m.name for m in pkgutil.walk_packages(device.__path__, "edgebench.device.")}
    assert {"edgebench.device.agent.cli", "edgebench.device.power.sources",
            "edgebench.device.remote.lease", "edgebench.device.scenarios.soak"} <= walked
    in_archive = {n[:-3].replace("/", ".").removesuffix(".__init__") for n in names
                  if n.startswith("edgebench/device/")}
    assert walked <= in_archive and in_archive == walked | {"edgebench.device"}
    assert not [n for n in names if n.endswith(".pyc") or "__pycache__" in n]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}


def test_help_is_the_guide_and_runs_from_anywhere(tmp_path):
    path = agent_archive.write_archive(tmp_path)
    proc = subprocess.run([sys.executable, str(path), "--help"], capture_output=True, text=True,
                          cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert "python3 agent.pyz --bundle DIR --out DIR" in proc.stdout
    assert "What one row means" in proc.stdout and '{"event": "done"' in proc.stdout


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    return make_bundle(tmp_path_factory.mktemp("archive") / "bundle", recipes=("fp32", "int8"))


def test_the_child_is_the_archive_itself(bundle, tmp_path):
    """The rows come from children started as `python agent.pyz --child`: with the installed
    package hidden (a PYTHONPATH entry that shadows edgebench with nothing), they still run."""
    shadow = tmp_path / "shadow" / "edgebench"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('not the archive')\n")
    env = dict(os.environ, PYTHONPATH=str(shadow.parent))
    proc = run_agent(bundle, tmp_path / "out", env=env)
    assert proc.returncode == 0, proc.stderr
    rows = by_model(read_rows(tmp_path / "out" / "results.csv")[1])
    assert {r["status"] for r in rows.values()} == {"ok"}, rows
    assert events(proc)[-1]["rows"] == 2
