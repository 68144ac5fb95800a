"""Reports from the device agent's results: tables, plots, Markdown + HTML + summary.csv.

    paths = build_report([Path("results/run-1")], Path("results/run-1"))
    print(paths.headline)

load.py finds and reads results.csv files, tables.py computes the comparisons and views,
plots.py draws the PNGs, render.py writes Markdown and HTML and the terminal's headline."""
from __future__ import annotations

import datetime as _dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgebench.host.errors import UserError
from edgebench.host.report import energy as _energy
from edgebench.host.report import plots as _plots
from edgebench.host.report import render as _render
from edgebench.host.report import robustness as _robust
from edgebench.host.report import scenarios as _scenarios
from edgebench.host.report import soak as _soak
from edgebench.host.report import tables as _tables
from edgebench.host.report.load import ResultSet, load_results

__all__ = ["ReportPaths", "build_report", "headline_table", "load_results", "ResultSet"]

SUMMARY_FILE = "summary.csv"
MARKDOWN_FILE = "report.md"
HTML_FILE = "report.html"
ROBUSTNESS_FILE = "robustness_summary.csv"
SOAK_FILE = "soak_summary.csv"
SCENARIOS_FILE = "scenarios_summary.csv"


@dataclass
class ReportPaths:
    """Where the report went, and its headline table as text (for the terminal)."""
    out_dir: Path
    markdown: Path
    html: Path
    summary_csv: Path
    plots: list[Path] = field(default_factory=list)
    headline: str = ""
    rows: int = 0
    devices: list[str] = field(default_factory=list)


def headline_table(result_dirs: list[Path]) -> str:
    """The headline table (per device: model, recipe, threads, size, accuracy, Δ, p50, speedup,
    flags) as plain text, straight from results folders."""
    rs = load_results(result_dirs)
    return _render.headline(_tables.build_summary(rs.rows, rs.samples, rs.predictions,
                                                  rs.power))


def _document(rs: ResultSet, summary, plots: dict[str, Path], out_dir: Path,
              robust=None, sustained: tuple = ()) -> _render.Document:
    devs = _tables.devices(summary)
    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    blocks: list = [
        ("p", f"Generated {now} from {len(rs.sources)} result file(s), {len(summary)} row(s) on "
              f"{len(devs)} device(s)."),
        ("h1", "Environment"),
        ("table", _render.environment_table(rs.rows, rs.env)),
        ("h1", "Results per device"),
        ("p", "One row per model × recipe × compute unit × thread count. Latencies time one "
              "completed inference: invoke() on the CPU Interpreter, and on an accelerator "
              "(LiteRT CompiledModel) the run and the read of its output, never the enqueue "
              "alone; p50/p90 are percentiles over the timed runs. Speedup vs fp32 = p50 of the "
              "same model's fp32 on the device's CPU ÷ this p50, and Δ accuracy = this − that "
              "fp32 (percentage points); speedup vs CPU = p50 of the same recipe on the CPU ÷ "
              "this p50 (accelerator rows). All within one device, one run, the same threads; "
              "empty where the row compared with is missing or failed. Flags: error (with the "
              "reason), throttled (the device reported throttling during the row), emulated (run "
              "under an emulator: timings not representative), software accelerator (a software "
              "GPU such as llvmpipe: correct results, timings not representative), partly on the "
              "CPU (the accelerator did not take every op). Load: the warm load, the model "
              "loaded again in its row's child once the cold session is released (runtime and "
              "accelerator up, file in the page cache), with the cold first load and the "
              "start-up before it in parentheses. Each is a single load: on a CPU both pay the "
              "same weight packing and fresh memory, so warm and cold scatter around each "
              "other (benchmarks/warm_load.py); the split tells on a GPU or NPU, where start-up "
              "and compilation dominate."),
        ("p", "Uncertainty, in parentheses: 95 % intervals. Accuracy, sensitivity and "
              "specificity: Wilson score intervals. AUC: DeLong. Δ accuracy: McNemar's exact "
              "test on the same test images against fp32 on the CPU (how many images changed "
              "class, and p; 'no evidence of a difference' at p ≥ 0.05), with a paired bootstrap "
              "interval in summary.csv. p50 and speedups: a two-level bootstrap of the raw "
              "samples — rounds resampled, then moving blocks of √n consecutive samples within "
              "a round, because consecutive latencies are correlated; a speedup whose interval "
              "contains 1 is 'no measurable difference'. With --rounds N the p50 is the median "
              "of the rounds' p50s and 'rounds (p50 spread)' gives (max − min) / median. "
              "significant?: accuracy yes = McNemar p < 0.05; speed yes = the interval of the "
              "speedup vs fp32 excludes 1."),
    ]
    for dev in devs:
        blocks += [("h2", _tables.device_heading(summary, dev)),
                   ("table", _tables.device_table(summary, dev))]
    blocks += _paper_blocks(summary, devs, robust) + _robustness_blocks(robust, devs)
    blocks += list(sustained)  # energy, soak and scenario sections (schema 4), when measured
    cross = _tables.cross_device_view(summary)
    if not cross.empty:
        blocks += [("h1", "Across devices"),
                   ("p", "The same model and recipe side by side, each device at its largest "
                         "thread count. Compare latencies across devices with care: speedups "
                         "are only computed within one run on one device."),
                   ("table", cross)]
    if plots:
        blocks.append(("h1", "Plots"))
        for caption, path in plots.items():
            blocks.append(("img", caption, path))
    # Relative paths, so a report committed or copied with its results does not name this host.
    notes = list(rs.notes) + [f"{dev}: {os.path.relpath(path, out_dir)}"
                              for dev, path in rs.sources.items()]
    blocks += [("h1", "Sources and notes"), ("ul", notes)]
    return _render.Document(title="edgebench report", blocks=blocks)


def _paper_blocks(summary, devs: list, robust) -> list:
    """The paper's view: accuracy by model and recipe, per device when there are several, with
    the mean over the corrupted sets where they were measured."""
    paper = _tables.paper_view(summary)
    if not paper:
        return []
    blocks: list = [("h1", "Accuracy by model and recipe (the paper's view)"),
                    ("p", "Accuracy (%) on the test set; rows are models, columns recipes; † = "
                          "differs from fp32 on the same images (McNemar's exact test, "
                          "p < 0.05).")]
    for label, table in paper.items():
        if len(devs) > 1:
            blocks.append(("h2", label))
        corrupted = _robust.mean_corrupted_column(
            robust, (lambda d: d == d) if label == "all devices" else (lambda d: d == label))
        if corrupted:
            table = table.assign(**{"mean corrupted (%)": table["model"].map(corrupted)
                                    .fillna("")})
        blocks.append(("table", table))
    return blocks


def _robustness_blocks(robust, devs: list) -> list:
    if robust is None or robust.empty:
        return []
    blocks: list = [("h1", "Robustness under ultrasound corruptions (MedMNIST-C)"),
                    ("p", "Accuracy on the test set under the seven corruptions MedMNIST-C "
                          "defines for breast ultrasound, five severities each, measured on the "
                          "device. Clean gap = fp32's clean accuracy − the recipe's; robustness "
                          "gap = fp32's mean accuracy over the corrupted sets − the recipe's. "
                          "The interval is a bootstrap over images of (robustness gap − clean "
                          "gap); 'loses more under corruption' needs all of it above 0.")]
    for dev in devs:
        table = _robust.gap_table(robust, dev)
        if not table.empty:
            blocks += [("h2", dev), ("table", table)]
    return blocks


def build_report(result_dirs: list[Path], out_dir: Path | None = None,
                 extra_blocks: list | None = None) -> ReportPaths:
    """Read every results.csv under result_dirs and write report.md, report.html, summary.csv and
    the PNG plots into out_dir (default: the first of result_dirs). `extra_blocks` (e.g. the
    comparison with the previous run, results_db/link.py) go before the sources."""
    result_dirs = [Path(p) for p in result_dirs]
    rs = load_results(result_dirs)
    if out_dir is None:
        first = result_dirs[0]
        out_dir = first.parent if first.is_file() else first
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)

    summary = _tables.build_summary(rs.rows, rs.samples, rs.predictions, rs.power)
    summary_csv = out_dir / SUMMARY_FILE
    summary.to_csv(summary_csv, index=False)
    plots, energy_plots = _plots.make_plots(summary, out_dir)
    devs = _tables.devices(summary)
    sustained = _energy.blocks(summary, energy_plots, devs)
    soak_blocks, soak = _soak.blocks(rs.soak, rs.rows, devs, out_dir, _plots.slug)
    if not soak.empty:
        soak.to_csv(out_dir / SOAK_FILE, index=False)
    scen = _scenarios.scenario_summary(rs.scenarios, rs.frames, rs.rows)
    if not scen.empty:
        scen.to_csv(out_dir / SCENARIOS_FILE, index=False)
    sustained += soak_blocks + _scenarios.blocks(scen, devs)
    robust = _robust.robustness_summary(rs.robustness, summary, rs.predictions)
    if not robust.empty:
        robust.drop(columns=[c for c in robust.columns if c.startswith("_")]).to_csv(
            out_dir / ROBUSTNESS_FILE, index=False)
        for dev, model in robust[["device", "architecture"]].drop_duplicates().itertuples(
                index=False):
            path = _robust.severity_plot(rs.robustness, summary, dev, model,
                                         out_dir / f"robustness_{_plots.slug(dev)}_"
                                                   f"{_plots.slug(model)}.png")
            if path:
                plots[f"Accuracy vs severity, {model} on {dev}"] = path
    doc = _document(rs, summary, plots, out_dir, robust, sustained)
    from edgebench.host.report import quantization  # op census, layer error, int8-mixed
    doc.blocks[-2:-2] = quantization.blocks(result_dirs + [out_dir], summary)
    from edgebench.host.report import converters  # onnx2tf vs litert-torch, when both ran
    from edgebench.host.report import op_profile, runtimes  # LiteRT vs ORT; --profile-ops
    from edgebench.host.report.uncertainty import RawData

    pairs = converters.pairs(summary, RawData(None, rs.predictions))  # intervals: in summary
    engines = runtimes.pairs(summary, rs.samples, rs.predictions)
    op_blocks, op_plots = op_profile.blocks(rs, out_dir, _plots.slug)
    doc.blocks[-2:-2] = (converters.blocks(pairs) + runtimes.blocks(engines) + op_blocks
                         + list(extra_blocks or []))
    markdown = out_dir / MARKDOWN_FILE
    markdown.write_text(_render.to_markdown(doc, out_dir), encoding="utf-8")
    html_path = out_dir / HTML_FILE
    html_path.write_text(_render.to_html(doc), encoding="utf-8")
    return ReportPaths(out_dir=out_dir, markdown=markdown, html=html_path,
                       summary_csv=summary_csv,
                       plots=list(plots.values()) + [b[2] for b in sustained if b[0] == "img"]
                       + op_plots,
                       headline=_render.headline(summary) + _verdicts(pairs, engines),
                       rows=len(summary), devices=_tables.devices(summary))


def _verdicts(converter_pairs, runtime_pairs) -> str:
    """The terminal's one line per recipe for each comparison the run allows."""
    from edgebench.host.report import converters, runtimes

    text = ""
    if not converter_pairs.empty:
        text += "\n\nconverters (McNemar between routes)\n" + converters.headline(converter_pairs)
    if not runtime_pairs.empty:
        text += ("\n\nruntimes (ORT/LiteRT p50 with its interval, McNemar between them)\n"
                 + runtimes.headline(runtime_pairs))
    return text
