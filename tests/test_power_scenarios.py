"""Power, frame rate, streams and soak in one run of the real agent, read through the FIXTURE
INA3221 layout of power_fixtures.py (constant board power): every window the agent measures (the
timed loop, each scenario, each soak interval) gets the fixture's power and its own energy, and
the report shows them. The sources' own arithmetic is tests/test_power.py's."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest

from agent_helpers import read_rows, run_agent
from cli_runner import run_cli
from edgebench.host.report import build_report
from edgebench.host.targets.progress import TargetProgress
from power_fixtures import orin_board_w, orin_hwmon
from tflite_factory import make_bundle

pytestmark = pytest.mark.timeout(600)
SCENARIO_S = 1.0


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("power-scenarios")
    root = base / "sysfs"
    orin_hwmon(root)
    bundle = make_bundle(base / "bundle", recipes=("fp32", "int8"))
    out = base / "run" / "local"
    proc = run_agent(bundle, out, "--sysfs-root", str(root), "--power", "ina3221",
                     "--power-idle-seconds", "0.5", "--fps", "30", "--streams", "2",
                     "--scenario-seconds", str(SCENARIO_S), "--soak", "2", "--soak-interval", "1",
                     env=dict(os.environ, PATH="/usr/bin:/bin"))
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr
    (base / "agent-stdout.jsonl").write_text(proc.stdout)
    return out


def near(value, expected, rel=0.01) -> bool:
    return abs(float(value) - expected) <= rel * abs(expected)


def test_each_scenario_line_has_its_windows_energy(run):
    board = orin_board_w()
    lines = read_rows(run / "scenarios.csv")[1]
    assert {(r["model"], r["scenario"]) for r in lines} == {
        (m, s) for m in ("tinycnn.fp32", "tinycnn.int8") for s in ("fps=30", "streams=2")}
    for line in lines:
        assert line["status"] == "ok", line["error"]
        assert line["power_source"] == "ina3221"
        assert near(line["avg_power_w"], board), line
        energy_j = float(line["energy_mj"]) / 1e3
        if line["scenario"] == "fps=30":
            # energy per frame x frames / power = the scenario's window: about its length
            window = energy_j * float(line["frames"]) / float(line["avg_power_w"])
            assert 0.5 * SCENARIO_S < window <= 1.05 * SCENARIO_S, window
        else:
            # mJ per inference x inferences per second = the power, in mW
            assert near(energy_j * float(line["throughput_ips"]), board, rel=0.05), line


def test_each_soak_interval_has_its_power(run):
    board = orin_board_w()
    intervals = read_rows(run / "soak.csv")[1]
    assert len(intervals) == 4  # 2 models x 2 intervals of 1 s
    assert all(near(r["avg_power_w"], board) for r in intervals), intervals


def test_the_deploy_bar_follows_the_soak(run, capsys):
    """Each soak interval is an event as it ends, with its power; deploy's bar shows it."""
    lines = (run.parent.parent / "agent-stdout.jsonl").read_text().splitlines()
    soaks = [e for e in map(json.loads, lines) if e["event"] == "soak"]
    intervals = read_rows(run / "soak.csv")[1]
    assert [(e["model"], e["interval"]) for e in soaks] == [
        (r["model"], int(r["interval"])) for r in intervals]
    assert all(near(e["avg_power_w"], orin_board_w()) for e in soaks), soaks
    bar = TargetProgress("pi5", 0, enabled=True)
    bar.start_agent(2)
    for event in soaks:
        bar.agent_event(event)
    bar.close()
    shown = capsys.readouterr().err
    last = soaks[-1]
    assert f"tinycnn.int8 soak {last['t_end_s']:.0f}/2 s, p50 " in shown
    assert f"{orin_board_w():.2f} W" in shown


def test_power_samples_label_every_window(run):
    lines = read_rows(run / "power_samples.csv")[1]
    phases = {r["phase"] for r in lines}
    assert phases == {"idle", "timed", "fps=30", "streams=2", "soak"}, phases
    assert all(near(r["watts"], orin_board_w()) for r in lines if r["rail"] == "board")


def test_the_report_shows_energy_per_inference_and_per_frame(run, tmp_path):
    paths = build_report([run.parent], tmp_path / "report")
    text = paths.markdown.read_text()
    assert "## Energy per inference" in text
    fps = text.split("#### fps=30")[1].split("####")[0]
    header = [c.strip() for c in fps.splitlines()[2].strip("|").split("|")]
    column = header.index("mJ/frame")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in fps.splitlines()[4:6]]
    # mJ per frame at 30 fps, about the board's power / 30 (the window ends at the last result)
    per_frame_mj = orin_board_w() / 30 * 1e3
    for row in cells:
        assert 0.5 * per_frame_mj < float(row[column]) <= 1.05 * per_frame_mj, row
    assert (Path(paths.markdown).parent / "energy_accuracy_local.png").is_file()


def test_the_database_keeps_every_power_soak_and_scenario_line(run, tmp_path):
    """`bench-host import` stores power_samples, soak, scenarios and frames with their rows, and
    a run read back from the database has them as the folder has (so compare's energy interval
    is the same from either); importing again adds nothing."""
    import sqlalchemy as sa

    from edgebench.host.compare import compare_runs
    from edgebench.host.report.load import load_results
    from edgebench.host.results_db import schema as S
    from edgebench.host.results_db.connect import open_db
    from edgebench.host.results_db.read import load_run

    db = str(tmp_path / "db.sqlite")
    code, out, err = run_cli("import", run.parent, "--db", db)
    assert code == 0, err
    folder = load_results([run])
    counts = {name: len(getattr(folder, name)) for name in ("power", "soak", "scenarios",
                                                              "frames")}
    assert all(counts.values()), counts
    assert f"{sum(counts.values())} power, soak and scenario line(s)" in out
    code, again, _ = run_cli("import", run.parent, "--db", db)
    assert code == 0 and "0 row(s)" in again and "0 power, soak and scenario line(s)" in again
    # a database filled before it kept these lines: its rows are there, the lines are not;
    # importing the folder again adds them
    with open_db(db).begin() as conn:
        conn.execute(S.lines.delete())
    code, older, _ = run_cli("import", run.parent, "--db", db)
    assert code == 0 and "0 row(s)" in older
    assert f"{sum(counts.values())} power, soak and scenario line(s)" in older
    with open_db(db).connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(S.lines)).scalar() == sum(
            counts.values())
    stored = load_run(open_db(db), "test-run")
    for name in counts:
        mine, theirs = getattr(folder, name), getattr(stored, name)
        assert theirs is not None and list(theirs.columns) == list(mine.columns), name
        order = [c for c in mine.columns if c not in ("device", "t_s", "watts")]
        pd.testing.assert_frame_equal(
            theirs.drop(columns="device").sort_values(order, kind="stable").reset_index(drop=True),
            mine.drop(columns="device").sort_values(order, kind="stable").reset_index(drop=True),
            check_dtype=False)
    from_folder = compare_runs(folder, folder).table
    from_db = compare_runs(stored, folder).table
    cols = ["energy_ratio", "energy_ratio_low", "energy_ratio_high", "energy_interval_from"]
    assert (from_db["energy_interval_from"] == "power readings (block bootstrap)").all()
    pd.testing.assert_frame_equal(from_db[cols], from_folder[cols])
