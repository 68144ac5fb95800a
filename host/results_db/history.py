"""One model's series over runs: p50, accuracy, energy or peak memory of every stored run, each
with its 95 % interval (the report's methods), as a table and a trend plot, one line per device
(and per thread count and compute unit where a device has several)."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import sqlalchemy as sa
from scipy import stats as _st

from edgebench.host.errors import UserError
from edgebench.host.report import stats
from edgebench.host.report.formats import fmt_threads
from edgebench.host.report.uncertainty import LATENCY_KEY, RawData, _key, fold_rounds
from edgebench.host.results_db import schema as S
from edgebench.host.results_db.read import stored_rows, stored_samples

# metric -> (unit, what it is); `--metric help` lists them.
METRICS = {
    "p50": ("ms", "median latency, 95 % block-bootstrap interval"),
    "accuracy": ("%", "test-set accuracy, 95 % Wilson interval"),
    "energy": ("mJ", "energy per inference (energy_mj, where recorded), median over rounds"),
    "memory": ("MB", "peak resident memory, median over rounds"),
}
COLUMNS = ("device", "run_id", "started_utc", "compute_unit", "threads", "value", "low", "high",
           "rounds")


def describe() -> str:
    return "\n".join(f"  {k:<9} ({u}) {w}" for k, (u, w) in METRICS.items())


def _over_rounds(values: np.ndarray) -> tuple[float, float, float]:
    if not len(values):
        return (math.nan,) * 3
    med = float(np.median(values))
    if len(values) < 2 or np.all(values == values[0]):
        return med, math.nan, math.nan
    res = _st.bootstrap((values,), np.median, n_resamples=stats.RESAMPLES,
                        confidence_level=stats.CONFIDENCE, method="percentile",
                        random_state=np.random.default_rng(stats.SEED))
    return med, float(res.confidence_interval.low), float(res.confidence_interval.high)


def _value(metric: str, row, raw_rows: pd.DataFrame, raw: RawData) -> tuple:
    if metric == "p50":
        lo, hi = stats.p50_ci(raw.medians(_key(row, LATENCY_KEY)))
        return row["p50_ms"], lo, hi
    if metric == "accuracy":
        if pd.isna(row["accuracy"]):
            return (math.nan,) * 3
        counts = [row.get(c) for c in ("tp", "tn", "fp", "fn")]
        lo, hi = (stats.wilson(int(counts[0] + counts[1]), int(sum(counts)))
                  if not any(pd.isna(c) for c in counts) else stats.NAN2)
        return 100 * row["accuracy"], 100 * lo, 100 * hi
    column = {"energy": "energy_mj", "memory": "peak_rss_mb"}[metric]
    if column not in raw_rows:
        return (math.nan,) * 3
    same = raw_rows[(raw_rows["_run_pk"] == row["_run_pk"]) & (raw_rows["status"] == "ok")
                    & (raw_rows["sha256"] == row["sha256"])
                    & (raw_rows["threads"].fillna(-1) == (-1 if pd.isna(row["threads"])
                                                          else row["threads"]))
                    & (raw_rows["compute_unit"] == row["compute_unit"])]
    return _over_rounds(pd.to_numeric(same[column], errors="coerce").dropna().to_numpy(float))


def series(engine, model: str, device: str | None = None, metric: str = "p50") -> pd.DataFrame:
    """The model's stored runs, oldest first, with the metric and its interval."""
    if metric not in METRICS:
        raise UserError(f"--metric {metric!r}: choose from {', '.join(METRICS)}")
    where = S.models.c.name == model
    if device:
        where = sa.and_(where, S.devices.c.name == device)
    with engine.connect() as conn:
        rows = stored_rows(conn, where)
        if rows.empty:
            names = conn.execute(sa.select(S.models.c.name).distinct().order_by(S.models.c.name)
                                 .limit(30)).scalars().all()
            raise UserError(f"no stored run of {model!r}" + (f" on {device}" if device else "")
                            + (f"; models in the database: {', '.join(names)}" if names else
                               "; the database is empty (bench-host import RESULTS_DIR)"))
        samples = stored_samples(conn, rows) if metric == "p50" else None
        started = dict(conn.execute(sa.select(S.runs.c.id, S.runs.c.started_utc)).all())
    raw = RawData(samples, None)
    folded = fold_rounds(rows.drop(columns=["_pk"]))
    out = []
    for _, row in folded[folded["status"] == "ok"].iterrows():
        value, lo, hi = _value(metric, row, rows, raw)
        out.append({"device": row["device"], "run_id": row["run_id"],
                    "started_utc": started.get(int(row["_run_pk"])) or "",
                    "compute_unit": row["compute_unit"], "threads": row["threads"],
                    "value": value, "low": lo, "high": hi, "rounds": row["rounds"],
                    "_order": int(row["_run_pk"])})
    df = pd.DataFrame(out, columns=list(COLUMNS) + ["_order"])
    df = df.sort_values(["started_utc", "_order", "device", "compute_unit", "threads"],
                        kind="stable").drop(columns="_order").reset_index(drop=True)
    return df


def _fmt(v) -> str:
    return "" if pd.isna(v) else f"{float(v):.4g}"


def text(df: pd.DataFrame, metric: str) -> pd.DataFrame:
    """The series as display strings."""
    unit = METRICS[metric][0]
    return pd.DataFrame({
        "device": df["device"], "run": df["run_id"], "started (UTC)": df["started_utc"],
        "unit": df["compute_unit"], "threads": df["threads"].map(fmt_threads),
        f"{metric} ({unit})": df["value"].map(_fmt),
        "95 % interval": [f"{_fmt(lo)}–{_fmt(hi)}" if pd.notna(lo) else ""
                          for lo, hi in zip(df["low"], df["high"])],
        "rounds": df["rounds"].map(fmt_threads)})


def plot(df: pd.DataFrame, model: str, metric: str, path: Path) -> Path | None:
    if df.empty or df["value"].isna().all():
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(zip(df["started_utc"], df["run_id"])))
    x_of = {r: i for i, r in enumerate(runs)}
    configs = df[["compute_unit", "threads"]].drop_duplicates()
    fig, ax = plt.subplots(figsize=(7.5, 4.0), dpi=110)
    for (dev, unit, threads), g in df.groupby(["device", "compute_unit", "threads"],
                                              sort=False, dropna=False):
        label = dev if len(configs) == 1 else f"{dev} {unit} ×{fmt_threads(threads)}"
        x = [x_of[r] for r in zip(g["started_utc"], g["run_id"])]
        err = np.array([(g["value"] - g["low"]).fillna(0).clip(lower=0),
                        (g["high"] - g["value"]).fillna(0).clip(lower=0)])
        ax.errorbar(x, g["value"], yerr=err, marker="o", capsize=3, label=label)
    ax.set_xticks(range(len(runs)), [r[1] for r in runs], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{metric} ({METRICS[metric][0]})")
    ax.set_title(f"{model}: {metric} per run (95 % intervals)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
