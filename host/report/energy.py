"""Energy per inference in the report (results schema 4, `--power`): the agent's figures
(energy_mj, energy_above_idle_mj, idle and average power) with 95 % intervals from the raw
readings in power_samples.csv, inferences per joule, and energy speedups against fp32.

The interval: the timed window of each round (phase "timed", rail "board") is cut into BLOCKS
equal stretches of time; the blocks' mean powers are resampled with replacement and their mean
over the mean of all blocks scales the agent's energy of that round. Blocks, not single
readings, because consecutive readings are correlated (a sampler at 10 Hz sees the same
frequency step many times). The idle baseline is resampled the same way from phase "idle", so
the energy above idle carries both uncertainties. Rounds are then resampled as for latency
(stats.py): the interval of the median over rounds. Energy per inference = mean power × window
÷ inferences in it, so a round's window and count scale each draw."""
from __future__ import annotations

import math
import zlib

import numpy as np
import pandas as pd

from edgebench.host.report import stats
from edgebench.host.report.formats import (fmt_ci, fmt_mj, fmt_ms, fmt_num, fmt_pct, fmt_speedup,
                                            fmt_unit)
from edgebench.host.report.uncertainty import LATENCY_KEY, _key

BLOCKS = 10        # sub-windows of the timed window
MIN_BLOCKS = 5     # fewer non-empty sub-windows (under ~10 readings): no interval
BOARD = "board"
ENERGY_COLUMNS = (
    "power_source", "power_rails", "power_samples", "power_hz", "power_window_s",
    "idle_power_w", "avg_power_w", "energy_mj", "energy_ci_low", "energy_ci_high",
    "inferences_per_j", "inferences_per_j_ci_low", "inferences_per_j_ci_high",
    "energy_above_idle_mj", "energy_above_idle_ci_low", "energy_above_idle_ci_high",
    "energy_speedup_vs_fp32", "energy_speedup_vs_fp32_ci_low", "energy_speedup_vs_fp32_ci_high",
    "energy_speedup_vs_fp32_verdict",
)
# The agent's per-round figures, folded over rounds by their median (uncertainty.fold_rounds).
ROUND_MEDIANS = ("power_hz", "power_window_s", "idle_power_w", "avg_power_w", "energy_mj",
                 "energy_above_idle_mj")


def block_ratios(t_s, watts, window_s: float, seed: int) -> np.ndarray | None:
    """RESAMPLES draws of (mean power of resampled blocks) ÷ (mean power of all blocks) over the
    window [0, window_s]; None when fewer than MIN_BLOCKS blocks hold a reading."""
    t = np.asarray(t_s, dtype=float)
    w = np.asarray(watts, dtype=float)
    keep = np.isfinite(t) & np.isfinite(w)
    t, w = t[keep], w[keep]
    if not len(t) or not window_s or window_s <= 0:
        return None
    edges = np.linspace(0.0, window_s, BLOCKS + 1)
    which = np.clip(np.searchsorted(edges, t, side="right") - 1, 0, BLOCKS - 1)
    means = np.array([w[which == b].mean() for b in range(BLOCKS) if (which == b).any()])
    if len(means) < MIN_BLOCKS or not means.mean():
        return None
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(means), size=(stats.RESAMPLES, len(means)))
    return means[pick].mean(axis=1) / means.mean()


def _phase(power: pd.DataFrame, key: tuple, rnd, phase: str) -> pd.DataFrame:
    p = power[(power["_key"] == key) & (power["round"] == rnd) & (power["phase"] == phase)
              & (power["rail"] == BOARD)]
    return p


def energy_draws(rows: pd.DataFrame, power: pd.DataFrame | None) -> dict:
    """{LATENCY_KEY: (energy R×RESAMPLES, above-idle R×RESAMPLES or None)} for every
    configuration whose rounds have readings enough, from the unfolded result rows."""
    if power is None or power.empty or "energy_mj" not in rows:
        return {}
    power = power.assign(_key=power.apply(lambda r: _key(r, LATENCY_KEY), axis=1))
    out: dict = {}
    ok = rows[(rows["status"] == "ok") & rows["energy_mj"].notna()]
    for _, row in ok.sort_values("round", kind="stable").iterrows():
        key = _key(row, LATENCY_KEY)
        timed = _phase(power, key, row["round"], "timed")
        window = row.get("power_window_s")
        if pd.isna(window) or not window:
            window = float(timed["t_s"].max()) if len(timed) else math.nan
        seed = zlib.crc32(repr((key, row["round"])).encode())
        ratio = block_ratios(timed["t_s"], timed["watts"], window, seed)
        if ratio is None:
            continue
        energy = float(row["energy_mj"]) * ratio
        above = None
        if pd.notna(row.get("energy_above_idle_mj")) and pd.notna(row.get("idle_power_w")) \
                and row.get("count"):
            idle = _phase(power, key, row["round"], "idle")
            # The idle baseline lies before the window: shift it to start at 0.
            t0 = float(idle["t_s"].min()) if len(idle) else 0.0
            span = float(idle["t_s"].max()) - t0 if len(idle) else 0.0
            idle_ratio = block_ratios(idle["t_s"] - t0, idle["watts"], span, seed + 1)
            if idle_ratio is None:
                idle_ratio = np.ones(stats.RESAMPLES)  # too few idle readings: idle taken as is
            idle_mj = float(row["idle_power_w"]) * window / float(row["count"]) * 1000.0
            above = (float(row["energy_above_idle_mj"]) + (energy - float(row["energy_mj"]))
                     - idle_mj * (idle_ratio - 1.0))
        prev = out.setdefault(key, ([], []))
        prev[0].append(energy)
        prev[1].append(above)
    return {k: (np.stack(e), np.stack(a) if all(x is not None for x in a) else None)
            for k, (e, a) in out.items()}


def add_energy(df: pd.DataFrame, draws: dict) -> pd.DataFrame:
    """ENERGY_COLUMNS on the folded summary frame (build_summary's naming before its renames):
    intervals where `draws` has the configuration, and the energy speedup against the fp32 of
    the same architecture, compute unit, threads, runtime and XNNPACK setting in the same run."""
    df = df.copy()
    for col in ENERGY_COLUMNS:
        if col not in df.columns:
            df[col] = math.nan
    df["energy_speedup_vs_fp32_verdict"] = ""
    ok = (df["status"] == "ok") & df["energy_mj"].notna()
    same = ["device", "run_id", "architecture", "compute_unit", "threads", "runtime", "xnnpack"]
    base = df[ok & (df["recipe"] == "fp32")].drop_duplicates(same)
    base_idx = {tuple(_key(r, same)): i for i, r in base.iterrows()}
    for i, row in df[ok].iterrows():
        energy = float(row["energy_mj"])
        if energy > 0:
            df.loc[i, "inferences_per_j"] = 1000.0 / energy
        mine = draws.get(_key(row, LATENCY_KEY))
        if mine is not None:
            lo, hi = stats.p50_ci(mine[0])
            df.loc[i, ["energy_ci_low", "energy_ci_high"]] = (lo, hi)
            if lo > 0:
                df.loc[i, ["inferences_per_j_ci_low", "inferences_per_j_ci_high"]] = (
                    1000.0 / hi, 1000.0 / lo)
            if mine[1] is not None:
                df.loc[i, ["energy_above_idle_ci_low", "energy_above_idle_ci_high"]] = \
                    stats.p50_ci(mine[1])
        j = base_idx.get(tuple(_key(row, same)))
        if j is None or j == i or not energy:
            continue
        df.loc[i, "energy_speedup_vs_fp32"] = float(df.loc[j, "energy_mj"]) / energy
        theirs = draws.get(_key(df.loc[j], LATENCY_KEY))
        if mine is not None and theirs is not None:
            lo, hi = stats.speedup_ci(theirs[0], mine[0])
            df.loc[i, ["energy_speedup_vs_fp32_ci_low", "energy_speedup_vs_fp32_ci_high"]] = \
                (lo, hi)
            df.loc[i, "energy_speedup_vs_fp32_verdict"] = stats.speedup_verdict(lo, hi).replace(
                "faster", "less energy").replace("slower", "more energy")
    return df


def measured(summary: pd.DataFrame) -> bool:
    """Whether any row of the run measured power (else the report has no energy section)."""
    return bool(summary["power_source"].fillna("").astype(str).str.strip().ne("").any()
                or summary["energy_mj"].notna().any())


def _why_not(row) -> str:
    if row["status"] != "ok":
        return "row failed"
    note = str(row["error"]).strip() if pd.notna(row["error"]) else ""
    if "energy" in note.lower() or "power" in note.lower():
        return note  # the agent's own reason, e.g. "energy not measured: no power source"
    return "energy not measured" + (f" ({note})" if note else " (run without --power)")


def energy_table(summary: pd.DataFrame, device: str) -> pd.DataFrame:
    """The per-device energy table as display strings, 95 % intervals in parentheses."""

    d = summary[summary["device"] == device]

    def ci(col, low, high, fmt):
        return d.apply(lambda r: fmt_ci(fmt(r[col]), r[low], r[high], fmt), axis=1)

    mj = fmt_mj

    def source(r):
        src = str(r["power_source"]) if pd.notna(r["power_source"]) else ""
        if not src:
            return ""
        rails = f" ({r['power_rails']})" if pd.notna(r["power_rails"]) and \
            str(r["power_rails"]) else ""
        rate = (f", {int(r['power_samples'])} readings at {float(r['power_hz']):.3g} Hz"
                if pd.notna(r["power_samples"]) and pd.notna(r["power_hz"]) else "")
        return src + rails + rate

    def speedup(r):
        text = fmt_ci(fmt_speedup(r["energy_speedup_vs_fp32"]),
                      r["energy_speedup_vs_fp32_ci_low"], r["energy_speedup_vs_fp32_ci_high"],
                      fmt_speedup)
        verdict = r["energy_speedup_vs_fp32_verdict"]
        return text + (", no measurable difference" if verdict == "no measurable difference"
                       else "")

    return pd.DataFrame({
        "model": d["model"], "recipe": d["recipe"], "unit": d.apply(fmt_unit, axis=1),
        "threads": d["threads"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "power source (rails, readings)": d.apply(source, axis=1),
        "idle (W)": d["idle_power_w"].map(lambda v: fmt_num(v, 2)),
        "average (W)": d["avg_power_w"].map(lambda v: fmt_num(v, 2)),
        "mJ/inference": ci("energy_mj", "energy_ci_low", "energy_ci_high", mj),
        "inferences per J": ci("inferences_per_j", "inferences_per_j_ci_low",
                               "inferences_per_j_ci_high", mj),
        "above idle (mJ/inference)": ci("energy_above_idle_mj", "energy_above_idle_ci_low",
                                        "energy_above_idle_ci_high", mj),
        "energy speedup vs fp32": d.apply(speedup, axis=1),
        "p50 (ms)": d["p50_ms"].map(fmt_ms),
        "accuracy (%)": d["accuracy"].map(fmt_pct),
        "note": [("" if pd.notna(e) else _why_not(r)) for e, (_, r) in
                 zip(d["energy_mj"], d.iterrows())],
    }).reset_index(drop=True)


INTRO = ("Energy per inference = the energy the power source recorded over exactly the timed "
         "window ÷ the inferences in it (mJ); inferences per J is its inverse. Idle = mean power "
         "over the baseline of a few seconds before the row; above idle = energy per inference "
         "minus idle power × window ÷ inferences, what the model costs on top of a board that "
         "is on anyway. 'board' is what the source can see (the rails named beside it): not "
         "necessarily the whole device (see the README's section on energy). Intervals (95 %): "
         "the window is cut into 10 equal stretches of time, their mean powers resampled "
         "(readings close in time are correlated), the idle baseline likewise, and rounds "
         "resampled as for p50. Energy speedup vs fp32 = fp32's mJ/inference ÷ this one's, "
         "same architecture, compute unit and threads; an interval containing 1 is 'no "
         "measurable difference'. Rows with fewer than 10 readings in the window, or without "
         "power_samples.csv, get no interval (the agent asks for at least 20 readings).")


def blocks(summary: pd.DataFrame, plots: dict, devices: list) -> list:
    """The report's energy section; empty when no row measured power."""
    if not measured(summary):
        return []
    out = [("h1", "Energy per inference"), ("p", INTRO)]
    for dev in devices:
        out += [("h2", dev), ("table", energy_table(summary, dev))]
        plot = plots.get(dev)
        if plot:
            out.append(("img", f"Energy vs accuracy, {dev}", plot))
    return out
