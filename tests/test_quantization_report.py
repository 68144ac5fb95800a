"""`bench-host run` with the layer debugger and int8-mixed: the run's cards carry the census, the
worst layers and the mixed choice, and the report shows them next to the device's numbers."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from cli_runner import run_bench_host

from edgebench.host.report import quantization


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_with_debug_and_int8_mixed_reports_census_layers_and_mixed(tmp_path):
    proc = run_bench_host("run", "--models", "resnet18", "--recipes", "fp32,int8,int8-mixed",
                          "--debug", "--keep-float", "2", "--img-size", "32", "--epochs", "1",
                          "--data", "phantom:120", "--results", tmp_path, "--run-id", "q",
                          "--remote-dir", tmp_path / "device", "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    # --remote-dir reaches the deploy (run once parsed it and measured in the default folder)
    assert [p.name for p in (tmp_path / "device" / "runs").iterdir() if p.name.startswith("q-")]
    run_dir = tmp_path / "q"
    models = run_dir / "models" / "resnet18"
    assert (models / "resnet18.int8.layers.csv").is_file()
    card = json.loads((models / "resnet18.int8-mixed.json").read_text())
    assert card["mixed"]["k"] == 2 and card["census"]["kind"] == "mixed"
    manifest = json.loads((run_dir / "bundle" / "manifest.json").read_text())
    assert {e["recipe"] for e in manifest["models"]} == {"fp32", "int8", "int8-mixed"}
    assert all(e["census"]["ops"] > 0 for e in manifest["models"])

    report = (run_dir / "report.md").read_text()
    assert "Quantization: op census and layer error" in report
    assert "Worst quantized layers" in report and "### resnet18.int8" in report
    assert "what int8-mixed bought back" in report
    summary = pd.read_csv(run_dir / "summary.csv")
    assert set(summary["recipe"]) == {"fp32", "int8", "int8-mixed"}

    cards = quantization.find_cards([run_dir])
    assert len(cards) == 3  # each model once, though its card is also in the manifest
    census = quantization.census_table(cards).set_index("model")
    assert census.loc["resnet18.int8", "kind"] == "integer"
    assert census.loc["resnet18.int8", "float ops"] == 0
    assert census.loc["resnet18.int8-mixed", "float ops"] >= 2
    mixed = quantization.mixed_rows(cards, pd.read_csv(run_dir / "summary.csv"))
    row = mixed[mixed["recipe"] == "int8-mixed"].iloc[0]
    assert row["float layers"].startswith("2 of ") and row["device"] == "local"
    assert row["p50 × int8"] > 0 and not pd.isna(row["Δ accuracy vs int8 (pp)"])
