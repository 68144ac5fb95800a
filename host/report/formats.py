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


# ----------------------------------------------------------------------------------------------
# One display cell from several columns of a summary row (tables.build_summary's), shared by the
# per-device table and the terminal's headline so both say the same.

def fmt_column_ci(d: pd.DataFrame, col: str, fmt, low: str | None = None,
                  high: str | None = None) -> pd.Series:
    """Column `col` of every row with its interval, the bounds in `<col>_ci_low`/`_high` unless
    named."""
    low, high = low or f"{col}_ci_low", high or f"{col}_ci_high"
    return d.apply(lambda r: fmt_ci(fmt(r[col]), r[low], r[high], fmt), axis=1)


def fmt_delta(row: pd.Series) -> str:
    """"−1.4 (1 of 72 images changed, p = 1.00: no evidence of a difference)": the accuracy
    difference against fp32 on the CPU with McNemar's exact test on the same images."""
    text = fmt_pp(row["delta_accuracy_pp"])
    if not text or pd.isna(row["mcnemar_p"]):
        return text
    verdict = ("differs" if row["mcnemar_p"] < 0.05 else "no evidence of a difference")
    return (f"{text} ({int(row['images_changed'])} of {int(row['n_test'])} images changed, "
            f"p = {fmt_p(row['mcnemar_p'])}: {verdict})")


def fmt_delta_short(delta_pp, mcnemar_p) -> str:
    """"+0.0 (p 1.00)": the terminal's version of fmt_delta, short enough for a table line."""
    return fmt_pp(delta_pp) + (f" (p {fmt_p(mcnemar_p)})" if pd.notna(mcnemar_p) else "")


def fmt_speedup_ci(row: pd.Series, col: str) -> str:
    text = fmt_ci(fmt_speedup(row[col]), row[f"{col}_ci_low"], row[f"{col}_ci_high"],
                  fmt_speedup)
    if row.get(f"{col}_verdict") == "no measurable difference":
        text += ", no measurable difference"
    return text


def significance(row: pd.Series) -> str:
    """The "significant?" column: which of this row's differences from fp32 on the CPU are
    beyond the noise (accuracy: McNemar p < 0.05; speed: the speedup's interval excludes 1)."""
    parts = []
    if pd.notna(row["mcnemar_p"]):
        parts.append("accuracy " + ("yes" if row["mcnemar_p"] < 0.05 else "no"))
    verdict = row["speedup_vs_fp32_verdict"]
    if isinstance(verdict, str) and verdict:
        parts.append("speed " + ("no" if verdict == "no measurable difference" else "yes"))
    return ", ".join(parts)


def fmt_rounds(rounds, spread) -> str:
    """"3 (1.2 %)": how many rounds a row folded and the spread of their p50s."""
    if pd.notna(spread):
        return f"{int(rounds)} ({100 * spread:.1f} %)"
    return str(int(rounds)) if rounds else ""


def fmt_load(row: pd.Series) -> str:
    """"12.3 (cold 45.6, init 300)": the warm load, which compares recipes fairly (it does not
    depend on where the model sits in the plan), then the cold load and the accelerator's
    start-up that the first model of a process pays (results schema 4)."""
    warm = fmt_ms(row["warm_load_ms"])
    extra = [f"{name} {fmt_ms(row[col])}" for name, col in (("cold", "load_ms"),
                                                            ("init", "accelerator_init_ms"))
             if pd.notna(row[col])]
    if not warm:
        return ", ".join(extra)
    return warm + (f" ({', '.join(extra)})" if extra else "")


def fmt_runtime(row: pd.Series) -> str:
    """"litert 2.1.0 (XNNPACK off)": the runtime, its version, and XNNPACK when it was off."""
    parts = [str(row[c]) for c in ("runtime", "runtime_version") if pd.notna(row[c])]
    off = pd.notna(row["xnnpack"]) and not row["xnnpack"]
    return " ".join(parts) + (" (XNNPACK off)" if off else "")


def verdicts_per_recipe(pairs, verdict) -> str:
    """One line per recipe of a pairs frame (converters, runtimes): `verdict(row)` per model,
    each said once."""
    lines = []
    for recipe, group in pairs.groupby("recipe", sort=False):
        said = "; ".join(dict.fromkeys(f"{r['base_model']}: {verdict(r)}"
                                       for _, r in group.iterrows()))
        lines.append(f"{recipe}: {said}")
    return "\n".join(lines)
