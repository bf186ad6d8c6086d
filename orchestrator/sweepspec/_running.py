"""How trials end and evolve: Ray Tune's ``stop:`` and population-based training (``pbt:``).

``stop:`` has Ray's meaning (``RunConfig(stop=...)``): a trial stops as soon as a
reported value is at least its threshold; keys are metric names, and Ray's
``training_iteration`` (a whole number of reports) and ``time_total_s`` (seconds).

``method: pbt`` and ``pb2`` are Ray's PopulationBasedTraining and PB2: ``pbt:`` holds
``interval`` (epochs between exploit steps, >= 1), ``quantile`` (the fraction at the
bottom that copies the top, in (0, 0.5]) and, for pbt only, ``resample_probability``
(in [0, 1]). Both need one metric, rule out ``early_terminate`` (they are the
scheduler) and ``when:`` (a mutation cannot make a parameter appear); PB2 explores
numeric ranges only, so its searched parameters need ``min`` and ``max``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from orchestrator.sweepspec._issues import Issues, show
from orchestrator.sweepspec._model import (
    DEFAULT_PBT_INTERVAL,
    DEFAULT_PBT_QUANTILE,
    DEFAULT_PBT_RESAMPLE,
    PBT,
    POPULATION_METHODS,
    Metric,
    Parameter,
)
from orchestrator.sweepspec._objectives import METRIC_RE
from orchestrator.sweepspec._parameters import RawParameters
from orchestrator.sweepspec._shapes import PBTShape

__all__ = ["read_pbt", "read_stop"]

STEP_KEYS = frozenset({"training_iteration"})  # Ray counts these in whole reports
SECOND_KEYS = frozenset({"time_total_s"})  # Ray's wall-clock seconds since the trial began
MAX_QUANTILE = 0.5  # Ray's PBT: the top and bottom fractions cannot overlap


def read_stop(raw: Any, objectives: Sequence[Metric], issues: Issues) -> tuple[tuple[str, float], ...]:
    """``stop:`` as (key, threshold) pairs, in the spec's order."""
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        issues.add("stop", f"must map a reported value to a threshold, got {show(raw)}",
                   "e.g. stop: {training_iteration: 10} or stop: {val_acc: 0.98}")
        return ()
    out: list[tuple[str, float]] = []
    goals = {m.name: m.goal for m in objectives}
    for key, value in raw.items():
        name, path = str(key), f"stop.{key}"
        if not METRIC_RE.fullmatch(name) or ".." in name:
            issues.add(path, f"{show(name)} is not a metric name", "use a key your trainable "
                       "reports, training_iteration or time_total_s")
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            issues.add(path, f"a threshold is a number, got {show(value)}",
                       f"e.g. stop: {{{name}: 10}}")
            continue
        if name in STEP_KEYS and (not float(value).is_integer() or value < 1):
            issues.add(path, f"must be a whole number of reports >= 1, got {value!r}",
                       f"e.g. {name}: 10")
            continue
        if name in SECOND_KEYS and value <= 0:
            issues.add(path, f"must be > 0 seconds, got {value!r}", f"e.g. {name}: 600")
            continue
        if goals.get(name) == "minimize":
            issues.note(f"{path}: Ray stops a trial once {name} >= {value:g}; the sweep "
                        f"minimizes {name}, so this stops trials that got worse (for a goal "
                        "reached, use metric.target)")
        out.append((name, int(value) if name in STEP_KEYS else value))
    return tuple(out)


def read_pbt(raw: Any, method: str | None, parameters: dict[str, Parameter],
             found: RawParameters, *, objectives: Sequence[Metric], early: bool,
             issues: Issues) -> PBT | None:
    """The ``pbt:`` section for method pbt and pb2 (defaults when it is left out)."""
    if method not in POPULATION_METHODS:
        if raw is not None and method is not None:
            issues.add("pbt", f"`pbt:` applies to method pbt or pb2, not {method}",
                       "set method: pbt, or remove `pbt:`")
        return None
    _check_population(method, parameters, found, objectives=objectives, early=early,
                      issues=issues)
    if raw is None:
        return PBT()
    if not isinstance(raw, dict):
        issues.add("pbt", f"must be a mapping, got {show(raw)}",
                   "e.g. pbt: {interval: 4, quantile: 0.25, resample_probability: 0.25}")
        return None
    try:
        m = PBTShape.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, "pbt", PBTShape)
        return None
    n_before = len(issues)
    interval = DEFAULT_PBT_INTERVAL if m.interval is None else m.interval
    quantile = DEFAULT_PBT_QUANTILE if m.quantile is None else m.quantile
    resample = DEFAULT_PBT_RESAMPLE if m.resample_probability is None else m.resample_probability
    if interval < 1:
        issues.add("pbt.interval", f"must be >= 1 epoch, got {interval}", "e.g. interval: 4")
    if not 0 < quantile <= MAX_QUANTILE:
        issues.add("pbt.quantile", f"must be in (0, {MAX_QUANTILE}], got {quantile:g}",
                   "e.g. quantile: 0.25 (the bottom quarter copies the top quarter)")
    if not 0 <= resample <= 1:
        issues.add("pbt.resample_probability", f"must be in [0, 1], got {resample:g}",
                   "e.g. resample_probability: 0.25")
    if method == "pb2" and m.resample_probability is not None:
        issues.add("pbt.resample_probability", "pb2 picks new values with its GP bandit and "
                   "never resamples", "remove it, or use method pbt")
    if len(issues) > n_before:
        return None
    return PBT(interval=interval, quantile=quantile, resample_probability=resample)


def _check_population(method: str, parameters: dict[str, Parameter], found: RawParameters, *,
                      objectives: Sequence[Metric], early: bool, issues: Issues) -> None:
    if len(objectives) > 1:
        issues.add("metrics", f"method {method} ranks the population by one metric",
                   "give one `metric:`, or use method tpe for several objectives")
    if early:
        issues.add("early_terminate", f"method {method} is itself the scheduler: it stops and "
                   "copies trials", "remove early_terminate")
    for name, p in parameters.items():
        path = found[name][0]
        if p.when:
            issues.add(f"{path}.when", f"method {method} mutates parameters between epochs, and "
                       "a mutation cannot make a parameter appear or vanish",
                       "remove `when:`, or use method tpe or random")
        elif method == "pb2" and not p.is_constant and (p.min is None or p.max is None):
            issues.add(path, f"pb2 explores numeric ranges only, but {name!r} is "
                       f"{p.distribution}", "give it min and max, fix it with value:, or use "
                       "method pbt")
    if method == "pb2" and not any(p.min is not None for p in parameters.values()):
        issues.add("parameters", "pb2 needs at least one searched numeric range",
                   "give a parameter min and max, or use method pbt")
