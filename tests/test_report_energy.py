"""The report's energy section from constructed schema-4 results folders (results.csv with the
power columns, power_samples.csv): intervals that hold the true energy where the power is
constant and have width where it is noisy, inferences per joule, energy above idle, the energy
speedup against fp32, the accuracy-vs-energy plot, and rows without power said so."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from edgebench.device.schema import POWER_SAMPLES, RESULTS_SCHEMA_VERSION
from edgebench.host.report import build_report, load_results
from edgebench.host.report.energy import block_ratios
from edgebench.host.report.tables import build_summary
from test_report import result_row, write_results

WINDOW_S = 4.0
HZ = 10.0
IDLE_W = 2.0


def trapezoid_mj(t, w, count) -> float:
    """What the agent reports: the trapezoid integral over the window ÷ inferences, in mJ."""
    t, w = np.asarray(t, float), np.asarray(w, float)
    return float(np.sum((w[1:] + w[:-1]) / 2 * np.diff(t))) / count * 1000.0


def power_row(name: str, watts, count: int, idle=None, **extra):
    """(results row, power_samples lines) of one model measured with a constant idle baseline
    and `watts` (one per reading at HZ over the window)."""
    arch, recipe = name.split(".")
    t = np.arange(len(watts)) / HZ
    idle = np.full(30, IDLE_W) if idle is None else np.asarray(idle, float)
    energy = trapezoid_mj(t, watts, count)
    idle_w = float(np.mean(idle))
    row = result_row(arch, recipe, 1, 10.0, 0.9, compute_unit="cpu", round=1, count=count,
                     power_source="fixture-hwmon", power_rails="VDD_IN",
                     power_samples=len(watts), power_hz=HZ, power_window_s=float(t[-1]),
                     idle_power_w=idle_w, avg_power_w=float(np.mean(watts)),
                     energy_mj=energy,
                     energy_above_idle_mj=energy - idle_w * float(t[-1]) / count * 1000.0,
                     **extra)
    base = dict(schema_version=RESULTS_SCHEMA_VERSION, run_id=row["run_id"], model=row["model"],
                sha256=row["sha256"], threads=1, xnnpack="True", runtime="ai_edge_litert",
                compute_unit="cpu", round=1, power_source="fixture-hwmon")
    lines = [dict(base, phase="idle", t_s=f"{-3.0 + i / HZ:.3f}", rail="board", watts=v)
             for i, v in enumerate(idle)]
    for i, v in enumerate(watts):
        lines += [dict(base, phase="timed", t_s=f"{t[i]:.3f}", rail=rail, watts=v * share)
                  for rail, share in (("VDD_IN", 1.0), ("board", 1.0))]
    return row, lines


def write_power_run(folder: Path, parts: list, rows_extra: list = ()) -> Path:
    rows = [p[0] for p in parts] + list(rows_extra)
    write_results(folder, rows)
    with (folder / POWER_SAMPLES.file).open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(POWER_SAMPLES.names))
        w.writeheader()
        for _, lines in parts:
            w.writerows(lines)
    return folder


N = int(WINDOW_S * HZ) + 1   # readings 0 .. 4 s


def noisy(seed=3, mean=5.0):
    rng = np.random.default_rng(seed)
    # noise plus a slow wander: what a real rail shows as the governor steps
    return mean + rng.normal(0, 0.4, N) + 0.3 * np.sin(np.arange(N) / 6.0)


@pytest.fixture()
def energy_run(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "board"
    no_power = result_row("resnet18", "fp32", 1, 12.0, 0.8, compute_unit="cpu", round=1,
                          error="energy not measured: --power pi5-pmic: vcgencmd not found "
                                "(not a Raspberry Pi 5?)")
    return write_power_run(folder, [
        power_row("tiny.fp32", noisy(), 400),             # ~50 mJ
        power_row("tiny.int8", np.full(N, 4.0), 800),     # 20 mJ exactly
        power_row("small.fp32", np.full(N, 5.0), 400),    # 50 mJ exactly
    ], [no_power])


def test_constant_power_interval_holds_the_true_energy(energy_run):
    rs = load_results([energy_run])
    s = build_summary(rs.rows, power=rs.power).set_index(["model", "recipe"])
    small = s.loc[("small", "fp32")]
    true = 5.0 * WINDOW_S / 400 * 1000.0   # 50 mJ per inference
    assert small["energy_mj"] == pytest.approx(true)
    assert small["energy_ci_low"] <= true <= small["energy_ci_high"]
    assert small["energy_ci_low"] == pytest.approx(true) and \
        small["energy_ci_high"] == pytest.approx(true)  # constant power: nothing to resample
    assert small["inferences_per_j"] == pytest.approx(20.0)
    above = (5.0 - IDLE_W) * WINDOW_S / 400 * 1000.0
    assert small["energy_above_idle_mj"] == pytest.approx(above)
    assert small["energy_above_idle_ci_low"] <= above <= small["energy_above_idle_ci_high"]


def test_noisy_power_interval_has_width_and_holds_the_figure(energy_run):
    rs = load_results([energy_run])
    s = build_summary(rs.rows, power=rs.power).set_index(["model", "recipe"])
    fp32 = s.loc[("tiny", "fp32")]
    lo, hi = fp32["energy_ci_low"], fp32["energy_ci_high"]
    assert lo < fp32["energy_mj"] < hi
    assert hi - lo > 0.5          # mJ: ten blocks of noisy readings cannot pin it exactly
    assert hi - lo < 0.2 * fp32["energy_mj"]
    assert lo <= 50.0 <= hi       # the mean power the noise was drawn around
    assert fp32["inferences_per_j_ci_low"] == pytest.approx(1000.0 / hi, rel=1e-4)
    # int8: 4 W over twice the inferences = 20 mJ; the ratio carries fp32's noise
    int8 = s.loc[("tiny", "int8")]
    assert int8["energy_mj"] == pytest.approx(20.0)
    assert int8["energy_speedup_vs_fp32"] == pytest.approx(fp32["energy_mj"] / 20.0, rel=1e-4)
    assert int8["energy_speedup_vs_fp32_ci_low"] < int8["energy_speedup_vs_fp32"] \
        < int8["energy_speedup_vs_fp32_ci_high"]
    assert int8["energy_speedup_vs_fp32_ci_low"] > 1.0
    assert int8["energy_speedup_vs_fp32_verdict"] == "less energy"
    assert pd.isna(s.loc[("small", "fp32"), "energy_speedup_vs_fp32"])  # no fp32 to beat


def test_block_ratios_needs_enough_readings():
    assert block_ratios([0.0, 0.1, 0.2], [5, 5, 5], 0.2, seed=0) is None  # 3 blocks < 5
    r = block_ratios(np.arange(40) / 10, np.full(40, 3.0), 3.9, seed=0)
    assert r is not None and np.allclose(r, 1.0)


def test_report_has_the_energy_section_and_plot(energy_run, tmp_path):
    paths = build_report([energy_run.parent], tmp_path / "out")
    md = paths.markdown.read_text()
    assert "# Energy per inference" in md and "inferences per J" in md
    section = md.split("# Energy per inference")[1]
    assert "energy not measured: --power pi5-pmic: vcgencmd not found" in section
    assert "fixture-hwmon (VDD_IN), 41 readings at 10 Hz" in section
    fp32 = pd.read_csv(paths.summary_csv).set_index(["model", "recipe"]).loc[("tiny", "fp32")]
    assert f"{fp32['energy_mj'] / 20.0:.2f}× (" in section  # int8's energy speedup, interval
    assert "energy not measured: energy not measured" not in section
    png = tmp_path / "out" / "energy_accuracy_board.png"
    assert png in paths.plots
    with Image.open(png) as im:
        assert im.size[0] > 400
    summary = pd.read_csv(paths.summary_csv)
    assert {"energy_mj", "energy_ci_low", "inferences_per_j",
            "energy_speedup_vs_fp32"} <= set(summary.columns)
    # the device table shows mJ/inference beside p50
    assert "mJ/inference" in md.split("# Results per device")[1].split("\n# ")[0]


def test_no_power_no_section(tmp_path):
    folder = tmp_path / "run" / "local"
    write_results(folder, [result_row("tiny", "fp32", 1, 3.0, 0.9, compute_unit="cpu",
                                      round=1)])
    md = build_report([folder], tmp_path / "out").markdown.read_text()
    assert "Energy per inference" not in md and "mJ/inference" not in md
    assert not list((tmp_path / "out").glob("energy_accuracy_*.png"))


def test_old_schema_folder_still_reports(tmp_path):
    """A schema-3 results.csv has no power columns: they come back empty, nothing breaks."""
    from edgebench.device.schema import RESULTS
    folder = tmp_path / "run" / "old"
    cols = tuple(c.name for c in RESULTS.columns if c.since <= 3)
    write_results(folder, [result_row("tiny", "fp32", 1, 3.0, 0.9, schema_version=3,
                                      compute_unit="cpu", round=1)], columns=cols)
    rs = load_results([folder])
    assert rs.power is None and rs.soak is None and rs.scenarios is None
    s = build_summary(rs.rows, power=rs.power)
    assert s["energy_mj"].isna().all() and s["warm_load_ms"].isna().all()


def test_warm_load_beside_cold_load_and_init(tmp_path):
    """Schema 4 (#23): the device table compares warm loads, with the cold load and the
    accelerator's start-up beside them; the rounds' median is taken like the p50's."""
    folder = tmp_path / "run" / "gpu-box"
    write_results(folder, [
        result_row("tiny", "fp32", 1, 3.0, 0.9, compute_unit="cpu", round=r, load_ms=cold,
                   warm_load_ms=warm, accelerator_init_ms=init)
        for r, cold, warm, init in ((1, 45.6, 12.3, 300.0), (2, 40.0, 12.1, 280.0),
                                    (3, 50.0, 12.5, 320.0))])
    s = build_summary(load_results([folder]).rows).iloc[0]
    assert (s["warm_load_ms"], s["load_ms"], s["accelerator_init_ms"]) == (12.3, 45.6, 300.0)
    md = build_report([folder], tmp_path / "out").markdown.read_text()
    assert "load (ms): warm (cold, init)" in md and "| 12.3 (cold 45.6, init 300) |" in md
