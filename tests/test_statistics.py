"""Comparisons you can trust: the statistics of host/report/stats.py checked against numbers
known from first principles, a constructed predictions.csv whose McNemar p-value and intervals
are known and must appear as such in summary.csv and report.md, and the real agent with
--rounds writing predictions.csv and per-round rows that the report turns into intervals."""
from __future__ import annotations

import csv
import math
import subprocess
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from agent_helpers import FAST, bundle_command, read_rows
from edgebench.device.options import AgentOptions
from edgebench.device.schema import (PREDICTION_COLUMNS, RESULT_COLUMNS, RESULTS_SCHEMA_VERSION,
                                     SAMPLE_COLUMNS)
from edgebench.host.report import build_report, stats
from test_report import result_row

Z = st.norm.ppf(0.975)


def wilson_by_hand(k: int, n: int) -> tuple[float, float]:
    centre = (k + Z * Z / 2) / (n + Z * Z)
    half = Z / (n + Z * Z) * math.sqrt(k * (n - k) / n + Z * Z / 4)
    return centre - half, centre + half


def test_mcnemar_exact_from_first_principles():
    base = np.array([True] * 10 + [True] * 50 + [False] * 12)
    other = np.array([False] * 10 + [True] * 50 + [False] * 12)
    assert stats.mcnemar(base, other) == {"b": 10, "c": 0, "p": 2 * 0.5 ** 10}
    # 3 of 8 discordant the other way: p = 2 * P(X <= 3), X ~ Bin(8, 1/2) = 2 * 93/256
    mixed = stats.mcnemar([True] * 3 + [False] * 5, [False] * 3 + [True] * 5)
    assert (mixed["b"], mixed["c"]) == (3, 5) and mixed["p"] == pytest.approx(2 * 93 / 256)
    assert stats.mcnemar([True, False], [True, False])["p"] == 1.0  # nothing discordant


def test_wilson_and_delong_from_first_principles():
    for k, n in ((9, 10), (0, 20), (72, 72), (61, 72)):
        assert stats.wilson(k, n) == pytest.approx(wilson_by_hand(k, n), abs=1e-12)
    assert all(math.isnan(v) for v in stats.wilson(0, 0))
    # Positives 0.9, 0.4; negatives 0.6, 0.1: placements V10 = (1, 1/2), V01 = (1/2, 1),
    # AUC = 3/4, DeLong variance = var(V10)/2 + var(V01)/2 = 1/16 + 1/16.
    auc, lo, hi = stats.delong_auc([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert auc == 0.75
    assert lo == pytest.approx(0.75 - Z * math.sqrt(0.125)) and hi == 1.0
    assert stats.delong_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == (1.0, 1.0, 1.0)
    assert all(math.isnan(v) for v in stats.delong_auc([1, 1], [0.3, 0.4]))


def test_paired_difference_interval():
    base = np.array([1] * 10 + [1] * 50 + [0] * 12, dtype=bool)
    other = np.array([0] * 10 + [1] * 50 + [0] * 12, dtype=bool)
    lo, hi = stats.paired_difference_ci(base, other)
    assert lo < -10 / 72 < hi < 0  # the observed −13.9 pp inside, and all of it below zero
    assert stats.paired_difference_ci(base, base) == (0.0, 0.0)


def test_block_bootstrap_widens_for_correlated_latencies():
    """An AR(1) latency series (ρ = 0.95, like a slow frequency drift): the moving-block
    interval of its median must be wider than an i.i.d. bootstrap's, which ignores the
    correlation; and it must contain the sample median."""
    rng = np.random.default_rng(3)
    x = np.empty(2000)
    x[0] = 0.0
    for i in range(1, len(x)):
        x[i] = 0.95 * x[i - 1] + rng.normal()
    series = 10.0 + 0.1 * x
    lo, hi = stats.p50_ci(stats.round_medians([series], seed=1))
    assert lo < np.median(series) < hi
    iid = st.bootstrap((series,), np.median, n_resamples=1000, method="percentile",
                       random_state=np.random.default_rng(1)).confidence_interval
    assert (hi - lo) > 2 * (iid.high - iid.low)


def test_speedup_interval_and_verdict():
    rng = np.random.default_rng(5)
    a = [rng.normal(10.0, 0.2, 800) for _ in range(3)]
    fast = [r / 2.0 for r in a]
    same = [rng.normal(10.0, 0.2, 800) for _ in range(3)]
    lo, hi = stats.speedup_ci(stats.round_medians(a, 1), stats.round_medians(fast, 2))
    assert lo < 2.0 < hi and hi - lo < 0.1 and stats.speedup_verdict(lo, hi) == "faster"
    lo, hi = stats.speedup_ci(stats.round_medians(a, 1), stats.round_medians(same, 3))
    assert lo < 1.0 < hi and stats.speedup_verdict(lo, hi) == "no measurable difference"
    assert stats.speedup_verdict(0.4, 0.6) == "slower"


def _write(path: Path, columns, rows) -> None:
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns))
        w.writeheader()
        w.writerows(rows)


def test_constructed_predictions_give_known_numbers_in_the_report(tmp_path):
    """72 images; int8 gets 10 images wrong that fp32 got right and none the other way:
    McNemar's exact two-sided p = 2 × 0.5^10; accuracy 62/72 against 72... the Wilson interval of
    the counts as computed by hand; the dagger in the paper's table; the sentence in the table."""
    n, device = 72, tmp_path / "results" / "run-1" / "pi"
    device.mkdir(parents=True)
    labels = np.array([1] * 36 + [0] * 36)
    fp32_pred = labels.copy()
    fp32_pred[:4] = 1 - fp32_pred[:4]            # fp32: 68 of 72 right
    int8_pred = fp32_pred.copy()
    int8_pred[10:20] = 1 - int8_pred[10:20]      # 10 more wrong, all of them right under fp32
    rows, preds = [], []
    for recipe, pred in (("fp32", fp32_pred), ("int8", int8_pred)):
        tp = int(((pred == 1) & (labels == 1)).sum())
        tn = int(((pred == 0) & (labels == 0)).sum())
        fp = int(((pred == 1) & (labels == 0)).sum())
        fn = int(((pred == 0) & (labels == 1)).sum())
        row = result_row("resnet18", recipe, 1, 10.0 if recipe == "fp32" else 4.0,
                         (tp + tn) / n, n_test=n, tp=tp, tn=tn, fp=fp, fn=fn, compute_unit="cpu",
                         round=1, runtime="litert", xnnpack="on")
        rows.append(row)
        for i in range(n):
            preds.append({"schema_version": RESULTS_SCHEMA_VERSION, "run_id": "run-1",
                          "model": row["model"], "sha256": row["sha256"], "runtime": "litert",
                          "xnnpack": "on", "compute_unit": "cpu", "testset": "clean",
                          "positive_class": 1,
                          "image": i, "label": labels[i], "predicted": pred[i],
                          "score": 0.9 if pred[i] == 1 else 0.1})
    _write(device / "results.csv", RESULT_COLUMNS, rows)
    _write(device / "predictions.csv", PREDICTION_COLUMNS, preds)
    paths = build_report([tmp_path / "results"], tmp_path / "report")
    summary = pd.read_csv(paths.summary_csv).set_index("recipe")
    int8 = summary.loc["int8"]
    assert int8["mcnemar_p"] == pytest.approx(2 * 0.5 ** 10, rel=1e-3)
    assert (int8["images_changed"], int8["mcnemar_b"], int8["mcnemar_c"]) == (10, 10, 0)
    assert bool(int8["accuracy_differs"]) is True
    lo, hi = wilson_by_hand(58, 72)
    assert (int8["accuracy_ci_low"], int8["accuracy_ci_high"]) == (
        pytest.approx(lo, abs=1e-4), pytest.approx(hi, abs=1e-4))
    assert int8["delta_accuracy_ci_low_pp"] < -10 / 72 * 100 < int8["delta_accuracy_ci_high_pp"]
    assert int8["delta_accuracy_ci_high_pp"] < 0
    md = paths.markdown.read_text()
    assert "-13.9 (10 of 72 images changed, p = 0.002: differs)" in md
    assert "| resnet18 | 94.4 | 80.6† |" in md   # the paper's table
    assert "80.6 (70.0–88.0)" in md               # Wilson, 58 of 72, in the table


def test_agent_rounds_and_predictions_then_intervals_in_the_report(tmp_path):
    """The real agent with --rounds 2: models interleaved round by round, one row per round,
    predictions written once per configuration and kept across a re-run; the report folds the
    rounds and gives every recipe row an interval and a p-value."""
    from tflite_factory import RECIPES, make_bundle

    bundle = make_bundle(tmp_path / "bundle")
    out = tmp_path / "results" / "test-run" / "local"
    cmd = bundle_command(bundle, out, replace(FAST, rounds=2))
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    header, rows = read_rows(out / "results.csv")
    assert header == list(RESULT_COLUMNS)
    order = [(r["round"], r["recipe"]) for r in rows]
    first = [recipe for _, recipe in order[:len(RECIPES)]]
    assert sorted(first) == sorted(RECIPES)
    assert order == [("1", r) for r in first] + [("2", r) for r in first]  # A B C A B C
    _, samples = read_rows(out / "latency_samples.csv")
    assert {s["round"] for s in samples} == {"1", "2"}
    pheader, preds = read_rows(out / "predictions.csv")
    assert pheader == list(PREDICTION_COLUMNS) and len(preds) == 48 * len(RECIPES)
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and len(read_rows(out / "predictions.csv")[1]) == len(preds)
    assert len(read_rows(out / "results.csv")[1]) == len(rows)

    paths = build_report([tmp_path / "results"], tmp_path / "report")
    summary = pd.read_csv(paths.summary_csv)
    assert len(summary) == len(RECIPES) and (summary["rounds"] == 2).all()
    assert summary[["accuracy_ci_low", "p50_ci_low", "p50_ci_high", "auc_ci_low"]].notna().all().all()
    assert (summary["p50_ci_low"] <= summary["p50_ms"]).all()
    assert (summary["p50_ms"] <= summary["p50_ci_high"]).all()
    others = summary[summary["recipe"] != "fp32"]
    assert others[["mcnemar_p", "images_changed", "speedup_vs_fp32_ci_low",
                   "speedup_vs_fp32_ci_high"]].notna().all().all()
    assert set(others["speedup_vs_fp32_verdict"]) <= {"faster", "slower",
                                                      "no measurable difference"}
    md = paths.markdown.read_text()
    assert "rounds (p50 spread)" in md and "images changed, p = " in md


def test_bad_rounds_is_a_one_line_error(tmp_path):
    from tflite_factory import make_bundle

    bundle = make_bundle(tmp_path / "bundle", recipes=("fp32",))
    proc = subprocess.run(bundle_command(bundle, tmp_path / "o", AgentOptions(rounds=0)),
                          capture_output=True, text=True)
    assert proc.returncode == 2 and proc.stderr.strip().count("\n") == 0
    assert "--rounds takes a positive integer" in proc.stderr
