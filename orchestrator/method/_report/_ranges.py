"""Ranges for the next sweep, from the trials compared at one budget.

Rules, per searched parameter (``ranked`` holds the typed configs of the trials at
the matched budget, best first; the top ``max(3, 25%)`` of them are "the best"):

* **too few trials**: under ``MIN_TO_NARROW`` trials at one budget nothing is
  narrowed (a span of two points is not a range), and the table says so;
* **numeric**: the span of the best values, padded by ``RANGE_MARGIN`` of it on
  each side (in log space for log distributions), inside the current bounds; where
  the best values reach within ``EDGE`` of a bound, the range is **widened past it**
  by ``WIDEN`` of the current span (the optimum may lie beyond), never below 0 for
  a parameter whose range starts at or above 0;
* **steps**: ``q`` (and integers) are respected: the bounds are moved out to
  multiples of ``q``;
* **categorical**: the values the best trials use, plus every value tried fewer
  than ``MIN_TRIED`` times (unexplored: kept, not dropped).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["MIN_TO_NARROW", "RangeSuggestion", "suggest_ranges"]

MIN_TO_NARROW = 8  # trials at one budget before any range is narrowed
TOP_FRACTION = 0.25  # share of those trials that count as the best (at least MIN_TOP)
MIN_TOP = 3
RANGE_MARGIN = 0.1  # the best values' span is padded by this share of it on each side
EDGE = 0.1  # best values within this share of the span from a bound: widen past the bound
WIDEN = 0.5  # ... by this share of the current span
MIN_TRIED = 2  # a category tried fewer times than this is unexplored: kept
LOG = ("log_uniform", "log_uniform_values", "q_log_uniform", "q_log_uniform_values")
EXPONENT = ("log_uniform", "q_log_uniform")  # W&B: min/max are natural-log exponents


@dataclass(frozen=True)
class RangeSuggestion:
    """One parameter: its range now, the suggested one (spec syntax) and why."""

    parameter: str
    current: str
    suggested: str
    why: str

    def as_row(self) -> list[str]:
        return [self.parameter, self.current, self.suggested, self.why]


def _num(x: float, q: float | None = None) -> str:
    if q is not None and float(q).is_integer() and float(x).is_integer():
        return str(int(x))
    return f"{x:.3g}"


def _spec_text(dist: str, lo: float, hi: float, q: float | None) -> str:
    if dist in EXPONENT:  # shown in values, the way a reader thinks of a learning rate
        dist = "q_log_uniform_values" if dist.startswith("q_") else "log_uniform_values"
    parts = [f"distribution: {dist}", f"min: {_num(lo, q)}", f"max: {_num(hi, q)}"]
    if q is not None:
        parts.append(f"q: {_num(q, q)}")
    return "{" + ", ".join(parts) + "}"


def _bounds(p: Any) -> tuple[float, float]:
    lo, hi = float(p.min), float(p.max)
    return (math.exp(lo), math.exp(hi)) if p.distribution in EXPONENT else (lo, hi)


def _categorical(p: Any, top: list[dict], every: list[dict], narrow: bool) -> RangeSuggestion:
    values = list(p.values)
    current = f"values {values}"
    if not narrow:
        return RangeSuggestion(p.name, current, current, "keep")
    tried = Counter(str(c[p.name]) for c in every if p.name in c)
    best = {str(c[p.name]) for c in top if p.name in c}
    keep = [v for v in values if str(v) in best or tried[str(v)] < MIN_TRIED]
    why = []
    for v in values:
        if str(v) not in best and tried[str(v)] < MIN_TRIED:
            why.append(f"{v}: tried {tried[str(v)]} time(s), unexplored: kept")
        elif str(v) not in best:
            why.append(f"{v}: tried {tried[str(v)]} times, never among the best {len(top)}: "
                       "dropped")
    return RangeSuggestion(p.name, current, f"values {keep}", "; ".join(why) or
                           f"all used by the best {len(top)}")


def _numeric(p: Any, top: list[dict], narrow: bool) -> RangeSuggestion | None:
    nums = [float(c[p.name]) for c in top if isinstance(c.get(p.name), (int, float))]
    if p.min is None or p.max is None or not nums:
        return None
    q = p.q if p.distribution.startswith("q_") else (1.0 if p.distribution == "int_uniform"
                                                     else None)
    blo, bhi = _bounds(p)
    current = _spec_text(p.distribution, blo, bhi, q)
    if not narrow:
        return RangeSuggestion(p.name, current, current, "keep")
    log = p.distribution in LOG and blo > 0 and min(nums) > 0
    f, g = (math.log, math.exp) if log else (float, float)
    flo, fhi = f(blo), f(bhi)
    span = fhi - flo
    tlo, thi = f(min(nums)), f(max(nums))
    pad = (thi - tlo) * RANGE_MARGIN or span * RANGE_MARGIN
    lo, hi = max(tlo - pad, flo), min(thi + pad, fhi)
    why = [f"best {len(nums)}: {_num(min(nums))} … {_num(max(nums))}"]
    if thi >= fhi - EDGE * span:
        hi = fhi + WIDEN * span
        why.append("the best reach the upper bound: widened past it")
    if tlo <= flo + EDGE * span:
        lo = flo - WIDEN * span
        if not log and blo >= 0 and lo < 0:
            lo = 0.0
            why.append("the best reach the lower bound 0: kept at 0")
        else:
            why.append("the best reach the lower bound: widened past it")
    lo, hi = g(lo), g(hi)
    if q:
        lo, hi = math.floor(lo / q + 1e-9) * q, math.ceil(hi / q - 1e-9) * q
        if p.distribution.startswith("q_log") and lo <= 0:
            lo = q
        hi = max(hi, lo + q)
    return RangeSuggestion(p.name, current, _spec_text(p.distribution, lo, hi, q),
                           "; ".join(why))


def suggest_ranges(spec: Any, ranked: Sequence[dict[str, Any]], *,
                   tried: Sequence[dict[str, Any]] | None = None) -> list[RangeSuggestion]:
    """The next sweep's range of every searched parameter (see the module's rules).

    ``ranked``: typed configs of the trials compared at one budget, best first;
    ``tried``: the configs of every trial that ran (default ``ranked``), to tell an
    unexplored category from one that lost.
    """
    n = len(ranked)
    narrow = n >= MIN_TO_NARROW
    top = list(ranked[:max(MIN_TOP, math.ceil(TOP_FRACTION * n))])
    every = list(tried) if tried is not None else list(ranked)
    out = []
    for p in spec.parameters:
        if p.is_constant or p.is_placeholder:
            continue
        if p.distribution == "categorical":
            out.append(_categorical(p, top, every, narrow))
            continue
        found = _numeric(p, top, narrow)
        if found is not None:
            out.append(found)
        else:
            out.append(RangeSuggestion(p.name, p.distribution, p.distribution,
                                       "keep (a distribution without bounds)"))
    if not narrow:
        out = [RangeSuggestion(r.parameter, r.current, r.suggested,
                               f"too few trials at one budget ({n}; {MIN_TO_NARROW} needed) "
                               "to narrow anything: keep this range") for r in out]
    return out
