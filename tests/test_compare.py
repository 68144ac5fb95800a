"""`bench-host compare`: synthetic runs from known latency samples and predictions (a 10 %
slowdown, identical distributions, an 8:0 split of changed images), the --fail-if gate's exit
codes, energy where the column exists, and a real end-to-end comparison of two agent runs."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from cli_runner import run_cli
from compare_runs import all_correct, eight_wrong, write_run
from edgebench.host.compare import compare_runs
from edgebench.host.report.load import load_results


@pytest.fixture()
def runs(tmp_path: Path) -> dict[str, Path]:
    """base; slow (tiny.int8 10 % slower, same accuracy); same (a fresh draw of base); worse
    (tiny.int8 wrong on 8 images base got right)."""
    def models(int8_p50=2.0, int8_correct=None):
        return {"tiny.fp32": {"p50": 8.0, "correct": all_correct()},
                "tiny.int8": {"p50": int8_p50, "correct": all_correct() if int8_correct is None
                              else int8_correct}}
    return {
        "base": write_run(tmp_path / "base" / "local", "r1", models(), seed=1),
        "slow": write_run(tmp_path / "slow" / "local", "r2", models(int8_p50=2.2), seed=2),
        "same": write_run(tmp_path / "same" / "local", "r3", models(), seed=3),
        "worse": write_run(tmp_path / "worse" / "local", "r4", models(int8_correct=eight_wrong()),
                           seed=4),
    }


def _row(table: pd.DataFrame, model: str) -> pd.Series:
    return table[table["model"] == model].iloc[0]


def test_a_ten_percent_slowdown_is_flagged_with_an_interval_excluding_one(runs):
    comp = compare_runs(load_results([runs["base"]]), load_results([runs["slow"]]))
    int8 = _row(comp.table, "tiny.int8")
    assert int8["p50_ratio"] == pytest.approx(1.10, abs=0.02)
    assert 1.0 < int8["p50_ratio_low"] < int8["p50_ratio"] < int8["p50_ratio_high"] < 1.2
    assert int8["p50_verdict"] == "slower"
    fp32 = _row(comp.table, "tiny.fp32")  # drawn from the same distribution in both runs
    assert fp32["p50_ratio_low"] <= 1.0 <= fp32["p50_ratio_high"]
    assert fp32["p50_verdict"] == "no measurable difference"
    assert int8["accuracy_verdict"] == "no measurable difference" and int8["accuracy_p"] == 1.0


def test_identical_distributions_give_no_measurable_difference(runs):
    comp = compare_runs(load_results([runs["base"]]), load_results([runs["same"]]))
    assert set(comp.table["p50_verdict"]) == {"no measurable difference"}
    assert (comp.table["p50_ratio_low"] < 1).all() and (comp.table["p50_ratio_high"] > 1).all()
    # the same folder against itself: two independent resamplings of the same data
    comp = compare_runs(load_results([runs["base"]]), load_results([runs["base"]]))
    assert set(comp.table["p50_verdict"]) == {"no measurable difference"}


def test_mcnemar_on_an_eight_to_nothing_split(runs):
    comp = compare_runs(load_results([runs["base"]]), load_results([runs["worse"]]))
    int8 = _row(comp.table, "tiny.int8")
    assert int8["accuracy_test"].startswith("McNemar")
    assert int8["accuracy_p"] == pytest.approx(2 * 0.5 ** 8, rel=1e-12)
    assert int8["images_changed"] == 8 and int8["delta_accuracy_pp"] == pytest.approx(-20.0)
    assert int8["delta_accuracy_high_pp"] < 0 and int8["accuracy_verdict"] == "worse"


def test_different_test_images_use_an_unpaired_test(runs, tmp_path):
    other = write_run(tmp_path / "other" / "local", "r5",
                      {"tiny.int8": {"p50": 2.0, "correct": eight_wrong(50)}}, seed=5)
    comp = compare_runs(load_results([runs["base"]]), load_results([other]))
    int8 = _row(comp.table, "tiny.int8")
    assert int8["accuracy_test"].startswith("Fisher")
    from scipy.stats import fisher_exact
    assert int8["accuracy_p"] == pytest.approx(fisher_exact([[40, 0], [42, 8]]).pvalue)
    assert int8["delta_accuracy_low_pp"] < -16 < int8["delta_accuracy_high_pp"]


def test_gate_exit_codes(runs, tmp_path):
    out = tmp_path / "cmp"
    code, stdout, err = run_cli("compare", runs["base"], runs["slow"], "--fail-if", "p50>+5%",
                                "--out", out)
    assert code == 1, err
    fails = [line for line in stdout.splitlines() if line.startswith("FAIL")]
    assert len(fails) == 1 and "tiny.int8" in fails[0] and "p50>+5%" in fails[0]
    # beyond the change: passes; not significant (identical): passes whatever the threshold
    assert run_cli("compare", runs["base"], runs["slow"], "--fail-if", "p50>+20%",
                   "--out", out)[0] == 0
    assert run_cli("compare", runs["base"], runs["same"], "--fail-if", "p50>+0%",
                   "--fail-if", "accuracy<-0pp", "--out", out)[0] == 0
    code, stdout, _ = run_cli("compare", runs["base"], runs["worse"], "--fail-if",
                              "accuracy<-1pp", "--out", out)
    assert code == 1 and "tiny.int8" in stdout and "-20.0pp" in stdout
    # energy is not in these files: said, not failed
    code, stdout, _ = run_cli("compare", runs["base"], runs["slow"], "--fail-if", "energy>+10%",
                              "--out", out)
    assert code == 0 and "energy not measured in both runs" in stdout
    for name in ("compare.md", "compare.html", "compare.csv", "compare.png"):
        assert (out / name).is_file(), name
    csv = pd.read_csv(out / "compare.csv")
    assert len(csv) == 2 and {"p50_ratio_low", "accuracy_p"} <= set(csv.columns)
    assert "data:image/png;base64," in (out / "compare.html").read_text()


@pytest.mark.parametrize("rule,message", [
    ("latency>+5%", "unknown metric 'latency'"),
    ("p50>5", "expected METRIC>THRESHOLD"),
    ("accuracy<-1%", "accuracy takes a threshold in pp"),
    ("p50=+5%", "expected METRIC>THRESHOLD"),
])
def test_gate_bad_rules_exit_2_with_one_line(runs, tmp_path, rule, message):
    code, out, err = run_cli("compare", runs["base"], runs["slow"], "--fail-if", rule,
                             "--out", tmp_path / "c")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()  # refused before any work


def test_runs_with_nothing_in_common_exit_2(runs, tmp_path):
    other = write_run(tmp_path / "other" / "pi5", "r9",
                      {"tiny.int8": {"p50": 2.0, "correct": all_correct()}})
    code, out, err = run_cli("compare", runs["base"], other, "--out", tmp_path / "c")
    assert code == 2 and "no rows in common" in err and len(err.strip().splitlines()) == 1
    # relaxing the match to the same architecture and recipe across boards pairs them
    code, out, err = run_cli("compare", runs["base"], other, "--match",
                             "architecture,recipe,compute_unit,threads", "--out", tmp_path / "c")
    assert code == 0, err
    assert "local → pi5" in out
    code, _, err = run_cli("compare", runs["base"], tmp_path / "nope", "--db", "none")
    assert code == 2 and "no such folder" in err
    code, _, err = run_cli("compare", runs["base"], runs["slow"], "--match", "colour")
    assert code == 2 and "unknown field" in err


def test_energy_and_memory_when_recorded(runs):
    a, b = load_results([runs["base"]]), load_results([runs["slow"]])
    # energy_mj (results schema 4, --power): a run that has it is compared on it
    a.rows["energy_mj"] = [10.0, 10.0, 10.2, 9.9][:len(a.rows)]
    b.rows["energy_mj"] = [10.1, 9.9, 11.5, 11.6][:len(b.rows)]
    comp = compare_runs(a, b)
    int8, fp32 = _row(comp.table, "tiny.int8"), _row(comp.table, "tiny.fp32")
    assert int8["energy_ratio"] == pytest.approx(11.55 / 10.05)
    assert int8["energy_ratio_low"] > 1.0 and int8["energy_verdict"] == "more"
    assert fp32["energy_verdict"] == "no measurable difference"
    from edgebench.host.compare import gate
    failures, notes = gate.check(comp.table, [gate.parse_rule("energy>+10%")])
    assert len(failures) == 1 and "tiny.int8" in failures[0] and not notes
    assert int8["memory_ratio"] == 1.0 and int8["memory_verdict"] == "no measurable difference"


def with_power(rs, watts: dict, seed: int, window_s: float = 2.0):
    """`rs` with FIXTURE power readings (10 Hz, board rail, 3 % noise around `watts[model]`) in
    each row's timed window, and each row's energy_mj computed from them as the agent does
    (mean power x window / inferences)."""
    rows, lines = rs.rows.copy(), []
    t = np.arange(0.0, window_s, 0.1)
    for i, row in rows.iterrows():
        rng = np.random.default_rng([seed, int(row["round"]), len(row["model"])])
        w = watts[row["model"]] * (1 + rng.normal(0, 0.03, len(t)))
        rows.loc[i, ["energy_mj", "power_window_s", "power_source"]] = (
            w.mean() * window_s / row["count"] * 1e3, window_s, "fixture")
        lines += [dict({k: row[k] for k in ("device", "run_id", "model", "sha256", "threads",
                                            "xnnpack", "runtime", "compute_unit", "round")},
                       power_source="fixture", phase="timed", t_s=a, rail="board", watts=b)
                  for a, b in zip(t, w)]
    return dataclasses.replace(rs, rows=rows, power=pd.DataFrame(lines))


def test_one_round_of_energy_gets_its_interval_from_the_power_readings(tmp_path):
    """With one round there is nothing to resample over rounds; the power readings of the timed
    window are (the report's block bootstrap), so a 10 % rise in power is found with one round."""
    models = {"tiny.fp32": {"p50": 8.0, "correct": all_correct()},
              "tiny.int8": {"p50": 2.0, "correct": all_correct()}}
    a = load_results([write_run(tmp_path / "a" / "local", "r1", models, rounds=1, seed=1)])
    b = load_results([write_run(tmp_path / "b" / "local", "r2", models, rounds=1, seed=1)])
    # fp32 draws the same readings in both runs (seed 7); int8 draws 10 % more power in B
    a = with_power(a, {"tiny.fp32": 5.0, "tiny.int8": 5.0}, seed=7)
    b_fp32 = with_power(b, {"tiny.fp32": 5.0, "tiny.int8": 5.5}, seed=7)
    comp = compare_runs(a, b_fp32)
    int8, fp32 = _row(comp.table, "tiny.int8"), _row(comp.table, "tiny.fp32")
    assert int8["energy_ratio"] == pytest.approx(1.1, abs=0.02)
    assert 1.0 < int8["energy_ratio_low"] < int8["energy_ratio"] < int8["energy_ratio_high"] < 1.2
    assert int8["energy_verdict"] == "more"
    assert int8["energy_interval_from"] == "power readings (block bootstrap)"
    assert fp32["energy_ratio"] == pytest.approx(1.0)
    assert fp32["energy_ratio_low"] < 1.0 < fp32["energy_ratio_high"]
    assert fp32["energy_verdict"] == "no measurable difference"
    from edgebench.host.compare import gate
    failures, _ = gate.check(comp.table, [gate.parse_rule("energy>+5%")])
    assert len(failures) == 1 and "tiny.int8" in failures[0]
    # without the readings, one round has no interval, as before
    plain = compare_runs(dataclasses.replace(a, power=None), b_fp32)
    assert _row(plain.table, "tiny.int8")["energy_verdict"] == "one round: no interval"
    assert _row(plain.table, "tiny.int8")["energy_interval_from"] == ""


def test_match_and_gate_help(capsys):
    assert run_cli("compare", "a", "b", "--match", "help")[0] == 0
    code, out, _ = run_cli("compare", "a", "b", "--fail-if", "help")
    assert code == 0 and "p50" in out and "accuracy" in out and "energy" in out


@pytest.mark.slow
def test_two_real_agent_runs_compared_end_to_end(tmp_path):
    """Two real deploys of the same bundle on this machine, the second with XNNPACK off (the
    reference kernels: slower on purpose): the slowdown is found, accuracy is unchanged."""
    from agent_helpers import FAST
    from tflite_factory import make_bundle

    bundle = make_bundle(tmp_path / "bundle", recipes=("fp32", "int8"))
    for name, extra in (("before", ()), ("after", ("--xnnpack", "off"))):
        code, out, err = run_cli("deploy", "--bundle", bundle, "--results", tmp_path / name,
                                 "--remote-dir", tmp_path / f"dev-{name}", "--no-progress",
                                 "--rounds", "2", "--db", tmp_path / "db.sqlite",
                                 *FAST.to_argv(), *extra)
        assert code == 0, out + err
    from agent_helpers import run_folder
    runs = [run_folder(tmp_path / name) for name in ("before", "after")]
    code, out, err = run_cli("compare", *runs, "--fail-if", "p50>+5%",
                             "--fail-if", "accuracy<-1pp", "--out", tmp_path / "cmp")
    table = pd.read_csv(tmp_path / "cmp" / "compare.csv")
    assert sorted(table["recipe"]) == ["fp32", "int8"]
    assert (table["accuracy_p"] == 1.0).all() and (table["images_changed"] == 0).all()
    assert (table["xnnpack_b"] == False).all()  # noqa: E712 - pandas reads the column as bool
    slower = table[table["p50_verdict"] == "slower"]
    assert len(slower) >= 1 and (slower["p50_ratio_low"] > 1).all(), table.to_string()
    assert code == 1 and "FAIL p50>+5%" in out
    # the same two runs from the database they were recorded in: one bundle, two runs
    assert runs[0].name != runs[1].name
    code, _, err = run_cli("compare", runs[0].name, runs[1].name,
                           "--db", tmp_path / "db.sqlite", "--out", tmp_path / "cmp-db")
    assert code == 0, err
    from_db = pd.read_csv(tmp_path / "cmp-db" / "compare.csv")
    cols = ["p50_ratio", "p50_ratio_low", "p50_ratio_high", "accuracy_p"]
    pd.testing.assert_frame_equal(from_db.sort_values("recipe")[cols].reset_index(drop=True),
                                  table.sort_values("recipe")[cols].reset_index(drop=True))
