"""Synthetic results folders built from known latency samples and predictions (the agent's three
files: results.csv, latency_samples.csv, predictions.csv), for the compare and database tests."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from edgebench.device.schema import (PREDICTION_COLUMNS, RESULT_COLUMNS, RESULTS_SCHEMA_VERSION,
                                     SAMPLE_COLUMNS)
from test_report import result_row, write_results


def write_run(folder: Path, run_id: str, models: dict, rounds: int = 2, n: int = 300,
              seed: int = 0, started: str = "2026-11-25T18:00:00Z") -> Path:
    """models: {"tiny.int8": {"p50": ms, "correct": bool array per image}}. Latencies are
    lognormal around p50 with a slow drift, `n` per round; rows carry counts matching the
    predictions (labels alternate 0/1). A model's "energy" (mJ per round) fills the energy_mj
    column (results schema 4) with a power source named as a fixture."""
    rng = np.random.default_rng(seed)
    rows, samples, preds = [], [], []
    for name, spec in models.items():
        arch, recipe = name.split(".")
        correct = np.asarray(spec["correct"], dtype=bool)
        labels = np.arange(len(correct)) % 2
        predicted = np.where(correct, labels, 1 - labels)
        tp = int(((labels == 1) & correct).sum())
        tn = int(((labels == 0) & correct).sum())
        fp, fn = int(((labels == 0) & ~correct).sum()), int(((labels == 1) & ~correct).sum())
        sha = f"{arch}{recipe}".ljust(64, "0")
        for r in range(1, rounds + 1):
            lat = spec["p50"] * np.exp(rng.normal(0, 0.03, n)) * (1 + 0.01 * np.sin(
                np.arange(n) / 20))
            rows.append(result_row(arch, recipe, 1, float(np.median(lat)),
                                   correct.mean(), run_id=run_id, round=r, count=n,
                                   n_test=len(correct), tp=tp, tn=tn, fp=fp, fn=fn,
                                   peak_rss_mb=spec.get("rss", 45.5), started_utc=started,
                                   energy_mj=spec["energy"][r - 1] if "energy" in spec else "",
                                   power_source="fixture" if "energy" in spec else ""))
            samples += [dict(schema_version=RESULTS_SCHEMA_VERSION, run_id=run_id, model=name,
                             sha256=sha, threads=1, xnnpack="True", runtime="ai_edge_litert",
                             compute_unit="cpu", round=r, run=i, latency_ms=f"{v:.6f}")
                        for i, v in enumerate(lat)]
        preds += [dict(schema_version=RESULTS_SCHEMA_VERSION, run_id=run_id, model=name,
                       sha256=sha, runtime="ai_edge_litert", xnnpack="True", compute_unit="cpu",
                       testset="clean", positive_class=1, image=i, label=int(labels[i]),
                       predicted=int(predicted[i]), score=float(predicted[i]))
                  for i in range(len(correct))]
    write_results(folder, rows, columns=RESULT_COLUMNS)
    for fname, cols, data in (("latency_samples.csv", SAMPLE_COLUMNS, samples),
                              ("predictions.csv", PREDICTION_COLUMNS, preds)):
        with (folder / fname).open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(cols))
            w.writeheader()
            w.writerows(data)
    return folder


def all_correct(n: int = 40) -> np.ndarray:
    return np.ones(n, dtype=bool)


def eight_wrong(n: int = 40) -> np.ndarray:
    out = np.ones(n, dtype=bool)
    out[:8] = False
    return out
