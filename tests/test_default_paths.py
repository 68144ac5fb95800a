"""Where commands write when the user gives no --db / --out: beside the results they were given
(report, import) or the database they read (history, compare), never into a results/ folder of
whatever folder the user happens to stand in."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from cli_runner import run_cli
from compare_runs import all_correct, eight_wrong, write_run


def _models(p50, correct):
    return {"resnet18.fp32": {"p50": 8.0, "correct": all_correct()},
            "resnet18.int8": {"p50": p50, "correct": correct}}


@pytest.fixture()
def scratch(tmp_path, monkeypatch) -> Path:
    """A results root res/ with two deploy-shaped runs (res/<run-id>/<target>/), and the user
    standing in an empty folder beside it, with no database named anywhere."""
    monkeypatch.delenv("EDGEBENCH_DB")
    res = tmp_path / "res"
    write_run(res / "r1" / "local", "r1", _models(2.0, all_correct()), seed=1,
              started="2026-11-20T10:00:00Z")
    (res / "r1" / "host.log").write_text("")
    write_run(res / "r2" / "local", "r2", _models(2.2, eight_wrong()), seed=2,
              started="2026-11-21T10:00:00Z")
    (res / "r2" / "host.log").write_text("")
    cwd = tmp_path / "scratch"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    return res


def _run_ids(db: Path) -> set[str]:
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        ids = {r[0] for r in conn.execute(sa.text("SELECT run_id FROM runs"))}
    engine.dispose()
    return ids


def _nothing_in(cwd: Path) -> None:
    assert not (cwd / "results").exists()
    assert list(cwd.iterdir()) == []


def test_report_records_into_the_database_of_the_runs_results_root(scratch):
    code, _, err = run_cli("report", "../res/r1", "--quiet")  # a run folder, relative
    assert code == 0, err
    db = scratch / "edgebench.sqlite"
    assert _run_ids(db) == {"r1"}
    code, _, err = run_cli("report", scratch / "r2" / "local", "--quiet")  # a target folder
    assert code == 0, err
    assert _run_ids(db) == {"r1", "r2"}
    _nothing_in(Path.cwd())


def test_report_finds_the_database_beside_its_folder(scratch, tmp_path):
    """A database already beside the results wins over the layout's guess: a target folder
    copied straight under mine/ (no run folder) records into mine/edgebench.sqlite."""
    mine = tmp_path / "mine"
    write_run(mine / "pi5", "r9", _models(9.0, all_correct()), seed=9)
    code, _, err = run_cli("import", scratch / "r1", "--db", mine / "edgebench.sqlite")
    assert code == 0, err
    code, _, err = run_cli("report", mine / "pi5", "--quiet")
    assert code == 0, err
    assert _run_ids(mine / "edgebench.sqlite") == {"r1", "r9"}
    assert not (tmp_path / "edgebench.sqlite").exists()
    _nothing_in(Path.cwd())


def test_import_defaults_to_the_database_of_the_results_root(scratch):
    code, out, err = run_cli("import", scratch / "r1", scratch / "r2")
    assert code == 0, err
    assert _run_ids(scratch / "edgebench.sqlite") == {"r1", "r2"}
    _nothing_in(Path.cwd())


def test_history_plots_beside_the_database_it_read(scratch, monkeypatch):
    db = scratch / "edgebench.sqlite"
    assert run_cli("import", scratch, "--db", db)[0] == 0
    code, out, err = run_cli("history", "--db", db, "--model", "resnet18.int8")
    assert code == 0, err
    assert (scratch / "history_resnet18.int8_p50.png").is_file()
    monkeypatch.setenv("EDGEBENCH_DB", str(db))
    code, out, err = run_cli("history", "--model", "resnet18.int8", "--metric", "accuracy")
    assert code == 0, err
    assert (scratch / "history_resnet18.int8_accuracy.png").is_file()
    _nothing_in(Path.cwd())


def test_reading_commands_refuse_a_database_that_is_not_there(scratch):
    code, out, err = run_cli("history", "--model", "resnet18.int8")
    assert code == 2
    assert "no results database" in err and "--db" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_cli("compare", "r1", "r2")
    assert code == 2 and "no results database" in err
    _nothing_in(Path.cwd())


def test_compare_of_run_ids_writes_beside_the_database(scratch):
    db = scratch / "edgebench.sqlite"
    assert run_cli("import", scratch, "--db", db)[0] == 0
    code, out, err = run_cli("compare", "r1", "r2", "--db", db, "--device", "local", "--quiet")
    assert code == 0, err
    assert (scratch / "compare" / "r1-vs-r2" / "compare.csv").is_file()
    _nothing_in(Path.cwd())
