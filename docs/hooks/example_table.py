"""The default run's table (model, recipe, size, accuracy, Δ accuracy, p50, speedup, load), made
from results/example/summary.csv with the report's own number formats. The docs insert it where a
page says EXAMPLE_TABLE_MARKER; the README carries a copy, which tests/test_docs.py holds equal
to this, so the example's numbers are never typed by hand."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[2]
SUMMARY = REPO / "results" / "example" / "summary.csv"
EXAMPLE_TABLE_MARKER = "<!-- example-table: made from results/example/summary.csv -->"
HEADER = ("| model | recipe | size (MB) | accuracy (%, 95 % CI) | Δ acc vs fp32 (pp; images "
          "changed, McNemar p) | p50 (ms, 95 % CI) | speedup vs fp32 (95 % CI) | load (ms): warm "
          "(cold) |\n|---|---|---:|---:|---:|---:|---:|---:|")


def table(summary: Path = SUMMARY) -> str:
    from edgebench.host.report.formats import fmt_mb, fmt_ms, fmt_pct, fmt_pp, fmt_speedup

    rows = pd.read_csv(summary)
    lines = [HEADER]
    for _, r in rows.sort_values(["model", "recipe"], key=_recipe_order).iterrows():
        baseline = r["recipe"] == "fp32"
        delta = "—" if baseline else (f"{fmt_pp(r['delta_accuracy_pp'])} "
                                      f"({int(r['images_changed'])} of {int(r['n_test'])}, "
                                      f"p = {float(r['mcnemar_p']):.2f})")
        speedup = fmt_speedup(r["speedup_vs_fp32"]) + ("" if baseline else (
            f" ({fmt_speedup(r['speedup_vs_fp32_ci_low'])[:-1]}–"
            f"{fmt_speedup(r['speedup_vs_fp32_ci_high'])})"))
        cells = (r["model"], r["recipe"], fmt_mb(r["size_mb"]),
                 f"{fmt_pct(r['accuracy'])} ({fmt_pct(r['accuracy_ci_low'])}–"
                 f"{fmt_pct(r['accuracy_ci_high'])})", delta,
                 f"{fmt_ms(r['p50_ms'])} ({fmt_ms(r['p50_ci_low'])}–{fmt_ms(r['p50_ci_high'])})",
                 speedup, f"{fmt_ms(r['warm_load_ms'])} ({fmt_ms(r['load_ms'])})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _recipe_order(column: pd.Series) -> pd.Series:
    if column.name != "recipe":
        return column
    from edgebench.host.export.recipes import RECIPES
    order = list(RECIPES)
    return column.map(lambda r: order.index(r) if r in order else len(order))
