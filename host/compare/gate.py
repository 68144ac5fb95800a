"""`--fail-if` rules: a CI gate on a comparison. A rule is METRIC OP THRESHOLD, e.g. 'p50>+5%'
(p50 up by more than 5 %), 'accuracy<-1pp' (down by more than one percentage point),
'energy>+10%'. A row breaks a rule only when its change is significant (its interval excludes no
change) *and* its estimate is beyond the threshold; noise never fails a build."""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from edgebench.host.errors import UserError
from edgebench.host.report.formats import fmt_threads

# metric -> (unit, comparison column, interval columns, what it is). Ratios are B ÷ A, shown and
# compared as a percentage change; accuracy is B − A in percentage points.
METRICS = {
    "p50": ("%", "p50_ratio", ("p50_ratio_low", "p50_ratio_high"), "median latency"),
    "accuracy": ("pp", "delta_accuracy_pp", ("accuracy_p",), "test-set accuracy"),
    "energy": ("%", "energy_ratio", ("energy_ratio_low", "energy_ratio_high"),
               "energy per inference (energy_mj, where recorded)"),
    "memory": ("%", "memory_ratio", ("memory_ratio_low", "memory_ratio_high"),
               "peak resident memory"),
}
_RULE = re.compile(r"^\s*([a-z0-9_]+)\s*([<>])\s*([+-]?\d+(?:\.\d*)?)\s*(%|pp)\s*$")


@dataclass(frozen=True)
class Rule:
    metric: str
    op: str          # ">" or "<"
    threshold: float  # in the metric's unit: percent change or percentage points
    text: str

    def change(self, row) -> float:
        """The row's change in the rule's unit (NaN when not measured)."""
        unit, column, _, _ = METRICS[self.metric]
        value = row.get(column, math.nan)
        if pd.isna(value):
            return math.nan
        return 100.0 * (float(value) - 1.0) if unit == "%" else float(value)

    def significant(self, row) -> bool:
        unit, _, cols, _ = METRICS[self.metric]
        if unit == "pp":
            p = row.get(cols[0], math.nan)
            return pd.notna(p) and float(p) < 0.05
        lo, hi = (row.get(c, math.nan) for c in cols)
        return pd.notna(lo) and pd.notna(hi) and not float(lo) <= 1.0 <= float(hi)

    def broken_by(self, row) -> bool:
        change = self.change(row)
        if math.isnan(change) or not self.significant(row):
            return False
        return change > self.threshold if self.op == ">" else change < self.threshold


def describe() -> str:
    lines = ["rules are METRIC>THRESHOLD or METRIC<THRESHOLD, e.g. 'p50>+5%' 'accuracy<-1pp' "
             "'energy>+10%'; a row fails only when its change is significant and beyond the "
             "threshold. Metrics:"]
    lines += [f"  {name:<9} {unit:<3} {what}" for name, (unit, _, _, what) in METRICS.items()]
    return "\n".join(lines)


def parse_rule(text: str) -> Rule:
    m = _RULE.match(text.lower())
    if not m:
        raise UserError(f"--fail-if {text!r}: expected METRIC>THRESHOLD or METRIC<THRESHOLD with "
                        f"a unit, e.g. 'p50>+5%' or 'accuracy<-1pp' (--fail-if help)")
    metric, op, number, unit = m.groups()
    if metric not in METRICS:
        raise UserError(f"--fail-if {text!r}: unknown metric {metric!r}; choose from "
                        f"{', '.join(METRICS)}")
    if unit != METRICS[metric][0]:
        raise UserError(f"--fail-if {text!r}: {metric} takes a threshold in "
                        f"{METRICS[metric][0]}, not {unit}")
    return Rule(metric, op, float(number), text.strip())


def check(table: pd.DataFrame, rules: list[Rule]) -> tuple[list[str], list[str]]:
    """(one line per broken rule and row, notes on rules that could not be checked)."""
    failures, notes = [], []
    for rule in rules:
        column = METRICS[rule.metric][1]
        if column not in table or table[column].isna().all():
            notes.append(f"{rule.text}: {rule.metric} not measured in both runs; not checked")
            continue
        for _, row in table.iterrows():
            if rule.broken_by(row):
                unit = METRICS[rule.metric][0]
                failures.append(f"{rule.text}: {row['device']} {row['model']} "
                                f"({row['compute_unit']}, {fmt_threads(row['threads'])} thread(s)) "
                                f"changed {rule.change(row):+.1f}{unit} (significant)")
    return failures, notes
