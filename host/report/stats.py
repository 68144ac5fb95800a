"""The statistics behind every comparison in the report, on the raw files the agent writes.

- Proportions (accuracy, sensitivity, specificity): Wilson score intervals (scipy's binomtest).
- AUC: DeLong's variance of the Mann-Whitney AUC (DeLong, DeLong & Clarke-Pearson 1988, in Sun
  & Xu's 2014 fast form), a normal interval clipped to [0, 1]; scipy has no DeLong.
- A recipe against fp32 on the same images: McNemar's exact test, i.e. a two-sided binomial test
  of the discordant pairs against 1/2 (scipy's binomtest), and a paired bootstrap percentile
  interval of the accuracy difference (scipy's bootstrap, images resampled together).
- Latency: p50 and speedups (ratios of p50s) from the raw samples by a two-level bootstrap —
  rounds resampled with replacement, then within each round a moving-block bootstrap (blocks of
  √n consecutive samples), because consecutive latencies are autocorrelated (thermal drift,
  frequency steps) and an i.i.d. bootstrap would give intervals that are too narrow.
Everything is seeded: the same files give the same report."""
from __future__ import annotations

import math

import numpy as np
from scipy import stats as _st

CONFIDENCE = 0.95
ALPHA = 1.0 - CONFIDENCE
RESAMPLES = 1000          # latency bootstrap (each resample is a median of n samples)
PAIRED_RESAMPLES = 9999   # accuracy-difference bootstrap (cheap: a mean of booleans)
MAX_SERIES = 2000         # longer series are thinned to every k-th sample first: fewer samples
                          # widen an interval, so thinning errs on the cautious side
SEED = 0
NAN2 = (math.nan, math.nan)


def wilson(k: int, n: int) -> tuple[float, float]:
    """95 % Wilson score interval of k successes in n trials; NaN when n is 0."""
    if not n or n < 0 or k is None or not 0 <= k <= n:
        return NAN2
    ci = _st.binomtest(int(k), int(n)).proportion_ci(confidence_level=CONFIDENCE,
                                                      method="wilson")
    return float(ci.low), float(ci.high)


def delong_auc(labels, scores) -> tuple[float, float, float]:
    """(AUC, low, high): the AUC of scores for labels (1 = positive) with its DeLong 95 %
    interval; NaNs when a class is absent."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = scores[labels], scores[~labels]
    m, n = len(pos), len(neg)
    if m == 0 or n == 0:
        return (math.nan,) * 3
    # Placement values: for each positive, the share of negatives it beats (ties count half).
    ranks_all = _st.rankdata(np.concatenate([pos, neg]))
    ranks_pos, ranks_neg = _st.rankdata(pos), _st.rankdata(neg)
    v10 = (ranks_all[:m] - ranks_pos) / n          # per positive
    v01 = 1.0 - (ranks_all[m:] - ranks_neg) / m    # per negative
    auc = float(v10.mean())
    var = (v10.var(ddof=1) / m if m > 1 else 0.0) + (v01.var(ddof=1) / n if n > 1 else 0.0)
    half = _st.norm.ppf(1 - ALPHA / 2) * math.sqrt(max(var, 0.0))
    return auc, max(0.0, auc - half), min(1.0, auc + half)


def mcnemar(base_correct, other_correct) -> dict:
    """McNemar's exact test on paired outcomes (the same images): b = right under the baseline
    only, c = right under the other only; p is the two-sided binomial p of b in b + c at 1/2
    (1.0 when no image is discordant)."""
    a = np.asarray(base_correct, dtype=bool)
    o = np.asarray(other_correct, dtype=bool)
    b, c = int((a & ~o).sum()), int((~a & o).sum())
    p = float(_st.binomtest(b, b + c, 0.5).pvalue) if b + c else 1.0
    return {"b": b, "c": c, "p": p}


def paired_difference_ci(base_correct, other_correct) -> tuple[float, float]:
    """95 % paired bootstrap (percentile) interval of accuracy(other) − accuracy(base), as a
    fraction; (0, 0) when no image is discordant (every resample then differs by exactly 0)."""
    a = np.asarray(base_correct, dtype=float)
    o = np.asarray(other_correct, dtype=float)
    if len(a) == 0 or len(a) != len(o):
        return NAN2
    if np.array_equal(a, o):
        return 0.0, 0.0
    res = _st.bootstrap((a, o), lambda x, y, axis=-1: y.mean(axis=axis) - x.mean(axis=axis),
                        paired=True, vectorized=True, n_resamples=PAIRED_RESAMPLES,
                        confidence_level=CONFIDENCE, method="percentile",
                        random_state=np.random.default_rng(SEED))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def _thin(series: np.ndarray) -> np.ndarray:
    step = int(math.ceil(len(series) / MAX_SERIES))
    return series[::step] if step > 1 else series


def _block_medians(series: np.ndarray, rng: np.random.Generator, count: int) -> np.ndarray:
    """`count` medians of moving-block bootstrap resamples of one round's series."""
    n = len(series)
    length = max(1, int(round(math.sqrt(n))))
    blocks = int(math.ceil(n / length))
    out = np.empty(count)
    offsets = np.arange(length)
    for start in range(0, count, 100):  # chunks keep the index array small
        k = min(100, count - start)
        starts = rng.integers(0, n - length + 1, size=(k, blocks))
        idx = (starts[:, :, None] + offsets).reshape(k, -1)[:, :n]
        out[start:start + k] = np.median(series[idx], axis=1)
    return out


def round_medians(rounds: list, seed: int) -> np.ndarray:
    """R × RESAMPLES block-bootstrap medians, one row per round of samples (ms); compute it once
    per result row and reuse it for its p50 and for every speedup it is part of. `seed` should
    differ between result rows, so two sides of a ratio are resampled independently."""
    rounds = [_thin(np.asarray(r, dtype=np.float64)) for r in rounds if len(r)]
    if not rounds:
        return np.empty((0, RESAMPLES))
    rng = np.random.default_rng(seed)
    return np.stack([_block_medians(r, rng, RESAMPLES) for r in rounds])


def _over_rounds(medians: np.ndarray, pick: np.ndarray | None) -> np.ndarray:
    """The p50 of each resample: the median over (resampled) rounds of the round medians."""
    if len(medians) == 1:
        return medians[0]
    return np.median(medians[pick, np.arange(RESAMPLES)[:, None]], axis=1)


def _picks(rounds: int, seed: int = SEED) -> np.ndarray | None:
    if rounds <= 1:
        return None
    return np.random.default_rng(seed).integers(0, rounds, size=(RESAMPLES, rounds))


def percentile_ci(dist: np.ndarray) -> tuple[float, float]:
    if len(dist) == 0:
        return NAN2
    lo, hi = np.percentile(dist, [100 * ALPHA / 2, 100 * (1 - ALPHA / 2)])
    return float(lo), float(hi)


def p50_ci(medians: np.ndarray) -> tuple[float, float]:
    """95 % interval of the p50 from round_medians(); rounds are resampled too."""
    if not len(medians):
        return NAN2
    return percentile_ci(_over_rounds(medians, _picks(len(medians))))


def speedup_ci(base: np.ndarray, other: np.ndarray) -> tuple[float, float]:
    """95 % interval of p50(base) / p50(other) from two round_medians(). Rounds are paired by
    position (round r of both was measured close in time): the same rounds are drawn for both
    sides; with unequal round counts each side draws its own."""
    if not len(base) or not len(other):
        return NAN2
    if len(base) == len(other):
        pick = _picks(len(base))
        return percentile_ci(_over_rounds(base, pick) / _over_rounds(other, pick))
    return percentile_ci(_over_rounds(base, _picks(len(base)))
                         / _over_rounds(other, _picks(len(other), SEED + 1)))


def speedup_verdict(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return ""
    if low <= 1.0 <= high:
        return "no measurable difference"
    return "faster" if low > 1.0 else "slower"
