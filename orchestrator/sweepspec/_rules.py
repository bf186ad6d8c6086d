"""The machine-checkable part of a spec's ``expected``: a tiny grammar, no ``eval``.

A rule is one comparison of a metric with the baseline (plus or minus a margin)
or with a number::

    val_acc >= baseline + 0.005
    val_loss < baseline
    val_loss <= baseline - 2%      (a margin in percent of the baseline's value)
    val_acc >= 0.95

Grammar (whitespace free)::

    rule    := METRIC OP (target)
    OP      := ">=" | ">" | "<=" | "<"
    target  := NUMBER | "baseline" [("+" | "-") NUMBER ["%"]]
    METRIC  := a metric name (letters, digits, "_", ".", "-", "/")

Anything else is not a rule: :func:`parse_rule` returns None and the text is
kept as the plain-language expectation (the verdict is then inconclusive).
``metric_constraints:`` are rules of the same grammar against a number
(``n_params <= 50000``); a constraint against the baseline is refused there.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = ["Rule", "parse_rule"]

_UNSIGNED = r"(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
_NUMBER = rf"[+-]?{_UNSIGNED}"
_RULE_RE = re.compile(
    rf"""^\s*(?P<metric>[A-Za-z_][\w.\-/]*)\s*
         (?P<op>>=|<=|>|<)\s*
         (?:(?P<baseline>baseline)
            (?:\s*(?P<sign>[+-])\s*(?P<margin>{_UNSIGNED})\s*(?P<pct>%)?)?
          |(?P<value>{_NUMBER}))\s*$""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class Rule:
    """``metric op baseline ± margin`` (``relative``) or ``metric op value``."""

    text: str
    metric: str
    op: str
    relative: bool  # compared with the baseline (else with ``value``)
    margin: float = 0.0  # signed: ``baseline + margin``
    percent: bool = False  # margin in percent of the baseline's value
    value: float = math.nan  # the absolute threshold when not relative

    @property
    def wants_higher(self) -> bool:
        """True for ``>``/``>=``: the rule holds for large values."""
        return self.op.startswith(">")

    def threshold(self, baseline: float | None = None) -> float:
        """The number the metric is compared with (needs ``baseline`` when relative)."""
        if not self.relative:
            return self.value
        if baseline is None:
            raise ValueError(f"rule {self.text!r} compares with the baseline, but there is none")
        return baseline + (abs(baseline) * self.margin / 100 if self.percent else self.margin)

    def margin_over(self, baseline: float) -> float:
        """The required ``metric - baseline`` (the threshold minus the baseline)."""
        return self.threshold(baseline) - baseline

    def holds(self, value: float, baseline: float | None = None) -> bool:
        t = self.threshold(baseline)
        return {">=": value >= t, ">": value > t, "<=": value <= t, "<": value < t}[self.op]


def parse_rule(text: str | None) -> Rule | None:
    """The :class:`Rule` that ``text`` spells, or None when it is not one.

    >>> parse_rule("val_acc >= baseline + 0.005").margin
    0.005
    >>> parse_rule("the best trial's val_acc is at least 0.95") is None
    True
    """
    if not text or len(text) > 200:
        return None
    m = _RULE_RE.match(text)
    if m is None:
        return None
    if m["baseline"]:
        margin = float(m["margin"]) if m["margin"] else 0.0
        if m["sign"] == "-":
            margin = -margin
        return Rule(text=text.strip(), metric=m["metric"], op=m["op"], relative=True,
                    margin=margin, percent=bool(m["pct"]))
    value = float(m["value"])
    if not math.isfinite(value):
        return None
    return Rule(text=text.strip(), metric=m["metric"], op=m["op"], relative=False, value=value)
