"""The report's "Runtimes" section: the same architecture and recipe measured on LiteRT and on
ONNX Runtime, on the same device, run, compute unit and thread count, side by side: p50 of each
with its interval, the ratio ORT / LiteRT with its interval (the report's block bootstrap of both
raw series), Δ accuracy with McNemar's exact test on the same test images, size, load and peak
memory. Where LiteRT has several conversion routes, ORT is paired with the default route's
model (onnx2tf: both start from the same exported ONNX). Empty unless both engines ran."""
from __future__ import annotations

import math

import pandas as pd

from edgebench.device.runtimes import RUNTIMES
from edgebench.host.report import stats
from edgebench.host.report.converters import LITERT_ROUTES, base_model
from edgebench.host.report.engines import LITERT, ORT, engine_label, engine_of_converter
from edgebench.host.report.formats import (fmt_ci, fmt_mb, fmt_ms, fmt_num, fmt_p, fmt_pct,
                                           fmt_pp, fmt_runtime, fmt_speedup, verdicts_per_recipe)
from edgebench.host.report.uncertainty import LATENCY_KEY, RawData, _key, mcnemar_between

_PAIR = ["device", "run_id", "base_model", "recipe", "compute_unit", "threads"]
# Each side's figures, copied from its summary row under "<side>_<column>".
_FIGURES = ("status", "error", "size_mb", "accuracy", "p50_ms", "p50_ci_low", "p50_ci_high",
            "warm_load_ms", "load_ms", "peak_rss_mb", "runtime", "runtime_version", "xnnpack",
            "converter", "model", "accelerator_device", "software_accelerator", "fallback_nodes")
SIDES = (("litert", LITERT), ("ort", ORT))
NO_DIFFERENCE = "no measurable difference"
_SHORT = {LITERT: "LiteRT", ORT: "ORT"}  # the table's column suffixes


def _preferred(rows: pd.DataFrame):
    """The LiteRT row ORT is compared with: the default route first, XNNPACK on (the agent's
    default), then the runtimes' order of preference; None without one."""
    if rows.empty:
        return None
    runtime_rank = {name: i for i, name in enumerate(RUNTIMES)}
    order = rows.assign(
        _c=rows["converter"].map(lambda c: LITERT_ROUTES.index(c) if c in LITERT_ROUTES
                                 else len(LITERT_ROUTES)),
        _x=rows["xnnpack"].map(lambda v: 0 if pd.notna(v) and bool(v) else 1),
        _r=rows["runtime"].map(lambda r: runtime_rank.get(r, len(runtime_rank))))
    return order.sort_values(["_c", "_x", "_r"], kind="stable").iloc[0]


def pairs(summary: pd.DataFrame, samples: pd.DataFrame | None,
          predictions: pd.DataFrame | None) -> pd.DataFrame:
    """One row per device × run × architecture × recipe × unit × threads measured on both
    engines: each side's figures (litert_*, ort_*), the p50 ratio ORT / LiteRT with its interval
    (from the raw `samples`) and McNemar between them on `predictions` (b = right on LiteRT
    only, c = right on ORT only)."""
    if summary.empty or "converter" not in summary:
        return pd.DataFrame()
    df = summary.assign(
        engine=summary["converter"].map(engine_of_converter),
        base_model=[base_model(m, c) for m, c in zip(summary["model"], summary["converter"])])
    if not {LITERT, ORT} <= set(df["engine"]):
        return pd.DataFrame()
    matched = []
    for key, group in df.groupby(_PAIR, sort=False, dropna=False):
        ort = group[group["engine"] == ORT]
        lite = _preferred(group[group["engine"] == LITERT])
        if not ort.empty and lite is not None:
            matched.append((key, lite, ort.iloc[0]))
    raw = _raw_of(matched, samples, predictions)
    rows = []
    for key, lite, ort in matched:
        row = dict(zip(_PAIR, key))
        for side, r in (("litert", lite), ("ort", ort)):
            row.update({f"{side}_{c}": r.get(c) for c in _FIGURES})
        row.update(_ratio(lite, ort, raw))
        row.update(mcnemar_between(lite, ort, raw))
        rows.append(row)
    return pd.DataFrame(rows)


def _raw_of(matched: list, samples, predictions) -> RawData:
    """The raw files of the paired rows only: keying every sample of a long run is slow."""
    shas = {r["sha256"] for _, lite, ort in matched for r in (lite, ort)}
    pick = (lambda df: df[df["sha256"].isin(shas)] if df is not None and "sha256" in df
            else df)
    return RawData(pick(samples), pick(predictions))


def _ratio(lite, ort, raw: RawData) -> dict:
    """p50(ORT) / p50(LiteRT), with the 95 % interval of the two rows' bootstrapped p50s."""
    out = {"ratio": math.nan, "ratio_ci_low": math.nan, "ratio_ci_high": math.nan}
    if lite["status"] != "ok" or ort["status"] != "ok" or not lite["p50_ms"]:
        return out
    out["ratio"] = float(ort["p50_ms"]) / float(lite["p50_ms"])
    mine, theirs = raw.medians(_key(ort, LATENCY_KEY)), raw.medians(_key(lite, LATENCY_KEY))
    out["ratio_ci_low"], out["ratio_ci_high"] = stats.speedup_ci(mine, theirs)
    return out


def speed_verdict(row) -> str:
    """Which engine is faster, judged by the ratio's interval (containing 1: no difference)."""
    lo, hi = row["ratio_ci_low"], row["ratio_ci_high"]
    if pd.isna(row["ratio"]):
        return ""
    if pd.isna(lo) or pd.isna(hi):
        return "no interval (no latency samples)"
    if lo <= 1.0 <= hi:
        return NO_DIFFERENCE
    faster = ORT if hi < 1.0 else LITERT
    return f"{engine_label(faster)} faster"


def accuracy_verdict(row) -> str:
    if row["mcnemar_p"] is None or pd.isna(row["mcnemar_p"]):
        return "accuracy not compared (no per-image predictions)"
    if row["mcnemar_b"] == row["mcnemar_c"]:
        return f"same accuracy (p {fmt_p(row['mcnemar_p'])})"
    better = LITERT if row["mcnemar_b"] > row["mcnemar_c"] else ORT
    sig = "significant" if row["mcnemar_p"] < stats.ALPHA else "not significant"
    return f"{engine_label(better)} more accurate, {sig} (p {fmt_p(row['mcnemar_p'])})"


def verdict(row, with_ratio: bool = True) -> str:
    """Which engine is faster and which more accurate here; the ratio for the terminal (the
    table has its own column)."""
    failed = [engine_label(engine) for side, engine in SIDES if row[f"{side}_status"] != "ok"]
    if failed:
        return f"{' and '.join(failed)} failed"
    ratio = (f" (ORT/LiteRT {_ratio_cell(row)})" if with_ratio else "")
    return f"{speed_verdict(row)}{ratio}, {accuracy_verdict(row)}"


def _ratio_cell(row) -> str:
    return fmt_ci(fmt_speedup(row["ratio"]), row["ratio_ci_low"], row["ratio_ci_high"],
                  fmt_speedup)


def _side_cells(r, side: str, name: str) -> dict:
    if r[f"{side}_status"] != "ok":
        return {f"p50 (ms) {name}": "error", f"size (MB) {name}": "",
                f"load (ms) {name}": "", f"peak memory (MB) {name}": ""}
    load = r[f"{side}_warm_load_ms"]
    return {f"p50 (ms) {name}": fmt_ci(fmt_ms(r[f"{side}_p50_ms"]), r[f"{side}_p50_ci_low"],
                                       r[f"{side}_p50_ci_high"], fmt_ms),
            f"size (MB) {name}": fmt_mb(r[f"{side}_size_mb"]),
            f"load (ms) {name}": fmt_ms(load if pd.notna(load) else r[f"{side}_load_ms"]),
            f"peak memory (MB) {name}": fmt_num(r[f"{side}_peak_rss_mb"], 1)}


def _runtimes_cell(r) -> str:
    """Both runtimes, ORT's with the execution provider its unit took (off the CPU)."""
    lite = {c: r[f"litert_{c}"] for c in ("runtime", "runtime_version", "xnnpack")}
    ort = {c: r[f"ort_{c}"] for c in ("runtime", "runtime_version", "xnnpack")}
    device = r.get("ort_accelerator_device")
    provider = str(device).split(" (")[0].strip() if pd.notna(device) and device else ""
    on = ""
    if provider and provider != "CPUExecutionProvider":
        on = f" on {provider}{', software' if _true(r.get('ort_software_accelerator')) else ''}"
    return f"{fmt_runtime(lite)} ({r['litert_converter']}) · {fmt_runtime(ort)}{on}"


def _true(v) -> bool:
    return bool(v) if v is not None and not pd.isna(v) else False


def fallback_cell(cell) -> str:
    """fallback_nodes (device/schema.py: "provider:op_type:node" joined by ";") for people:
    "QuantizeLinear ×8 on CPUExecutionProvider"; "" when no node ran off the provider."""
    if cell is None or pd.isna(cell) or not str(cell).strip():
        return ""
    counts: dict = {}
    for entry in str(cell).split(";"):
        provider, _, rest = entry.partition(":")
        op_type = rest.partition(":")[0]
        counts[(provider, op_type)] = counts.get((provider, op_type), 0) + 1
    return ", ".join(f"{op} ×{n} on {provider}" for (provider, op), n in sorted(counts.items()))


def table(p: pd.DataFrame) -> pd.DataFrame:
    """The pairs for people: the figures side by side, then the ratio, Δ accuracy and verdict."""
    out = []
    # ORT's rows off the CPU name the nodes its provider left to another (a column of its own
    # only then: a CPU-only report has none)
    on_gpu = (p["compute_unit"].astype(str) != "cpu").any()
    for _, r in p.iterrows():
        line = {"device": r["device"], "model": r["base_model"], "recipe": r["recipe"],
                "unit": r["compute_unit"],
                "threads": int(r["threads"]) if pd.notna(r["threads"]) else "",
                "runtimes": _runtimes_cell(r)}
        p50s = [_side_cells(r, side, _SHORT[engine]) for side, engine in SIDES]
        for cells in p50s:  # the p50s first, then the ratio between them
            line.update({k: v for k, v in cells.items() if k.startswith("p50")})
        line["ORT/LiteRT p50"] = _ratio_cell(r)
        line["accuracy (%) LiteRT"] = fmt_pct(r["litert_accuracy"])
        both_ok = r["litert_status"] == "ok" and r["ort_status"] == "ok"
        delta = 100 * (r["ort_accuracy"] - r["litert_accuracy"]) if both_ok else math.nan
        line["Δ acc ORT − LiteRT (pp)"] = fmt_pp(delta)
        line["McNemar b/c (p)"] = (f"{int(r['mcnemar_b'])}/{int(r['mcnemar_c'])} "
                                   f"(p {fmt_p(r['mcnemar_p'])})"
                                   if r["mcnemar_b"] is not None and pd.notna(r["mcnemar_b"])
                                   else "")
        for cells in p50s:
            line.update({k: v for k, v in cells.items() if not k.startswith("p50")})
        if on_gpu:
            measured = r["ort_status"] == "ok" and str(r["compute_unit"]) != "cpu"
            line["ORT nodes off its provider"] = (fallback_cell(r["ort_fallback_nodes"])
                                                  or ("none" if measured else ""))
        line["verdict"] = verdict(r, with_ratio=False)
        out.append(line)
    return pd.DataFrame(out)


def headline(p: pd.DataFrame) -> str:
    """One line per recipe: the verdict per model (each device × unit × threads it ran on)."""
    return verdicts_per_recipe(p, verdict)


def blocks(p: pd.DataFrame) -> list[tuple]:
    """The section, from pairs()' frame (empty: no section)."""
    if p.empty:
        return []
    return [("h1", "Runtimes: LiteRT vs ONNX Runtime"),
            ("p", "The same architecture and recipe measured on LiteRT (.tflite) and on ONNX "
                  "Runtime (.onnx, the ort route: the ONNX export onnx2tf starts from, quantized "
                  "by onnxruntime.quantization) on the same device, in the same run, with the "
                  "same compute unit and thread count. Where LiteRT has several routes, ORT is "
                  "paired with onnx2tf's model; the ort route is compared here, not under "
                  "Converters. p50: bootstrap 95 % interval. ORT/LiteRT p50: the ratio of the "
                  "two p50s with the interval of the same two-level block bootstrap (below 1 = "
                  "ONNX Runtime faster; an interval containing 1 is no measurable difference). "
                  "Δ accuracy: ORT − LiteRT on the same test images; McNemar b/c: images right "
                  "on LiteRT only / on ORT only, with McNemar's exact p. Load: the warm load; "
                  "peak memory: the row's peak resident set. Off the CPU, ORT's runtime names "
                  "the execution provider its unit took, and ORT nodes off its provider the "
                  "nodes ORT ran elsewhere (a profiled run after the timed loop)."),
            ("table", table(p)),
            ("p", "Per recipe: " + " · ".join(headline(p).splitlines()))]
