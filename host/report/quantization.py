"""The report's quantization section: the op census per model, the worst quantized layers of
each integer model, and what int8-mixed bought back against int8 (accuracy, latency, size).

Read from the model cards (the `census`, `worst_layers` and `mixed` keys, see export/card.py) that
lie under the report's folders: `models/**/<name>.json` as convert/quantize wrote them, or the
entries of a bundle's manifest. Each function returns plain data (rows, DataFrames) or the
report's blocks, so render.py stays the only writer of Markdown and HTML."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from edgebench.device.manifest import Manifest, ManifestError
from edgebench.device.schema import MANIFEST_JSON, MODEL_CARD_SCHEMA

TOP_LAYERS = 5
_SKIP_DIRS = {"reference", "robustness", "__pycache__"}


def find_cards(dirs: list[Path]) -> list[dict]:
    """Every model card under `dirs` (and every bundle manifest's entry), once per sha256, in a
    stable order; a card that lies beside its model wins over the manifest's copy."""
    found: dict[str, dict] = {}
    for root in dict.fromkeys(Path(d) for d in dirs):
        if root.is_file():
            root = root.parent
        if not root.is_dir():
            continue
        for path in sorted(root.rglob("*.json")):
            if _SKIP_DIRS & set(path.parts):
                continue
            in_manifest = path.name == MANIFEST_JSON
            for card in (_manifest_entries(path) if in_manifest else _json_file(path)):
                if isinstance(card, dict) and card.get("schema") == MODEL_CARD_SCHEMA:
                    key = card.get("sha256") or card.get("name")
                    if key not in found or not in_manifest:
                        found[key] = card
    return sorted(found.values(), key=lambda c: (str(c.get("architecture")), str(c.get("name"))))


def _manifest_entries(path: Path) -> list:
    """The model entries of the manifest at `path` (none from one the agent would refuse)."""
    try:
        return Manifest.load(path.parent).models
    except ManifestError:
        return []


def _json_file(path: Path) -> list:
    """[the JSON in `path`] (a card, if its schema says so), or [] when it cannot be read."""
    try:
        return [json.loads(path.read_text())]
    except (OSError, ValueError):
        return []


def census_table(cards: list[dict]) -> pd.DataFrame:
    """One row per model: kind, op count, integer and float ops, Q/DQ pairs, custom ops, extreme
    scales, and the op types by count."""
    rows = []
    for card in cards:
        c = card.get("census")
        if not c:
            continue
        types = ", ".join(f"{op}×{info['count']}" for op, info in c["op_types"].items())
        extreme = "; ".join(f"{e['op']} {e['tensor']} {e['scale']:.3g}"
                            for e in c.get("extreme_scales", []))
        rows.append({"model": card.get("name"), "kind": c["kind"], "ops": c["ops"],
                     "integer ops": c["integer_ops"], "float ops": c["float_op_count"],
                     "Q/DQ pairs": c["q_dq_pairs"], "custom": ", ".join(c["custom_ops"]),
                     "extreme scales": extreme, "op types": types})
    return pd.DataFrame(rows)


def worst_layers_tables(cards: list[dict], n: int = TOP_LAYERS) -> dict[str, pd.DataFrame]:
    """Model name -> its n worst layers by RMSE/scale (from `--debug` or int8-mixed)."""
    out = {}
    debugged = {c.get("architecture") for c in cards
                if c.get("recipe") == "int8" and c.get("worst_layers")}
    for card in cards:
        layers = card.get("worst_layers")
        if not layers or (card.get("recipe") == "int8-mixed" and card.get("architecture") in debugged):
            continue  # int8-mixed ranks the same layers as int8's own table
        out[card.get("name")] = pd.DataFrame([{
            "rank": w["rank"], "op": w["op"], "tensor": _short(w["tensor"]),
            "RMSE/scale": round(float(w["rmse_over_scale"]), 3),
            "mean error": f"{float(w['mean_error']):.2g}", "scale": f"{float(w['scale']):.3g}",
            "float range": f"[{float(w['float_min']):.3g}, {float(w['float_max']):.3g}]"}
            for w in layers[:n]])
    return out


def _short(tensor: str, width: int = 60) -> str:
    """onnx2tf's fused names run to hundreds of characters; the op that ends the fusion names it."""
    first = tensor.split(";")[0]
    return first if len(first) <= width else "…" + first[-width:]


def mixed_rows(cards: list[dict], summary: pd.DataFrame | None) -> pd.DataFrame:
    """Per architecture with an int8-mixed card, per device and thread count measured: int8,
    int8-mixed and fp32 side by side, and what the float layers bought back against int8."""
    by_arch: dict[str, dict[str, dict]] = {}
    for card in cards:
        by_arch.setdefault(card.get("architecture"), {})[card.get("recipe")] = card
    rows = []
    for arch, recipes in by_arch.items():
        mixed = recipes.get("int8-mixed")
        if not mixed or not mixed.get("mixed"):
            continue
        m = mixed["mixed"]
        ends = m.get("float_ends") or []  # the model's input/output kept float (cards since #23)
        base = {"model": arch, "float layers": f"{m['k']} of {m['layers']}"
                + (f" + float {'/'.join(ends)}" if ends else ""),
                "target": "" if m.get("target_agreement") is None else f"{m['target_agreement']:g}"
                + ("" if m.get("reached") else " (not reached)")}
        for recipe in ("int8", "int8-mixed", "fp32"):
            card = recipes.get(recipe)
            if card is None:
                continue
            v = card.get("verification") or {}
            agreement = v.get("agreement")
            row = dict(base, recipe=recipe, **{
                "size KiB": round(card["size_bytes"] / 1024),
                "agreement (verify)": None if agreement is None else round(agreement, 3)})
            measured = _measured(summary, arch, recipe)
            if measured.empty:
                rows.append(row)
            for _, r in measured.iterrows():
                rows.append(dict(row, device=r["device"], unit=r.get("compute_unit", "cpu"),
                                 threads=r["threads"], accuracy=r["accuracy"],
                                 **{"p50 ms": r["p50_ms"]}))
    df = pd.DataFrame(rows)
    if df.empty or "p50 ms" not in df:
        return df
    # Against int8 on the same device, compute unit and threads: accuracy gained, latency paid.
    key = ["model", "device", "unit", "threads"]
    int8 = df[df["recipe"] == "int8"].drop_duplicates(key).set_index(key)
    gained, cost = [], []
    for _, r in df.iterrows():
        k = (r["model"], r.get("device"), r.get("unit"), r.get("threads"))
        if r["recipe"] == "int8-mixed" and k in int8.index:
            ref = int8.loc[k]
            gained.append(round((r["accuracy"] - ref["accuracy"]) * 100, 2))
            cost.append(round(r["p50 ms"] / ref["p50 ms"], 3) if ref["p50 ms"] else None)
        else:
            gained.append(None)
            cost.append(None)
    df["Δ accuracy vs int8 (pp)"] = gained
    df["p50 × int8"] = cost
    return df


def _measured(summary, arch: str, recipe: str) -> pd.DataFrame:
    if summary is None or summary.empty:
        return pd.DataFrame()
    hit = summary[(summary["model"] == arch) & (summary["recipe"] == recipe)
                  & (summary["status"] == "ok")]
    cols = ["device", "compute_unit", "threads", "accuracy", "p50_ms"]
    return hit[[c for c in cols if c in hit.columns]]


def blocks(dirs: list[Path], summary: pd.DataFrame | None = None) -> list[tuple]:
    """The report's blocks for this section (empty when no card under `dirs` has a census)."""
    cards = find_cards(dirs)
    census = census_table(cards)
    if census.empty:
        return []
    out: list[tuple] = [
        ("h1", "Quantization: op census and layer error"),
        ("p", "Op census of every model, read from its flatbuffer: float ops left in an integer "
              "model, DEQUANTIZE→QUANTIZE pairs inside the graph and custom ops are what a "
              "runtime or delegate must handle; an extreme scale (> 1e6) is a broken "
              "quantization range, e.g. a MaxPool's −inf padding lowered to PADV2."),
        ("table", census)]
    worst = worst_layers_tables(cards)
    if worst:
        out += [("h2", "Worst quantized layers"),
                ("p", "Per layer, TensorFlow's QuantizationDebugger on the calibration images: "
                      "RMSE of the quantized output over its scale (≈ 0.29 is plain rounding; "
                      "more is clipping or a poor range), the mean error (bias) and the float "
                      "activations' range. Full tables: <model>.<recipe>.layers.csv.")]
        for name, table in worst.items():
            out += [("h3", name), ("table", table)]
    mixed = mixed_rows(cards, summary)
    if not mixed.empty:
        out += [("h2", "Mixed precision: what int8-mixed bought back"),
                ("p", "int8 with the layers of largest error kept in float, against int8 and "
                      "fp32: agreement with the float model on the verification images (where "
                      "the float layers were chosen: a best case), and accuracy and p50 measured "
                      "on the device. Δ accuracy and p50 × int8 compare with int8 on the same "
                      "device, compute unit and thread count."),
                ("table", mixed)]
    return out
