"""Which row of run A is which row of run B. By default a row is the same row when it ran the same
model file (sha256) with the same recipe, compute unit and thread count on the same device;
`--match` names the fields to use instead (e.g. architecture,recipe,compute_unit,threads to
compare the same models across two boards). Whatever the fields, a row is only ever paired with a
row of the same runtime family (LiteRT or ONNX Runtime, report/engines.py): an ORT row and a
LiteRT row of one architecture and recipe are two runtimes, never one series measured twice."""
from __future__ import annotations

import pandas as pd

from edgebench.host.errors import UserError
from edgebench.host.report.engines import engine_of
from edgebench.host.report.uncertainty import fold_rounds

# --match field -> the results.csv column it reads; also what `--match help` lists.
MATCH_FIELDS = {
    "sha256": "the model file's hash (the exact .tflite)",
    "architecture": "the network (resnet18, vgg16, ...)",
    "model": "the model's name (architecture.recipe)",
    "recipe": "the quantization recipe",
    "compute_unit": "cpu, gpu, npu or a delegate",
    "threads": "the interpreter's thread count",
    "device": "the target's name (its results folder or env.json's name)",
    "runtime": "the runtime package (litert, tflite-runtime, tensorflow; onnxruntime); rows "
               "of LiteRT and ONNX Runtime are never paired, whatever the fields",
    "xnnpack": "XNNPACK on or off",
}
DEFAULT_MATCH = ("sha256", "recipe", "compute_unit", "threads", "device")


def parse_match(text: str | None) -> tuple[str, ...]:
    if not text:
        return DEFAULT_MATCH
    fields = tuple(f.strip() for f in text.split(",") if f.strip())
    unknown = [f for f in fields if f not in MATCH_FIELDS]
    if unknown or not fields:
        raise UserError(f"--match: unknown field(s) {', '.join(unknown) or '(none given)'}; "
                        f"choose from {', '.join(MATCH_FIELDS)}")
    return fields


def describe_match() -> str:
    width = max(map(len, MATCH_FIELDS))
    return "\n".join(f"  {k.ljust(width)}  {v}" for k, v in MATCH_FIELDS.items()) + \
        f"\ndefault: {','.join(DEFAULT_MATCH)}"


def _keyed(folded: pd.DataFrame, fields: tuple) -> pd.DataFrame:
    out = folded.copy()
    # The runtime family is always part of the key: LiteRT's runtimes may stand in for one
    # another (the same .tflite on litert and tflite-runtime), ONNX Runtime for none of them.
    engine = out["runtime"].map(engine_of)
    out["_match"] = (out[list(fields)].astype(str).agg(" | ".join, axis=1)
                     + (" | " + engine if "runtime" not in fields else ""))
    return out


def match_rows(rows_a: pd.DataFrame, rows_b: pd.DataFrame,
               fields: tuple = DEFAULT_MATCH) -> tuple[list[tuple[pd.Series, pd.Series]], list]:
    """[(row of A, row of B)] of the successful rows that share the match fields (rounds folded
    as the report folds them), and notes on rows left out (failed, only in one run, ambiguous)."""
    a = _keyed(fold_rounds(rows_a.copy()), fields)
    b = _keyed(fold_rounds(rows_b.copy()), fields)
    notes = []
    for name, df in (("A", a), ("B", b)):
        failed = df[df["status"] != "ok"]
        if len(failed):
            notes.append(f"run {name}: {len(failed)} failed row(s) not compared "
                         f"({', '.join(failed['model'].astype(str).unique()[:5])})")
    a, b = a[a["status"] == "ok"], b[b["status"] == "ok"]
    for name, df in (("A", a), ("B", b)):
        dup = df[df["_match"].duplicated(keep=False)]["_match"].unique()
        if len(dup):
            notes.append(f"run {name}: {len(dup)} key(s) match several rows (e.g. {dup[0]}); "
                         f"add fields to --match (e.g. xnnpack or runtime) to tell them apart")
    a = a.drop_duplicates("_match", keep=False)
    b = b.drop_duplicates("_match", keep=False)
    b_by_key = {k: row for k, (_, row) in zip(b["_match"], b.iterrows())}
    pairs = [(row, b_by_key[row["_match"]]) for _, row in a.iterrows()
             if row["_match"] in b_by_key]
    only_a = set(a["_match"]) - set(b_by_key)
    only_b = set(b_by_key) - set(a["_match"])
    if only_a or only_b:
        notes.append(f"{len(only_a)} row(s) only in run A, {len(only_b)} only in run B "
                     f"(matched on {', '.join(fields)})")
    if not pairs:
        raise UserError(f"the two runs have no rows in common (matched on {', '.join(fields)}; "
                        f"--match relaxes that, e.g. --match architecture,recipe,compute_unit,"
                        f"threads)")
    return pairs, notes
