"""Sustained performance in the report (results schema 4, `--soak SECONDS`): from soak.csv, per
soaked row, latency, temperature, CPU frequency and power against time, the time to throttle,
the p50 of the first and of the last interval, and the ranking of the soaked configurations at
the end of the soak beside their ranking at its start (a fanless board reorders them)."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from edgebench.host.report.formats import fmt_ms, fmt_num
from edgebench.host.report.uncertainty import _key

# Throttled: any of `vcgencmd get_throttled` bits 0-3 (under-voltage, frequency capped,
# throttled, soft temperature limit) set now, or cpu0's frequency below this share of the first
# interval's (boards without vcgencmd show throttling only through the frequency).
FLAG_BITS = 0xF
FREQ_DROP = 0.95
GROUP = ["device", "run_id", "model", "sha256", "threads", "xnnpack", "runtime", "compute_unit",
         "round"]
RULE = (f"Time to throttle = the end of the first interval at whose end `vcgencmd "
        f"get_throttled` had any of bits 0-3 set (under-voltage, frequency capped, throttled, "
        f"soft temperature limit) or cpu0's frequency was below {100 * FREQ_DROP:.0f} % of the "
        f"first interval's; the sensors are read as each interval ends, so the throttling "
        f"began within that interval. 'none' = neither happened during the soak.")


def _flags(value) -> int:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return 0
    text = str(value).strip()
    if not text:
        return 0
    try:
        return int(text, 0)
    except ValueError:
        return 0


def throttle(g: pd.DataFrame) -> tuple[float, str]:
    """(time to throttle in s, why) for one soak's intervals in order; (nan, "") when neither the
    flags nor the frequency say so."""
    freqs = g["freq_mhz"].dropna()
    first = float(freqs.iloc[0]) if len(freqs) else math.nan
    for _, r in g.iterrows():
        bits = _flags(r["throttled_flags"]) & FLAG_BITS
        if bits:
            return float(r["t_end_s"]), f"flags {hex(bits)}"
        if not math.isnan(first) and pd.notna(r["freq_mhz"]) and \
                float(r["freq_mhz"]) < FREQ_DROP * first:
            return float(r["t_end_s"]), (f"frequency {float(r['freq_mhz']):.0f} MHz < "
                                         f"{100 * FREQ_DROP:.0f} % of {first:.0f}")
    return math.nan, ""


def _names(rows: pd.DataFrame | None) -> dict:
    """model file name -> (architecture, recipe), from the result rows."""
    if rows is None or rows.empty:
        return {}
    return {m: (a, r) for m, a, r in rows[["model", "architecture", "recipe"]]
            .drop_duplicates("model").itertuples(index=False)}


def soak_summary(soak: pd.DataFrame | None, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """One line per soaked row: first/last p50, temperatures, frequencies, power, time to
    throttle, and the rank (1 = fastest) among the device's soaked rows at start and end."""
    if soak is None or soak.empty:
        return pd.DataFrame()
    names = _names(rows)
    out = []
    for key, g in soak.groupby(GROUP, sort=False, dropna=False):
        g = g.sort_values("interval", kind="stable")
        first, last = g.iloc[0], g.iloc[-1]
        when, why = throttle(g)
        model = key[2]
        arch, recipe = names.get(model, (model.rsplit(".", 1)[0], model.rsplit(".", 1)[-1]))
        out.append(dict(zip(GROUP, key), architecture=arch, recipe=recipe, intervals=len(g),
                        seconds=float(last["t_end_s"]),
                        p50_first_ms=first["p50_ms"], p50_last_ms=last["p50_ms"],
                        p50_change=(last["p50_ms"] / first["p50_ms"] - 1.0
                                    if first["p50_ms"] else math.nan),
                        temp_first_c=first["temp_c"], temp_max_c=g["temp_c"].max(),
                        freq_first_mhz=first["freq_mhz"], freq_last_mhz=last["freq_mhz"],
                        power_first_w=first["avg_power_w"], power_last_w=last["avg_power_w"],
                        throttle_s=when, throttle_why=why))
    df = pd.DataFrame(out)
    by = df.groupby(["device", "run_id"], sort=False)
    df["rank_start"] = by["p50_first_ms"].rank(method="min").astype("Int64")
    df["rank_end"] = by["p50_last_ms"].rank(method="min").astype("Int64")
    return df


def _label(r, rounds: bool) -> str:
    unit = "" if r["compute_unit"] == "cpu" else f" {r['compute_unit']}"
    thr = "" if pd.isna(r["threads"]) else f" ×{int(r['threads'])}"
    return f"{r['architecture']} {r['recipe']}{unit}{thr}" + (f" r{int(r['round'])}"
                                                               if rounds else "")


def soak_table(summary: pd.DataFrame, device: str) -> pd.DataFrame:
    d = summary[summary["device"] == device].sort_values("rank_start", kind="stable")

    def pair(a, b, digits=0):
        left, right = fmt_num(a, digits), fmt_num(b, digits)
        return f"{left} → {right}" if left or right else ""

    return pd.DataFrame({
        "model": d["architecture"], "recipe": d["recipe"], "unit": d["compute_unit"],
        "threads": d["threads"].map(lambda v: "" if pd.isna(v) else str(int(v))),
        "soak (s, intervals)": [f"{s:.0f} ({n})" for s, n in zip(d["seconds"], d["intervals"])],
        "p50 first (ms)": d["p50_first_ms"].map(fmt_ms),
        "p50 last (ms)": d["p50_last_ms"].map(fmt_ms),
        "change": d["p50_change"].map(lambda v: "" if pd.isna(v) else f"{100 * v:+.1f} %"),
        "rank at start → end": [f"{a} → {b}" for a, b in zip(d["rank_start"], d["rank_end"])],
        "time to throttle (s)": [("none" if pd.isna(t) else f"{t:.0f} ({w})")
                                 for t, w in zip(d["throttle_s"], d["throttle_why"])],
        "temperature first → max (°C)": [pair(a, b, 1) for a, b in
                                         zip(d["temp_first_c"], d["temp_max_c"])],
        "frequency first → last (MHz)": [pair(a, b) for a, b in
                                         zip(d["freq_first_mhz"], d["freq_last_mhz"])],
        "power first → last (W)": [pair(a, b, 2) for a, b in
                                   zip(d["power_first_w"], d["power_last_w"])],
    }).reset_index(drop=True)


PANELS = (("p50_ms", "p50 latency (ms)"), ("temp_c", "hottest thermal zone (°C)"),
          ("freq_mhz", "cpu0 frequency (MHz)"), ("avg_power_w", "board power (W)"))


def soak_plot(soak: pd.DataFrame, summary: pd.DataFrame, device: str, path: Path):
    """Latency, temperature, frequency and power against time, one line per soaked row, the
    time to throttle marked on each line."""
    from edgebench.host.report.plots import _colors, _figure

    d = soak[soak["device"] == device]
    s = summary[summary["device"] == device].reset_index(drop=True)
    if d.empty or s.empty:
        return None
    rounds = bool((s["round"] > 1).any())
    labels = [_label(r, rounds) for _, r in s.iterrows()]
    colors = _colors(labels)
    fig = _figure(11.5, 7.0)
    axes = fig.subplots(2, 2, squeeze=False).ravel()
    keys = d.apply(lambda r: _key(r, GROUP), axis=1)
    for ax, (col, ylabel) in zip(axes, PANELS):
        drawn = False
        for label, (_, r) in zip(labels, s.iterrows()):
            mine = _key(r, GROUP)
            g = d[keys.map(lambda k: k == mine)].sort_values("interval")
            if g[col].notna().any():
                ax.plot(g["t_end_s"], g[col], marker="o", markersize=3, color=colors[label],
                        label=label)
                drawn = True
                if pd.notna(r["throttle_s"]):
                    hit = g[g["t_end_s"] == r["throttle_s"]]
                    ax.scatter(hit["t_end_s"], hit[col], s=90, facecolors="none",
                               edgecolors="crimson", linewidths=1.4, zorder=4)
        if not drawn:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center",
                    transform=ax.transAxes, color="0.4")
        ax.set_ylabel(ylabel)
        ax.set_xlabel("time since the soak's start (s, interval ends)")
        ax.grid(True, alpha=0.3)
    handles, names = axes[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, names, loc="outside right center", fontsize=8.5,
                   title="row (red ring: throttled)")
    fig.suptitle(f"Sustained run on {device}", fontsize=12)
    fig.savefig(path)
    return path


def blocks(soak: pd.DataFrame | None, rows: pd.DataFrame, devices: list, out_dir: Path,
           slug) -> tuple[list, pd.DataFrame]:
    """The report's soak section and the summary behind it; ([], empty) without soak.csv."""
    summary = soak_summary(soak, rows)
    if summary.empty:
        return [], summary
    out = [("h1", "Sustained performance (soak)"),
           ("p", "Each soaked row ran its model continuously for the soak's length after its "
                 "timed runs; every interval gives the p50 of its inferences and, at its end, "
                 "the hottest thermal zone, cpu0's frequency, the throttle flags and the mean "
                 "board power. Rank = position by p50 among the device's soaked rows (1 = "
                 "fastest), in the first and in the last interval. " + RULE)]
    for dev in devices:
        if not (summary["device"] == dev).any():
            continue
        out += [("h2", dev), ("table", soak_table(summary, dev))]
        path = soak_plot(soak, summary, dev, out_dir / f"soak_{slug(dev)}.png")
        if path:
            out.append(("img", f"Sustained run on {dev}", path))
    return out, summary
