"""Two runs side by side: which rows changed, by how much, and whether the change is real.

    from edgebench.host.compare import compare_runs
    result = compare_runs(run_a, run_b)          # two ResultSets (load.py, or the database)

pairs.py matches the rows of the two runs, measures.py gives every pair its ratios and tests
(the statistics themselves are host/report/stats.py's), gate.py turns `--fail-if` rules into an
exit status, page.py writes the Markdown, HTML and CSV."""
from __future__ import annotations

from edgebench.host.compare.measures import Comparison, compare_runs

__all__ = ["Comparison", "compare_runs"]
