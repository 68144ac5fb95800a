"""A target's results brought home: the agent's output files pulled from the device into the local
results folder, and what its results.csv holds."""
from __future__ import annotations

import csv
from pathlib import Path
from typing import Optional, Tuple

from edgebench.host.files import atomic_path
from edgebench.host.targets.base import Target
from edgebench.host.targets.transfer import safe_name

PULLED_SUFFIXES = (".csv", ".json", ".log")


def pull_results(target: Target, out_dir: str, results: Path) -> None:
    """Every result file in the device's out_dir, each replaced whole (a cut pull leaves the
    previous copy, never half a file)."""
    results.mkdir(parents=True, exist_ok=True)
    for name in sorted(target.listdir(out_dir)):
        if not name.endswith(PULLED_SUFFIXES):
            continue
        safe_name(name, "result file name")
        with atomic_path(results / name) as tmp:
            target.get(f"{out_dir}/{name}", tmp)


def measured(results: Optional[Path]) -> Tuple[int, list]:
    """(rows in results.csv, the models with an ok row, sorted); (0, []) before there is one."""
    path = results / "results.csv" if results else None
    if not path or not path.exists():
        return 0, []
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return len(rows), sorted({r.get("model", "") for r in rows if r.get("status", "ok") == "ok"})
