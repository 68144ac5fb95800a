"""Shared fixtures: small real artifacts made once per session (tiny models, 32 px images)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))  # test helper modules import by name

# The real sshd fixtures, registered here once: a test module that imported them itself would get
# its own copy of each session fixture (one more device venv and sshd server per module).
from sshd import known_hosts, remote_dir, ssh_env, sshd, sshd_factory, tcp_proxy  # noqa: E402,F401

def pytest_report_header(config):
    from kernels import active

    limits = " ".join(f"{k}={v}" for k, v in active().items())
    return f"kernel limits (tests/kernels.py): {limits or 'none, native kernels'}"


# Two cores: keep torch from oversubscribing when tests run next to child processes.
os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A resnet18 trained for one epoch on a small phantom at 32 px: a real checkpoint, fast."""
    from edgebench.host.train import TrainConfig, train

    out = tmp_path_factory.mktemp("tiny-train")
    cfg = TrainConfig(model="resnet18", data="phantom:120", epochs=1, batch=16, img_size=32,
                      out=out)
    return train(cfg, progress=False).checkpoint



@pytest.fixture(scope="session")
def test_delegates(tmp_path_factory) -> dict[str, Path]:
    """The C test delegates of tests/delegates/ compiled once: {name: path to the .so} for
    noop, prepare_fails, crash, claim and not_a_delegate (see each .c for its options)."""
    from delegates.build import BuildError, build_delegates

    try:
        return build_delegates(tmp_path_factory.mktemp("delegates"))
    except BuildError as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session", autouse=True)
def results_db(tmp_path_factory) -> Path:
    """deploy/run/report record every run in a database, by default results/edgebench.sqlite under
    the working folder; the suite's go to one file of its own instead (tests that test the
    default unset EDGEBENCH_DB)."""
    path = tmp_path_factory.mktemp("results-db") / "edgebench.sqlite"
    os.environ["EDGEBENCH_DB"] = str(path)
    return path
