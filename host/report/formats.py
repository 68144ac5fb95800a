"""Formatting for people: fixed rules so every rendering (Markdown, HTML, the terminal) shows the
same rounded numbers, intervals included."""
from __future__ import annotations

import pandas as pd

from edgebench.device.units import BASELINE_UNIT


def fmt_ms(v) -> str:
    if pd.isna(v):
        return ""
    v = float(v)
    if v < 1:  # tiny test models run in microseconds: keep three significant digits
        return f"{v:.3g}"
    digits = 2 if v < 10 else 1 if v < 100 else 0
    return f"{v:,.{digits}f}"


def fmt_pct(v) -> str:
    return "" if pd.isna(v) else f"{float(v) * 100:.1f}"


def fmt_pp(v) -> str:
    # + 0.0 turns a -0.04 rounded to -0.0 into +0.0: no sign on nothing
    return "" if pd.isna(v) else f"{round(float(v), 1) + 0.0:+.1f}"


def fmt_speedup(v) -> str:
    if pd.isna(v):
        return ""
    v = float(v)
    return f"{v:.2f}×" if v >= 0.1 else f"{v:.3f}×"


def fmt_mb(v) -> str:
    if pd.isna(v):
        return ""
    v = float(v)
    return f"{v:.3g}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:,.0f}"


def fmt_num(v, digits: int = 3) -> str:
    return "" if pd.isna(v) else f"{float(v):.{digits}f}"


def fmt_mj(v) -> str:
    """Energy (mJ), four significant digits; + 0.0: no sign on a zero."""
    return "" if pd.isna(v) else f"{float(v) + 0.0:.4g}"


def fmt_unit(row: pd.Series) -> str:
    """The compute unit as people read it: "gpu (llvmpipe, software)"."""
    unit = str(row["compute_unit"])
    device = row["accelerator_device"]
    if unit == BASELINE_UNIT or pd.isna(device) or not str(device).strip():
        return unit
    name = str(device).split(",")[0].split(" (")[0].strip()
    return f"{unit} ({name}{', software' if row['software_accelerator'] else ''})"


def fmt_threads(v) -> str:
    return "" if pd.isna(v) else str(int(v))


def fmt_ci(value: str, low, high, fmt) -> str:
    """"86.1 (76.3–92.2)": a displayed value with its 95 % interval, when there is one."""
    if not value or pd.isna(low) or pd.isna(high):
        return value
    return f"{value} ({fmt(low).rstrip('×')}–{fmt(high)})"


def fmt_p(p) -> str:
    if pd.isna(p):
        return ""
    return f"{float(p):.2g}" if p < 0.01 else f"{float(p):.2f}"


def looks_numeric(value) -> bool:
    """Whether a display cell is a number ("1,234", "+0.5", "3.00×"), for right alignment."""
    s = str(value).replace(",", "").rstrip("×").strip()
    try:
        float(s)
        return True
    except ValueError:
        return False


def text_table(table: pd.DataFrame) -> str:
    """A fixed-width plain-text table (for the terminal), numbers right-aligned."""
    cols = list(table.columns)
    cells = [[str(v) for v in row] for row in table.itertuples(index=False)]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(cols)]
    right = [bool(cells) and all(looks_numeric(r[i]) or not r[i] for r in cells)
             and any(r[i] for r in cells) for i in range(len(cols))]

    def line(vals):
        return "  ".join(v.rjust(w) if r else v.ljust(w)
                         for v, w, r in zip(vals, widths, right)).rstrip()

    return "\n".join([line(cols), line(["-" * w for w in widths])] + [line(r) for r in cells])
