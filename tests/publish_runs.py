"""The results site's test database: real agent runs of a tiny bundle on this machine, and runs
DERIVED from them (clearly not measured): copies of a real run's folder whose raw latencies were
scaled (the same kernel made 25 % slower for int8), jittered (a rerun) or spread around their
medians (a run that is only noisier), with results.csv's latency columns recomputed from the changed samples as the
agent computes them, a new run id and a later start time."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd

from edgebench.device.schema import RESULT_KEY

_STATS = {"mean_ms": np.mean, "std_ms": np.std, "min_ms": np.min, "max_ms": np.max,
          "p50_ms": lambda v: np.percentile(v, 50), "p90_ms": lambda v: np.percentile(v, 90),
          "p95_ms": lambda v: np.percentile(v, 95), "p99_ms": lambda v: np.percentile(v, 99)}


def real_deploy(bundle: Path, results: Path, db: Path, *extra: str) -> Path:
    """One real deploy of `bundle` on this machine (the local target), recorded in `db`; its
    target folder."""
    from agent_helpers import FAST, run_folder
    from cli_runner import run_cli

    code, out, err = run_cli("deploy", "--bundle", bundle, "--results", results,
                             "--remote-dir", results.parent / f"dev-{results.name}",
                             "--no-progress", "--rounds", "2", "--db", db, *FAST.to_argv(),
                             *extra)
    assert code == 0, out + err
    return run_folder(results) / "local"


def unsteadiness(target: Path) -> float:
    """The widest p50 interval of the run's rows, relative to its p50 (the report's two-level
    block bootstrap): a round that a busy machine slowed down in bursts widens it."""
    from edgebench.host.report import stats

    s = pd.read_csv(target / "latency_samples.csv")
    widest = 0.0
    for _, rows in s.groupby("model"):
        rounds = [g["latency_ms"].to_numpy(float) for _, g in rows.groupby("round")]
        low, high = stats.p50_ci(stats.round_medians(rounds, seed=0))
        widest = max(widest, (high - low) / float(np.median(rows["latency_ms"])))
    return widest


def steadier(*targets: Path) -> Path:
    """The run to derive from: the one whose intervals are narrowest, so that a derived step is
    not hidden under bursts a busy machine put into its rounds."""
    return min(targets, key=unsteadiness)


def started_of(target: Path) -> pd.Timestamp:
    rows = pd.read_csv(target / "results.csv", dtype=str)
    return pd.to_datetime(rows["started_utc"]).min()


def derive_run(real: Path, dest_root: Path, run_id: str, start: pd.Timestamp,
               scale: dict | None = None, jitter: float = 0.0, spread: float = 1.0,
               seed: int = 0, environment: dict | None = None) -> Path:
    """DERIVED, not measured: a copy of the real target folder `real` as run `run_id` started at
    `start`, with the latencies of each model in `scale` ({"tinycnn.int8": 1.25}) multiplied by
    its factor; every latency multiplied by exp(N(0, jitter)) (a rerun); each latency's distance
    from its round's median multiplied by `spread` (the same medians, a wider spread: a run that
    is only noisier); and `environment` ({"os": "..."}) written into results.csv and env.json
    (as if that had changed on the device). Returns the new run folder (dest_root/run_id)."""
    target = dest_root / run_id / "local"
    target.parent.mkdir(parents=True)
    shutil.copytree(real, target)
    samples = pd.read_csv(target / "latency_samples.csv", dtype=str, keep_default_na=False)
    lat = samples["latency_ms"].astype(float).to_numpy().copy()
    for model, factor in (scale or {}).items():
        lat = np.where(samples["model"] == model, lat * factor, lat)
    if jitter:
        lat = lat * np.exp(np.random.default_rng(seed).normal(0.0, jitter, len(lat)))
    if spread != 1.0:
        rounds = samples.groupby(["model", "round"]).ngroup().to_numpy()
        for r in np.unique(rounds):
            mine = rounds == r
            med = np.median(lat[mine])
            lat[mine] = np.clip(med + spread * (lat[mine] - med), 0.1 * med, None)
    samples["latency_ms"] = [f"{v:.6f}" for v in lat]
    samples["run_id"] = run_id
    samples.to_csv(target / "latency_samples.csv", index=False)

    rows = pd.read_csv(target / "results.csv", dtype=str, keep_default_na=False)
    old = pd.to_datetime(rows["started_utc"])
    rows["started_utc"] = [(start + (t - old.min())).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
                           for t in old]
    rows["run_id"] = run_id
    key = [c for c in RESULT_KEY]
    for i, row in rows.iterrows():
        mine = samples[(samples[key] == row[key]).all(axis=1)]["latency_ms"].astype(float)
        if row["status"] == "ok" and len(mine):
            for col, fn in _STATS.items():
                rows.loc[i, col] = f"{fn(mine.to_numpy()):.6f}"
    for col, value in (environment or {}).items():
        rows[col] = value
    rows.to_csv(target / "results.csv", index=False)
    for name in ("predictions.csv", "robustness.csv"):
        if (target / name).is_file():
            df = pd.read_csv(target / name, dtype=str, keep_default_na=False)
            df["run_id"] = run_id
            df.to_csv(target / name, index=False)
    env = json.loads((target / "env.json").read_text())
    env.update(environment or {})
    (target / "env.json").write_text(json.dumps(env, indent=1))
    return target.parent
