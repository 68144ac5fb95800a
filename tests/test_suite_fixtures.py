"""The suite's shared session fixtures exist once: a test module that imports a fixture function
gets a copy of its own, and a session fixture then runs once per such module (one more device
venv and sshd server each). They are registered in conftest.py only."""
from __future__ import annotations

import ast
from pathlib import Path

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
