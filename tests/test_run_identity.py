"""One deploy is one run (issue: one bundle measured twice became one run): each deploy of a
bundle gets its own run id, start time and folder; only an unfinished run is resumed; the
database refuses a second measurement session under a run id it already holds."""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from agent_helpers import FAST, read_rows, run_agent
from cli_runner import run_cli
from edgebench.host.deploy import deploy
from edgebench.host.errors import UserError
from edgebench.host.targets import TargetSpec

XNNPACK_OFF = replace(FAST, xnnpack="off")  # other options: another run


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    from tflite_factory import make_bundle
    return make_bundle(tmp_path_factory.mktemp("run-id") / "bundle", recipes=("fp32",))


def _deploy(bundle, tmp_path, agent=FAST, **kw):
    device = TargetSpec(name="local", kind="local", remote_dir=str(tmp_path / "device"))
    return deploy(bundle, [device], tmp_path / "results", agent, progress=False, **kw)[0]


def _rows(outcome):
    return read_rows(outcome.results / "results.csv")[1]


def test_each_deploy_of_one_bundle_is_a_run_of_its_own(bundle, tmp_path):
    first = _deploy(bundle, tmp_path)
    second = _deploy(bundle, tmp_path, XNNPACK_OFF)
    assert first.ok and second.ok
    assert first.run_id != second.run_id and first.results != second.results
    for o in (first, second):
        rows = _rows(o)
        assert rows and all(r["status"] == "ok" for r in rows)
        assert {r["run_id"] for r in rows} == {o.run_id}
        assert {r["bundle_id"] for r in rows} == {"test-run"}  # the bundle's id stays its own
        run = json.loads((o.results.parent / "run.json").read_text())
        assert run["finished_utc"] and run["bundle"]["id"] == "test-run"
    assert {r["xnnpack"] for r in _rows(second)} == {"off"}  # measured, not merged into first

    named = _deploy(bundle, tmp_path, run_id="second")
    assert named.ok and named.run_id == "second" and len(_rows(named)) == len(_rows(first))
    with pytest.raises(UserError, match="run second .* is finished"):
        _deploy(bundle, tmp_path, run_id="second")


def test_only_the_interrupted_last_run_is_resumed_and_it_says_so(bundle, tmp_path):
    first = _deploy(bundle, tmp_path)
    run_json = first.results.parent / "run.json"
    run = json.loads(run_json.read_text())
    run["targets"]["local"], run["finished_utc"] = "running", None  # as a killed host leaves it
    run_json.write_text(json.dumps(run))
    rows_before = _rows(first)

    other = _deploy(bundle, tmp_path, XNNPACK_OFF)  # other options: not that run
    assert other.run_id != first.run_id and "is unfinished but" in other.run_note

    resumed = _deploy(bundle, tmp_path, run_id=first.run_id)
    assert resumed.run_id == first.run_id and resumed.run_note.startswith("resuming run")
    assert _rows(resumed) == rows_before  # nothing measured twice
    assert json.loads(run_json.read_text())["finished_utc"]


def test_the_database_never_merges_two_measurements_under_one_run_id(bundle, tmp_path):
    db = tmp_path / "db.sqlite"
    folders = []
    for name in ("a", "b"):
        device = TargetSpec(name="local", kind="local", remote_dir=str(tmp_path / f"dev-{name}"))
        o = deploy(bundle, [device], tmp_path / name, FAST, progress=False, run_id="same")[0]
        assert o.ok
        folders.append(o.results.parent)
    code, out, err = run_cli("import", folders[0], "--db", db)
    assert code == 0 and "1 run(s)" in out, out + err
    import sqlalchemy as sa

    from edgebench.host.results_db import schema as S
    from edgebench.host.results_db.connect import open_db
    with open_db(str(db)).connect() as conn:  # the cards, from the manifest the run kept
        assert conn.execute(sa.select(S.models.c.card)).scalars().all()[0]
    code, out, err = run_cli("import", folders[0], "--db", db)  # the same files: idempotent
    assert code == 0 and "0 run(s), 0 row(s)" in out, out + err
    code, out, err = run_cli("import", folders[1], "--db", db)
    assert code != 0 and "another measurement" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_the_agent_keeps_one_run_per_out_folder(bundle, tmp_path):
    ok = run_agent(bundle, tmp_path / "out", "--run-id", "one")
    assert ok.returncode == 0, ok.stderr
    other = run_agent(bundle, tmp_path / "out", "--run-id", "two")
    assert other.returncode == 2 and "holds rows of run one" in other.stderr
    assert "Traceback" not in other.stderr
    bad = run_agent(bundle, tmp_path / "out2", "--run-id", "x;rm -rf ~")
    assert bad.returncode == 2 and "run id" in bad.stderr and not (tmp_path / "out2").exists()


def test_bench_host_run_keeps_its_run_and_forks_one_per_other_bundle(tmp_path):
    """bench-host run's deploy (resume_finished, fork): the same bundle keeps its run, another
    bundle is measured as <run-id>-2, and that one is found again rather than forking -3."""
    from types import SimpleNamespace

    from edgebench.host.run_record import open_run

    def bundle(content):
        return SimpleNamespace(run_id="quick", content_id=content, path=tmp_path / "quick" / "bundle")

    def run(content):
        record = open_run(tmp_path, bundle(content), ["local"], [], "quick", resume_finished=True,
                          fork=True)
        record.mark("local", "finished")
        return record

    first = run("aaa")
    finished = first.data["finished_utc"]
    assert first.run_id == "quick" and first.note is None
    again = run("aaa")
    assert again.run_id == "quick" and again.data["finished_utc"] == finished
    other = run("bbb")
    assert other.run_id == "quick-2" and "this measurement is run quick-2" in other.note
    assert run("bbb").run_id == "quick-2"
    assert run("ccc").run_id == "quick-3"
    assert run("aaa").run_id == "quick"
