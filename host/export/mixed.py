"""The int8-mixed recipe: int8 with the K layers of largest quantization error kept in float.

The layers are ranked once, worst first, by the error each one brings to the model's output
when it alone is quantized (export/debug.py, `sensitivity`), ties by the debugger's RMSE/scale.
Ranking by RMSE/scale alone was tried first and is a poor guide: on MobileNetV2 (64 px) 65 of
69 layers sit between 0.22 and 0.32, and reaching 0.99 agreement took 66 of 69 layers in float
where the output-error ranking needed 7 (benchmarks/README.md, "Mixed precision"). K is
either given (`--keep-float K`) or searched (`--target-agreement A` / `--max-changed-images C`):
K grows along a schedule (1, 2, …, 8, then ever larger steps) until the verification's top-1
agreement with the float model reaches the target, then the gap below the first K that reached
it is walked one layer at a time, so the answer is the smallest K of this ranking that reaches
it (agreement is not monotonic in K: a float block re-enters int8 through a new QUANTIZE). At
most `max_float` entries are kept float. A target that no tried K reaches is not fatal: the best
model found is kept (highest agreement, then fewest float entries) and the result says the
target was missed, and, when every layer was tried, what the rest comes from.

The model's ends are candidates too: its input and its output (INPUT_END, OUTPUT_END), whose
int8 quantization no layer choice removes (with every layer float, an int8 input is still
rounded to the input's scale). They are ranked with the layers by the error each causes alone
and may be kept float (a float input/output, what `--io float` gives) unless `--io` pinned the
model's I/O type; then a target that every layer in float misses is traced to them.

A target agreement A on n images allows floor(n·(1−A)) changed images: 0.99 on 90 images allows
none (89/90 = 0.989). Messages say so; `--max-changed-images C` states the count directly.

Agreement is measured on the verification images, the same numbers `verify.csv` shows: the
chosen K is selected on the test split, so read its agreement as a best case, not a held-out one."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Callable

from edgebench.host.errors import UserError

DEFAULT_TARGET = 0.99
# The model's ends, as they appear among the ranked tensor names and in the layers table. Not
# TensorFlow tensor names (those never carry parentheses); export/debug.py turns them into the
# float input/output type of the quantized model.
INPUT_END, OUTPUT_END = "(input)", "(output)"
ENDS = (INPUT_END, OUTPUT_END)


@dataclass(frozen=True)
class MixedOptions:
    keep_float: int | None = None         # K given: no search
    target_agreement: float | None = None  # None with the others None: DEFAULT_TARGET
    max_float: int | None = None           # bound on K (default: every layer and end)
    max_changed: int | None = None         # the target as a count of changed images
    search_ends: bool = True               # False when --io pinned the model's I/O type

    def check(self) -> "MixedOptions":
        """Bad values are a UserError before any conversion starts."""
        given = [n for n, v in (("--keep-float K", self.keep_float),
                                ("--target-agreement A", self.target_agreement),
                                ("--max-changed-images C", self.max_changed)) if v is not None]
        if len(given) > 1:
            raise UserError(f"give one of {' or '.join(given)}, not both")
        if self.keep_float is not None and self.keep_float < 0:
            raise UserError(f"--keep-float must be 0 or more, got {self.keep_float}")
        if self.target_agreement is not None and not 0 < self.target_agreement <= 1:
            raise UserError(f"--target-agreement must be in (0, 1], got {self.target_agreement}")
        if self.max_changed is not None and self.max_changed < 0:
            raise UserError(f"--max-changed-images must be 0 or more, got {self.max_changed}")
        if self.max_float is not None and self.max_float < 1:
            raise UserError(f"--max-float must be at least 1, got {self.max_float}")
        return self

    @property
    def target(self) -> float:
        return DEFAULT_TARGET if self.target_agreement is None else self.target_agreement

    def allowed(self, n: int) -> int:
        """How many of n images may change: agreement >= A  <=>  changed <= floor(n·(1−A))."""
        if self.max_changed is not None:
            return self.max_changed
        return max(0, math.floor(n * (1 - self.target) + 1e-9))

    def words(self, n: int) -> str:
        """The target and what it means on n images, for messages."""
        k = self.allowed(n)
        may = "no image may change" if k == 0 else f"at most {k} may change"
        if self.max_changed is not None:
            return f"--max-changed-images {k} on {n} images ({may})"
        return f"target agreement {self.target:g} on {n} images ({may})"


@dataclass
class MixedChoice:
    keep_float: list[str]          # tensor names kept in float, worst first
    k: int                         # float layers (the ends not counted)
    layers: int                    # quantized layers the debugger saw
    agreement: float | None        # of the chosen model (None when K was given unverified)
    target_agreement: float | None
    reached: bool | None
    tried: list[list] = field(default_factory=list)  # [K, agreement] in the order tried;
    #                         K counts entries of the ranking: layers, and ends when searched
    note: str = ""
    float_ends: list[str] = field(default_factory=list)  # "input"/"output" kept float
    ends: str = "searched"         # or the pinned I/O type: "int8", "uint8", "float"
    n_images: int | None = None
    changed_images: int | None = None
    max_changed_images: int | None = None  # what the target allows on n_images
    target: str = ""               # the target in words

    def card(self) -> dict:
        return asdict(self)


def rank(rows: list[dict], ends: bool = True) -> list[str]:
    """Tensor names, worst first: output error alone, then RMSE/scale. The ends' rows (INPUT_END,
    OUTPUT_END) are ranked with the layers, or left out with `ends=False`."""
    rows = [r for r in rows if ends or r["tensor"] not in ENDS]
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
           model: str = "the model", n_images: int | None = None,
           io: str = "int8") -> MixedChoice:
    """Pick the float layers (and ends, when `ranked` holds them). `evaluate(keep_float)` builds
    that model and returns its agreement on `n_images` images (or raises); `ranked` is worst
    first. `io`: the I/O type of the ends that are not kept float. K larger than the layer count
    is a UserError."""
    layers = [t for t in ranked if t not in ENDS]
    n = len(ranked)
    if options.keep_float is not None:
        if options.keep_float > len(layers):
            raise UserError(f"--keep-float {options.keep_float} is more than the {len(layers)} "
                            f"quantized layers of {model}")
        k = options.keep_float
        agreement = evaluate(layers[:k])
        return _finish(MixedChoice(layers[:k], k, len(layers), agreement, None, None,
                                   [[k, agreement]]), [], io, n_images, None)
    n_images = n_images or 0
    allowed = options.allowed(n_images)
    searched_ends = any(t in ENDS for t in ranked)
    bound = min(n, options.max_float or n)
    tried: dict[int, float] = {}

    def at(k: int) -> float:
        if k not in tried:
            tried[k] = evaluate(ranked[:k])
        return tried[k]

    def ok(a: float) -> bool:
        if not n_images:  # no image count (a caller of the fraction-only API)
            return a >= options.target - 1e-12
        return _changed(a, n_images) <= allowed

    def done(k: int) -> MixedChoice:
        return _result(ranked, k, tried, options, n_images, io, searched_ends, ok(tried[k]))

    if ok(at(0)):
        return done(0)
    below = 0
    for k in schedule(n, bound):
        if ok(at(k)):
            for j in range(below + 1, k):  # the smallest K of this ranking that reaches it
                if j not in tried and ok(at(j)):
                    return done(j)
            return done(k)
        below = k
    best = max(tried, key=lambda k: (tried[k], -k))
    choice = done(best)
    what = "layers and ends" if searched_ends else "layers"
    target = options.words(n_images) if n_images else f"target agreement {options.target:g}"
    choice.note = (f"{target} not reached with up to {bound} of {n} {what} in "
                   f"float; kept the best found: {tried[best]:.3f} "
                   + (f"({_changed(tried[best], n_images)} of {n_images} images changed) "
                      if n_images else "") + f"with {best} float")
    if bound < n:
        choice.note += "; raise --max-float to search further"
    elif n_images:
        choice.note += ". " + _residual(ranked, evaluate, tried[n], n_images, io, searched_ends,
                                        ok)
    return choice


def _changed(agreement: float | None, n_images: int | None) -> int | None:
    if agreement is None or not n_images:
        return None
    return int(round((1 - agreement) * n_images))


def _residual(ranked, evaluate, everything: float, n_images: int, io: str, searched_ends: bool,
              ok) -> str:
    """Where the changes left with every layer in float come from: the int8 ends (when --io
    pinned them, each end is tried float on its own, then both), else the conversion itself."""
    c = _changed(everything, n_images)
    lead = f"{c} image{'s' * (c != 1)} change{'s' * (c == 1)} with every layer in float"
    if not searched_ends and io != "float":
        layers = [t for t in ranked if t not in ENDS]
        for ends, part in (([INPUT_END], "input"), ([OUTPUT_END], "output"),
                           (list(ENDS), "input/output")):
            if ok(evaluate(layers + ends)):
                return f"{lead}: the {io} {part} quantization; try --io float"
    elif searched_ends:
        lead += " and float input/output"
    return (f"{lead}: the float conversion itself, not the quantization (compare the fp32 row "
            "of verify.csv)")


def _result(ranked, k, tried, options, n_images, io, searched_ends, reached) -> MixedChoice:
    keep = ranked[:k]
    layers = [t for t in keep if t not in ENDS]
    choice = MixedChoice(layers, len(layers), sum(t not in ENDS for t in ranked), tried[k],
                         options.target if options.max_changed is None else
                         max(0.0, (n_images - options.max_changed) / n_images) if n_images
                         else None,
                         reached, [[j, round(a, 6)] for j, a in tried.items()])
    return _finish(choice, [t for t in keep if t in ENDS], io if not searched_ends else "searched",
                   n_images, options)


def _finish(choice: MixedChoice, ends_kept: list[str], io: str, n_images, options) -> MixedChoice:
    pinned = io if io != "searched" else None
    if pinned == "float":
        ends_kept = list(ENDS)
    choice.float_ends = [e.strip("()") for e in ENDS if e in ends_kept]
    choice.ends = io
    choice.n_images = n_images
    choice.changed_images = _changed(choice.agreement, n_images)
    if options is not None and n_images:
        choice.max_changed_images = options.allowed(n_images)
        choice.target = options.words(n_images)
    return choice
