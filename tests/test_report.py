"""`bench-host report` from hand-made results.csv files of two devices: the numbers (speedup and
Δ accuracy against the right fp32 row), the error/throttle flags, the files it writes (summary.csv
through pandas, PNGs through PIL, self-contained HTML), and bad input as one-line errors."""
from __future__ import annotations

import csv
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from edgebench.device.schema import RESULT_COLUMNS, RESULTS_SCHEMA_VERSION
from edgebench.host import cli
from edgebench.host.errors import UserError
from edgebench.host.report import build_report, headline_table, load_results
from edgebench.host.report.plots import pareto_front
from edgebench.host.report.tables import build_summary


def result_row(model: str, recipe: str, threads: int, p50: float, acc: float, **extra) -> dict:
    """One agent row with plausible values for every column; `extra` overrides any of them."""
    row = {c: "" for c in RESULT_COLUMNS}
    row.update(
        schema_version=RESULTS_SCHEMA_VERSION, run_id="run-1", model=f"{model}.{recipe}",
        architecture=model, recipe=recipe, sha256=f"{model}{recipe}".ljust(64, "0"),
        file_size_mb={"fp32": 4.0, "fp16": 2.0}.get(recipe, 1.0), threads=threads,
        xnnpack="True", runtime="ai_edge_litert", runtime_version="2.1.0", status="ok",
        load_ms=3.5, first_inference_ms=p50 * 2, warmup_runs=5, count=200, mean_ms=p50 * 1.02,
        std_ms=p50 * 0.05, min_ms=p50 * 0.9, p50_ms=p50, p90_ms=p50 * 1.1, p95_ms=p50 * 1.2,
        p99_ms=p50 * 1.3, max_ms=p50 * 1.5, rss_before_mb=30.0, rss_after_load_mb=40.0,
        peak_rss_mb=45.5, n_test=200, accuracy=acc, sensitivity=acc - 0.02,
        specificity=acc + 0.01, auc=0.9, tn=90, fp=10, fn=12, tp=88, agreement=0.99,
        temp_before_c="", temp_after_c="", throttled="False", throttled_flags="",
        device_model="", machine="x86_64", cpu="Test CPU", cores=2, governor="", freq_mhz="",
        os="Linux", python="3.11.9", numpy="1.26.4", emulated="False", hostname="box",
        started_utc="2026-11-25T18:00:00Z",
    )
    row.update(extra)
    return row


def write_results(folder: Path, rows: list[dict], env: dict | None = None,
                  columns=RESULT_COLUMNS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    if env is not None:
        (folder / "env.json").write_text(json.dumps(env))
    return path


@pytest.fixture()
def two_devices(tmp_path: Path) -> Path:
    """results/run-1/{local,pi4}: two models × recipes × threads, with traps: the same model's
    fp32 differs per device and per thread count, an int8 failed, a row ran throttled, resnet18
    has no fp32 on the pi."""
    run = tmp_path / "results" / "run-1"
    local = [
        result_row("vgg16", "fp32", 1, 20.0, 0.900),
        result_row("vgg16", "fp32", 2, 12.0, 0.900),
        result_row("vgg16", "int8", 1, 5.0, 0.885),
        result_row("vgg16", "int8", 2, 4.0, 0.885),
        result_row("vgg16", "fp16", 1, 19.0, 0.900),
        result_row("vgg16", "int16x8", 1, 400.0, 0.895),
        result_row("resnet18", "fp32", 1, 10.0, 0.800),
        result_row("resnet18", "dynamic", 1, 4.0, 0.810),
        result_row("resnet18", "int8", 1, math.nan, math.nan, status="error",
                   error="failed to create XNNPACK runtime | op PADV2", p50_ms="", accuracy="",
                   p90_ms="", sensitivity="", specificity="", auc=""),
    ]
    pi = [
        result_row("vgg16", "fp32", 4, 200.0, 0.895, machine="aarch64", hostname="pi"),
        result_row("vgg16", "int8", 4, 50.0, 0.880, machine="aarch64", hostname="pi",
                   throttled="True", throttled_flags="0x50005"),
        result_row("resnet18", "int8", 4, 30.0, 0.790, machine="aarch64", hostname="pi"),
    ]
    write_results(run / "local", local, env={"device_model": "", "cpu": "Test CPU (env.json)",
                                             "cores": 2, "python": "3.11.9"})
    write_results(run / "pi-lab", pi, env={"target": "pi4", "device_model":
                                           "Raspberry Pi 4 Model B Rev 1.4"})
    return run


def _row(summary: pd.DataFrame, device: str, model: str, recipe: str, threads: int) -> pd.Series:
    hit = summary[(summary["device"] == device) & (summary["model"] == model)
                  & (summary["recipe"] == recipe) & (summary["threads"] == threads)]
    assert len(hit) == 1, (device, model, recipe, threads, len(hit))
    return hit.iloc[0]


def test_speedup_and_delta_use_the_same_device_model_and_threads(two_devices):
    summary = build_summary(load_results([two_devices]).rows)
    assert set(summary["device"]) == {"local", "pi4"}  # env.json's name beats the folder's
    # vgg16 int8 @1 thread on local: 20 / 5 (not 12 / 5 from 2 threads, not 200 / 5 from the pi)
    assert _row(summary, "local", "vgg16", "int8", 1)["speedup_vs_fp32"] == pytest.approx(4.0)
    assert _row(summary, "local", "vgg16", "int8", 2)["speedup_vs_fp32"] == pytest.approx(3.0)
    assert _row(summary, "local", "vgg16", "int16x8", 1)["speedup_vs_fp32"] == pytest.approx(0.05)
    assert _row(summary, "pi4", "vgg16", "int8", 4)["speedup_vs_fp32"] == pytest.approx(4.0)
    assert _row(summary, "local", "vgg16", "fp32", 2)["speedup_vs_fp32"] == pytest.approx(1.0)
    # Δ accuracy in percentage points against that device's fp32 of the same model
    assert _row(summary, "local", "vgg16", "int8", 1)["delta_accuracy_pp"] == pytest.approx(-1.5)
    assert _row(summary, "pi4", "vgg16", "int8", 4)["delta_accuracy_pp"] == pytest.approx(-1.5)
    assert _row(summary, "local", "resnet18", "dynamic", 1)["delta_accuracy_pp"] == \
        pytest.approx(1.0)
    assert _row(summary, "local", "resnet18", "dynamic", 1)["speedup_vs_fp32"] == \
        pytest.approx(2.5)


def test_missing_fp32_leaves_speedup_empty(two_devices):
    summary = build_summary(load_results([two_devices]).rows)
    row = _row(summary, "pi4", "resnet18", "int8", 4)
    assert math.isnan(row["speedup_vs_fp32"]) and math.isnan(row["delta_accuracy_pp"])
    assert row["p50_ms"] == pytest.approx(30.0)  # the measurement itself is still shown


def test_error_and_throttled_rows_are_kept_and_flagged(two_devices):
    summary = build_summary(load_results([two_devices]).rows)
    err = _row(summary, "local", "resnet18", "int8", 1)
    assert err["status"] == "error"
    assert err["flags"].startswith("error: failed to create XNNPACK runtime")
    assert math.isnan(err["speedup_vs_fp32"])
    hot = _row(summary, "pi4", "vgg16", "int8", 4)
    assert "throttled (0x50005)" in hot["flags"]
    assert _row(summary, "local", "vgg16", "int8", 1)["flags"] == ""
    assert len(summary) == 12  # nothing dropped


def test_report_files(two_devices, tmp_path):
    out = tmp_path / "report"
    paths = build_report([two_devices], out)
    assert paths.markdown == out / "report.md" and paths.summary_csv == out / "summary.csv"

    back = pd.read_csv(paths.summary_csv)
    for col in ("size_mb", "p50_ms", "p90_ms", "speedup_vs_fp32", "accuracy",
                "delta_accuracy_pp", "peak_rss_mb", "threads", "device", "model", "recipe"):
        assert col in back.columns
    assert len(back) == 12
    assert pd.api.types.is_float_dtype(back["speedup_vs_fp32"])
    hit = back[(back["device"] == "local") & (back["model"] == "vgg16")
               & (back["recipe"] == "int8") & (back["threads"] == 1)]
    assert hit["speedup_vs_fp32"].iloc[0] == pytest.approx(4.0)
    assert hit["size_mb"].iloc[0] == pytest.approx(1.0)

    assert len(paths.plots) == 3  # latency-accuracy for each device + speedup
    for png in paths.plots:
        with Image.open(png) as img:
            img.verify()
        with Image.open(png) as img:
            assert img.format == "PNG" and img.width > 400 and img.height > 300
        assert png.stat().st_size > 10_000

    md = paths.markdown.read_text()
    assert "Raspberry Pi 4 Model B Rev 1.4" in md and "Test CPU (env.json)" in md
    assert md.index("Environment") < md.index("Results per device")
    assert "error: failed to create XNNPACK runtime \\| op PADV2" in md  # pipe escaped
    assert "4.00×" in md and "-1.5" in md
    for png in paths.plots:
        assert f"]({png.name})" in md

    page = paths.html.read_text()
    assert page.count('src="data:image/png;base64,') == 3
    # self-contained: no link, script or image from anywhere else
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<link" not in page and "<script" not in page


def test_paper_and_cross_device_views(two_devices, tmp_path):
    md = build_report([two_devices], tmp_path / "r").markdown.read_text()
    paper = md.split("the paper's view")[1].split("# Across devices")[0]
    # accuracies differ between devices, so one paper table per device, models as rows
    assert "### local" in paper and "### pi4" in paper
    assert "| model | fp32 (%) | dynamic (%) | fp16 (%) | int8 (%) | int16x8 (%) |" in paper
    assert "| vgg16 | 90.0 |  | 90.0 | 88.5 | 89.5 |" in paper
    assert "| resnet18 | 80.0 | 81.0 |  | error |  |" in paper  # failed, not just absent
    assert "| model | fp32 (%) | int8 (%) |" in paper  # the pi measured only these
    cross = md.split("# Across devices")[1]
    # local measured vgg16 at 1 and 2 threads but the rest at 1: cells say which they show
    assert "| local p50 (ms) | local accuracy (%) | pi4 p50 (ms, 4 thr) |" in cross
    assert "| vgg16 | int8 | cpu | 4.00 (2 thr) | 88.5 | 50.0 | 88.0 |" in cross
    assert "| vgg16 | fp16 | cpu | 19.0 (1 thr) | 90.0 |  |  |" in cross
    assert "| resnet18 | int8 | cpu | error | error | 30.0 | 79.0 |" in cross


def test_run_dir_target_dir_and_root_all_work(two_devices, tmp_path):
    root = two_devices.parent
    assert len(load_results([root]).rows) == 12
    assert len(load_results([two_devices / "local"]).rows) == 9
    assert len(load_results([two_devices / "local", two_devices]).rows) == 12  # counted once
    text = headline_table([two_devices / "pi-lab"])
    assert text.splitlines()[0] == "pi4" and "4.00×" in text and "throttled" in text


def test_default_out_dir_is_the_first_results_dir(two_devices):
    paths = build_report([two_devices])
    assert paths.out_dir == two_devices and (two_devices / "report.html").is_file()
    # a second report over the same folder must not pick up its own outputs
    assert build_report([two_devices]).rows == 12


def test_same_device_in_two_runs_stays_apart(tmp_path):
    for run, fp32 in (("run-1", 10.0), ("run-2", 20.0)):
        write_results(tmp_path / run / "local", [
            result_row("vgg16", "fp32", 1, fp32, 0.9, run_id=run),
            result_row("vgg16", "int8", 1, 5.0, 0.9, run_id=run),
        ])
    summary = build_summary(load_results([tmp_path]).rows)
    assert _row(summary, "local (run-1)", "vgg16", "int8", 1)["speedup_vs_fp32"] == 2.0
    assert _row(summary, "local (run-2)", "vgg16", "int8", 1)["speedup_vs_fp32"] == 4.0


def test_agent_cell_formats_and_notes(tmp_path):
    """What the agent really writes: lower-case booleans, xnnpack on/off, "nan", and a note in
    `error` on an ok row. XNNPACK on and off are separate baselines within one run."""
    rows = [
        result_row("vgg16", "fp32", 1, 10.0, 0.9, xnnpack="on", throttled="false",
                   emulated="false"),
        result_row("vgg16", "int8", 1, 2.0, 0.9, xnnpack="on", throttled="true",
                   throttled_flags="0x4", emulated="false"),
        result_row("vgg16", "fp32", 1, 30.0, 0.9, xnnpack="off", emulated="true"),
        result_row("vgg16", "int8", 1, 20.0, math.nan, xnnpack="off", accuracy="nan",
                   auc="nan", emulated="true",
                   error="accuracy not measured: no test set in the bundle"),
    ]
    write_results(tmp_path / "run" / "local", rows)
    summary = build_summary(load_results([tmp_path / "run"]).rows)
    on = summary[summary["xnnpack"] == True]  # noqa: E712 (nullable boolean column)
    off = summary[summary["xnnpack"] == False]  # noqa: E712
    assert on[on["recipe"] == "int8"]["speedup_vs_fp32"].item() == pytest.approx(5.0)
    assert off[off["recipe"] == "int8"]["speedup_vs_fp32"].item() == pytest.approx(1.5)
    assert on[on["recipe"] == "int8"]["flags"].item() == "throttled (0x4)"
    noted = off[off["recipe"] == "int8"].iloc[0]
    assert noted["status"] == "ok" and math.isnan(noted["accuracy"])
    assert noted["flags"] == "accuracy not measured: no test set in the bundle; emulated"
    md = build_report([tmp_path / "run"]).markdown.read_text()
    assert "ai_edge_litert 2.1.0 (XNNPACK off)" in md


def test_schema_1_files_read_as_cpu_rows(tmp_path):
    """Results written before the compute-unit columns (schema 1) are CPU Interpreter rows; a
    schema 2 file beside them compares with them as usual."""
    from edgebench.device.schema import RESULTS

    v1_columns = [c for c in RESULT_COLUMNS if c not in RESULTS.missing_before(1)]
    assert "compute_unit" not in v1_columns and "round" not in v1_columns
    rows = [result_row("vgg16", "fp32", 1, 20.0, 0.9, schema_version=1),
            result_row("vgg16", "int8", 1, 5.0, 0.89, schema_version=1)]
    write_results(tmp_path / "old" / "pi4", rows, columns=v1_columns)
    summary = build_summary(load_results([tmp_path / "old"]).rows)
    assert list(summary["compute_unit"]) == ["cpu", "cpu"]
    assert list(summary["api"]) == ["interpreter", "interpreter"]
    assert summary.loc[summary["recipe"] == "int8", "speedup_vs_fp32"].item() == 4.0


def test_accelerator_rows_compare_with_the_cpu(tmp_path):
    rows = [result_row("resnet18", "fp32", 1, 20.0, 0.9),
            result_row("resnet18", "int8", 1, 4.0, 0.9),
            result_row("resnet18", "fp32", 1, 10.0, 0.9, compute_unit="gpu", accelerator="gpu",
                       api="compiled_model", runtime="litert", software_accelerator="false",
                       fully_accelerated="true", accelerator_device="V3D 7.1.7, backend=Vulkan"),
            result_row("resnet18", "int8", 1, 8.0, 0.85, compute_unit="gpu", accelerator="gpu",
                       api="compiled_model", runtime="litert", software_accelerator="false",
                       fully_accelerated="false", delegated_nodes="12",
                       accelerator_device="V3D 7.1.7, backend=Vulkan")]
    write_results(tmp_path / "run" / "pi5", rows)
    s = build_summary(load_results([tmp_path / "run"]).rows).set_index(["recipe", "compute_unit"])
    assert s.loc[("fp32", "gpu"), "speedup_vs_fp32"] == 2.0   # against fp32 on the CPU
    assert s.loc[("fp32", "gpu"), "speedup_vs_cpu"] == 2.0
    assert s.loc[("int8", "gpu"), "speedup_vs_fp32"] == 2.5
    assert s.loc[("int8", "gpu"), "speedup_vs_cpu"] == 0.5   # int8 is faster on this CPU
    assert s.loc[("int8", "gpu"), "delta_accuracy_pp"] == pytest.approx(-5.0)
    assert math.isnan(s.loc[("int8", "cpu"), "speedup_vs_cpu"])
    assert s.loc[("int8", "gpu"), "flags"] == "partly on the CPU (12 ops on the gpu)"
    assert s.loc[("fp32", "gpu"), "flags"] == ""   # a real GPU: no software flag


def test_pareto_front():
    pts = [(1.0, 80.0), (2.0, 90.0), (3.0, 85.0), (0.5, 70.0), (2.0, 89.0), (10.0, 90.0)]
    assert pareto_front(pts) == [3, 0, 1]


# ---------------------------------------------------------------------------------------------
# Bad input: one-line UserErrors, and exit status 2 from the CLI.

def _bad(tmp_path: Path, case: str) -> Path:
    if case == "missing":
        return tmp_path / "nope"
    if case == "empty":
        (tmp_path / "empty").mkdir()
        return tmp_path / "empty"
    if case == "no-results":
        (tmp_path / "other").mkdir()
        (tmp_path / "other" / "notes.txt").write_text("hi")
        return tmp_path / "other"
    if case == "newer":
        write_results(tmp_path / "new" / "pi", [
            result_row("vgg16", "fp32", 1, 1.0, 0.9, schema_version=RESULTS_SCHEMA_VERSION + 1)])
        return tmp_path / "new"
    if case == "columns":
        cols = [c for c in RESULT_COLUMNS if c not in ("p50_ms", "accuracy")]
        write_results(tmp_path / "short" / "pi", [result_row("vgg16", "fp32", 1, 1.0, 0.9)],
                      columns=cols)
        return tmp_path / "short"
    raise AssertionError(case)


@pytest.mark.parametrize("case, message", [
    ("missing", "no such file or folder"),
    ("empty", "the folder is empty"),
    ("no-results", "no results.csv found"),
    ("newer", f"schema version {RESULTS_SCHEMA_VERSION + 1} is newer"),
    ("columns", "missing required column(s): p50_ms, accuracy"),
])
def test_bad_input_is_a_one_line_user_error(tmp_path, capsys, case, message):
    path = _bad(tmp_path, case)
    with pytest.raises(UserError) as exc:
        build_report([path], tmp_path / "out")
    assert message in str(exc.value) and "\n" not in str(exc.value)
    assert cli.main(["report", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench-host report: error: ") and message in err
    assert err.count("\n") == 1


def test_a_device_where_everything_failed_still_reports(tmp_path):
    write_results(tmp_path / "run" / "pi", [
        result_row(m, r, 4, math.nan, math.nan, status="error", error="no interpreter",
                   p50_ms="", accuracy="")
        for m in ("vgg16", "resnet18") for r in ("fp32", "int8")])
    paths = build_report([tmp_path / "run"])
    assert paths.rows == 4 and paths.plots == []  # nothing measurable to plot, no crash
    md = paths.markdown.read_text()
    assert md.count("error: no interpreter") == 4
    assert "| vgg16 | error | error |" in md  # the paper's view says failed, not blank


def test_out_must_be_a_folder(two_devices, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        build_report([two_devices], tmp_path / "file")


def test_header_only_results_are_no_rows(tmp_path):
    write_results(tmp_path / "run" / "pi", [])
    with pytest.raises(UserError, match="no result rows"):
        load_results([tmp_path / "run"])


def test_cli_report_prints_headline_and_path(two_devices, tmp_path, capsys):
    assert cli.main(["report", str(two_devices), "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "local\nmodel" in out and "speedup vs fp32" in out
    assert f"report: {tmp_path / 'o' / 'report.md'}" in out


@pytest.mark.trained
@pytest.mark.slow
def test_report_from_a_real_agent_run(tmp_path):
    """The real agent on a real bundle (tiny TFLite models in all five recipes), then the report:
    the reader and the writer of results.csv agree."""
    import subprocess

    from agent_helpers import bundle_command
    from edgebench.device.options import AgentOptions
    from tflite_factory import RECIPES, make_bundle

    bundle = make_bundle(tmp_path / "bundle")
    target = tmp_path / "results" / "test-run" / "local"
    short = AgentOptions(threads="1", warmup=1, min_runs=5, min_seconds=0.01)
    proc = subprocess.run(bundle_command(bundle, target, short), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    paths = build_report([tmp_path / "results"], tmp_path / "report")
    summary = pd.read_csv(paths.summary_csv)
    assert sorted(summary["recipe"]) == sorted(RECIPES)
    assert (summary["status"] == "ok").all() and (summary["device"] == "local").all()
    fp32 = summary[summary["recipe"] == "fp32"].iloc[0]
    assert fp32["speedup_vs_fp32"] == 1.0 and fp32["delta_accuracy_pp"] == 0.0
    for _, row in summary.iterrows():  # every speedup is fp32's p50 over the row's own
        assert row["speedup_vs_fp32"] == pytest.approx(fp32["p50_ms"] / row["p50_ms"], rel=1e-3)
        assert 0.5 <= row["accuracy"] <= 1.0 and row["size_mb"] > 0
    md = paths.markdown.read_text()
    assert "| interpreter | litert |" in md and "tinycnn" in md
    assert len(paths.plots) == 2
