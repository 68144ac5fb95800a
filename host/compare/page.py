"""A comparison written out: compare.csv (every figure as a column), compare.md and a
self-contained compare.html (through the report's renderer), and compare.png, the p50 ratios with
their intervals, one line per row."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from edgebench.host.compare.measures import Comparison, headline
from edgebench.host.report import render
from edgebench.host.report.formats import fmt_ci, fmt_ms, fmt_p, fmt_threads, text_table

CSV_FILE, MARKDOWN_FILE, HTML_FILE, PLOT_FILE = ("compare.csv", "compare.md", "compare.html",
                                                 "compare.png")


@dataclass
class ComparePaths:
    csv: Path
    markdown: Path
    html: Path
    plot: Path | None


def _ratio(v) -> str:
    return "" if pd.isna(v) else f"{float(v):.3f}×"


def _pp(v) -> str:
    return "" if pd.isna(v) else f"{round(float(v), 1) + 0.0:+.1f}"


def view(comp: Comparison) -> pd.DataFrame:
    """The table people read: one line per matched row, each change with its interval."""
    t = comp.table
    out = pd.DataFrame({
        "device": t["device"] if (t["device"] == t["device_b"]).all()
        else t["device"] + " → " + t["device_b"],
        "model": t["model"], "unit": t["compute_unit"], "threads": t["threads"].map(fmt_threads),
        "p50 A (ms)": t["p50_a_ms"].map(fmt_ms), "p50 B (ms)": t["p50_b_ms"].map(fmt_ms),
        "p50 B/A (95 % CI)": [fmt_ci(_ratio(r), lo, hi, _ratio) for r, lo, hi in
                              zip(t["p50_ratio"], t["p50_ratio_low"], t["p50_ratio_high"])],
        "speed": t["p50_verdict"],
        "Δ accuracy (pp, 95 % CI)": [fmt_ci(_pp(d), lo, hi, _pp) for d, lo, hi in
                                     zip(t["delta_accuracy_pp"], t["delta_accuracy_low_pp"],
                                         t["delta_accuracy_high_pp"])],
        "accuracy p": t["accuracy_p"].map(fmt_p),
        "accuracy": t["accuracy_verdict"],
    })
    for name, label in (("energy", "energy B/A (95 % CI)"), ("memory", "peak memory B/A")):
        if t[f"{name}_ratio"].notna().any():
            out[label] = [fmt_ci(_ratio(r), lo, hi, _ratio) for r, lo, hi in
                          zip(t[f"{name}_ratio"], t[f"{name}_ratio_low"],
                              t[f"{name}_ratio_high"])]
            out[f"{name}"] = t[f"{name}_verdict"]
    return out


def terminal(comp: Comparison) -> str:
    return text_table(view(comp))


def ratio_plot(comp: Comparison, path: Path) -> Path | None:
    t = comp.table[comp.table["p50_ratio"].notna()]
    if t.empty:
        return None
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = (t["device"] + " " + t["model"] + " " + t["compute_unit"] + " ×"
              + t["threads"].map(fmt_threads)).tolist()
    colors = {"slower": "#c0392b", "faster": "#1e8449"}
    fig, ax = plt.subplots(figsize=(7.5, 0.9 + 0.32 * len(t)), dpi=110)
    for y, (_, row) in enumerate(t.iterrows()):
        color = colors.get(row["p50_verdict"], "#555555")
        lo, hi = row["p50_ratio_low"], row["p50_ratio_high"]
        if pd.notna(lo) and pd.notna(hi):
            ax.plot([lo, hi], [y, y], color=color, lw=2)
        ax.plot([row["p50_ratio"]], [y], "o", color=color)
    ax.axvline(1.0, color="#999999", ls="--", lw=1)
    ax.set_yticks(range(len(t)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"p50 ratio {comp.label_b} ÷ {comp.label_a} (95 % interval); > 1 = slower")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_page(comp: Comparison, out_dir: Path) -> ComparePaths:
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / CSV_FILE
    comp.table.to_csv(csv, index=False)
    plot = ratio_plot(comp, out_dir / PLOT_FILE)
    blocks = [
        ("p", f"Run B: {comp.label_b}, compared with run A: {comp.label_a}. Rows matched on "
              f"{', '.join(comp.match)}."),
        ("p", headline(comp) + "."),
        ("p", "p50 B/A: the ratio of the medians, with a 95 % interval from a two-level "
              "bootstrap of both runs' raw latencies (rounds resampled, then moving blocks of "
              "√n samples within a round); an interval containing 1 is 'no measurable "
              "difference'. Δ accuracy: B − A in percentage points; McNemar's exact test when "
              "both runs classified the same test images (paired by image, with a paired "
              "bootstrap interval), Fisher's exact test and Newcombe's interval otherwise; "
              "'no measurable difference' at p ≥ 0.05. Energy and peak memory: the ratio of the "
              "medians over rounds, with a bootstrap over rounds when both runs have two or "
              "more; where both runs kept their power readings (power_samples.csv), energy's "
              "interval comes from them instead (each timed window's readings resampled in "
              "blocks, as in the report), so one round is enough (compare.csv: "
              "energy_interval_from)."),
        ("table", view(comp)),
    ]
    if plot:
        blocks.append(("img", "p50 ratio B ÷ A with its 95 % interval", plot))
    if comp.notes:
        blocks += [("h1", "Notes"), ("ul", comp.notes)]
    doc = render.Document(title="edgebench comparison", blocks=blocks)
    md = out_dir / MARKDOWN_FILE
    md.write_text(render.to_markdown(doc, out_dir), encoding="utf-8")
    html = out_dir / HTML_FILE
    html.write_text(render.to_html(doc), encoding="utf-8")
    return ComparePaths(csv=csv, markdown=md, html=html, plot=plot)


__all__ = ["ComparePaths", "write_page", "terminal", "view"]
