"""The int8-mixed recipe: int8 with the K layers of largest quantization error kept in float.

The layers are ranked once, worst first, by the error each one brings to the model's output
when it alone is quantized (export/debug.py, `sensitivity`), ties by the debugger's RMSE/scale.
Ranking by RMSE/scale alone was tried first and is a poor guide: on MobileNetV2 (64 px) 65 of
69 layers sit between 0.22 and 0.32, and reaching 0.99 agreement took 66 of 69 layers in float
where the output-error ranking needed 7 (benchmarks/README.md, "Mixed precision"). K is
either given (`--keep-float K`) or searched (`--target-agreement A`): K grows along a schedule
(1, 2, …, 8, then ever larger steps) until the verification's top-1 agreement with the float
model reaches A, then the gap below the first K that reached it is walked one layer at a time,
so the answer is the smallest K of this ranking that reaches A (agreement is not monotonic in K:
a float block re-enters int8 through a new QUANTIZE). At most `max_float` layers are kept float.
A target that no tried K reaches is not fatal: the best model found is kept (highest agreement,
then fewest float layers) and the result says the target was missed.

Agreement is measured on the verification images, the same numbers `verify.csv` shows: the
chosen K is selected on the test split, so read its agreement as a best case, not a held-out one."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Callable

from edgebench.host.errors import UserError

DEFAULT_TARGET = 0.99


@dataclass(frozen=True)
class MixedOptions:
    keep_float: int | None = None         # K given: no search
    target_agreement: float | None = None  # None with keep_float None: DEFAULT_TARGET
    max_float: int | None = None           # bound on K (default: every layer)

    def check(self) -> "MixedOptions":
        """Bad values are a UserError before any conversion starts."""
        if self.keep_float is not None and self.target_agreement is not None:
            raise UserError("give --keep-float K or --target-agreement A, not both")
        if self.keep_float is not None and self.keep_float < 0:
            raise UserError(f"--keep-float must be 0 or more, got {self.keep_float}")
        if self.target_agreement is not None and not 0 < self.target_agreement <= 1:
            raise UserError(f"--target-agreement must be in (0, 1], got {self.target_agreement}")
        if self.max_float is not None and self.max_float < 1:
            raise UserError(f"--max-float must be at least 1, got {self.max_float}")
        return self

    @property
    def target(self) -> float:
        return DEFAULT_TARGET if self.target_agreement is None else self.target_agreement


@dataclass
class MixedChoice:
    keep_float: list[str]          # tensor names kept in float, worst first
    k: int
    layers: int                    # quantized layers the debugger saw
    agreement: float | None        # of the chosen model (None when K was given unverified)
    target_agreement: float | None
    reached: bool | None
    tried: list[list] = field(default_factory=list)  # [K, agreement] in the order tried
    note: str = ""

    def card(self) -> dict:
        return asdict(self)


def rank(rows: list[dict]) -> list[str]:
    """Tensor names, worst first: output error alone, then RMSE/scale."""
    ordered = sorted(rows, key=lambda r: (-float(r.get("output_mse_alone") or 0.0),
                                          -float(r["rmse_over_scale"])))
    return [r["tensor"] for r in ordered]


def schedule(n: int, bound: int) -> list[int]:
    """K values to try first: 1..8, then 10, 12, 14, 16, 20, …, 32, 40, …: four per doubling
    (about 4·log2(n) of them), ending at the bound."""
    out, k = [], 1
    limit = min(n, bound)
    while k <= limit:
        out.append(k)
        k += max(1, (1 << (k.bit_length() - 1)) // 4) if k >= 8 else 1
    if limit and out[-1] != limit:
        out.append(limit)
    return out


def choose(ranked: list[str], evaluate: Callable[[list[str]], float], options: MixedOptions,
           model: str = "the model") -> MixedChoice:
    """Pick the float layers. `evaluate(keep_float)` builds that model and returns its agreement
    (or raises); `ranked` is worst first. K larger than the layer count is a UserError."""
    n = len(ranked)
    if options.keep_float is not None:
        if options.keep_float > n:
            raise UserError(f"--keep-float {options.keep_float} is more than the {n} quantized "
                            f"layers of {model}")
        k = options.keep_float
        agreement = evaluate(ranked[:k])
        return MixedChoice(ranked[:k], k, n, agreement, None, None, [[k, agreement]])
    target, bound = options.target, min(n, options.max_float or n)
    tried: dict[int, float] = {}

    def at(k: int) -> float:
        if k not in tried:
            tried[k] = evaluate(ranked[:k])
        return tried[k]

    if at(0) >= target:
        return _choice(ranked, 0, n, tried, target)
    below = 0
    for k in schedule(n, bound):
        if at(k) >= target:
            for j in range(below + 1, k):  # the smallest K of this ranking that reaches it
                if j not in tried and at(j) >= target:
                    return _choice(ranked, j, n, tried, target)
            return _choice(ranked, k, n, tried, target)
        below = k
    best = max(tried, key=lambda k: (tried[k], -k))
    choice = _choice(ranked, best, n, tried, target)
    choice.note = (f"target agreement {target:g} not reached with up to {bound} of {n} layers "
                   f"in float; kept the best found: {tried[best]:.3f} with {best} float")
    return choice


def _choice(ranked, k, n, tried, target) -> MixedChoice:
    return MixedChoice(ranked[:k], k, n, tried[k], target, tried[k] >= target,
                       [[j, round(a, 6)] for j, a in tried.items()])
