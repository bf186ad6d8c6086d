"""The `expected` rule grammar: what parses, to what, and what does not."""

from __future__ import annotations

import math

import pytest

from orchestrator.method import parse_rule

GOOD = [
    ("val_acc >= baseline + 0.005", "val_acc", ">=", True, 0.005, False, math.nan),
    ("val_loss < baseline", "val_loss", "<", True, 0.0, False, math.nan),
    ("val_loss<=baseline-0.01", "val_loss", "<=", True, -0.01, False, math.nan),
    ("val_loss <= baseline - 2%", "val_loss", "<=", True, -2.0, True, math.nan),
    ("val_acc >= 0.95", "val_acc", ">=", False, 0.0, False, 0.95),
    ("  val_acc > .9  ", "val_acc", ">", False, 0.0, False, 0.9),
    ("loss < 1e-3", "loss", "<", False, 0.0, False, 0.001),
    ("val/acc >= baseline+5e-3", "val/acc", ">=", True, 0.005, False, math.nan),
]

BAD = [
    "", "the best trial's val_acc is at least 0.95", "val_acc == 0.9", "val_acc => 0.9",
    "val_acc >= baseline * 1.01", "val_acc >= baseline +", "val_acc >= inf",
    "val_acc >= nan", "__import__('os').system('x') > 1", "val_acc >= 0.9 and val_loss < 1",
    "0.9 <= val_acc", "val_acc >= other + 0.1", "x" * 300 + " > 1",
]


@pytest.mark.parametrize("text, metric, op, relative, margin, percent, value", GOOD)
def test_good_rules(text, metric, op, relative, margin, percent, value) -> None:
    rule = parse_rule(text)
    assert rule is not None
    assert (rule.metric, rule.op, rule.relative, rule.percent) == (metric, op, relative, percent)
    assert rule.margin == pytest.approx(margin)
    assert (math.isnan(rule.value) and math.isnan(value)) or rule.value == pytest.approx(value)


@pytest.mark.parametrize("text", BAD)
def test_bad_rules_are_plain_text(text) -> None:
    assert parse_rule(text) is None


def test_thresholds_and_holding() -> None:
    rule = parse_rule("val_loss <= baseline - 10%")
    assert rule.threshold(2.0) == pytest.approx(1.8)
    assert rule.holds(1.7, 2.0) and not rule.holds(1.9, 2.0)
    assert parse_rule("val_acc > 0.5").holds(0.6)
    with pytest.raises(ValueError, match="baseline"):
        parse_rule("val_acc > baseline").threshold()
