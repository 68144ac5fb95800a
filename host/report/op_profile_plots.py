"""The pictures of "Where the time goes" (op_profile.py folds the profiles they read): op-kind
shares stacked per recipe and runtime, and fp32 against int8 per op kind, one picture per device.
Drawn on matplotlib's Agg canvas directly, as plots.py does."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from edgebench.host.report.plots import DPI
from edgebench.host.report.tables import RECIPE_ORDER

# The op kinds drawn by name in the share picture; the rest of a device's kinds are "other".
MAX_KINDS = 9
OTHER = "other"
RESOLVED_SHARE = 0.9


def _figure(width: float, height: float):
    from matplotlib.figure import Figure
    return Figure(figsize=(width, height), dpi=DPI, layout="constrained")


def _recipe_rank(recipe: str) -> int:
    return RECIPE_ORDER.index(recipe) if recipe in RECIPE_ORDER else len(RECIPE_ORDER)


def _bar_label(recipe: str, series: str, threads, several_threads: bool) -> str:
    label = f"{recipe}\n{series}"
    return label + (f"\n{int(threads)} thr" if several_threads and pd.notna(threads) else "")


def share_plot(folded: pd.DataFrame, device: str, path: Path) -> Path | None:
    """One panel per architecture: a bar per recipe × runtime (× threads where several), its
    height split by op kind in shares of the row's total time."""
    d = folded[folded["device"] == device].assign(share=lambda f: f["share"].clip(lower=0))
    if d.empty:
        return None
    totals = d.groupby("kind")["share"].sum().sort_values(ascending=False)
    named = list(totals.index[:MAX_KINDS])
    d = d.assign(kind=d["kind"].where(d["kind"].isin(named), OTHER))
    kinds = named + ([OTHER] if (d["kind"] == OTHER).any() else [])
    several = d["threads"].nunique() > 1
    archs = list(dict.fromkeys(d["architecture"]))
    from matplotlib import colormaps
    cmap = colormaps["tab10"]
    colors = {k: cmap(i % 10) for i, k in enumerate(kinds)}
    bars_per = max(len(d[d["architecture"] == a].groupby(["recipe", "series", "threads"]))
                   for a in archs)
    fig = _figure(max(6.5, 0.9 * bars_per + 3.5), 3.4 * len(archs))
    axes = fig.subplots(len(archs), 1, squeeze=False)[:, 0]
    for ax, arch in zip(axes, archs):
        a = d[d["architecture"] == arch]
        shares = a.pivot_table(index=["recipe", "series", "threads"], columns="kind",
                               values="share", aggfunc="sum", fill_value=0.0)
        order = sorted(shares.index, key=lambda k: (_recipe_rank(k[0]), k[0], k[1], k[2]))
        shares = shares.reindex(order)
        bottom = [0.0] * len(shares)
        for kind in kinds:
            if kind not in shares:
                continue
            values = [100 * v for v in shares[kind]]
            ax.bar(range(len(shares)), values, bottom=bottom, color=colors[kind], label=kind,
                   edgecolor="black", linewidth=0.3)
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(range(len(shares)), [_bar_label(r, s, t, several) for r, s, t in order],
                      fontsize=8)
        ax.set_ylim(0, 105)
        ax.set_ylabel("share of the row's time (%)")
        ax.set_title(f"{arch} on {device}", fontsize=10)
    axes[0].legend(title="op kind", fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.suptitle("Where the time goes: op kinds' shares per recipe and runtime", fontsize=12)
    fig.savefig(path, dpi=DPI)
    return path


def _fp32_int8_panels(d: pd.DataFrame) -> list:
    """(architecture, series, threads) with a profile of both fp32 and int8."""
    panels = []
    for key, group in d.groupby(["architecture", "series", "threads"], sort=False):
        if {"fp32", "int8"} <= set(group["recipe"]):
            panels.append(key)
    return panels


def fp32_int8_kinds(p: pd.DataFrame) -> pd.DataFrame:
    """One panel's lines (one architecture × runtime × threads, fp32 and int8; medians clipped
    at 0) per op kind: fp32 and int8 ms (the sums of the kind's ops), the kinds fp32 spends
    least on first, and ratio = fp32 ÷ int8, NaN unless the kind's time is resolved in both
    recipes: its ops told apart from 0 make up RESOLVED_SHARE of it (so a LiteRT conv kind of
    20 ops keeps its ratio when one small convolution is below resolution)."""
    ms = p.pivot_table(index="kind", columns="recipe", values="median_ms", aggfunc="sum",
                       fill_value=0.0).reindex(columns=["fp32", "int8"], fill_value=0.0)
    told = p.assign(told=p["median_ms"].where(p["resolved"], 0.0)).pivot_table(
        index="kind", columns="recipe", values="told", aggfunc="sum", fill_value=0.0)
    share = told.reindex(index=ms.index, columns=ms.columns, fill_value=0.0) / ms.where(ms > 0)
    ratio = (ms["fp32"] / ms["int8"].where(ms["int8"] > 0)).where(
        (share >= RESOLVED_SHARE).all(axis=1))
    return ms.assign(ratio=ratio).sort_values("fp32", ascending=True)


def fp32_int8_plot(folded: pd.DataFrame, device: str, path: Path) -> Path | None:
    """One panel per architecture × runtime (× threads) profiled in fp32 and int8: each op
    kind's time per inference in both, the kinds fp32 spends most on first, and fp32 ÷ int8."""
    d = folded[folded["device"] == device].assign(
        median_ms=lambda f: f["median_ms"].clip(lower=0))
    panels = _fp32_int8_panels(d)
    if not panels:
        return None
    fig = _figure(8.5, 3.2 * len(panels))
    axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
    for ax, (arch, series, threads) in zip(axes, panels):
        kinds = fp32_int8_kinds(d[(d["architecture"] == arch) & (d["series"] == series)
                                  & (d["threads"] == threads) & d["recipe"].isin(["fp32", "int8"])])
        ys = range(len(kinds))  # barh draws bottom-up: heaviest on top
        ax.barh([y + 0.2 for y in ys], kinds["fp32"], height=0.4, color="tab:blue",
                label="fp32")
        ax.barh([y - 0.2 for y in ys], kinds["int8"], height=0.4, color="tab:orange",
                label="int8")
        for y, (f, i, ratio) in enumerate(zip(kinds["fp32"], kinds["int8"], kinds["ratio"])):
            if f > 0 and pd.notna(ratio):
                ax.text(max(f, i), y, f"  {ratio:.2g}×", va="center", fontsize=7)
        ax.set_yticks(list(ys), list(kinds.index), fontsize=8)
        ax.set_xlabel("time per inference (ms, sum of the kind's ops)")
        thr = f", {int(threads)} thread{'s' if threads != 1 else ''}" if pd.notna(threads) else ""
        ax.set_title(f"{arch} on {series}{thr} (label: fp32 ÷ int8, above 1 = int8 faster)",
                     fontsize=10)
        ax.margins(x=0.15)
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(f"fp32 vs int8 per op kind on {device}", fontsize=12)
    fig.savefig(path, dpi=DPI)
    return path


def plots(folded: pd.DataFrame, device: str, out_dir: Path, name: str) -> dict[str, Path]:
    """{caption: path} of the pictures this device's profiles allow."""
    out = {}
    path = share_plot(folded, device, out_dir / f"op_shares_{name}.png")
    if path:
        out[f"Op kinds' shares per recipe and runtime, {device}"] = path
    path = fp32_int8_plot(folded, device, out_dir / f"op_fp32_int8_{name}.png")
    if path:
        out[f"fp32 vs int8 per op kind, {device}"] = path
    return out
