"""Next-sweep ranges: widened at edges, steps kept, unexplored categories kept, and no
narrowing from a handful of trials."""

from __future__ import annotations

from orchestrator.method import suggest_ranges
from orchestrator.method._report._ranges import MIN_TO_NARROW
from orchestrator.sweepspec import Parameter


class Spec:
    parameters = (
        Parameter("lr", "log_uniform_values", min=1e-4, max=1e-1),
        Parameter("width", "q_uniform", min=32, max=256, q=32),
        Parameter("optimizer", "categorical", values=("adam", "adamw", "sgd")),
        Parameter("dropout", "uniform", min=0.0, max=0.5),
        Parameter("epochs", "constant", value=9),
    )


def configs(n: int) -> list[dict]:
    """Best first: the best lr at the top edge, widths off the q grid, never adamw."""
    out = []
    for i in range(n):
        out.append({"lr": 0.1 * 0.8 ** i, "width": 70 + 9 * i,
                    "optimizer": "adam" if i < 4 else "sgd", "dropout": 0.02 * i, "epochs": 9})
    return out


def by_name(rows):
    return {r.parameter: r for r in rows}


def test_ranges_widen_at_edges_respect_q_and_keep_unexplored_categories() -> None:
    found = by_name(suggest_ranges(Spec(), configs(12)))
    lr = found["lr"]
    assert "widened past it" in lr.why and "upper" in lr.why
    hi = float(lr.suggested.split("max: ")[1].split("}")[0])
    assert hi > 0.1  # the best value sits at the old upper bound: the range goes beyond it
    width = found["width"].suggested
    lo = float(width.split("min: ")[1].split(",")[0])
    hi = float(width.split("max: ")[1].split(",")[0])
    assert lo % 32 == 0 and hi % 32 == 0 and "q: 32" in width
    opt = found["optimizer"]
    assert "adamw" in opt.suggested and "unexplored: kept" in opt.why  # never sampled
    assert "sgd" not in opt.suggested and "never among the best" in opt.why
    dropout = found["dropout"]
    assert "min: 0," in dropout.suggested and "kept at 0" in dropout.why  # not below 0
    assert "epochs" not in found


def test_too_few_trials_narrow_nothing_and_say_so() -> None:
    few = suggest_ranges(Spec(), configs(MIN_TO_NARROW - 1))
    assert all(r.suggested == r.current for r in few)
    assert all("too few trials" in r.why for r in few)
