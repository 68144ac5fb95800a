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
from sshd import (TEST_USER, known_hosts, remote_dir, ssh_env, sshd,  # noqa: E402,F401
                  sshd_factory, tcp_proxy)


def pytest_addoption(parser):
    parser.addoption("--serial-only", action="store_true",
                     help="run only the tests marked `serial` (tests/run.sh's second pass)")


# The slowest test files first (seconds on the 2-core EPYC, clean-clone run of issue 29's stop):
# tests/run.sh hands whole files to 2 workers in collection order, and a long file started last
# would leave one worker idle at the end. A file not listed keeps its place after these.
SLOWEST_FIRST = (
    "test_converters.py",          # 98 s
    "test_emulated_pi.py",         # 95
    "test_pipeline.py",            # 64
    "test_quantization_report.py", # 60
    "test_power.py",               # 57
    "test_labgrid.py",             # 54
    "test_deploy_links.py",        # 52
    "test_export_speed.py",        # 52
    "test_train.py",               # 50
    "test_accelerators.py",        # 49
    "test_publish.py",             # 44
    "test_power_scenarios.py",     # 42
    "test_op_profile.py",          # 39
    "test_export_cli.py",          # 33
    "test_export.py",              # 29
    "test_agent_old_python.py",    # 27
    "test_deploy_faults.py",       # 24
    "test_export_debug.py",        # 22
    "test_models.py",              # 22
    "test_export_mixed_ends.py",   # 21
)


def pytest_collection_modifyitems(config, items):
    """Tests marked `serial` measure time and need the CPU to themselves: a parallel run
    (pytest-xdist's -n) leaves them out, and `--serial-only` runs just them, after it. A plain
    `pytest` runs everything in one process, as before."""
    only = config.getoption("--serial-only")
    parallel = bool(os.environ.get("PYTEST_XDIST_WORKER"))  # set in each xdist worker
    if parallel:
        rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
        items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: file order kept
    if not (only or parallel):
        return
    keep, drop = [], []
    for item in items:
        (keep if (item.get_closest_marker("serial") is not None) == bool(only) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
def device_folder():
    """The devices' default working folder (deploy/run without --remote-dir): one per test
    process, not ~/.edgebench. A device holds one run at a time (its lock), so two pytest-xdist
    workers measuring on this machine at once would refuse each other; and the suite leaves
    nothing in the homes. Relative: under each device user's home (root's, the test user's)."""
    name = f".edgebench-test-{os.environ.get('PYTEST_XDIST_WORKER') or 'main'}"
    os.environ["EDGEBENCH_REMOTE_DIR"] = name
    yield name
    import pwd
    import shutil

    for user in ("root", TEST_USER):
        try:
            shutil.rmtree(Path(pwd.getpwnam(user).pw_dir) / name, ignore_errors=True)
        except KeyError:
            pass


@pytest.fixture(scope="session", autouse=True)
def results_db(tmp_path_factory) -> Path:
    """deploy/run/report record every run in a database, by default results/edgebench.sqlite under
    the working folder; the suite's go to one file of its own instead (tests that test the
    default unset EDGEBENCH_DB)."""
    path = tmp_path_factory.mktemp("results-db") / "edgebench.sqlite"
    os.environ["EDGEBENCH_DB"] = str(path)
    return path
