"""The report's soak and scenario sections from constructed schema-4 results folders (soak.csv,
scenarios.csv, frames.csv written by the schema's record types): time to throttle where the
constructed flags or frequency say so and not before, the ranking at the start and at the end of
the soak, and the frame-rate table against a hand count over frames.csv."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from edgebench.device.schema import FRAMES, RESULTS_SCHEMA_VERSION, SCENARIOS, SOAK
from edgebench.host.report import build_report, load_results
from edgebench.host.report.scenarios import scenario_summary
from edgebench.host.report.soak import soak_summary
from test_report import result_row, write_results


def _write(path: Path, record, lines: list) -> None:
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(record.names))
        w.writeheader()
        w.writerows(lines)


def _ident(name: str) -> dict:
    arch, recipe = name.split(".")
    return dict(schema_version=RESULTS_SCHEMA_VERSION, run_id="run-1", model=name,
                sha256=f"{arch}{recipe}".ljust(64, "0"), threads=1, xnnpack="True",
                runtime="ai_edge_litert", compute_unit="cpu", round=1)


# Per model and 10-s interval: p50 (ms), cpu0 MHz, throttle flags.
SOAKS = {
    # steady: no flag, no frequency step
    "tiny.fp32": [(10.0, 2400, "0x0"), (10.1, 2400, "0x0"), (10.1, 2400, "0x0"),
                  (10.2, 2400, "0x0"), (10.2, 2400, "0x0"), (10.2, 2400, "0x0")],
    # frequency: 2300 MHz is 95.8 % (not yet), 1500 MHz in interval 5 is throttled
    "tiny.int8": [(4.0, 2400, ""), (4.1, 2400, ""), (4.2, 2400, ""), (4.3, 2300, ""),
                  (13.0, 1500, ""), (14.0, 1500, "")],
    # flags: bit 17 alone (throttled some time since boot) is not now; bit 1 in interval 3 is
    "small.int8": [(6.0, None, "0x0"), (6.0, None, "0x20000"), (9.0, None, "0x20002"),
                   (11.0, None, "0x20002"), (12.0, None, "0x20002"), (12.0, None, "0x20002")],
}


@pytest.fixture()
def soak_run(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "pi5"
    rows = [result_row(*name.split("."), 1, spec[0][0], 0.9, compute_unit="cpu", round=1)
            for name, spec in SOAKS.items()]
    write_results(folder, rows)
    lines = []
    for name, spec in SOAKS.items():
        for i, (p50, freq, flags) in enumerate(spec, start=1):
            lines.append(dict(_ident(name), interval=i, t_start_s=10.0 * (i - 1),
                              t_end_s=10.0 * i, count=1000, p50_ms=p50, p90_ms=p50 * 1.1,
                              temp_c=50.0 + 4 * i, freq_mhz="" if freq is None else freq,
                              throttled_flags=flags, avg_power_w=4.0 + 0.1 * i))
    _write(folder / SOAK.file, SOAK, lines)
    return folder


def test_time_to_throttle_and_ranking(soak_run):
    rs = load_results([soak_run])
    s = soak_summary(rs.soak, rs.rows).set_index("model")
    assert pd.isna(s.loc["tiny.fp32", "throttle_s"])
    assert s.loc["tiny.int8", "throttle_s"] == 50.0          # not 40: 2300 MHz is ≥ 95 %
    assert "frequency 1500 MHz" in s.loc["tiny.int8", "throttle_why"]
    assert s.loc["small.int8", "throttle_s"] == 30.0         # not 20: bit 17 alone is history
    assert s.loc["small.int8", "throttle_why"] == "flags 0x2"
    assert s.loc["tiny.int8", "p50_first_ms"] == 4.0 and s.loc["tiny.int8", "p50_last_ms"] == 14.0
    # start: int8 4 < small 6 < fp32 10; end: fp32 10.2 < small 12 < int8 14
    assert dict(s["rank_start"]) == {"tiny.int8": 1, "small.int8": 2, "tiny.fp32": 3}
    assert dict(s["rank_end"]) == {"tiny.fp32": 1, "small.int8": 2, "tiny.int8": 3}
    assert s.loc["tiny.int8", "architecture"] == "tiny" and s.loc["tiny.int8", "recipe"] == "int8"


def test_report_soak_section(soak_run, tmp_path):
    paths = build_report([soak_run.parent], tmp_path / "out")
    md = paths.markdown.read_text()
    section = md.split("# Sustained performance (soak)")[1].split("\n## Plots")[0]
    assert "bits 0-3" in section and "95 %" in section            # the rule is stated
    assert "| tiny | int8 | cpu | 1 | 60 (6) | 4.00 | 14.0 | +250.0 % | 1 → 3 | 50 (" in section
    assert "| tiny | fp32 | cpu | 1 | 60 (6) | 10.0 | 10.2 | +2.0 % | 3 → 1 | none |" in section
    png = tmp_path / "out" / "soak_pi5.png"
    assert png in paths.plots
    with Image.open(png) as im:
        assert im.size[0] > 600
    assert (tmp_path / "out" / "soak_summary.csv").is_file()
    assert "Energy per inference" not in md and "Frame-rate" not in md


def simulate(arrivals: list, services: list) -> list:
    """(arrival, start, end) per frame of one interpreter taking frames in order."""
    out, free = [], 0.0
    for a, s in zip(arrivals, services):
        start = max(a, free)
        free = start + s
        out.append((a, start, free))
    return out


FPS = 30.0
FRAMES_30 = simulate([k * 1000.0 / FPS for k in range(30)], [20.0] * 20 + [50.0] * 10)
STREAMS = {1: simulate([0.0] * 0 + [k * 10.0 for k in range(5)], [10.0] * 5),
           2: simulate([k * 12.0 for k in range(5)], [12.0] * 5)}


@pytest.fixture()
def scenario_run(tmp_path: Path) -> Path:
    folder = tmp_path / "run" / "jetson"
    write_results(folder, [result_row("tiny", "fp32", 1, 20.0, 0.9, compute_unit="cpu",
                                      round=1)])
    ident = _ident("tiny.fp32")
    blank = {c: "" for c in SCENARIOS.names}
    lines = [dict(blank, **ident, scenario="fps=30", stream=1, seconds=1.0, target_fps=30,
                  frames=30, status="ok", power_source="fixture-ina3221", avg_power_w=3.0,
                  energy_mj=12.5, energy_above_idle_mj=4.5)]
    lines += [dict(blank, **ident, scenario="streams=2", stream=k, seconds=0.06, frames=5,
                   throughput_ips=166.7, p50_ms=12.0 if k == 2 else 10.0, status="ok")
              for k in (1, 2)]
    _write(folder / SCENARIOS.file, SCENARIOS, lines)
    frames = [dict(ident, scenario="fps=30", stream=1, frame=i, arrival_ms=a, start_ms=s,
                   end_ms=e) for i, (a, s, e) in enumerate(FRAMES_30)]
    frames += [dict(ident, scenario="streams=2", stream=k, frame=i, arrival_ms=a, start_ms=s,
                    end_ms=e) for k, fr in STREAMS.items() for i, (a, s, e) in enumerate(fr)]
    _write(folder / FRAMES.file, FRAMES, frames)
    return folder


def _hand_counts() -> dict:
    latency = [e - a for a, _, e in FRAMES_30]
    deadline = 1000.0 / FPS
    missed = sum(1 for a, _, e in FRAMES_30 if e > a + deadline)
    q = statistics.quantiles(latency, n=100, method="inclusive")  # = numpy's linear
    return {"missed": missed, "p50": statistics.median(latency), "p90": q[89], "p99": q[98],
            "service": statistics.median([e - s for _, s, e in FRAMES_30]),
            "fps": 30 / max(1.0, FRAMES_30[-1][2] / 1000.0)}


def test_fps_figures_equal_a_hand_count(scenario_run):
    rs = load_results([scenario_run])
    s = scenario_summary(rs.scenarios, rs.frames, rs.rows)
    fps = s[s["scenario"] == "fps=30"].iloc[0]
    hand = _hand_counts()
    assert hand["missed"] > 0  # the slow tail of the constructed run falls behind
    assert fps["missed"] == hand["missed"]
    assert fps["missed_share"] == pytest.approx(hand["missed"] / 30)
    assert fps["missed_ci_low"] < fps["missed_share"] < fps["missed_ci_high"]
    assert fps["p50_ms"] == pytest.approx(hand["p50"])
    assert fps["p90_ms"] == pytest.approx(hand["p90"])
    assert fps["p99_ms"] == pytest.approx(hand["p99"])
    assert fps["service_p50_ms"] == pytest.approx(hand["service"])
    assert fps["achieved_fps"] == pytest.approx(hand["fps"])
    assert fps["source"] == "frames.csv"


def test_report_scenario_tables(scenario_run, tmp_path):
    paths = build_report([scenario_run.parent], tmp_path / "out")
    md = paths.markdown.read_text()
    section = md.split("# Frame-rate and throughput scenarios")[1]
    hand = _hand_counts()
    fps_part = section.split("### fps=30 (frame rate)")[1].split("###")[0]
    share = 100 * hand["missed"] / 30
    assert f"| 30 | {hand['fps']:.1f} | {share:.1f} (" in fps_part
    assert "| 12.5 | 4.5 | 3.00 |" in fps_part     # energy per frame, above idle, W
    streams = section.split("### streams=2 (concurrent streams)")[1]
    assert streams.count("| 166.7 | 5 |") == 2    # one line per stream, the total throughput
    assert "| 1 | 166.7 | 5 | 10.0 |" in streams and "| 2 | 166.7 | 5 | 12.0 |" in streams
    assert (tmp_path / "out" / "scenarios_summary.csv").is_file()
