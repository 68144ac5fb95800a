"""Steps in a series. ruptures (Pelt, l2 cost) proposes candidate steps from the series' values;
a candidate is kept only when `bench-host compare`'s test of the two runs on either side, on
their raw samples, is significant *and* the change is beyond a `--fail-if` rule (a regression)
or beyond the rule's mirror (an improvement). Run-to-run noise and a run that is only noisier
therefore propose at most a candidate, never a step."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edgebench.host.compare import gate
from edgebench.host.errors import UserError
from edgebench.host.publish.data import Series, digest, env_label, plain

DEFAULT_RULES = ("p50>+5%",)
# A series' rows of two runs are one pair whatever their model files (a retrained model stays in
# its series), runtime family and XNNPACK setting included.
SERIES_MATCH = ("model", "compute_unit", "threads", "device", "runtime", "xnnpack")
_MIN_SAMPLES = 1


def mirror(rule: gate.Rule) -> gate.Rule:
    op = "<" if rule.op == ">" else ">"
    unit = gate.METRICS[rule.metric][0]
    return gate.Rule(rule.metric, op, -rule.threshold,
                     f"{rule.metric}{op}{-rule.threshold:+g}{unit}")


def _signal_threshold(rule: gate.Rule) -> float:
    """The rule's threshold in the units the candidates are searched in (log for ratios)."""
    if gate.METRICS[rule.metric][0] == "pp":
        return abs(rule.threshold)
    return abs(math.log1p(abs(rule.threshold) / 100.0)) if abs(rule.threshold) < 100 else 1.0


@dataclass
class Method:
    rules: list                 # gate.Rule: a step beyond one is a regression
    explicit: bool = False      # given with --fail-if (then a new regression fails publish)

    @property
    def mirrors(self) -> list:
        return [mirror(r) for r in self.rules]

    @property
    def metrics(self) -> list:
        return list(dict.fromkeys(r.metric for r in self.rules))

    def threshold(self, metric: str) -> float:
        return min(_signal_threshold(r) for r in self.rules if r.metric == metric)

    def describe(self) -> str:
        import ruptures

        rules = ", ".join(f"'{r.text}'" for r in self.rules)
        mirrors = ", ".join(f"'{r.text}'" for r in self.mirrors)
        return (f"Candidates: ruptures {ruptures.__version__} Pelt (cost l2, min_size=1, jump=1) "
                f"on each series' log value (accuracy: in percentage points), penalty δ²/2 "
                f"with δ the rule's threshold in those units (log(1.05) for 'p50>+5%'), so "
                f"that any step the threshold could care about is proposed. A candidate is kept only when the test `bench-host compare` runs "
                f"on the raw samples of the runs on either side (p50: a block bootstrap of both "
                f"runs' latencies; accuracy: McNemar's exact test on the same images, Fisher's "
                f"otherwise; energy and memory: a bootstrap over rounds) is significant at 95 % "
                f"and the change is beyond a rule: {rules} (a regression), or beyond its mirror "
                f"{mirrors} (an improvement).")


def parse_rules(texts: list[str]) -> Method:
    rules = [gate.parse_rule(t) for t in (texts or DEFAULT_RULES)]
    return Method(rules=rules, explicit=bool(texts))


def _signal(metric: str, values: list) -> np.ndarray:
    v = np.asarray(values, dtype=float)
    return v if gate.METRICS[metric][0] == "pp" else np.log(np.clip(v, 1e-12, None))


def _l2_cost():
    """ruptures' l2 cost (a segment's squared deviations from its mean) from cumulative sums:
    the same figure in O(1) per segment instead of a numpy call, which made Pelt take 0.6 s on
    a series of 200 runs."""
    import ruptures
    from ruptures.exceptions import NotEnoughPoints

    class CumulativeL2(ruptures.base.BaseCost):
        model = "l2"
        min_size = 1

        def fit(self, signal):
            x = np.asarray(signal, dtype=float).reshape(-1)
            self.signal = x.reshape(-1, 1)  # Pelt reads its length from here
            self.sums = np.concatenate([[0.0], np.cumsum(x)]).tolist()
            self.squares = np.concatenate([[0.0], np.cumsum(x * x)]).tolist()
            return self

        def error(self, start, end):
            n = end - start
            if n < self.min_size:
                raise NotEnoughPoints
            total = self.sums[end] - self.sums[start]
            return max(self.squares[end] - self.squares[start] - total * total / n, 0.0)

    return CumulativeL2()


def candidates(metric: str, values: list, delta: float) -> tuple[list[int], float]:
    """(indices i where a step between values i-1 and i is proposed, the penalty used). The
    penalty lets through any step the threshold could care about (a lone step of δ at the end
    of a series is proposed, one of 0.7 δ is not); telling a step from noise is the test's job,
    on the raw samples, which knows far more about a run's noise than its p50 does."""
    import ruptures

    n = len(values)
    if n < 2:
        return [], math.nan
    signal = _signal(metric, values)
    pen = delta ** 2 / 2
    # centred: the cumulative sums then lose no precision to a large mean
    centred = signal - float(np.median(signal))
    bkps = ruptures.Pelt(custom_cost=_l2_cost(), min_size=1, jump=1).fit(centred).predict(
        pen=pen)
    return [b for b in bkps if 0 < b < n], pen


@dataclass
class Step:
    series: Series
    metric: str
    before: dict          # the points on either side
    after: dict
    change: float = math.nan   # in the rule's unit (% or pp)
    low: float = math.nan
    high: float = math.nan
    kept: bool = False
    verdict: str = ""          # regression | improvement
    rule: str = ""
    reason: str = ""
    env_diff: list = field(default_factory=list)  # (label, before, after)

    @property
    def unit(self) -> str:
        return gate.METRICS[self.metric][0]

    @property
    def anchor(self) -> str:
        return f"step-{self.series.slug}-{self.metric}-{self.after['run']}"


def env_diff(before: dict, after: dict) -> list:
    a, b = before.get("env") or {}, after.get("env") or {}
    out = []
    for k in dict.fromkeys(list(a) + list(b)):
        if (a.get(k) or "") != (b.get(k) or ""):
            old, new = a.get(k) or "", b.get(k) or ""
            if k == "sha256":
                old, new = old[:12], new[:12]
            out.append((env_label(k), old, new))
    return out


def _interval(metric: str, row: dict) -> tuple[float, float]:
    unit, _, cols, _ = gate.METRICS[metric]
    if unit == "pp":
        return (row.get("delta_accuracy_low_pp", math.nan),
                row.get("delta_accuracy_high_pp", math.nan))
    lo, hi = (row.get(c, math.nan) for c in cols)
    return tuple(math.nan if v is None or (isinstance(v, float) and math.isnan(v))
                 else 100.0 * (float(v) - 1.0) for v in (lo, hi))


def judge(step: Step, row: dict | None, method: Method, missing: str = "") -> Step:
    if row is None:
        step.reason = missing or "the runs could not be compared"
        return step
    rules = [r for r in method.rules if r.metric == step.metric]
    mirrors = [r for r in method.mirrors if r.metric == step.metric]
    probe = rules[0]
    step.change = probe.change(row)
    step.low, step.high = (math.nan if v is None else float(v) for v in _interval(step.metric,
                                                                                   row))
    if math.isnan(step.change):
        step.reason = missing or f"{step.metric} not measured in both runs"
    elif not probe.significant(row):
        step.reason = (missing + "; " if missing else "") + "not significant: the 95 % interval " \
            "includes no change"
    else:
        broken = [r for r in rules if r.broken_by(row)]
        better = [r for r in mirrors if r.broken_by(row)]
        if broken:
            step.kept, step.verdict, step.rule = True, "regression", broken[0].text
        elif better:
            step.kept, step.verdict, step.rule = True, "improvement", better[0].text
        else:
            step.reason = "significant, but within the threshold of " + ", ".join(
                f"'{r.text}'" for r in rules + mirrors)
    return step


class PairTester:
    """`bench-host compare`'s statistics for a series' rows of two runs, cached by the runs'
    fingerprints (a later publish tests only pairs that involve a new or changed run)."""

    COLUMNS = sorted({c for _, col, cols, _ in gate.METRICS.values() for c in (col, *cols)}
                     | {"delta_accuracy_low_pp", "delta_accuracy_high_pp", "p50_verdict",
                        "accuracy_verdict", "energy_verdict", "memory_verdict"})

    def __init__(self, conn, db, cache: dict):
        self.conn, self.db, self.cache = conn, db, cache
        self.computed = 0
        self.used: set = set()  # the cache's keys this publish needed (the rest is dropped)

    def __call__(self, series: Series, before: dict, after: dict, metrics: list) -> dict:
        from edgebench.host.compare.measures import compare_runs
        from edgebench.host.publish.data import resultset

        run_a, run_b = self.db.runs[before["run"]], self.db.runs[after["run"]]
        key = digest([run_a.fingerprint, run_b.fingerprint, series.key, sorted(metrics)])
        self.used.add(key)
        if key in self.cache:
            return self.cache[key]
        need_acc, need_power = "accuracy" in metrics, "energy" in metrics
        a = resultset(self.conn, self.db, before["row_pks"], need_acc, need_power)
        b = resultset(self.conn, self.db, after["row_pks"], need_acc, need_power)
        table = compare_runs(a, b, SERIES_MATCH, label_a=run_a.spec, label_b=run_b.spec).table
        row = table.iloc[0]
        out = {c: plain(row.get(c)) for c in self.COLUMNS}
        self.cache[key] = out
        self.computed += 1
        return out


def _nan_to_none(row: dict) -> dict:
    return {k: (math.nan if v is None and not k.endswith("verdict") else v)
            for k, v in row.items()}


def detect(series_list: list, tester, method: Method) -> list[Step]:
    """Every candidate step of every series in the rules' metrics, judged (kept or not, with
    the reason); oldest first within a series."""
    steps = []
    for series in series_list:
        for metric in method.metrics:
            pts = [p for p in series.points if p[metric][0] is not None]
            if metric != "accuracy":
                pts = [p for p in pts if p[metric][0] > 0]
            idx, _ = candidates(metric, [p[metric][0] for p in pts], method.threshold(metric))
            for i in idx:
                before, after = pts[i - 1], pts[i]
                step = Step(series=series, metric=metric, before=before, after=after,
                            env_diff=env_diff(before, after))
                missing = ""
                if metric == "p50":
                    bare = [p for p in (before, after) if p["samples"] < _MIN_SAMPLES]
                    if bare:
                        runs = " and ".join(tester.db.runs[p["run"]].label for p in bare)
                        missing = f"no latency samples stored for {runs}: no test possible"
                try:
                    row = tester(series, before, after, method.metrics)
                except UserError as exc:
                    row, missing = None, str(exc)
                steps.append(judge(step, None if row is None else _nan_to_none(row), method,
                                   missing))
    return steps
