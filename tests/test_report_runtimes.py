"""The report's Runtimes section (LiteRT vs ONNX Runtime, issue 28 item 4), compare's matching by
runtime, and "Where the time goes" from op_profile.csv. Results come from a real agent run of a
bundle holding tinycnn's .tflite and its .onnx twin (tests/onnx_factory.py: the same weights), plus
an ORT "int8" (a copy of the float graph under that name) that has no LiteRT twin."""
from __future__ import annotations

import csv
import math
import shutil

import pandas as pd
import pytest

from agent_helpers import run_agent
from onnx_factory import add_onnx_model, make_ort_bundle

from edgebench.device.schema import OP_PROFILE
from edgebench.host.compare.pairs import match_rows
from edgebench.host.errors import UserError
from edgebench.host.report import build_report, converters, load_results, op_profile, runtimes
from edgebench.host.report.tables import build_summary
from edgebench.host.report.uncertainty import RawData

pytestmark = pytest.mark.timeout(600)

ARCH = "tinycnn"
ORT_INT8 = f"{ARCH}.ort.int8"


@pytest.fixture(scope="module")
def measured(tmp_path_factory):
    """A results folder (the agent's own files) of tinycnn.fp32 (LiteRT), tinycnn.ort.fp32 and
    tinycnn.ort.int8 (ONNX Runtime), one thread."""
    root = tmp_path_factory.mktemp("runtimes")
    bundle = make_ort_bundle(root / "bundle")
    add_onnx_model(bundle, name=ORT_INT8)
    out = root / "local"
    proc = run_agent(bundle, out, "--threads", "1")
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def summary(measured):
    rs = load_results([measured])
    return rs, build_summary(rs.rows, rs.samples, rs.predictions, rs.power)


def test_summary_compares_each_ort_recipe_with_orts_own_fp32(summary):
    _, s = summary
    conv = dict(zip(s["model"] + "." + s["recipe"], s["converter"]))
    assert conv == {f"{ARCH}.fp32": "onnx2tf", f"{ARCH}.ort.fp32": "ort", ORT_INT8: "ort"}
    ort = s[s["model"] == f"{ARCH}.ort"].set_index("recipe")
    assert (s["status"] == "ok").all(), s["error"].tolist()
    # ORT's int8 against ORT's fp32, not against LiteRT's fp32.
    assert ort.loc["int8", "speedup_vs_fp32"] == pytest.approx(
        ort.loc["fp32", "p50_ms"] / ort.loc["int8", "p50_ms"], rel=0.02)
    assert ort.loc["fp32", "speedup_vs_fp32"] == 1.0


def test_runtimes_pairs_the_tflite_with_its_onnx_twin(summary):
    rs, s = summary
    p = runtimes.pairs(s, rs.samples, rs.predictions)
    assert len(p) == 1  # the ORT int8 has no LiteRT int8 in this bundle: not paired
    r = p.iloc[0]
    assert (r["base_model"], r["recipe"], r["compute_unit"], r["threads"]) == (ARCH, "fp32",
                                                                               "cpu", 1)
    assert (r["litert_model"], r["ort_model"]) == (ARCH, f"{ARCH}.ort")
    assert r["ort_runtime"] == "onnxruntime" and r["litert_runtime"] != "onnxruntime"
    assert r["ratio"] == pytest.approx(r["ort_p50_ms"] / r["litert_p50_ms"])
    assert 0 < r["ratio_ci_low"] < r["ratio_ci_high"]
    # The same weights: the same class for every test image.
    assert (r["mcnemar_b"], r["mcnemar_c"], r["mcnemar_p"]) == (0, 0, 1.0)
    t = runtimes.table(p)
    assert t.loc[0, "McNemar b/c (p)"] == "0/0 (p 1.00)"
    assert t.loc[0, "Δ acc ORT − LiteRT (pp)"] == "+0.0"
    assert "(" in t.loc[0, "ORT/LiteRT p50"] and "(" in t.loc[0, "p50 (ms) ORT"]
    for col in ("size (MB)", "load (ms)", "peak memory (MB)"):
        assert t.loc[0, f"{col} LiteRT"] and t.loc[0, f"{col} ORT"], col
    print("\n" + t.drop(columns=["device"]).to_string(index=False))


def test_report_has_runtimes_not_converters_and_a_verdict_line(measured, tmp_path):
    paths = build_report([measured], tmp_path / "report")
    md = paths.markdown.read_text()
    assert "# Runtimes: LiteRT vs ONNX Runtime" in md
    assert "Converters:" not in md  # ort is a runtime, not a second LiteRT route
    assert "Where the time goes" not in md  # no op_profile.csv: no section
    verdicts = paths.headline.split("runtimes (")[1].splitlines()[1:]
    assert len(verdicts) == 1 and verdicts[0].startswith(f"fp32: {ARCH}: ")
    assert "ORT/LiteRT" in verdicts[0] and "same accuracy (p 1.00)" in verdicts[0]
    assert "converters (" not in paths.headline


def _fake_summary(rows: list[dict]) -> pd.DataFrame:
    base = dict(device="d", run_id="r", compute_unit="cpu", threads=1, status="ok", error=None,
                size_mb=1.0, agreement=1.0, accuracy=0.9, accuracy_ci_low=0.8,
                accuracy_ci_high=0.95, p50_ms=2.0, p50_ci_low=1.9, p50_ci_high=2.1,
                warm_load_ms=5.0, load_ms=6.0, peak_rss_mb=50.0, runtime_version="1",
                xnnpack=True)
    out = []
    for r in rows:
        row = {**base, **r}
        row["sha256"] = f"{row['model']}.{row['recipe']}.{row['runtime']}.{row['xnnpack']}"
        out.append(row)
    return pd.DataFrame(out)


def test_ort_pairs_with_the_default_route_and_converters_skip_ort():
    s = _fake_summary([
        dict(model="m", converter="onnx2tf", recipe="int8", runtime="litert", p50_ms=1.0),
        dict(model="m", converter="onnx2tf", recipe="int8", runtime="litert", xnnpack=False,
             p50_ms=9.0),
        dict(model="m.litert-torch", converter="litert-torch", recipe="int8", runtime="litert",
             p50_ms=3.0),
        dict(model="m.ort", converter="ort", recipe="int8", runtime="onnxruntime",
             xnnpack=pd.NA, p50_ms=4.0)])
    p = runtimes.pairs(s, None, None)
    assert len(p) == 1
    r = p.iloc[0]
    assert (r["litert_converter"], r["litert_p50_ms"], r["ratio"]) == ("onnx2tf", 1.0, 4.0)
    assert math.isnan(r["ratio_ci_low"])  # no samples: no interval, and the verdict says so
    assert runtimes.speed_verdict(r).startswith("no interval")
    c = converters.pairs(s, RawData(None, None))
    assert set(c["first"]) == {"onnx2tf"} and set(c["second"]) == {"litert-torch"}
    text = converters.blocks(c)[1][1]
    assert "onnx2tf: PyTorch → ONNX" in text and "litert-torch: torch.export" in text
    assert converters.pairs(s[s["converter"] != "litert-torch"], RawData(None, None)).empty


def test_compare_never_pairs_an_ort_row_with_a_litert_row(measured):
    rows = load_results([measured]).rows
    fields = ("architecture", "recipe", "compute_unit", "threads")
    pairs, notes = match_rows(rows, rows, fields)
    assert len(pairs) == 3 and not any("several rows" in n for n in notes)
    assert all(a["runtime"] == b["runtime"] and a["model"] == b["model"] for a, b in pairs)
    litert = rows[rows["runtime"] != "onnxruntime"]
    ort = rows[rows["runtime"] == "onnxruntime"]
    with pytest.raises(UserError, match="no rows in common"):
        match_rows(litert, ort, fields)


def _write_op_profile(folder, rows: list[tuple]) -> None:
    """rows: (model, runtime, node, op_type, median, low, high, resolved)."""
    results = {r["model"]: r for r in csv.DictReader(open(folder / "results.csv"))}
    lines = []
    for model, runtime, node, op_type, median, low, high, resolved in rows:
        res = results[model]
        lines.append(dict(schema_version=6, run_id=res["run_id"], model=model,
                          sha256=res["sha256"], threads=1, xnnpack=res["xnnpack"],
                          runtime=runtime, compute_unit="cpu", round=1, node=node,
                          op_type=op_type, provider="CPUExecutionProvider", profiled_runs=50,
                          median_ms=median, low_ms=low, high_ms=high, share=0.0,
                          resolved=resolved))
    by_model = {}
    for line in lines:
        by_model.setdefault(line["model"], []).append(line)
    for group in by_model.values():
        total = sum(line["median_ms"] for line in group)
        for line in group:
            line["share"] = line["median_ms"] / total
    with open(folder / OP_PROFILE.file, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(OP_PROFILE.names))
        writer.writeheader()
        writer.writerows(lines)


def test_where_the_time_goes(measured, tmp_path):
    folder = shutil.copytree(measured, tmp_path / "local")
    ops = []
    for model, scale in ((f"{ARCH}.ort.fp32", 1.0), (ORT_INT8, 0.4)):
        ops += [(model, "onnxruntime", "relu_1", "Relu", 0.2 * scale, 0.15 * scale,
                 0.25 * scale, True),
                (model, "onnxruntime", "conv_big", "Conv", 2.0 * scale, 1.8 * scale,
                 2.2 * scale, True),
                (model, "onnxruntime", "gemm", "Gemm", 0.1 * scale, 0.08 * scale,
                 0.12 * scale, True),
                (model, "onnxruntime", "flatten", "Flatten", 0.0005, 0.0, 0.001, False)]
    _write_op_profile(folder, ops)
    paths = build_report([folder], tmp_path / "report")
    md = paths.markdown.read_text()
    assert "# Where the time goes" in md
    folded = op_profile.fold(op_profile.read_op_profiles(load_results([folder])))
    table = op_profile.top_ops_table(folded, folded["device"].iloc[0])
    for model in (f"{ARCH}.ort.fp32", ORT_INT8):
        mine = table[table["model"] == model]
        assert mine["op"].tolist() == ["conv_big", "relu_1", "gemm", "flatten"]
        assert mine["median (ms)"].iloc[0].startswith("2.00 (" if model.endswith("fp32")
                                                      else "0.8 (")
        assert mine["median (ms)"].iloc[-1] == op_profile.BELOW
        assert mine["runtime"].iloc[0] == "ONNX Runtime"
    assert op_profile.BELOW in md
    pngs = {p.name for p in paths.plots}
    assert {"op_shares_local.png", "op_fp32_int8_local.png"} <= pngs
    assert all((tmp_path / "report" / name).stat().st_size > 0 for name in pngs)


def test_op_kinds_merge_both_runtimes_vocabularies():
    assert op_profile.op_kind("CONV_2D") == op_profile.op_kind("Conv") == "conv"
    assert op_profile.op_kind("QLinearConv") == "conv"
    assert op_profile.op_kind("FULLY_CONNECTED") == op_profile.op_kind("Gemm")
    assert op_profile.op_kind("SomethingNew") == "SomethingNew"
