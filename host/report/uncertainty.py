"""Rounds folded into one row per configuration, and every figure of the summary given its
uncertainty: intervals for accuracy, sensitivity, specificity, AUC and p50, McNemar's test and
the changed images against fp32 on the CPU, intervals of every speedup (host/report/stats.py has
the methods). The inputs are the agent's raw files: latency_samples.csv and predictions.csv."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from edgebench.device import schema
from edgebench.host.report import stats

# One configuration (a summary row) = these; a round is one repetition of it. Its latency samples
# (every round) and its predictions are found by the same keys without the model name.
CONFIG = ["device", "run_id", "model", *schema.CONFIG_KEY]
LATENCY_KEY = ["device", "run_id", *schema.CONFIG_KEY]
OUTPUT_KEY = ["device", "run_id", *schema.OUTPUT_KEY]
_MEDIAN_OF_ROUNDS = ("p50_ms", "p90_ms", "p95_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
                     "max_ms", "load_ms", "first_inference_ms", "peak_rss_mb",
                     # schema 4: cold/warm load (#23) and the energy figures (energy.py)
                     "accelerator_init_ms", "warm_load_ms", "power_hz", "power_window_s",
                     "idle_power_w", "avg_power_w", "energy_mj", "energy_above_idle_mj")

UNCERTAINTY_COLUMNS = (
    "accuracy_ci_low", "accuracy_ci_high", "sensitivity_ci_low", "sensitivity_ci_high",
    "specificity_ci_low", "specificity_ci_high", "auc_ci_low", "auc_ci_high",
    "images_changed", "mcnemar_b", "mcnemar_c", "mcnemar_p", "accuracy_differs",
    "delta_accuracy_ci_low_pp", "delta_accuracy_ci_high_pp",
    "rounds", "p50_round_spread", "p50_ci_low", "p50_ci_high",
    "speedup_vs_fp32_ci_low", "speedup_vs_fp32_ci_high", "speedup_vs_fp32_verdict",
    "speedup_vs_cpu_ci_low", "speedup_vs_cpu_ci_high", "speedup_vs_cpu_verdict",
)


def _key(row, cols) -> tuple:
    out = []
    for c in cols:
        v = row[c]
        if c == "threads":
            v = float(v) if pd.notna(v) else math.nan
        elif c == "xnnpack":
            v = "" if pd.isna(v) else str(bool(v))
        else:
            v = "" if pd.isna(v) else str(v)
        out.append(v)
    return tuple(out)


def fold_rounds(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per configuration: the first successful round's row, with the timing columns the
    median over its successful rounds, `rounds` (how many succeeded) and `p50_round_spread`
    ((max − min) / median of the rounds' p50s). A configuration with no successful round keeps
    its last row (the error)."""
    if rows.empty:
        return rows.assign(rounds=pd.Series(dtype=float), p50_round_spread=pd.Series(dtype=float))
    keys = rows.apply(lambda r: _key(r, CONFIG), axis=1)
    out = []
    for _, group in rows.groupby(keys, sort=False):
        ok = group[group["status"] == "ok"].sort_values("round", kind="stable")
        if ok.empty:
            row = group.iloc[-1].copy()
            row["rounds"], row["p50_round_spread"] = 0, math.nan
            out.append(row)
            continue
        row = ok.iloc[0].copy()
        for col in _MEDIAN_OF_ROUNDS:
            if col in ok:  # a frame built by hand may lack the schema-4 columns
                row[col] = ok[col].median()
        p50s = ok["p50_ms"].dropna()
        row["count"] = ok["count"].sum()  # timed runs over all rounds
        row["rounds"] = len(ok)
        row["p50_round_spread"] = ((p50s.max() - p50s.min()) / p50s.median()
                                   if len(p50s) > 1 and p50s.median() else math.nan)
        if len(ok) < len(group):
            note = f"{len(group) - len(ok)} of {len(group)} rounds failed"
            row["error"] = note if pd.isna(row["error"]) else f"{row['error']}; {note}"
        out.append(row)
    return pd.DataFrame(out).reset_index(drop=True)


class RawData:
    """Per-configuration sample series and per-output predictions, looked up by key; the block
    bootstrap of each series is computed once and shared by its p50 and its speedups."""

    def __init__(self, samples: pd.DataFrame | None, predictions: pd.DataFrame | None):
        self._series: dict[tuple, list] = {}
        if samples is not None and not samples.empty:
            keys = samples.apply(lambda r: _key(r, LATENCY_KEY), axis=1)
            for key, group in samples.groupby(keys, sort=False):
                self._series[key] = [g["latency_ms"].to_numpy(float) for _, g in
                                     group.groupby("round", sort=True)]
        self._preds: dict[tuple, pd.DataFrame] = {}
        if predictions is not None and "testset" in predictions:
            predictions = predictions[predictions["testset"] == "clean"]
        if predictions is not None and not predictions.empty:
            keys = predictions.apply(lambda r: _key(r, OUTPUT_KEY), axis=1)
            for key, group in predictions.groupby(keys, sort=False):
                self._preds[key] = group.drop_duplicates("image").set_index("image").sort_index()
        self._medians: dict[tuple, np.ndarray] = {}

    def medians(self, key: tuple) -> np.ndarray:
        if key not in self._medians:
            seed = zlib.crc32(repr(key).encode())  # independent resamples per configuration
            self._medians[key] = stats.round_medians(self._series.get(key, []), seed)
        return self._medians[key]

    def predictions(self, key: tuple) -> pd.DataFrame | None:
        return self._preds.get(key)


def _counts(row) -> tuple:
    vals = [row.get(c) for c in ("tp", "tn", "fp", "fn")]
    if any(pd.isna(v) for v in vals):
        return None
    return tuple(int(v) for v in vals)


def add_uncertainty(df: pd.DataFrame, raw: RawData) -> pd.DataFrame:
    """Fills UNCERTAINTY_COLUMNS on the merged summary frame (still in load_results' naming).
    The baseline of each row is identified by the _base_* / _cpu_* columns build_summary adds."""
    df = df.copy()
    for col in UNCERTAINTY_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan
    df["speedup_vs_fp32_verdict"] = ""
    df["speedup_vs_cpu_verdict"] = ""
    df["accuracy_differs"] = pd.Series([pd.NA] * len(df), dtype="boolean")
    for i, row in df.iterrows():
        if row["status"] != "ok":
            continue
        counts = _counts(row)
        if counts:
            tp, tn, fp, fn = counts
            df.loc[i, ["accuracy_ci_low", "accuracy_ci_high"]] = stats.wilson(tp + tn,
                                                                              tp + tn + fp + fn)
            df.loc[i, ["sensitivity_ci_low", "sensitivity_ci_high"]] = stats.wilson(tp, tp + fn)
            df.loc[i, ["specificity_ci_low", "specificity_ci_high"]] = stats.wilson(tn, tn + fp)
        mine = raw.predictions(_key(row, OUTPUT_KEY))
        if mine is not None and mine["label"].nunique() > 1:
            positive = mine["positive_class"].iloc[0]  # the class `score` is the probability of
            _, lo, hi = stats.delong_auc(mine["label"] == positive, mine["score"])
            df.loc[i, ["auc_ci_low", "auc_ci_high"]] = (lo, hi)
        _paired_accuracy(df, i, row, mine, raw)
        _latency(df, i, row, raw)
    return df


def _base_key(row, prefix: str, cols) -> tuple | None:
    """The key of the row this one is compared with (fp32 on the CPU, or the same recipe on the
    CPU), from the columns build_summary merged in under `prefix`."""
    if pd.isna(row.get(prefix + "sha256")):
        return None
    base = dict(row)
    for c in schema.OUTPUT_KEY:
        base[c] = row[prefix + c]
    return _key(base, cols)


def _paired_accuracy(df, i, row, mine, raw) -> None:
    key = _base_key(row, "_base_", OUTPUT_KEY)
    if key is None or mine is None or key == _key(row, OUTPUT_KEY):
        return  # no fp32 to compare with, no predictions, or this row is that fp32
    base = raw.predictions(key)
    if base is None:
        return
    both = base.join(mine, how="inner", lsuffix="_base")
    if both.empty or (both["label"] != both["label_base"]).any():
        return  # not the same test images
    base_ok = (both["predicted_base"] == both["label"]).to_numpy()
    mine_ok = (both["predicted"] == both["label"]).to_numpy()
    test = stats.mcnemar(base_ok, mine_ok)
    lo, hi = stats.paired_difference_ci(base_ok, mine_ok)
    df.loc[i, ["images_changed", "mcnemar_b", "mcnemar_c", "mcnemar_p"]] = (
        int((both["predicted"] != both["predicted_base"]).sum()), test["b"], test["c"], test["p"])
    df.loc[i, ["delta_accuracy_ci_low_pp", "delta_accuracy_ci_high_pp"]] = (100 * lo, 100 * hi)
    df.loc[i, "accuracy_differs"] = test["p"] < stats.ALPHA


def mcnemar_between(a, b, raw: RawData) -> dict:
    """McNemar's exact test between two summary rows' predictions on the same test images
    (mcnemar_b = right under `a` only, mcnemar_c = under `b` only); Nones when either failed,
    lacks predictions or measured other images."""
    out = {"mcnemar_b": None, "mcnemar_c": None, "mcnemar_p": None}
    if a["status"] != "ok" or b["status"] != "ok":
        return out
    pa, pb = raw.predictions(_key(a, OUTPUT_KEY)), raw.predictions(_key(b, OUTPUT_KEY))
    if pa is None or pb is None:
        return out
    both = pa.join(pb, how="inner", lsuffix="_a")
    if both.empty or (both["label"] != both["label_a"]).any():
        return out  # not the same test images
    test = stats.mcnemar((both["predicted_a"] == both["label"]).to_numpy(),
                         (both["predicted"] == both["label"]).to_numpy())
    return {"mcnemar_b": test["b"], "mcnemar_c": test["c"], "mcnemar_p": test["p"]}


def _latency(df, i, row, raw) -> None:
    mine = raw.medians(_key(row, LATENCY_KEY))
    if not len(mine):
        return
    df.loc[i, ["p50_ci_low", "p50_ci_high"]] = stats.p50_ci(mine)
    for prefix, name in (("_base_", "speedup_vs_fp32"), ("_cpu_", "speedup_vs_cpu")):
        key = _base_key(row, prefix, LATENCY_KEY)
        if key is None or key == _key(row, LATENCY_KEY) or pd.isna(row[name]):
            continue
        lo, hi = stats.speedup_ci(raw.medians(key), mine)
        df.loc[i, [f"{name}_ci_low", f"{name}_ci_high"]] = (lo, hi)
        df.loc[i, f"{name}_verdict"] = stats.speedup_verdict(lo, hi)
