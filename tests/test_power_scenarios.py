"""Power, frame rate, streams and soak in one run of the real agent, read through the FIXTURE
INA3221 layout of power_fixtures.py (constant board power): every window the agent measures (the
timed loop, each scenario, each soak interval) gets the fixture's power and its own energy, and
the report shows them. The sources' own arithmetic is tests/test_power.py's."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agent_helpers import read_rows, run_agent
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
