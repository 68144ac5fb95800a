"""The report's PNG plots: latency vs accuracy per device with the Pareto front, and speedup vs
fp32 per recipe. Figures are drawn on matplotlib's Agg canvas directly (no pyplot), so nothing
global changes and no display is needed."""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from edgebench.device.units import BASELINE_UNIT, unit_kind
from edgebench.host.report.tables import BASELINE, RECIPE_ORDER, devices

MARKERS = {"fp32": "o", "dynamic": "s", "fp16": "^", "int8": "D", "int16x8": "v"}
# Compute units told apart by how a marker is drawn (colour = model, shape = recipe):
# cpu filled, an accelerator hollow with a thick edge, an external delegate dotted.
UNIT_STYLES = {"baseline": {}, "accelerator": {"hollow": True, "linestyle": "-"},
               "delegate": {"hollow": True, "linestyle": ":"}}


def _unit_style(unit: str) -> dict:
    return UNIT_STYLES[unit_kind(unit)]
DPI = 110


def slug(name: str) -> str:
    """A file-name-safe form of a device label."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "device"


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """Indices of the points no other point beats: none has lower-or-equal latency and
    higher-or-equal accuracy with at least one strictly better. Ordered by latency."""
    front = []
    for i, (lat, acc) in enumerate(points):
        dominated = any(
            (l2 <= lat and a2 >= acc) and (l2 < lat or a2 > acc)
            for j, (l2, a2) in enumerate(points) if j != i
        )
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (points[i][0], -points[i][1]))


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _plain_log_axis(axis, suffix: str = "") -> None:
    """Log-axis ticks as plain numbers ("0.5", "4", "100") instead of 10^x. Powers of ten are
    always labelled; the narrower the range, the more of 2, 3, 5 and then every minor tick, so
    each panel has a few readable labels and none overlap."""
    import math

    from matplotlib.ticker import FuncFormatter

    def label(value: float, _pos) -> str:
        if value <= 0:
            return ""
        lo, hi = sorted(axis.get_view_interval())
        decades = math.log10(hi / lo) if lo > 0 else 99.0
        mantissa = round(value / 10 ** math.floor(math.log10(value) + 1e-9), 6)
        show = (mantissa == 1 or decades <= 0.5 or (decades <= 1.2 and mantissa in (2, 3, 5))
                or (decades <= 2.5 and mantissa in (2, 5)))
        return f"{value:g}{suffix}" if show else ""

    axis.set_major_formatter(FuncFormatter(label))
    axis.set_minor_formatter(FuncFormatter(label))


def _colors(models: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps
    cmap = colormaps["tab10"]
    return {m: cmap(i % 10) for i, m in enumerate(models)}


def _recipes(df: pd.DataFrame) -> list[str]:
    present = list(dict.fromkeys(df["recipe"]))
    return sorted(present, key=lambda r: (RECIPE_ORDER.index(r) if r in RECIPE_ORDER
                                          else len(RECIPE_ORDER), r))


def _err(value: float, low, high):
    """[[below], [above]] for matplotlib's errorbar, or None without an interval."""
    if low is None or high is None or pd.isna(low) or pd.isna(high):
        return None
    return [[max(0.0, value - float(low))], [max(0.0, float(high) - value)]]


def latency_accuracy_plot(summary: pd.DataFrame, device: str, path: Path, x: str = "p50_ms",
                          x_ci: tuple = ("p50_ci_low", "p50_ci_high"),
                          x_label: str = "p50 latency per inference (ms, log scale)",
                          title: str = "Latency vs accuracy") -> Path | None:
    """p50 latency (log x) against accuracy, one panel per thread count, Pareto front marked.
    None when the device has no successful row to plot. `x`, its interval columns and the
    labels put another cost on the x axis (energy.py: mJ per inference)."""
    d = summary[(summary["device"] == device) & (summary["status"] == "ok")]
    d = d.dropna(subset=[x, "accuracy"])
    if d.empty:
        return None
    models = list(dict.fromkeys(summary.loc[summary["device"] == device, "model"]))
    colors = _colors(models)
    threads = sorted(d["threads"].dropna().unique())
    fig = _figure(4.6 * len(threads) + 2.2, 4.4)
    axes = fig.subplots(1, len(threads), squeeze=False)[0]
    for ax, thr in zip(axes, threads):
        t = d[d["threads"] == thr].reset_index(drop=True)
        pts = list(zip(t[x].astype(float), t["accuracy"].astype(float) * 100))
        _plot_points(ax, t, pts, x_ci, colors)
        _mark_front(ax, t, pts)
        _latency_accuracy_axes(ax, t, pts, x_label, thr)
    fig.suptitle(f"{title} on {device} (better: up and to the left; bars: 95 % "
                 f"intervals)", fontsize=12)
    units = list(dict.fromkeys(d["compute_unit"]))
    title = "model / recipe" + (" / unit" if units != [BASELINE_UNIT] else "")
    fig.legend(handles=_legend_handles(d, models, colors, units), loc="outside right center",
               fontsize=9, title=title)
    fig.savefig(path, dpi=DPI)
    return path


def _plot_points(ax, t: pd.DataFrame, pts: list, x_ci: tuple, colors: dict) -> None:
    """One marker per row (colour: model, shape: recipe, outline: compute unit) with its
    intervals."""
    for (lat, acc), (_, row) in zip(pts, t.iterrows()):
        style, color = _unit_style(row["compute_unit"]), colors[row["model"]]
        # 95 % intervals where the raw files gave them: p50 (block bootstrap), accuracy
        # (Wilson); an overlap of two bars says their difference is not established.
        xerr = _err(lat, row.get(x_ci[0]), row.get(x_ci[1]))
        yerr = _err(acc, 100 * row.get("accuracy_ci_low", float("nan")),
                    100 * row.get("accuracy_ci_high", float("nan")))
        if xerr is not None or yerr is not None:
            ax.errorbar(lat, acc, xerr=xerr, yerr=yerr, fmt="none", ecolor=color,
                        elinewidth=0.9, alpha=0.55, capsize=2, zorder=2)
        ax.scatter(lat, acc, s=55, marker=MARKERS.get(row["recipe"], "X"),
                   facecolors="none" if style else color,
                   edgecolors=color if style else "black",
                   linewidths=2.0 if style else 0.5,
                   linestyles=style.get("linestyle", "-"), zorder=3)


def _mark_front(ax, t: pd.DataFrame, pts: list) -> None:
    front = pareto_front(pts)
    fx, fy = [pts[i][0] for i in front], [pts[i][1] for i in front]
    ax.step(fx, fy, where="post", color="0.35", linestyle="--", linewidth=1.2, zorder=2)
    ax.scatter(fx, fy, s=190, facecolors="none", edgecolors="crimson", linewidths=1.4,
               zorder=4)
    # Name the optimal configurations: overlapping markers alone do not say which they are.
    for i in front:
        unit = t.loc[i, "compute_unit"]
        ax.annotate(f"{t.loc[i, 'model']} {t.loc[i, 'recipe']}"
                    + ("" if unit == BASELINE_UNIT else f" ({unit})"), pts[i], fontsize=7.5,
                    xytext=(7, -11), textcoords="offset points", color="crimson")


def _latency_accuracy_axes(ax, t: pd.DataFrame, pts: list, x_label: str, thr) -> None:
    """Log x, labels, and a y range that holds every point and accuracy interval."""
    ax.set_xscale("log")
    _plain_log_axis(ax.xaxis)
    ax.set_xlabel(x_label)
    ax.set_ylabel("accuracy on the test set (%)")
    ax.set_title(f"{int(thr)} thread{'s' if thr != 1 else ''}", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    lows = [100 * v for v in t["accuracy_ci_low"].dropna()] if "accuracy_ci_low" in t else []
    highs = [100 * v for v in t["accuracy_ci_high"].dropna()] if "accuracy_ci_high" in t else []
    lo, hi = min([p[1] for p in pts] + lows), max([p[1] for p in pts] + highs)
    pad = max(1.0, (hi - lo) * 0.15)
    ax.set_ylim(lo - pad, min(100.0 + pad / 3, hi + pad))


def _legend_handles(d: pd.DataFrame, models: list, colors: dict, units: list) -> list:
    """Models by colour, recipes by marker, compute units by outline (when not all on the
    baseline unit), and the Pareto front."""
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=colors[m], marker="o", linestyle="", markersize=8, label=m)
               for m in models]
    handles += [Line2D([], [], color="0.4", marker=MARKERS.get(r, "X"), linestyle="",
                       markersize=8, label=r) for r in _recipes(d)]
    if units != [BASELINE_UNIT]:
        for unit in units:
            style = _unit_style(unit)
            label = unit + (" (software)" if d.loc[d["compute_unit"] == unit,
                                                    "software_accelerator"].any() else "")
            handles.append(Line2D([], [], color="0.3", marker="o", linestyle="", markersize=8,
                                  markerfacecolor="none" if style else "0.3",
                                  markeredgewidth=2.0 if style else 0.5, label=label))
    handles += [Line2D([], [], color="crimson", marker="o", markerfacecolor="none",
                       linestyle="--", markersize=11, label="Pareto front")]
    return handles


def speedup_plot(summary: pd.DataFrame, path: Path) -> Path | None:
    """Grouped bars: per device and thread count, each model's speedup over its fp32 for every
    other recipe (log scale, 1× marked). None when there is no speedup to draw."""
    d = summary[(summary["recipe"] != BASELINE) | (summary["compute_unit"] != BASELINE_UNIT)]
    panels = [(dev, unit, thr) for dev in devices(summary)
              for unit in dict.fromkeys(d.loc[d["device"] == dev, "compute_unit"])
              for thr in sorted(d.loc[d["device"] == dev, "threads"].dropna().unique())]
    panels = [(dev, unit, thr) for dev, unit, thr in panels
              if d[(d["device"] == dev) & (d["compute_unit"] == unit)
                   & (d["threads"] == thr)]["speedup_vs_fp32"].notna().any()]
    if not panels:
        return None
    recipes = _recipes(d)
    colors = _colors(recipes)
    models = list(dict.fromkeys(summary["model"]))
    fig = _figure(max(7.0, 1.5 * len(models) * max(1, len(recipes)) / 2 + 3), 3.6 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    width = 0.8 / max(1, len(recipes))
    for ax, (dev, unit, thr) in zip(axes, panels):
        p = d[(d["device"] == dev) & (d["compute_unit"] == unit) & (d["threads"] == thr)]
        all_y = [float(v) for v in p["speedup_vs_fp32"].dropna()]
        for k, recipe in enumerate(recipes):
            xs, ys = [], []
            for i, model in enumerate(models):
                hit = p[(p["model"] == model) & (p["recipe"] == recipe)]
                x = i - 0.4 + width * (k + 0.5)
                if len(hit) and pd.notna(hit["speedup_vs_fp32"].iloc[0]):
                    xs.append(x)
                    ys.append(float(hit["speedup_vs_fp32"].iloc[0]))
                elif len(hit):  # measured, but failed or without an fp32 to compare with
                    why = "error" if hit["status"].iloc[0] != "ok" else "no fp32"
                    ax.text(x, 1.0, why, ha="center", va="bottom", fontsize=7, rotation=90,
                            color="firebrick")
            # Bars grow from 1× so a slower recipe hangs below the line instead of looking
            # like a short speedup.
            bars = ax.bar(xs, [y - 1.0 for y in ys], bottom=1.0, width=width * 0.95,
                          color=colors[recipe], label=recipe, edgecolor="black", linewidth=0.4)
            ax.bar_label(bars, labels=[f"{y:.2f}×" if y >= 0.1 else f"{y:.3f}×" for y in ys],
                         fontsize=7, padding=2)
        ax.axhline(1.0, color="black", linewidth=0.9, linestyle="--")
        ax.set_yscale("log")
        _plain_log_axis(ax.yaxis, "×")
        lo, hi = min([1.0] + all_y), max([1.0] + all_y)
        ax.set_ylim(lo / 1.6, hi * 1.6)
        ax.set_xticks(range(len(models)), models)
        ax.set_xlim(-0.6, len(models) - 0.4)
        ax.set_ylabel("speedup vs fp32 (×, log scale)")
        on = "" if unit == BASELINE_UNIT else f" on {unit}"
        ax.set_title(f"{dev}{on}, {int(thr)} thread{'s' if thr != 1 else ''} "
                     f"(p50 of fp32 on the CPU ÷ p50 of recipe; above 1 = faster)", fontsize=10)
        ax.grid(True, axis="y", which="both", alpha=0.3)
    axes[0].legend(title="recipe", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    axes[-1].set_xlabel("model")
    fig.suptitle("Speedup of each quantization recipe over the model's fp32", fontsize=12)
    fig.savefig(path, dpi=DPI)
    return path


def make_plots(summary: pd.DataFrame, out_dir: Path) -> tuple[dict, dict]:
    """All plots into out_dir; returns ({caption: path} for the ones that had data, {device:
    energy-vs-accuracy plot} for the energy section)."""
    plots: dict[str, Path] = {}
    used: set[str] = set()
    energy: dict[str, Path] = {}  # device -> plot, drawn in the energy section
    for dev in devices(summary):
        name, n = slug(dev), 2
        while name in used:  # "pi@a" and "pi_a" must not overwrite each other's plot
            name, n = f"{slug(dev)}-{n}", n + 1
        used.add(name)
        p = latency_accuracy_plot(summary, dev, out_dir / f"latency_accuracy_{name}.png")
        if p:
            plots[f"Latency vs accuracy, {dev}"] = p
        if summary.loc[summary["device"] == dev, "energy_mj"].notna().any():
            p = energy_accuracy_plot(summary, dev, out_dir / f"energy_accuracy_{name}.png")
            if p:
                energy[dev] = p
    p = speedup_plot(summary, out_dir / "speedup_vs_fp32.png")
    if p:
        plots["Speedup vs fp32 per recipe"] = p
    return plots, energy


def energy_accuracy_plot(summary: pd.DataFrame, device: str, path: Path) -> Path | None:
    """mJ per inference (log x) against accuracy with the Pareto front: the battery's view."""
    return latency_accuracy_plot(summary, device, path, x="energy_mj",
                                 x_ci=("energy_ci_low", "energy_ci_high"),
                                 x_label="energy per inference (mJ, log scale)",
                                 title="Energy vs accuracy")
