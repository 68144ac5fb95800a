"""The device-side helpers that are sent as source (device/doctor_facts.py,
accelerator_probe.py, store_files.py), run the way the host runs them: `python -c SOURCE ...`
on this machine's interpreter, the oldest one we support included."""
from __future__ import annotations

import glob
import hashlib
import json
import subprocess
import sys

import pytest

from edgebench.device.units import GPU_ACCELERATOR_LIBS
from edgebench.host.agent_archive import device_script
from edgebench.host.doctor_accelerators import DELEGATES, PROBE_MODEL_B64


def run(python: str, name: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", device_script(name), *map(str, args)],
                          capture_output=True, text=True, timeout=180)


def oldest_python() -> str:
    found = sorted(glob.glob("/root/.pyenv/versions/3.8.*/bin/python3.8"))
    return found[-1] if found else sys.executable


@pytest.mark.parametrize("python", [sys.executable, oldest_python()], ids=["host", "oldest"])
def test_doctor_facts_report_this_machine(python, tmp_path):
    done = run(python, "doctor_facts", tmp_path)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["free_path"] == str(tmp_path) and facts["free_bytes"] > 0
    assert facts["cores"] >= 1 and len(facts["python"]) == 3


def test_accelerator_probe_finds_the_hosts_litert_and_no_gpu_library():
    """The host's LiteRT 2.1 has no GPU accelerator library (of the list the agent checks)."""
    done = run(sys.executable, "accelerator_probe", "".join(PROBE_MODEL_B64),
               ",".join(GPU_ACCELERATOR_LIBS), *DELEGATES)
    assert done.returncode == 0, done.stderr
    facts = json.loads(done.stdout.strip().splitlines()[-1])
    assert facts["litert"] == "2.1.0" and facts["gpu_accelerator"] is None
    assert set(facts["delegates"]) == set(DELEGATES)


def test_store_files_plans_and_commits_by_content(tmp_path):
    store = tmp_path / "store"
    store.mkdir()
    blob = b"a model"
    sha = hashlib.sha256(blob).hexdigest()
    (store / f".part-{sha}").write_bytes(blob[:3])
    plan = json.loads(run(sys.executable, "store_files", "plan", store, 3600, sha).stdout)
    assert plan[sha] == [False, 3, hashlib.sha256(blob[:3]).hexdigest()]
    (store / f".part-{sha}").write_bytes(blob)
    done = run(sys.executable, "store_files", "commit", store, sha)
    assert done.stdout.split() == ["ok", sha] and (store / sha).read_bytes() == blob
