"""Robustness in the report: accuracy of every recipe on the corrupted test sets (MedMNIST-C),
measured on the device (robustness.csv), against severity per corruption, and the robustness
gap — fp32's mean accuracy over the corrupted sets minus the recipe's — beside the clean gap.
A recipe is flagged when its robustness gap exceeds its clean gap by more than the noise: the
per-image difference of the two gaps is bootstrapped over images (the same images are in every
set, so the statistic is a mean of per-image terms and scipy's bootstrap gives its interval); a
flag needs the whole 95 % interval above zero."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats as _st

from edgebench.device.units import BASELINE_UNIT
from edgebench.host.report.formats import fmt_pct, fmt_pp
from edgebench.host.report.stats import CONFIDENCE, SEED

GROUP = ["device", "run_id", "architecture", "compute_unit", "runtime", "xnnpack"]


def robustness_summary(rob: pd.DataFrame | None, summary: pd.DataFrame,
                       predictions: pd.DataFrame | None) -> pd.DataFrame:
    """One row per device × model × recipe × compute unit: clean accuracy, mean corrupted
    accuracy, both gaps against fp32 and the interval of their difference."""
    if rob is None or rob.empty:
        return pd.DataFrame()
    ok = rob[rob["status"] == "ok"]
    mean = ok.groupby(GROUP + ["recipe", "sha256"], dropna=False, sort=False).agg(
        mean_corrupted=("accuracy", "mean"), sets=("accuracy", "size"),
        errors=("status", "size")).reset_index()
    errors = rob[rob["status"] != "ok"].groupby(["device", "sha256"], dropna=False).size()
    clean = summary.rename(columns={"model": "architecture"})
    clean = clean[clean["status"] == "ok"].drop_duplicates(
        ["device", "run_id", "architecture", "recipe", "compute_unit"])
    mean = mean.merge(clean[["device", "run_id", "architecture", "recipe", "compute_unit",
                             "accuracy", "n_test"]],
                      on=["device", "run_id", "architecture", "recipe", "compute_unit"],
                      how="left")
    base = mean[mean["recipe"] == "fp32"][GROUP + ["mean_corrupted", "accuracy", "sha256"]]
    base = base.rename(columns={"mean_corrupted": "_fp32_corrupted", "accuracy": "_fp32_clean",
                                "sha256": "_fp32_sha"})
    mean = mean.merge(base, on=GROUP, how="left")
    mean["clean_gap_pp"] = 100 * (mean["_fp32_clean"] - mean["accuracy"])
    mean["robustness_gap_pp"] = 100 * (mean["_fp32_corrupted"] - mean["mean_corrupted"])
    mean["unusable_sets"] = [int(errors.get((d, s), 0)) for d, s in
                             zip(mean["device"], mean["sha256"])]
    lows, highs, notes = [], [], []
    for _, row in mean.iterrows():
        lo, hi, note = _gap_difference(row, predictions)
        lows.append(lo)
        highs.append(hi)
        notes.append(note)
    mean["gap_difference_ci_low_pp"], mean["gap_difference_ci_high_pp"] = lows, highs
    mean["loses_more_under_corruption"] = [lo > 0 if not math.isnan(lo) else False
                                           for lo in lows]
    mean["note"] = notes
    return mean.drop(columns=["errors"])


def _correct(preds: pd.DataFrame, sha: str, row) -> dict:
    """testset -> per-image correctness (indexed by image) of one model's predictions."""
    mine = preds[(preds["device"] == row["device"]) & (preds["run_id"] == row["run_id"])
                 & (preds["sha256"] == sha) & (preds["compute_unit"] == row["compute_unit"])]
    return {t: (g.set_index("image")["predicted"] == g.set_index("image")["label"])
            for t, g in mine.groupby("testset")}


def _gap_difference(row, preds) -> tuple:
    if row["recipe"] == "fp32" or pd.isna(row.get("_fp32_sha")):
        return math.nan, math.nan, ""
    if preds is None or preds.empty:
        return math.nan, math.nan, "no predictions.csv: no paired test"
    base, mine = _correct(preds, row["_fp32_sha"], row), _correct(preds, row["sha256"], row)
    sets = sorted(t for t in set(base) & set(mine) if t != "clean")
    if "clean" not in base or "clean" not in mine or not sets:
        return math.nan, math.nan, "predictions incomplete: no paired test"
    images = base[sets[0]].index
    per_set = np.stack([(base[t].reindex(images).to_numpy(float)
                         - mine[t].reindex(images).to_numpy(float)) for t in sets])
    clean = (base["clean"].reindex(images).to_numpy(float)
             - mine["clean"].reindex(images).to_numpy(float))
    d = per_set.mean(axis=0) - clean  # per image: robustness-gap term minus clean-gap term
    changed = int(sum((base[t] != mine[t]).sum() for t in sets))
    note = f"{len(images)} images × {len(sets)} sets, {changed} answers changed"
    if np.allclose(d, d[0]):
        return float(100 * d[0]), float(100 * d[0]), note
    res = _st.bootstrap((d,), np.mean, confidence_level=CONFIDENCE, method="percentile",
                        n_resamples=9999, random_state=np.random.default_rng(SEED))
    return (float(100 * res.confidence_interval.low), float(100 * res.confidence_interval.high),
            note)


def gap_table(rs: pd.DataFrame, device: str) -> pd.DataFrame:
    d = rs[rs["device"] == device]
    if d.empty:
        return pd.DataFrame()

    def interval(r):
        if math.isnan(r["gap_difference_ci_low_pp"]):
            return r["note"]
        return (f"{fmt_pp(r['gap_difference_ci_low_pp'])} to "
                f"{fmt_pp(r['gap_difference_ci_high_pp'])} ({r['note']})")

    return pd.DataFrame({
        "model": d["architecture"], "recipe": d["recipe"], "unit": d["compute_unit"],
        "clean accuracy (%)": d["accuracy"].map(fmt_pct),
        "mean corrupted accuracy (%)": d["mean_corrupted"].map(fmt_pct),
        "sets": d["sets"].astype(int).astype(str)
                + d["unusable_sets"].map(lambda k: f" (+{k} unusable)" if k else ""),
        "clean gap vs fp32 (pp)": d["clean_gap_pp"].map(fmt_pp),
        "robustness gap vs fp32 (pp)": d["robustness_gap_pp"].map(fmt_pp),
        "robustness − clean gap, 95 % CI (pp)": d.apply(interval, axis=1),
        "loses more under corruption?": d["loses_more_under_corruption"].map(
            lambda v: "yes" if v else "no"),
    }).reset_index(drop=True)


def mean_corrupted_column(rs: pd.DataFrame, device_filter) -> dict:
    """model -> "fp32 81.2 · int8 80.9 · …" (the CPU's), for the paper's table."""
    if rs is None or rs.empty:
        return {}
    d = rs[device_filter(rs["device"]) & (rs["compute_unit"] == BASELINE_UNIT)]
    out = {}
    for model, g in d.groupby("architecture", sort=False):
        out[model] = " · ".join(f"{r} {fmt_pct(v)}" for r, v in
                                zip(g["recipe"], g["mean_corrupted"]))
    return out


def severity_plot(rob: pd.DataFrame, summary: pd.DataFrame, device: str, model: str, path):
    """Accuracy against severity (0 = the clean test set), one panel per corruption, one line
    per recipe (CPU rows; accelerator units dashed)."""
    from edgebench.host.report.plots import _colors, _figure

    d = rob[(rob["device"] == device) & (rob["architecture"] == model) & (rob["status"] == "ok")]
    if d.empty:
        return None
    corruptions = list(dict.fromkeys(d["corruption"]))
    recipes = list(dict.fromkeys(d["recipe"]))
    colors = _colors(recipes)
    cols = min(4, len(corruptions))
    rows = int(math.ceil(len(corruptions) / cols))
    fig = _figure(3.3 * cols + 1.6, 2.9 * rows + 0.6)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    clean = summary[(summary["device"] == device) & (summary["model"] == model)
                    & (summary["status"] == "ok")]
    for ax, corruption in zip(axes, corruptions):
        c = d[d["corruption"] == corruption]
        for (recipe, unit), g in c.groupby(["recipe", "compute_unit"], sort=False):
            g = g.sort_values("severity")
            base = clean[(clean["recipe"] == recipe) & (clean["compute_unit"] == unit)]
            xs = ([0] if len(base) else []) + list(g["severity"])
            ys = ([100 * base["accuracy"].iloc[0]] if len(base) else []) + \
                list(100 * g["accuracy"])
            ax.plot(xs, ys, marker="o", markersize=3.5, color=colors[recipe],
                    linestyle="-" if unit == BASELINE_UNIT else "--",
                    label=recipe if unit == BASELINE_UNIT else f"{recipe} ({unit})")
        ax.set_title(corruption.replace("_", " "), fontsize=9.5)
        ax.set_xticks(range(0, 6), ["clean", "1", "2", "3", "4", "5"], fontsize=8)
        ax.set_ylabel("accuracy (%)", fontsize=8.5)
        ax.grid(True, alpha=0.3)
    for ax in axes[len(corruptions):]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside right center", fontsize=8.5, title="recipe")
    fig.suptitle(f"{model} on {device}: accuracy under MedMNIST-C corruptions by severity",
                 fontsize=11)
    fig.savefig(path)
    return path
