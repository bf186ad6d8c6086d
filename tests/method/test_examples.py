"""The shipped examples show the method working: an `expected:` that can end confirmed or
refuted (a machine-checkable rule), not free text that can only ever be inconclusive."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.sweepspec import load_spec, parse_rule

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "search_spaces").glob("*.yaml"))


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_stated_expectation_is_a_rule(path: Path) -> None:
    spec = load_spec(path)
    if not spec.expected:
        return
    rule = parse_rule(spec.expected)
    assert rule is not None, f"{path.name}: `expected: {spec.expected}` is free text"
    if rule.relative:  # a rule against the baseline needs a baseline config to re-run
        assert isinstance(spec.baseline, dict), path.name


def test_the_quick_start_and_tpe_examples_state_rules() -> None:
    for name in ("quick.yaml", "tpe_asha.yaml"):
        assert parse_rule(load_spec(ROOT / "search_spaces" / name).expected) is not None
