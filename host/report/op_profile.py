"""The report's "Where the time goes" section, from the agent's per-operator profiles
(op_profile.csv, written with --profile-ops: one line per row × round × node, the op's time
per inference (ONNX Runtime: its median over the profiled runs; LiteRT: its prefix's fastest
round less the previous prefix's) with its 95 % interval, and its share of the total):
each row's heaviest ops, a stacked bar of op-type shares per recipe and runtime, and fp32 against
int8 per op type (op_profile_plots.py draws both). No file, no section."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from edgebench.host.export.converters import CONVERTERS, converter_of
from edgebench.host.report.converters import base_model
from edgebench.host.report.engines import series_label
from edgebench.host.report.formats import fmt_ci, fmt_ms, fmt_threads

# One profiled result row; its nodes are folded over rounds within it.
ROW_KEY = ["device", "run_id", "model", "sha256", "threads", "xnnpack", "runtime",
           "compute_unit"]
TOP_OPS = 5
BELOW = "below resolution"
_TRUE = {"1", "true", "yes", "y", "t", "on"}  # `resolved` as text, where not yet typed

# Op types of both runtimes' vocabularies (TFLite builtins, ONNX and ORT's fused and quantized
# kernels) by the kind of work they do, so one picture can compare them; keyed by the op type in
# lower case without underscores. Anything else keeps its own name.
OP_KINDS = {
    **dict.fromkeys(("conv2d", "conv", "fusedconv", "qlinearconv", "convinteger", "nhwcconv"),
                    "conv"),
    **dict.fromkeys(("depthwiseconv2d",), "depthwise conv"),
    **dict.fromkeys(("fullyconnected", "gemm", "fusedgemm", "qgemm", "matmul", "fusedmatmul",
                     "matmulinteger", "qlinearmatmul", "batchmatmul"), "fully connected / matmul"),
    **dict.fromkeys(("maxpool2d", "maxpool", "qlinearmaxpool"), "max pool"),
    **dict.fromkeys(("averagepool2d", "averagepool", "qlinearaveragepool", "globalaveragepool",
                     "qlinearglobalaveragepool", "mean", "reducemean"), "average pool / mean"),
    **dict.fromkeys(("add", "qlinearadd"), "add"),
    **dict.fromkeys(("mul", "qlinearmul"), "mul"),
    **dict.fromkeys(("concatenation", "concat", "qlinearconcat"), "concat"),
    **dict.fromkeys(("relu", "relu6", "clip", "leakyrelu", "sigmoid", "hardswish"), "activation"),
    **dict.fromkeys(("quantize", "quantizelinear", "dynamicquantizelinear"), "quantize"),
    **dict.fromkeys(("dequantize", "dequantizelinear"), "dequantize"),
    **dict.fromkeys(("pad", "padv2"), "pad"),
    **dict.fromkeys(("transpose",), "transpose"),
    **dict.fromkeys(("reshape", "squeeze", "unsqueeze", "flatten"), "reshape"),
    **dict.fromkeys(("softmax",), "softmax"),
    **dict.fromkeys(("cast",), "cast"),
}


def op_kind(op_type) -> str:
    text = "" if pd.isna(op_type) else str(op_type)
    return OP_KINDS.get(text.lower().replace("_", ""), text)


def _resolved(value) -> bool | None:
    if pd.isna(value) or str(value).strip() == "":
        return None
    return str(value).strip().lower() in _TRUE


def read_op_profiles(rs) -> pd.DataFrame | None:
    """The loaded results' op profiles (load.py reads op_profile.csv beside each results.csv and
    labels its lines with their device); None or empty when no folder has the file."""
    return getattr(rs, "op_profile", None)


def fold(profile: pd.DataFrame) -> pd.DataFrame:
    """One line per profiled row × node: the median over rounds of its times and share, resolved
    only when every round resolved it (a blank `resolved`: its interval's low end above 0), and
    what the plots group by: recipe, architecture, runtime label and op kind."""
    df = profile.copy()
    for col in ("median_ms", "low_ms", "high_ms", "share", "profiled_runs", "threads"):
        df[col] = pd.to_numeric(df[col], errors="coerce")
    stated = df["resolved"].map(_resolved)
    df["resolved"] = [s if s is not None else bool(low > 0) for s, low in zip(stated,
                                                                             df["low_ms"])]
    # A tristate (blank for ONNX Runtime): text, so the blank groups like a value.
    df["xnnpack"] = df["xnnpack"].map(lambda v: "" if pd.isna(v) else str(v))
    keys = ROW_KEY + ["node", "op_type", "provider"]
    out = (df.groupby(keys, sort=False, dropna=False)
           .agg(median_ms=("median_ms", "median"), low_ms=("low_ms", "median"),
                high_ms=("high_ms", "median"), share=("share", "median"),
                profiled_runs=("profiled_runs", "sum"), resolved=("resolved", "all"))
           .reset_index())
    converter = out["model"].map(converter_of)
    stem = out["model"].str.rsplit(".", n=1).str[0]
    out["recipe"] = out["model"].str.rsplit(".", n=1).str[-1]
    out["architecture"] = [base_model(s, c) if c in CONVERTERS else s
                           for s, c in zip(stem, converter)]
    out["series"] = [series_label(r, c) for r, c in zip(out["runtime"], converter)]
    out["kind"] = out["op_type"].map(op_kind)
    return out


def _time_cell(r) -> str:
    if not r["resolved"]:
        return BELOW
    return fmt_ci(fmt_ms(r["median_ms"]), r["low_ms"], r["high_ms"], fmt_ms)


def top_ops_table(folded: pd.DataFrame, device: str, top: int = TOP_OPS) -> pd.DataFrame:
    """Each profiled row's `top` heaviest ops, heaviest first, then one line for the rest."""
    lines = []
    d = folded[folded["device"] == device]
    for _, row in d.groupby(ROW_KEY, sort=False, dropna=False):
        row = row.sort_values("median_ms", ascending=False, kind="stable")
        head = {"model": row["model"].iloc[0], "runtime": row["series"].iloc[0],
                "threads": fmt_threads(row["threads"].iloc[0])}
        for rank, (_, r) in enumerate(row.head(top).iterrows(), start=1):
            lines.append({**head, "#": str(rank), "op": r["node"], "type": r["op_type"],
                          "provider": r["provider"], "median (ms)": _time_cell(r),
                          "share (%)": f"{100 * r['share']:.1f}" if r["resolved"] else ""})
        rest = row.iloc[top:]
        if len(rest):
            lines.append({**head, "#": "", "op": f"{len(rest)} other op(s)", "type": "",
                          "provider": "", "median (ms)": "",
                          "share (%)": f"{100 * rest['share'].clip(lower=0).sum():.1f}"})
    return pd.DataFrame(lines)


def blocks(rs, out_dir: Path, slug) -> tuple[list, list]:
    """The section's blocks and its PNGs; ([], []) without op profiles."""
    from edgebench.host.report import op_profile_plots

    profile = read_op_profiles(rs)
    if profile is None or profile.empty:
        return [], []
    folded = fold(profile)
    out: list = [("h1", "Where the time goes"),
                 ("p", "Per-operator profiles (--profile-ops): a separate profiled pass after "
                       "each row's timed loop, so profiling never slows the row's own timings. "
                       "ONNX Runtime rows: its profiler times each node in each profiled run, "
                       "and an op's time is its median per inference. LiteRT rows (no "
                       "profiler): the model is cut after every op and each prefix timed in "
                       "shuffled rounds, and an op's time is its prefix's fastest time less "
                       "that of the prefix before. Each time comes with its 95 % interval; an "
                       f"op whose interval contains 0 is shown as '{BELOW}', not as a number. "
                       "Provider: where the op ran (an "
                       "execution provider or delegate). What each method measures and cannot "
                       "see (e.g. ops fused inside an XNNPACK partition) is in the README. "
                       f"The table lists each row's {TOP_OPS} heaviest ops; the pictures group "
                       "op types of both runtimes by the work they do (CONV_2D and Conv: conv).")]
    plots = []
    for device in dict.fromkeys(folded["device"]):
        out += [("h2", device), ("table", top_ops_table(folded, device))]
        for caption, path in op_profile_plots.plots(folded, device,
                                                     out_dir, slug(device)).items():
            out.append(("img", caption, path))
            plots.append(path)
    return out, plots
