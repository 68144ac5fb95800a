"""Running the real agent as a subprocess in tests, and reading what it wrote."""
from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

from edgebench.device.options import AgentOptions, agent_command

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "device"  # the package that agent.pyz archives
# Short but real: enough runs for percentiles, little wall time on a 2-core machine.
FAST = AgentOptions(warmup=2, min_runs=20, min_seconds=0.05, max_seconds=5.0)


def bundle_command(bundle: Path, out: Path, options: AgentOptions = FAST, *extra,
                   python: str = sys.executable) -> list:
    """The command line of the bundle's own agent.pyz: `options`, then `extra` flags."""
    return agent_command(python, bundle / "agent.pyz", bundle, out, options, extra)


def run_agent(bundle: Path, out: Path, *extra: str, options: AgentOptions = FAST,
              python: str = sys.executable, env: dict | None = None,
              timeout: float = 300) -> subprocess.CompletedProcess:
    cmd = bundle_command(bundle, out, options, *extra, python=python)
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def events(proc: subprocess.CompletedProcess) -> list[dict]:
    """Every stdout line must be a JSON event: nothing else may leak onto stdout."""
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def read_rows(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        return list(reader.fieldnames or []), list(reader)


def by_model(rows: list[dict]) -> dict[str, dict]:
    return {r["model"]: r for r in rows}


def run_folder(results: Path) -> Path:
    """The one run a deploy made in `results` (each deploy is a run with its own id)."""
    runs = [p for p in Path(results).iterdir() if (p / "run.json").is_file()]
    assert len(runs) == 1, f"expected one run in {results}: {runs}"
    return runs[0]
