"""The suite's shared session fixtures exist once: a test module that imports a fixture function
gets a copy of its own, and a session fixture then runs once per such module (one more device
venv and sshd server each). They are registered in conftest.py only."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent


def fixtures_of(path: Path) -> set:
    """Names of the functions decorated with pytest.fixture(...) in a helper module."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef):
            for deco in node.decorator_list:
                target = deco.func if isinstance(deco, ast.Call) else deco
                if isinstance(target, ast.Attribute) and target.attr == "fixture":
                    found.add(node.name)
    return found


def imported_from(path: Path, module: str) -> set:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module == module:
            names |= {a.name for a in node.names}
    return names


def test_sshd_fixtures_are_registered_once():
    fixtures = fixtures_of(TESTS / "sshd.py")
    assert {"ssh_env", "sshd", "sshd_factory"} <= fixtures
    assert fixtures <= imported_from(TESTS / "conftest.py", "sshd")
    for path in sorted(TESTS.glob("test_*.py")):
        again = imported_from(path, "sshd") & (fixtures | {"*"})
        assert not again, f"{path.name} imports {sorted(again)} from sshd; conftest.py has them"


def test_each_test_process_draws_ports_from_its_own_block():
    """tests/ports.py: the controller and xdist's workers get disjoint ports, all below Linux's
    ephemeral range (where a bind(0) or an outgoing connection could take them meanwhile)."""
    import os
    import subprocess
    import sys

    drawn = {}
    for worker in ("", "gw0", "gw1"):
        env = dict(os.environ, PYTEST_XDIST_WORKER=worker)
        done = subprocess.run([sys.executable, "-c", "from ports import free_port; "
                               "print(*[free_port() for _ in range(50)])"], cwd=TESTS, env=env,
                              capture_output=True, text=True, check=True)
        drawn[worker] = [int(p) for p in done.stdout.split()]
    for worker, ports in drawn.items():
        assert len(set(ports)) == 50 and max(ports) < 32768, (worker, ports)
    assert not set(drawn[""]) & set(drawn["gw0"]) and not set(drawn["gw0"]) & set(drawn["gw1"])


def _collected(*args: str, worker: str = "") -> set:
    import os
    import subprocess
    import sys

    env = dict(os.environ, PYTEST_XDIST_WORKER=worker)
    done = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p",
                           "no:cacheprovider", *args], cwd=TESTS.parent, env=env,
                          capture_output=True, text=True)
    return {line.split("::")[0] for line in done.stdout.splitlines() if "::" in line}


def test_serial_tests_leave_the_parallel_pass_for_a_pass_of_their_own():
    files = ["tests/test_scenarios.py", "tests/test_bundle.py"]  # serial, and not
    assert _collected(*files) == set(files)
    assert _collected(*files, worker="gw0") == {"tests/test_bundle.py"}
    assert _collected("--serial-only", *files) == {"tests/test_scenarios.py"}


def test_the_keras_test_models_do_not_depend_on_onnx2tf_being_imported_first(tmp_path):
    """onnx2tf sets TF_USE_LEGACY_KERAS=1 when imported, which turns tf.keras into tf_keras in
    that process; the cached test models are built in whatever process needs them first (under
    pytest-xdist, after any other test file), so they must be the same Keras models either way."""
    import subprocess
    import sys

    script = ("import sys, numpy as np\n"
              "if sys.argv[1] == 'after': import onnx2tf  # noqa\n"
              "from heavy_tflite import _keras_model\n"
              "m = _keras_model(); m.export(sys.argv[2], verbose=False)\n"
              "np.savez(sys.argv[2] + '.npz', *m.get_weights())\n")
    weights = {}
    for order in ("alone", "after"):
        out = str(tmp_path / order)
        done = subprocess.run([sys.executable, "-c", script, order, out], cwd=TESTS,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        weights[order] = np.load(out + ".npz")
    assert len(weights["alone"].files) == len(weights["after"].files) > 0
    for name in weights["alone"].files:
        assert np.array_equal(weights["alone"][name], weights["after"][name]), name
