"""The report's "converters" section: the same checkpoint and recipe built by two routes
(export/converters: onnx2tf and litert-torch), measured on the same device and test images, side
by side: size, agreement with PyTorch, p50 and accuracy with their intervals, and McNemar's exact
test between the two routes' predictions on the same images. Empty unless the results hold models
of more than one LiteRT route: a route whose models run on another runtime (ort: ONNX Runtime) is
a second runtime, compared in the Runtimes section (runtimes.py), not a second route here."""
from __future__ import annotations

import pandas as pd

from edgebench.host.export.converters import CONVERTERS, DEFAULT_CONVERTER
from edgebench.host.report import stats
from edgebench.host.report.engines import LITERT, engine_of_converter
from edgebench.host.report.formats import (fmt_ci, fmt_mb, fmt_ms, fmt_p, fmt_pct,
                                           verdicts_per_recipe)
from edgebench.host.report.uncertainty import RawData, mcnemar_between

_PAIR = ["device", "base_model", "recipe", "compute_unit", "threads"]
# Each LiteRT route as the section's text describes it.
ROUTE_TEXT = {
    "onnx2tf": "PyTorch → ONNX → TensorFlow → TFLite",
    "litert-torch": "torch.export → litert-torch, quantized by ai-edge-quantizer",
}
# The routes compared here: those whose models run on LiteRT, in the registry's order.
LITERT_ROUTES = [c for c in CONVERTERS if engine_of_converter(c) == LITERT]


def base_model(model: str, converter: str) -> str:
    """The architecture of a summary row's model (resnet18.litert-torch -> resnet18)."""
    suffix = f".{converter}"
    return model[:-len(suffix)] if converter != DEFAULT_CONVERTER and model.endswith(suffix) \
        else model


def pairs(summary: pd.DataFrame, raw: RawData) -> pd.DataFrame:
    """One row per device × model × recipe × compute unit × threads measured by both routes (the
    first two LiteRT routes of the table present): each route's figures, and McNemar between
    them (b = right under the first route only, c = under the second only)."""
    if summary.empty or "converter" not in summary:
        return pd.DataFrame()
    present = [c for c in LITERT_ROUTES if c in set(summary["converter"])]
    if len(present) < 2:
        return pd.DataFrame()
    a_name, b_name = present[:2]
    df = summary.assign(base_model=[base_model(m, c) for m, c in zip(summary["model"],
                                                                  summary["converter"])])
    rows = []
    for key, group in df.groupby(_PAIR, sort=False, dropna=False):
        a = group[group["converter"] == a_name]
        b = group[group["converter"] == b_name]
        if a.empty or b.empty:
            continue
        a, b = a.iloc[0], b.iloc[0]
        row = dict(zip(_PAIR, key), first=a_name, second=b_name)
        for tag, r in (("a", a), ("b", b)):
            row.update({f"{tag}_status": r["status"], f"{tag}_error": r.get("error"),
                        f"{tag}_size_mb": r["size_mb"], f"{tag}_agreement": r["agreement"],
                        f"{tag}_accuracy": r["accuracy"],
                        f"{tag}_accuracy_ci": (r["accuracy_ci_low"], r["accuracy_ci_high"]),
                        f"{tag}_p50": r["p50_ms"], f"{tag}_p50_ci": (r["p50_ci_low"],
                                                                    r["p50_ci_high"])})
        row.update(mcnemar_between(a, b, raw))
        rows.append(row)
    return pd.DataFrame(rows)


def verdict(row) -> str:
    """Which route is more accurate here, and whether the difference is significant."""
    if row["a_status"] != "ok" or row["b_status"] != "ok":
        failed = [n for n, s in ((row["first"], row["a_status"]), (row["second"], row["b_status"]))
                  if s != "ok"]
        return f"{' and '.join(failed)} failed"
    if row["mcnemar_p"] is None or pd.isna(row["mcnemar_p"]):
        return "not compared (no per-image predictions)"
    if row["mcnemar_b"] == row["mcnemar_c"]:
        return f"same accuracy (p {fmt_p(row['mcnemar_p'])})"
    better = row["first"] if row["mcnemar_b"] > row["mcnemar_c"] else row["second"]
    sig = "significant" if row["mcnemar_p"] < stats.ALPHA else "not significant"
    return f"{better} more accurate, {sig} (p {fmt_p(row['mcnemar_p'])})"


def table(p: pd.DataFrame) -> pd.DataFrame:
    """The pairs for people: one column per figure and route."""
    out = []
    for _, r in p.iterrows():
        line = {"device": r["device"], "model": r["base_model"], "recipe": r["recipe"],
                "unit": r["compute_unit"], "threads": int(r["threads"])
                if pd.notna(r["threads"]) else ""}
        for tag, name in (("a", r["first"]), ("b", r["second"])):
            if r[f"{tag}_status"] != "ok":
                line.update({f"size (MB) {name}": "error", f"agreement (%) {name}": "",
                             f"accuracy (%) {name}": "", f"p50 (ms) {name}": ""})
                continue
            line[f"size (MB) {name}"] = fmt_mb(r[f"{tag}_size_mb"])
            line[f"agreement (%) {name}"] = fmt_pct(r[f"{tag}_agreement"])
            line[f"accuracy (%) {name}"] = fmt_ci(fmt_pct(r[f"{tag}_accuracy"]),
                                                  *r[f"{tag}_accuracy_ci"], fmt_pct)
            line[f"p50 (ms) {name}"] = fmt_ci(fmt_ms(r[f"{tag}_p50"]), *r[f"{tag}_p50_ci"],
                                              fmt_ms)
        line["McNemar b/c"] = (f"{int(r['mcnemar_b'])}/{int(r['mcnemar_c'])}"
                               if r["mcnemar_b"] is not None and pd.notna(r["mcnemar_b"]) else "")
        line["verdict"] = verdict(r)
        out.append(line)
    return pd.DataFrame(out)


def headline(p: pd.DataFrame) -> str:
    """One line per recipe: the verdict per model (each device × unit × threads it ran on)."""
    return verdicts_per_recipe(p, verdict)


def blocks(p: pd.DataFrame) -> list[tuple]:
    """The section, from pairs()' frame (empty: no section)."""
    if p.empty:
        return []
    first, second = p["first"].iloc[0], p["second"].iloc[0]
    routes = "; ".join(f"{name}: {ROUTE_TEXT.get(name, CONVERTERS[name].summary)}"
                       for name in (first, second))
    return [("h1", f"Converters: {first} vs {second}"),
            ("p", f"The same checkpoint and recipe built by both routes ({routes}), calibrated "
                  "on the same images and measured on the same device and test images, on "
                  "LiteRT (ONNX Runtime's models are compared under Runtimes). "
                  "Agreement: top-1 agreement with the PyTorch model. "
                  "Accuracy: Wilson 95 % interval; p50: bootstrap 95 % interval. McNemar b/c: "
                  f"test images right under {first} only / under {second} only; the verdict "
                  "is McNemar's exact test (significant at p < 0.05)."),
            ("table", table(p)),
            ("p", "Per recipe: " + " · ".join(headline(p).splitlines()))]
