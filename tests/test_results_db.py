"""The results database: SQLite by default, a real PostgreSQL server started here receiving the
same runs (history answers the same from both), idempotent imports, and a database that is down
or refuses the login costing the run nothing but a one-line message."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import sqlalchemy as sa

import postgres_server
from cli_runner import run_cli
from compare_runs import all_correct, eight_wrong, write_run

TABLES = ("runs", "devices", "models", "rows", "samples", "predictions")


@pytest.fixture(scope="module")
def postgres():
    server = postgres_server.start()
    try:
        yield server
    finally:
        postgres_server.stop(server)


@pytest.fixture()
def three_runs(tmp_path: Path) -> list[Path]:
    """resnet18.int8 measured three times on local (the second 10 % slower, the third losing 8
    images) and once on pi5."""
    def m(p50, correct):
        return {"resnet18.fp32": {"p50": 8.0, "correct": all_correct()},
                "resnet18.int8": {"p50": p50, "correct": correct}}
    return [
        write_run(tmp_path / "r1" / "local", "r1", m(2.0, all_correct()), seed=1,
                  started="2026-11-20T10:00:00Z"),
        write_run(tmp_path / "r2" / "local", "r2", m(2.2, all_correct()), seed=2,
                  started="2026-11-21T10:00:00Z"),
        write_run(tmp_path / "r3" / "local", "r3", m(2.0, eight_wrong()), seed=3,
                  started="2026-11-22T10:00:00Z"),
        write_run(tmp_path / "r3" / "pi5", "r3", m(9.0, all_correct()), seed=4,
                  started="2026-11-22T11:00:00Z"),
    ]


def _counts(url: str) -> dict[str, int]:
    from edgebench.host.results_db.connect import open_db
    engine = open_db(url)
    with engine.connect() as conn:
        out = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in TABLES}
    engine.dispose()
    return out


def _history(db: str, out: Path, *args: str) -> str:
    """The printed series (without the plot's path, which differs per database)."""
    code, text, err = run_cli("history", "--db", db, "--out", out, *args)
    assert code == 0, err
    return text.split("\nplot:")[0]


def test_sqlite_by_default_and_postgres_give_the_same_history(three_runs, tmp_path, postgres,
                                                              monkeypatch):
    monkeypatch.delenv("EDGEBENCH_DB")
    monkeypatch.chdir(tmp_path)
    for folder in three_runs:  # `report` records into its results root's edgebench.sqlite
        code, out, err = run_cli("report", folder, "--quiet")
        assert code == 0 and "database not updated" not in err, err
    sqlite = tmp_path / "edgebench.sqlite"  # <root>/<run>/<target>/: the root is tmp_path
    assert sqlite.is_file()
    code, out, err = run_cli("import", *[f.parent for f in three_runs], "--db", postgres.url())
    assert code == 0, err
    assert "4 run(s), 16 row(s)" in out
    assert _counts(str(sqlite)) == _counts(postgres.url())

    for args in (("--model", "resnet18.int8"), ("--model", "resnet18.int8", "--device", "local",
                                                 "--metric", "accuracy"),
                 ("--model", "resnet18.int8", "--metric", "memory")):
        lite = _history(str(sqlite), tmp_path / "h-lite", *args)
        assert lite == _history(postgres.url(), tmp_path / "h-pg", *args)
    text = _history(str(sqlite), tmp_path, "--model", "resnet18.int8")
    lines = [line for line in text.splitlines() if re.match(r"^(local|pi5)\s", line)]
    assert [line.split()[:2] for line in lines] == [["local", "r1"], ["local", "r2"],
                                                     ["local", "r3"], ["pi5", "r3"]]
    p50 = [float(line.split()[5]) for line in lines]
    assert p50[1] == pytest.approx(1.1 * p50[0], rel=0.03)  # the slow run shows
    acc = _history(str(sqlite), tmp_path, "--model", "resnet18.int8", "--metric", "accuracy",
                   "--device", "local")
    assert [line.split()[5] for line in acc.splitlines()[2:]] == ["100", "100", "80"]
    assert (tmp_path / "history_resnet18.int8_p50.png").is_file()
    assert (tmp_path / "h-pg" / "history_resnet18.int8_memory.png").is_file()


def test_importing_the_same_folder_twice_adds_nothing(three_runs, tmp_path, postgres):
    for url in (str(tmp_path / "db.sqlite"), postgres.url()):
        code, out, _ = run_cli("import", three_runs[0].parent, "--db", url)
        assert code == 0
        before = _counts(url)
        code, out, _ = run_cli("import", three_runs[0].parent, "--db", url)
        assert code == 0 and "0 run(s), 0 row(s), 0 latency sample(s), 0 prediction(s)" in out
        assert _counts(url) == before


def test_runs_from_the_database_compare_as_from_folders(three_runs, tmp_path):
    db = str(tmp_path / "db.sqlite")
    assert run_cli("import", *[f.parent for f in three_runs], "--db", db)[0] == 0
    code, out, err = run_cli("compare", "r1", "r2", "--db", db, "--device", "local",
                             "--out", tmp_path / "c-db")
    assert code == 0, err
    code, out2, err = run_cli("compare", three_runs[0], three_runs[1], "--out", tmp_path / "c")
    assert code == 0, err
    assert (tmp_path / "c-db" / "compare.csv").read_text().replace("r1", "").count(",") == \
        (tmp_path / "c" / "compare.csv").read_text().replace("r1", "").count(",")
    assert out.split("\n\n")[0] == out2.split("\n\n")[0]  # the same table, the same intervals
    code, _, err = run_cli("compare", "r1", "nope", "--db", db)
    assert code == 2 and "no run 'nope' in the database" in err


def _one_line_warning(err: str) -> str:
    lines = [line for line in err.splitlines() if "database not updated" in line]
    assert len(lines) == 1, err
    assert "bench-host import" in lines[0] and "Traceback" not in err
    return lines[0]


def test_a_database_that_is_down_costs_the_run_nothing(three_runs, tmp_path):
    from ports import free_port
    down = f"postgresql://edgebench:pw@127.0.0.1:{free_port()}/postgres"  # nothing listens
    code, out, err = run_cli("report", three_runs[0], "--db", down)
    assert code == 0 and (three_runs[0] / "report.md").is_file()
    line = _one_line_warning(err)
    assert "pw@" not in line  # the password is not echoed
    for argv in (("import", three_runs[0]), ("history", "--model", "resnet18.int8"),
                 ("compare", "r1", "r2")):  # commands that need it: one line, exit 2
        code, out, err = run_cli(*argv, "--db", down)
        assert code == 2 and len(err.strip().splitlines()) == 1, err
        assert "Connection refused" in err and "pw@" not in err


def test_a_refused_login_costs_the_run_nothing(three_runs, postgres):
    code, out, err = run_cli("report", three_runs[1], "--db", postgres.url(password="wrong"))
    assert code == 0 and (three_runs[1] / "report.html").is_file()
    line = _one_line_warning(err)
    assert "password authentication failed" in line
    assert f"bench-host import {three_runs[1]}" in line


@pytest.mark.slow
def test_a_real_deploy_with_the_database_refusing_keeps_its_files(tmp_path, postgres):
    from agent_helpers import FAST
    from tflite_factory import make_bundle

    bundle = make_bundle(tmp_path / "bundle", recipes=("int8",))
    code, out, err = run_cli("deploy", "--bundle", bundle, "--results", tmp_path / "res",
                             "--remote-dir", tmp_path / "dev", "--no-progress", "--db",
                             postgres.url(password="wrong"), *FAST.to_argv())
    assert code == 0, err
    from agent_helpers import run_folder
    assert (run_folder(tmp_path / "res") / "local" / "latency_samples.csv").is_file()
    _one_line_warning(err)
    # later, with the right password: the import the message suggests
    code, out, err = run_cli("import", run_folder(tmp_path / "res"), "--db", postgres.url())
    assert code == 0 and "1 run(s), 1 row(s)" in out, out + err


def test_history_bad_input(three_runs, tmp_path):
    db = str(tmp_path / "db.sqlite")
    assert run_cli("import", three_runs[0], "--db", db)[0] == 0
    code, _, err = run_cli("history", "--model", "vgg99.int8", "--db", db)
    assert code == 2 and "no stored run of 'vgg99.int8'" in err and "resnet18.int8" in err
    code, _, err = run_cli("history", "--model", "resnet18.int8", "--metric", "speed",
                           "--db", db)
    assert code == 2 and "--metric 'speed'" in err
    code, _, err = run_cli("history", "--model", "resnet18.int8", "--metric", "energy",
                           "--db", db)
    assert code == 2 and "energy" in err and "not recorded" in err


def test_the_report_names_the_previous_run_and_its_headline(three_runs, tmp_path):
    db = str(tmp_path / "db.sqlite")
    assert run_cli("report", three_runs[0], "--db", db, "--quiet")[0] == 0
    assert "previous run" not in (three_runs[0] / "report.md").read_text()  # nothing before it
    code, _, err = run_cli("report", three_runs[1], "--db", db, "--quiet")
    assert code == 0, err
    md = (three_runs[1] / "report.md").read_text()
    assert "## Changes since the previous run" in md
    assert "### local: against the previous run, r1@2026-11-20T10:00:00Z" in md
    assert "2 row(s) compared: 1 slower, 0 faster, 1 with no measurable difference" in md
    assert "Changes since the previous run" in (three_runs[1] / "report.html").read_text()
    # re-reporting r1 later still links to nothing earlier; r3's link is r2, not r1
    assert run_cli("report", three_runs[2], "--db", db, "--quiet")[0] == 0
    assert "against the previous run, r2@" in (three_runs[2] / "report.md").read_text()
    assert run_cli("report", three_runs[0], "--db", db, "--quiet")[0] == 0
    assert "previous run" not in (three_runs[0] / "report.md").read_text()


def test_energy_when_the_results_carry_it(tmp_path):
    """Results of schema 4 carry energy_mj (--power): compare gates on it and history follows
    it, from folders and the database, and the report of such a run has its energy section."""
    runs = [write_run(tmp_path / name / "local", name,
                      {"resnet18.int8": {"p50": 2.0, "correct": all_correct(),
                                         "energy": energy}}, rounds=3, seed=i,
                      started=f"2026-11-2{i}T10:00:00Z")
            for i, (name, energy) in enumerate((("e1", [10.0, 10.2, 9.9]),
                                                ("e2", [11.5, 11.6, 11.4])), start=1)]
    code, out, err = run_cli("compare", runs[0], runs[1], "--fail-if", "energy>+10%",
                             "--out", tmp_path / "c")
    assert code == 1 and "FAIL energy>+10%: local resnet18.int8" in out, out + err
    assert run_cli("compare", runs[0], runs[1], "--fail-if", "energy>+20%",
                   "--out", tmp_path / "c")[0] == 0
    db = str(tmp_path / "db.sqlite")
    assert run_cli("import", *[r.parent for r in runs], "--db", db)[0] == 0
    text = _history(db, tmp_path, "--model", "resnet18.int8", "--metric", "energy")
    assert [line.split()[1] + " " + line.split()[5] for line in text.splitlines()[2:]] == \
        ["e1 10", "e2 11.5"]
    assert (tmp_path / "history_resnet18.int8_energy.png").is_file()
    # the report of such a run: its energy section, figures without an interval (no
    # power_samples.csv to resample) and the device table's mJ/inference beside p50
    assert run_cli("report", runs[1], "--db", db, "--quiet")[0] == 0
    md = (runs[1] / "report.md").read_text()
    assert "# Energy per inference" in md and "| fixture |" in md
    assert "| 11.5 |" in md.split("# Energy per inference")[1]
