"""Every matched pair of rows given its change with an interval: the p50 ratio (B ÷ A) from both
runs' raw latencies by the report's two-level block bootstrap (rounds, then blocks of samples),
Δ accuracy by McNemar's exact test when both measured the same test images (paired by image) or
Fisher's exact test and a Newcombe interval when they did not, and the ratios of energy and peak
memory over the rounds where the runs recorded them; energy's interval comes from both runs' power
readings (power_samples.csv: the report's block bootstrap, one round is enough) where they have
them. A change whose interval excludes "no change"
is significant; the verdict says which way."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats as _st

from edgebench.host.compare.pairs import DEFAULT_MATCH, match_rows
from edgebench.host.report import stats
from edgebench.host.report.energy import energy_draws
from edgebench.host.report.load import ResultSet
from edgebench.host.report.uncertainty import CONFIG, LATENCY_KEY, OUTPUT_KEY, RawData, _key

NO_CHANGE = "no measurable difference"
# Metrics measured once per round (not per inference): their change is the ratio of the medians
# over rounds, with a bootstrap over rounds when both runs have at least two. energy_mj is a
# results column since schema 4 (--power); empty where a run measured no power.
ROUND_METRICS = {"energy": "energy_mj", "memory": "peak_rss_mb"}
# Where an energy interval came from: the power readings when both runs have them, else rounds.
READINGS = "power readings (block bootstrap)"
_B = "\x00B:"  # run B's run ids are tagged so its resamples are seeded apart from A's


@dataclass
class Comparison:
    """One row per matched pair (COLUMNS), and notes on what was left out."""
    table: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    label_a: str = "A"
    label_b: str = "B"
    match: tuple = DEFAULT_MATCH


def ratio_verdict(low: float, high: float, up: str, down: str) -> str:
    if math.isnan(low) or math.isnan(high):
        return ""
    return up if low > 1.0 else down if high < 1.0 else NO_CHANGE


def _tag(rs: ResultSet) -> ResultSet:
    def tagged(df):
        if df is None:
            return None
        return df.assign(run_id=_B + df["run_id"].fillna("").astype(str))
    return ResultSet(rows=tagged(rs.rows), samples=tagged(rs.samples),
                     predictions=tagged(rs.predictions), power=tagged(rs.power), env=rs.env,
                     sources=rs.sources, notes=rs.notes)


def _latency(ra, rb, raw_a: RawData, raw_b: RawData) -> dict:
    out = {"p50_a_ms": ra["p50_ms"], "p50_b_ms": rb["p50_ms"],
           "p50_ratio": rb["p50_ms"] / ra["p50_ms"] if ra["p50_ms"] else math.nan,
           "p50_ratio_low": math.nan, "p50_ratio_high": math.nan, "p50_verdict": ""}
    med_a, med_b = raw_a.medians(_key(ra, LATENCY_KEY)), raw_b.medians(_key(rb, LATENCY_KEY))
    if len(med_a) and len(med_b):
        # speedup_ci gives p50(A) / p50(B); its percentile interval inverts exactly.
        lo, hi = stats.speedup_ci(med_a, med_b)
        out["p50_ratio_low"], out["p50_ratio_high"] = 1.0 / hi, 1.0 / lo
        out["p50_verdict"] = ratio_verdict(1.0 / hi, 1.0 / lo, "slower", "faster")
    return out


def newcombe(k_a: int, n_a: int, k_b: int, n_b: int) -> tuple[float, float]:
    """95 % interval of k_b/n_b − k_a/n_a for independent samples: Newcombe's hybrid score
    interval from the two Wilson intervals."""
    la, ha = stats.wilson(k_a, n_a)
    lb, hb = stats.wilson(k_b, n_b)
    pa, pb = k_a / n_a, k_b / n_b
    d = pb - pa
    return (d - math.sqrt((pb - lb) ** 2 + (ha - pa) ** 2),
            d + math.sqrt((hb - pb) ** 2 + (pa - la) ** 2))


def _correct_counts(row) -> tuple[int, int] | None:
    vals = [row.get(c) for c in ("tp", "tn", "fp", "fn")]
    if any(pd.isna(v) for v in vals):
        return None
    tp, tn, fp, fn = (int(v) for v in vals)
    return tp + tn, tp + tn + fp + fn


def _accuracy(ra, rb, raw_a: RawData, raw_b: RawData) -> dict:
    out = {"accuracy_a": ra["accuracy"], "accuracy_b": rb["accuracy"],
           "delta_accuracy_pp": 100.0 * (rb["accuracy"] - ra["accuracy"]),
           "delta_accuracy_low_pp": math.nan, "delta_accuracy_high_pp": math.nan,
           "accuracy_test": "", "images_changed": math.nan, "accuracy_p": math.nan,
           "accuracy_verdict": ""}
    pa, pb = raw_a.predictions(_key(ra, OUTPUT_KEY)), raw_b.predictions(_key(rb, OUTPUT_KEY))
    same_images = (pa is not None and pb is not None and len(pa) == len(pb)
                   and pa.index.equals(pb.index) and (pa["label"] == pb["label"]).all())
    if same_images:
        ok_a = (pa["predicted"] == pa["label"]).to_numpy()
        ok_b = (pb["predicted"] == pb["label"]).to_numpy()
        test = stats.mcnemar(ok_a, ok_b)
        lo, hi = stats.paired_difference_ci(ok_a, ok_b)
        out.update(accuracy_test="McNemar exact (paired by image)", accuracy_p=test["p"],
                   images_changed=int((pa["predicted"] != pb["predicted"]).sum()),
                   delta_accuracy_low_pp=100 * lo, delta_accuracy_high_pp=100 * hi)
    else:
        ca, cb = _correct_counts(ra), _correct_counts(rb)
        if not ca or not cb or not ca[1] or not cb[1]:
            return out
        (ka, na), (kb, nb) = ca, cb
        p = _st.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue
        lo, hi = newcombe(ka, na, kb, nb)
        out.update(accuracy_test="Fisher exact (different test images)", accuracy_p=float(p),
                   delta_accuracy_low_pp=100 * lo, delta_accuracy_high_pp=100 * hi)
    significant = out["accuracy_p"] < stats.ALPHA
    out["accuracy_verdict"] = (NO_CHANGE if not significant else
                               "better" if out["delta_accuracy_pp"] > 0 else "worse")
    return out


def _round_values(rows: pd.DataFrame, column: str) -> dict[tuple, np.ndarray]:
    """Per configuration, the successful rounds' values of a per-round column."""
    if column not in rows.columns:
        return {}
    ok = rows[rows["status"] == "ok"].sort_values("round", kind="stable")
    values = pd.to_numeric(ok[column], errors="coerce")
    keys = ok.apply(lambda r: _key(r, CONFIG), axis=1)
    out: dict[tuple, np.ndarray] = {}
    for key, v in values.groupby(keys, sort=False):
        v = v.dropna().to_numpy(float)
        if len(v):
            out[key] = v
    return out


def _round_ratio(a: np.ndarray | None, b: np.ndarray | None, name: str) -> dict:
    out = {f"{name}_a": math.nan, f"{name}_b": math.nan, f"{name}_ratio": math.nan,
           f"{name}_ratio_low": math.nan, f"{name}_ratio_high": math.nan, f"{name}_verdict": ""}
    if a is None or b is None or not np.median(a):
        return out
    ma, mb = float(np.median(a)), float(np.median(b))
    out.update({f"{name}_a": ma, f"{name}_b": mb, f"{name}_ratio": mb / ma})
    if len(a) >= 2 and len(b) >= 2:
        res = _st.bootstrap((a, b), lambda x, y, axis=-1: np.median(y, axis=axis)
                            / np.median(x, axis=axis), vectorized=True,
                            n_resamples=stats.RESAMPLES, confidence_level=stats.CONFIDENCE,
                            method="percentile", random_state=np.random.default_rng(stats.SEED))
        lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
        out.update({f"{name}_ratio_low": lo, f"{name}_ratio_high": hi,
                    f"{name}_verdict": ratio_verdict(lo, hi, "more", "less")})
    elif np.array_equal(a, b):
        out[f"{name}_verdict"] = NO_CHANGE
    else:
        out[f"{name}_verdict"] = "one round: no interval"
    return out


def _energy_from_readings(ra, rb, draws_a: dict, draws_b: dict) -> dict:
    """The energy ratio's interval from both runs' power readings (the report's block bootstrap
    of each timed window, then rounds), which needs no second round; {} when either run lacks
    readings enough for this pair."""
    da, db = draws_a.get(_key(ra, LATENCY_KEY)), draws_b.get(_key(rb, LATENCY_KEY))
    if da is None or db is None:
        return {}
    lo, hi = stats.speedup_ci(db[0], da[0])   # p50(B) / p50(A) of the energy draws
    return {"energy_ratio_low": lo, "energy_ratio_high": hi,
            "energy_verdict": ratio_verdict(lo, hi, "more", "less"),
            "energy_interval_from": READINGS}


def compare_runs(run_a: ResultSet, run_b: ResultSet, match: tuple = DEFAULT_MATCH,
                 label_a: str = "A", label_b: str = "B") -> Comparison:
    """Compare run B against run A (B ÷ A for ratios, B − A for accuracy)."""
    run_b = _tag(run_b)
    pairs, notes = match_rows(run_a.rows, run_b.rows, match)
    raw_a = RawData(run_a.samples, run_a.predictions)
    raw_b = RawData(run_b.samples, run_b.predictions)
    per_round = {name: (_round_values(run_a.rows, col), _round_values(run_b.rows, col))
                 for name, col in ROUND_METRICS.items()}
    energy_a, energy_b = (energy_draws(run_a.rows, run_a.power),
                          energy_draws(run_b.rows, run_b.power))
    records = []
    for ra, rb in pairs:
        rec = {"device": ra["device"], "device_b": rb["device"], "model": ra["model"],
               "architecture": ra["architecture"], "recipe": ra["recipe"],
               "compute_unit": ra["compute_unit"], "threads": ra["threads"],
               "run_a": ra["run_id"], "run_b": str(rb["run_id"])[len(_B):],
               "rounds_a": ra["rounds"], "rounds_b": rb["rounds"],
               "xnnpack_a": ra["xnnpack"], "xnnpack_b": rb["xnnpack"]}
        rec.update(_latency(ra, rb, raw_a, raw_b))
        rec.update(_accuracy(ra, rb, raw_a, raw_b))
        for name, (va, vb) in per_round.items():
            rec.update(_round_ratio(va.get(_key(ra, CONFIG)), vb.get(_key(rb, CONFIG)), name))
        rec["energy_interval_from"] = ("rounds" if not math.isnan(rec["energy_ratio_low"])
                                       else "")
        rec.update(_energy_from_readings(ra, rb, energy_a, energy_b))
        records.append(rec)
    for name, (va, vb) in per_round.items():
        if not va or not vb:
            where = "either run" if not va and not vb else "run A" if not va else "run B"
            notes.append(f"{name}: not recorded in {where}; not compared")
    return Comparison(table=pd.DataFrame(records), notes=notes, label_a=label_a,
                      label_b=label_b, match=match)


def headline(comp: Comparison) -> str:
    """One line: how many rows got faster or slower and how many changed accuracy."""
    t = comp.table
    counts = t["p50_verdict"].value_counts()
    worse = int((t["accuracy_verdict"] == "worse").sum())
    better = int((t["accuracy_verdict"] == "better").sum())
    return (f"{len(t)} row(s) compared: {counts.get('slower', 0)} slower, "
            f"{counts.get('faster', 0)} faster, {counts.get(NO_CHANGE, 0)} with no measurable "
            f"difference in p50; accuracy {worse} worse, {better} better")
