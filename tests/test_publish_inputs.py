"""`bench-host publish` on bad input and at its edges, with synthetic runs made from known
latency samples (tests/compare_runs.py): each bad input is one line, exit 2, no traceback, and
the output folder is left as it was; a run without latency samples is said in one line and
published without an interval; a step below the threshold is a candidate, not a change; the
same runs give the same site from SQLite and from a real PostgreSQL server."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

import postgres_server
from cli_runner import run_bench_host, run_cli
from compare_runs import all_correct, write_run
from ports import free_port

MODEL = "tiny.int8"


def _run(root: Path, run_id: str, p50: float, day: int, device: str = "local",
         samples: bool = True) -> Path:
    folder = write_run(root / run_id / device, run_id,
                       {MODEL: {"p50": p50, "correct": all_correct()}}, n=300, seed=day,
                       started=f"2026-11-{day:02d}T10:00:00Z")
    if not samples:
        (folder / "latency_samples.csv").unlink()
    return folder.parent


def _db(tmp: Path, runs: list[Path], url: str | None = None) -> str:
    url = url or str(tmp / "db.sqlite")
    code, out, err = run_cli("import", *runs, "--db", url)
    assert code == 0, err
    return url


def _one_line_error(code: int, err: str) -> str:
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict:
    """Four runs of one model: 2.00, 2.00, 2.08, 2.08 ms (+4 %, below the default 5 %),
    published once with the defaults."""
    tmp = tmp_path_factory.mktemp("steps")
    runs = [_run(tmp, f"r{i}", p50, day=i + 1) for i, p50 in enumerate((2.0, 2.0, 2.08, 2.08))]
    db = _db(tmp, runs)
    code, out, err = run_cli("publish", "--db", db, "--out", tmp / "site")
    assert code == 0, err
    return {"tmp": tmp, "runs": runs, "db": db, "site": tmp / "site", "out": out}


def test_a_step_below_the_threshold_is_a_candidate_not_a_change(steps, tmp_path):
    out = steps["out"]
    assert "0 step(s) kept" in out and "1 candidate(s) not kept" in out, out
    text = (steps["site"] / "changes.html").read_text()
    assert 'id="eb-steps">No step detected' in text
    assert "significant, but within the threshold of &#x27;p50&gt;+5%&#x27;" in text
    # a lower threshold keeps it, as a regression of an earlier run: no failure now
    site = tmp_path / "site"
    shutil.copytree(steps["site"], site)
    code, out, err = run_cli("publish", "--db", steps["db"], "--out", site,
                             "--fail-if", "p50>+3%")
    assert code == 0, err
    assert "1 step(s) kept (1 regression(s))" in out and "FAIL" not in out
    assert "0 report(s) and 0 comparison(s) built" in out  # all reused
    assert 'data-verdict="regression"' in (site / "changes.html").read_text()
    # a newest run that regresses again fails a --fail-if publish (CI acts on it)
    db = tmp_path / "more.sqlite"
    shutil.copy(steps["db"], db)
    _db(tmp_path, [_run(tmp_path, "r5", 2.2, day=5)], str(db))
    code, out, err = run_cli("publish", "--db", db, "--out", site, "--fail-if", "p50>+3%")
    assert code == 1, err
    (fail,) = [line for line in out.splitlines() if line.startswith("FAIL")]
    assert fail.startswith("FAIL p50>+3%: tiny.int8 on local") and "in run r5 on local" in fail
    assert "1 report(s) and 1 comparison(s) built" in out


def test_bad_rules_and_unknown_pairs_are_one_line(steps, tmp_path):
    site = tmp_path / "site"
    for argv, message in ((("--fail-if", "latency>+5%"), "unknown metric 'latency'"),
                          (("--fail-if", "p50>5"), "expected METRIC>THRESHOLD"),
                          (("--pair", "r1", "nope"), "--pair nope: no such run"),
                          (("--match", "colour"), "unknown field"),
                          (("--port", "70000"), "--port 70000")):
        code, out, err = run_cli("publish", "--db", steps["db"], "--out", site, *argv)
        assert message in _one_line_error(code, err)
        assert not site.exists()
    code, out, _ = run_cli("publish", "--fail-if", "help")
    assert code == 0 and "p50" in out


def test_an_empty_or_missing_database_is_one_line(tmp_path):
    from edgebench.host.results_db.connect import open_db

    empty = tmp_path / "empty.sqlite"
    open_db(str(empty)).dispose()  # the tables, no run
    code, out, err = run_cli("publish", "--db", empty, "--out", tmp_path / "site")
    assert "holds no runs yet" in _one_line_error(code, err)
    code, out, err = run_cli("publish", "--db", tmp_path / "nope.sqlite",
                             "--out", tmp_path / "site")
    assert "no results database at" in _one_line_error(code, err)
    assert not (tmp_path / "site").exists() and not (tmp_path / "nope.sqlite").exists()


def test_two_runs_with_no_rows_in_common_are_one_line(tmp_path):
    runs = [_run(tmp_path, "a", 2.0, 1), _run(tmp_path, "b", 2.0, 2, device="pi5")]
    db = _db(tmp_path, runs)
    site = tmp_path / "site"
    code, out, err = run_cli("publish", "--db", db, "--out", site, "--pair", "a", "b")
    line = _one_line_error(code, err)
    assert line.startswith("bench-host publish: error: --pair a@") and "no rows in common" in line
    assert not site.exists() and not list(tmp_path.glob(".site*"))
    # the same models across the two boards do compare
    code, out, err = run_cli("publish", "--db", db, "--out", site, "--pair", "a", "b",
                             "--match", "architecture,recipe,compute_unit,threads")
    assert code == 0, err
    (pair,) = [p for p in (site / "compare").iterdir() if p.is_dir()]
    assert "local → pi5" in (pair / "compare.md").read_text()


def test_a_run_without_latency_samples_is_published_with_one_note(tmp_path):
    runs = [_run(tmp_path, "r1", 2.0, 1), _run(tmp_path, "r2", 2.0, 2),
            _run(tmp_path, "bare", 3.0, 3, samples=False)]
    db = _db(tmp_path, runs)
    site = tmp_path / "site"
    proc = run_bench_host("publish", "--db", db, "--out", site)
    assert proc.returncode == 0, proc.stderr
    notes = [line for line in proc.stdout.splitlines() if line.startswith("note:")]
    assert notes == ["note: 1 run(s) without latency samples (bare on local): their p50 has no "
                     "interval and no step can be tested against them"]
    assert "Traceback" not in proc.stderr + proc.stdout
    series = (site / "series" / "local--tiny.int8--cpu--t1--ai_edge_litert.html").read_text()
    assert re.search(r">bare</a></td><td>[^<]*</td><td class=num>3\.\d+</td><td class=num>none<",
                     series)
    # the 50 % jump to the bare run is proposed, but cannot be tested: not a change
    changes = (site / "changes.html").read_text()
    assert "No step detected" in changes
    assert "no latency samples stored for bare on local: no test possible" in changes


def _not_ours(folder: Path) -> None:
    folder.mkdir()
    (folder / "thesis.tex").write_text("months of work")


def test_an_output_folder_that_is_not_ours_is_left_alone(tmp_path):
    db = _db(tmp_path, [_run(tmp_path, "solo", 2.0, 1)])
    theirs = tmp_path / "theirs"
    _not_ours(theirs)
    code, out, err = run_cli("publish", "--db", db, "--out", theirs)
    assert "was not made by bench-host publish" in _one_line_error(code, err)
    assert [p.name for p in theirs.iterdir()] == ["thesis.tex"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".theirs")]
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    code, out, err = run_cli("publish", "--db", db, "--out", a_file)
    assert "exists and is not a folder" in _one_line_error(code, err)
    # an empty folder is filled, stamped, and from then on ours
    empty = tmp_path / "empty"
    empty.mkdir()
    inode = empty.stat().st_ino
    assert run_cli("publish", "--db", db, "--out", empty)[0] == 0
    stamp = json.loads((empty / ".edgebench-site").read_text())
    assert stamp == {"edgebench_site": 1} and empty.stat().st_ino == inode
    assert run_cli("publish", "--db", db, "--out", empty)[0] == 0
    # a site whose stamp was removed is no longer ours
    (empty / ".edgebench-site").unlink()
    code, out, err = run_cli("publish", "--db", db, "--out", empty)
    assert code == 2 and (empty / "index.html").is_file()


@pytest.fixture(scope="module")
def postgres():
    server = postgres_server.start()
    try:
        yield server
    finally:
        postgres_server.stop(server)


def test_postgres_down_or_refusing_is_one_line_and_up_gives_the_same_site(steps, postgres,
                                                                          tmp_path):
    down = f"postgresql://edgebench:pw@127.0.0.1:{free_port()}/postgres"
    code, out, err = run_cli("publish", "--db", down, "--out", tmp_path / "s")
    line = _one_line_error(code, err)
    assert "Connection refused" in line and "pw@" not in line
    code, out, err = run_cli("publish", "--db", postgres.url(password="wrong"),
                             "--out", tmp_path / "s")
    line = _one_line_error(code, err)
    assert "password authentication failed" in line and "wrong" not in line
    assert not (tmp_path / "s").exists()

    pg = _db(steps["tmp"], steps["runs"], postgres.url())
    code, out, err = run_cli("publish", "--db", pg, "--out", tmp_path / "pg")
    assert code == 0, err
    assert "4 report(s) and 3 comparison(s) built" in out  # nothing taken from SQLite's site
    sites = [re.sub(r"<code>[^<]*</code>|Published [^.]*\.", "", (site / "index.html").read_text())
             for site in (steps["site"], tmp_path / "pg")]
    assert sites[0] == sites[1] and "2.08" in sites[1]
    for page in ("changes.html", "series/local--tiny.int8--cpu--t1--ai_edge_litert.html"):
        assert (steps["site"] / page).read_text() == (tmp_path / "pg" / page).read_text()


def test_the_change_point_search_finds_what_ruptures_own_l2_cost_finds():
    """changes.py gives Pelt the l2 cost from cumulative sums (20× faster on long series): the
    same breakpoints as ruptures' CostL2, on series with and without steps."""
    import numpy as np
    import ruptures

    from edgebench.host.publish.changes import _l2_cost, candidates

    rng = np.random.default_rng(0)
    delta = np.log(1.05)
    for _ in range(40):
        n = int(rng.integers(2, 150))
        signal = np.log(2.0) + rng.normal(0, 0.02, n)
        signal[int(rng.integers(0, n)):] += rng.choice([0.0, 0.1, 0.25])
        theirs = ruptures.Pelt(model="l2", min_size=1, jump=1).fit(
            signal.reshape(-1, 1)).predict(pen=delta ** 2 / 2)
        ours = ruptures.Pelt(custom_cost=_l2_cost(), min_size=1, jump=1).fit(
            signal - np.median(signal)).predict(pen=delta ** 2 / 2)
        assert ours == theirs
    found, _ = candidates("p50", [2.0] * 30 + [2.5] * 10, delta)
    assert found == [30]

