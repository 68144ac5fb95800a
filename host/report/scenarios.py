"""Frame-rate and throughput scenarios in the report (results schema 4, `--fps`, `--streams`).

An fps scenario's figures are computed here from frames.csv, the raw frames, when the folder
has it (scenarios.csv's own figures otherwise): latency = end − arrival (the wait for the
previous frame included, as a scanner sees it), service = end − start, a frame misses when its
result comes after the next frame's arrival (end > arrival + 1000/fps), achieved fps = frames ÷
max(the scenario's seconds, the last result's time). Percentiles as the agent takes them
(numpy's linear interpolation). The missed share carries a 95 % Wilson interval. A streams
scenario shows the inferences per second of all streams together (the agent's) and each
stream's latency."""
from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd

from edgebench.host.report import stats
from edgebench.host.report.formats import fmt_ci, fmt_mj, fmt_ms, fmt_num
from edgebench.host.report.uncertainty import _key

LINE = ["device", "run_id", "sha256", "threads", "xnnpack", "runtime", "compute_unit", "round",
        "scenario", "stream"]


def target_fps(scenario: str, line_fps=None) -> float:
    if line_fps is not None and pd.notna(line_fps) and line_fps:
        return float(line_fps)
    m = re.fullmatch(r"fps=([0-9.]+)", str(scenario).strip())
    return float(m.group(1)) if m else math.nan


def from_frames(frames: pd.DataFrame, fps: float, seconds=None) -> dict:
    """The figures of one scenario stream from its frames (ms from the scenario's start)."""
    arrival = frames["arrival_ms"].to_numpy(float)
    start = frames["start_ms"].to_numpy(float)
    end = frames["end_ms"].to_numpy(float)
    n = len(end)
    if not n:
        return {}
    latency, service = end - arrival, end - start
    out = {"frames": n, "missed": math.nan, "missed_share": math.nan}
    if fps and not math.isnan(fps):
        missed = int((end > arrival + 1000.0 / fps).sum())
        out.update(missed=missed, missed_share=missed / n)
    span = float(end.max()) / 1000.0
    if seconds is not None and pd.notna(seconds) and seconds > span:
        span = float(seconds)
    out["achieved_fps"] = n / span if span > 0 else math.nan
    out["p50_ms"], out["p90_ms"], out["p99_ms"] = (float(v) for v in
                                                    np.percentile(latency, [50, 90, 99]))
    out["service_p50_ms"] = float(np.median(service))
    return out


def scenario_summary(lines: pd.DataFrame | None, frames: pd.DataFrame | None,
                     rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """scenarios.csv's lines, their figures recomputed from frames.csv where it has them, with
    the missed share's interval and the model's architecture and recipe."""
    if lines is None or lines.empty:
        return pd.DataFrame()
    df = lines.copy().reset_index(drop=True)
    df["missed"] = (df["missed_share"] * df["frames"]).round()
    df["source"] = "scenarios.csv"
    if frames is not None and not frames.empty:
        groups = {k: g for k, g in frames.groupby(
            frames.apply(lambda r: _key(r, LINE), axis=1), sort=False)}
        for i, r in df.iterrows():
            g = groups.get(_key(r, LINE))
            if g is None or r["status"] != "ok":
                continue
            fps = target_fps(r["scenario"], r["target_fps"])
            figures = from_frames(g, fps if str(r["scenario"]).startswith("fps") else math.nan,
                                  r["seconds"])
            keep = [k for k in figures if not (str(r["scenario"]).startswith("streams")
                                               and k in ("missed", "missed_share",
                                                         "achieved_fps"))]
            for k in keep:
                df.loc[i, k] = figures[k]
            df.loc[i, "source"] = "frames.csv"
    df["missed_ci_low"], df["missed_ci_high"] = math.nan, math.nan
    for i, r in df.iterrows():
        if pd.notna(r["missed"]) and pd.notna(r["frames"]) and r["frames"]:
            df.loc[i, ["missed_ci_low", "missed_ci_high"]] = stats.wilson(int(r["missed"]),
                                                                         int(r["frames"]))
    names = {}
    if rows is not None and not rows.empty:
        names = {m: (a, rc) for m, a, rc in rows[["model", "architecture", "recipe"]]
                 .drop_duplicates("model").itertuples(index=False)}
    df["architecture"] = [names.get(m, (m.rsplit(".", 1)[0], ""))[0] for m in df["model"]]
    df["recipe"] = [names.get(m, ("", m.rsplit(".", 1)[-1]))[1] for m in df["model"]]
    return df


def _pct(v) -> str:
    return "" if pd.isna(v) else f"{100 * float(v):.1f}"


def _common(d: pd.DataFrame) -> dict:
    return {"model": d["architecture"], "recipe": d["recipe"], "unit": d["compute_unit"],
            "threads": d["threads"].map(lambda v: "" if pd.isna(v) else str(int(v)))}


def _status(d: pd.DataFrame) -> pd.Series:
    return d.apply(lambda r: "" if r["status"] == "ok" else
                   f"{r['status']}: {r['error']}" if pd.notna(r["error"]) else str(r["status"]),
                   axis=1)


def fps_table(d: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        **_common(d),
        "frames": d["frames"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "achieved fps": d["achieved_fps"].map(lambda v: fmt_num(v, 1)),
        "missed (%)": [fmt_ci(_pct(v), lo, hi, _pct) for v, lo, hi in
                       zip(d["missed_share"], d["missed_ci_low"], d["missed_ci_high"])],
        "p50 (ms)": d["p50_ms"].map(fmt_ms), "p90 (ms)": d["p90_ms"].map(fmt_ms),
        "p99 (ms)": d["p99_ms"].map(fmt_ms), "service p50 (ms)": d["service_p50_ms"].map(fmt_ms),
        "mJ/frame": d["energy_mj"].map(fmt_mj),
        "above idle (mJ/frame)": d["energy_above_idle_mj"].map(fmt_mj),
        "average (W)": d["avg_power_w"].map(lambda v: fmt_num(v, 2)),
        "status": _status(d),
    }).reset_index(drop=True)


def streams_table(d: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame({
        **_common(d),
        "stream": d["stream"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "all streams (inferences/s)": d["throughput_ips"].map(lambda v: fmt_num(v, 1)),
        "inferences": d["frames"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "p50 (ms)": d["p50_ms"].map(fmt_ms), "p90 (ms)": d["p90_ms"].map(fmt_ms),
        "p99 (ms)": d["p99_ms"].map(fmt_ms),
        "mJ/inference": d["energy_mj"].map(fmt_mj),
        "status": _status(d),
    }).reset_index(drop=True)


INTRO = ("fps=N: a frame arrives every 1/N s for the scenario's seconds and waits while the "
         "previous one runs (one interpreter). Latency = arrival to result, queueing included; "
         "service = start to result; missed = the result came after the next frame's arrival "
         "(95 % Wilson interval); achieved fps = frames ÷ max(scenario seconds, time of the "
         "last result). streams=N: N interpreters invoke back to back, concurrently; the "
         "throughput counts all streams together, latencies are per stream. Energy per frame "
         "where the row measured power. Figures are computed from frames.csv where present.")


def blocks(summary: pd.DataFrame, devices: list) -> list:
    """The report's scenario section: per device, a table per fps and per streams scenario."""
    if summary.empty:
        return []
    out = [("h1", "Frame-rate and throughput scenarios"), ("p", INTRO)]
    for dev in devices:
        d = summary[summary["device"] == dev]
        if d.empty:
            continue
        out.append(("h2", dev))
        for scenario in sorted(d["scenario"].unique(), key=_order):
            s = d[d["scenario"] == scenario].sort_values(["stream"], kind="stable")
            fps = str(scenario).startswith("fps")
            out += [("h3", f"{scenario} ({'frame rate' if fps else 'concurrent streams'})"),
                    ("table", fps_table(s) if fps else streams_table(s))]
    return out


def _order(scenario: str) -> tuple:
    kind, _, value = str(scenario).partition("=")
    try:
        return (kind != "fps", float(value))
    except ValueError:
        return (kind != "fps", math.inf)
