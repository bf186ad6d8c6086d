"""``orch next``: the next sweep's spec, written from the review of the last one.

The method is a loop (experiment, observe, reflect, change, again); this is its
"change" step written down. From a recorded sweep (the spec it ran, its trials at a
matched budget, the importance and the range suggestions the report computes, the
verdict and the user's ``orch note`` notes) :func:`plan_next` writes a spec that

* keeps everything the sweep ran with (trainable, metric, cv, resources,
  early_terminate ...: its effective spec, after ``--set``);
* takes the best trial's configuration as ``baseline:``: a config, not the MLflow run
  id, so it runs again *in* the new sweep, at its budget, seed and split, and every
  trial is compared with it on equal terms (a recorded run was measured elsewhere);
* narrows, or widens at an edge, each range as
  :func:`~orchestrator.method.suggest_ranges` (the report's ``next-ranges``) says,
  then moves a bound out just far enough to hold the baseline, the queued points
  and every value a ``when:`` names (the spec must stay valid and hold what it
  queues);
* fixes exhausted parameters (the rules below);
* queues the next best configurations as ``points_to_evaluate:`` (Optuna's
  ``enqueue_trial``), after the baseline, for the methods that take them;
* says in comments where it came from, the verdict, every note, and why each range
  changed, and leaves ``hypothesis:`` and ``expected:`` empty to be written
  before the sweep runs.

Exhausted parameters are fixed only when the ranges were narrowed at all (at least
``MIN_TO_NARROW`` trials at one budget), and from what the review already computed:

1. **one category left**: the range suggestion keeps a single value (every other was
   tried at least ``MIN_TRIED`` times and never among the best) → fixed at it;
2. **no effect**: fANOVA importance below ``FIX_IMPORTANCE`` with the
   ``SPREAD_QUANTILE`` point of its bootstrap spread below ``FIX_SPREAD`` (low, and
   not by chance), and the range not widened at an edge → fixed at the best
   trial's value.

Never fixed: a parameter another one's ``when:`` names (its condition would become
impossible), a ``from:`` placeholder, a conditional parameter the best trial did not
use, and not every parameter at once (the sweep would search nothing).

The seed is the old one plus ``SEED_STEP``: a trial's seed hashes the sweep seed with
its config, so with the old seed the baseline and the queued points would replay
the old trials exactly; with a new one they are measured again (the best of many
noisy trials looks better than it is). The split stays: with ``cv:`` its ``seed`` is
pinned to the folds the last sweep used (without ``cv:`` the hold-out split follows
the sweep seed and no key pins it, so the comment says to compare within the new
sweep, whose baseline runs on its split). The name counts up (``digits-2``,
``digits-3``); the experiment stays, so the sweeps sit side by side in MLflow.
"""

from __future__ import annotations

import ast
import copy
import math
import re
import textwrap
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from orchestrator.errors import TrackingError
from orchestrator.method._report._ranges import (
    EXPONENT,
    MIN_TO_NARROW,
    MIN_TRIED,
    RangeSuggestion,
    suggest_ranges,
)

__all__ = ["FIX_IMPORTANCE", "FIX_SPREAD", "NEXT_POINTS", "NextSpec", "RankedTrial", "SweepReview",
           "next_name", "next_spec", "plan_next", "read_review"]

NEXT_POINTS = 3  # configs queued first (after the baseline), at most ...
POINT_SHARE = 0.25  # ... and at most this share of run_cap: the rest of the budget explores
FIX_IMPORTANCE = 0.05  # fANOVA importance (shares summing to 1) below which a parameter is idle
FIX_SPREAD = 0.10  # ... when the SPREAD_QUANTILE of its bootstrap estimates is below this too
SPREAD_QUANTILE = 0.9
MIN_RESAMPLES = 5  # bootstrap estimates needed before a spread is believed
SEED_STEP = 1  # new seed = old + 1: readable, and trial seeds (hashes) share nothing
COMMENT_WIDTH = 88  # characters per comment line
NUMERIC = ("uniform", "q_uniform", "int_uniform", "log_uniform_values", "q_log_uniform_values",
           "log_uniform", "q_log_uniform")  # the ranges suggest_ranges moves
RANGE_KEYS = ("distribution", "min", "max", "q", "mu", "sigma", "a", "b", "value", "values",
              "probabilities")  # what a parameter's body says about its range
TOP_ORDER = ("name", "hypothesis", "expected", "description", "trainable", "method", "metric",
             "metrics", "run_cap", "num_samples", "seed", "cv", "parameters", "baseline",
             "points_to_evaluate")  # keys first when the recorded spec keeps no order


@dataclass(frozen=True)
class RankedTrial:
    """One trial as the next spec uses it: its config and where it ended."""

    trial_id: str
    config: Mapping[str, Any]  # flat, dotted names, typed through the spec
    value: float  # the metric at its last step
    step: int | None  # that step (epoch)


@dataclass(frozen=True)
class SweepReview:
    """What a next spec is written from: read by :func:`read_review`, or built by hand."""

    sweep_id: str
    name: str
    started: str  # YYYY-MM-DD
    spec: Any  # the SweepSpec the sweep ran
    effective: Mapping[str, Any]  # that spec's raw mapping, as it ran (after --set)
    metric: str
    goal: str
    ranked: tuple[RankedTrial, ...]  # usable, feasible trials, best first (deepest, then metric)
    matched: tuple[Mapping[str, Any], ...]  # configs at the matched budget, best first
    tried: tuple[Mapping[str, Any], ...] = ()  # every trial that reported (for categories)
    budget: str = ""  # the matched budget, in words
    # name -> (fANOVA importance, the SPREAD_QUANTILE point of its bootstrap estimates)
    importance: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    verdict: str = ""
    verdict_reason: str = ""
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()  # what could not be read (shown, never fatal)


@dataclass(frozen=True)
class NextSpec:
    """The next spec: its text, what it loads as, and what changed."""

    text: str
    name: str
    spec: Any  # the text, loaded and validated (a SweepSpec)
    baseline_from: str  # trial id of the best trial
    points: tuple[dict[str, Any], ...]
    changes: dict[str, str]  # parameter -> narrowed / widened / moved / fixed / kept
    fixed: dict[str, str]  # parameter -> why it is fixed
    summary: str = ""  # what changed, in one line
    problems: tuple[str, ...] = ()


@dataclass
class _Plan:
    body: dict[str, Any]
    kind: str  # narrowed, widened, moved, kept, fixed
    comment: str


# --------------------------------------------------------------------------- reading


def read_review(sweep_ref: str, *, tracking_uri: str) -> SweepReview:
    """Read what :func:`plan_next` needs from the store: the sweep the report reviews.

    Raises :class:`TrackingError` (sweep not found, no recorded spec, no metric, no
    finished trial), saying what to do instead.
    """
    from orchestrator.method._report import _verdict
    from orchestrator.method._report._data import load
    from orchestrator.method._runs import notes_of

    data = load(sweep_ref, tracking_uri=tracking_uri)
    sweep = data.sweep
    where = f"sweep {sweep.sweep_id} ({sweep.name}) in {tracking_uri}"
    if data.spec is None:
        raise TrackingError(f"{where} has no recorded spec (spec.effective.json or spec.yaml "
                            f"on its parent run {sweep.parent_run_id}), so there is nothing to "
                            f"start the next spec from; write it by hand from `orch report "
                            f"{sweep.sweep_id}`")
    if not data.metric:
        raise TrackingError(f"{where} has no metric, so no trial is best; `orch next` needs a "
                            "sweep with `metric:`")
    ranked = [t for t in data.ranked if t.tags.get("orch.feasible") != "false"]
    if not ranked:
        outcomes = sorted({t.outcome or "unknown" for t in data.trials}) or ["no trials"]
        raise TrackingError(f"{where} has no finished trial with a finite {data.metric} "
                            f"(outcomes: {', '.join(outcomes)}), so no configuration can be the "
                            f"next baseline; resume it (`orch resume {sweep.sweep_id}`) or see "
                            f"why its trials failed (`orch report {sweep.sweep_id}`)")
    budget = data.budget
    at = {t.trial_id: t for t in data.trials}
    sign = 1.0 if data.goal == "minimize" else -1.0
    order = sorted(budget.values, key=lambda tid: sign * budget.values[tid])
    problems: list[str] = []
    verdict, reason = data.ptags.get("orch.verdict", ""), data.ptags.get("orch.verdict_reason", "")
    if not verdict:
        try:
            found = _verdict(data)
            verdict, reason = found.status, found.reason
        except Exception as exc:  # noqa: BLE001 - the spec is written without it
            problems.append(f"verdict: {type(exc).__name__}: {exc}")
    return SweepReview(
        sweep_id=sweep.sweep_id, name=sweep.name, started=sweep.started.strftime("%Y-%m-%d"),
        spec=data.spec, effective=_recorded_order(data), metric=data.metric, goal=data.goal,
        ranked=tuple(RankedTrial(t.trial_id, dict(t.config), float(t.value(data.metric)),
                            t.last_step(data.metric)) for t in ranked),
        matched=tuple(dict(at[t].config) for t in order),
        tried=tuple(dict(t.config) for t in data.trials if t.rows),
        budget=budget.describe(), importance=_importances(data, problems),
        verdict=verdict, verdict_reason=reason, notes=tuple(notes_of(data.ptags)),
        problems=tuple(problems))


def _recorded_order(data: Any) -> dict[str, Any]:
    """The effective spec, its keys in the order the user wrote them (``spec.yaml``): the
    effective spec is recorded as JSON with sorted keys."""
    effective = data.spec.effective()
    try:
        written = yaml.safe_load(data.store.text(data.sweep.parent_run_id, "spec.yaml") or "")
    except Exception:  # noqa: BLE001 - no spec.yaml, or not YAML: the default order
        written = None
    if isinstance(written, dict):
        return _reorder(effective, written)
    rank = {k: i for i, k in enumerate(TOP_ORDER)}  # the JSON's keys are sorted: tidy them
    return {k: effective[k] for k in sorted(effective, key=lambda k: rank.get(k, len(rank)))}


def _reorder(value: Any, like: Any) -> Any:
    if not isinstance(value, dict):
        return value
    like = like if isinstance(like, dict) else {}
    keys = [k for k in like if k in value] + [k for k in value if k not in like]
    return {k: _reorder(value[k], like.get(k)) for k in keys}


def _importances(data: Any, problems: list[str]) -> dict[str, tuple[float, float]]:
    """fANOVA importance at the matched budget and the ``SPREAD_QUANTILE`` point of its
    bootstrap estimates, as the report's importance section computes them."""
    import warnings

    import numpy as np
    from optuna.importance import FanovaImportanceEvaluator

    from orchestrator.method._report._importance import (
        MIN_IMPORTANCE,
        _estimates,
        _point,
        _seed,
        studies,
    )

    def fanova(seed: int, trees: int | None) -> Any:
        return FanovaImportanceEvaluator(seed=seed, **({"n_trees": trees} if trees else {}))

    try:
        matched, _, dists, _ = studies(data)
        trials = matched.trials
        full = [k for k in dists if all(k in t.params for t in trials)]
        if len(trials) < MIN_IMPORTANCE or not full:
            return {}
        seed = _seed(data)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            point = _point(matched, full, fanova, seed)
            boot = _estimates(matched, full, fanova, seed)
    except Exception as exc:  # noqa: BLE001 - no parameter is then fixed for its importance
        problems.append(f"importance: {type(exc).__name__}: {exc}; no parameter fixed for it")
        return {}
    return {k: (point.get(k, 0.0), float(np.quantile(boot[k], SPREAD_QUANTILE))
                if len(boot.get(k, [])) >= MIN_RESAMPLES else math.inf) for k in full}


# --------------------------------------------------------------------------- planning


def next_name(name: str) -> str:
    """The next sweep's name: a trailing ``-N`` counts up, else ``-2`` is added.

    >>> next_name("digits-tpe-asha"), next_name("digits-tpe-asha-2")
    ('digits-tpe-asha-2', 'digits-tpe-asha-3')
    """
    found = re.fullmatch(r"(.*\D)-(\d{1,4})", name)
    return f"{found[1]}-{int(found[2]) + 1}" if found else f"{name}-2"


def _old_bounds(p: Any) -> tuple[float, float]:
    lo, hi = float(p.min), float(p.max)
    return (math.exp(lo), math.exp(hi)) if p.distribution in EXPONENT else (lo, hi)


def _number(x: float, whole: bool) -> int | float:
    return int(round(x)) if whole else float(x)


def _g(x: Any) -> str:
    return f"{x:.4g}" if isinstance(x, float) else str(x)


Need = list[tuple[Any, str]]  # values a new range must hold, each with who uses it


def _outward(x: float, down: bool) -> float:
    """``x`` to 3 significant digits, rounded away from the range it bounds."""
    if x == 0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(abs(x))) - 2)
    return float(f"{(math.floor if down else math.ceil)(x / step) * step:.3g}")


def _held(lo: float, hi: float, need: Need, whole: bool) -> tuple[float, float, str]:
    """``(lo, hi)`` moved out just enough to hold every number in ``need``, and why."""
    out = [(float(v), who) for v, who in need
           if isinstance(v, (int, float)) and not isinstance(v, bool) and not lo <= v <= hi]
    if not out:
        return lo, hi, ""
    values = [v for v, _ in out]
    new_lo, new_hi = min(lo, *values), max(hi, *values)
    if not whole:
        new_lo = min(new_lo, _outward(new_lo, True)) if new_lo < lo else lo
        new_hi = max(new_hi, _outward(new_hi, False)) if new_hi > hi else hi
    who = sorted({w for _, w in out})
    return new_lo, new_hi, f"; a bound moved out to hold {' and '.join(who)}"


def _numeric(p: Any, s: RangeSuggestion, body: dict[str, Any], need: Need) -> _Plan:
    """The suggested range, moved out to hold ``need``."""
    new = yaml.safe_load(s.suggested)  # the suggestion is flow YAML: {distribution: ...}
    dist = str(new["distribution"])
    q = None if dist == "int_uniform" else new.get("q")
    q = float(q) if q is not None else None
    whole = dist == "int_uniform" or (q is not None and q.is_integer() and
                                      all(float(new[k]).is_integer() for k in ("min", "max")))
    blo, bhi = _old_bounds(p)
    lo, hi, extra = _held(float(new["min"]), float(new["max"]), need, whole)
    kind = ("kept" if (lo, hi) == (blo, bhi) else "narrowed" if blo <= lo and hi <= bhi
            else "widened" if lo <= blo and bhi <= hi else "moved")
    out = {"distribution": dist, "min": _number(lo, whole), "max": _number(hi, whole)}
    if q is not None:
        out["q"] = _number(q, q.is_integer() and whole)
    out.update({k: v for k, v in body.items() if k not in RANGE_KEYS})
    if dist != p.distribution:
        extra += f"; written in values ({dist}), not as {p.distribution}'s exponents"
    verb = {"moved": "narrowed at one end and widened at the other"}.get(kind, kind)
    why = f"{verb} from [{blo:.4g}, {bhi:.4g}] to [{lo:.4g}, {hi:.4g}]: {s.why}{extra}"
    return _Plan(out, kind, why if kind != "kept" else f"kept: {s.why}{extra}")


def _categorical(p: Any, s: RangeSuggestion, body: dict[str, Any], need: Need) -> _Plan:
    """The values the suggestion keeps, plus any the baseline, a point or a `when:` uses."""
    shown = {repr(v) for v in ast.literal_eval(s.suggested.removeprefix("values "))}
    back = {}  # value (repr) kept against the suggestion -> who uses it
    for v, who in need:
        if repr(v) not in shown:
            back.setdefault(repr(v), set()).add(who)
    values = [v for v in p.values if repr(v) in shown or repr(v) in back]
    extra = "".join(f"; {_g(v)} stays all the same: {' and '.join(sorted(back[repr(v)]))} "
                    "uses it" for v in p.values if repr(v) in back)
    out = {k: v for k, v in body.items() if k not in RANGE_KEYS or k == "distribution"}
    out["values"] = values
    if p.probabilities is not None:
        kept = [w for v, w in zip(p.values, p.probabilities) if repr(v) in shown or repr(v) in back]
        if sum(kept) > 0:
            out["probabilities"] = [w / sum(kept) for w in kept]
            extra += "; probabilities of the values kept, scaled to sum to 1"
    if len(values) == len(p.values):
        return _Plan(out, "kept", f"kept: {s.why}{extra}")
    return _Plan(out, "narrowed", f"values {[_g(v) for v in p.values]} → "
                 f"{[_g(v) for v in values]}: {s.why}{extra}")


def _fix(p: Any, plan: _Plan, review: SweepReview, best: RankedTrial) -> tuple[Any, str] | None:
    """``(value, why)`` when ``p`` is exhausted (rules 1 and 2 of the module), else None."""
    if p.distribution == "categorical" and len(plan.body["values"]) == 1 < len(p.values):
        return plan.body["values"][0], (
            f"fixed: one value left of {[_g(v) for v in p.values]}; every other was tried at "
            f"least {MIN_TRIED} times and never among the best ({plan.comment})")
    found = review.importance.get(p.name)
    if found is None or p.name not in best.config or plan.kind in ("widened", "moved"):
        return None
    imp, spread = found
    if imp < FIX_IMPORTANCE and spread < FIX_SPREAD:
        return best.config[p.name], (
            f"fixed at the best trial's value: fANOVA importance {imp:.2g}, and "
            f"{SPREAD_QUANTILE:.0%} of its bootstrap estimates below {spread:.2g} (rule: "
            f"< {FIX_IMPORTANCE} and < {FIX_SPREAD}): it barely moved {review.metric} "
            "in its range, so the budget goes to what did")
    return None


def _point_sources(review: SweepReview) -> list[RankedTrial]:
    run_cap = int(review.spec.run_cap)
    k = min(NEXT_POINTS, max(1, int(run_cap * POINT_SHARE)))
    return list(review.ranked[1:1 + k])


def _needed(review: SweepReview, best: RankedTrial) -> dict[str, Need]:
    """Values each parameter's new range must hold, and who uses them: the baseline, the
    queued points, and what every `when:` names."""
    need: dict[str, Need] = {}
    for r, who in [(best, "the baseline"),
                   *((r, "a queued point") for r in _point_sources(review))]:
        for k, v in r.config.items():
            need.setdefault(k, []).append((v, who))
    for p in review.spec.parameters:
        for target, allowed in p.when:
            need.setdefault(target, []).extend((v, f"{p.name}'s `when:`") for v in allowed)
    return need


def _unmoved(p: Any, s: RangeSuggestion | None, narrow: bool) -> str | None:
    """Why the parameter's range stays as it is ("" to say nothing), or None: it may move."""
    if p.is_placeholder:
        return "kept: `from:` runs its range test again"
    if s is None:
        return "kept: no range suggested"
    if not narrow:
        return ""  # too few trials: said once, in the header
    if p.distribution != "categorical" and p.distribution not in NUMERIC:
        return "kept: orch next moves uniform and log-uniform ranges and categories only"
    if p.distribution != "categorical" and not s.suggested.startswith("{"):
        return ("kept: none of the best trials used it (its `when:` did not hold)" if p.when
                else f"kept: {s.why}")
    return None


def _plan_parameters(review: SweepReview, bodies: Mapping[str, dict[str, Any]]
                     ) -> dict[str, _Plan]:
    """Every searched parameter's new body and the comment saying why."""
    spec, best = review.spec, review.ranked[0]
    ranges = {r.parameter: r for r in suggest_ranges(spec, review.matched,
                                                     tried=review.tried or review.matched)}
    narrow = len(review.matched) >= MIN_TO_NARROW
    need = _needed(review, best)
    named = {target for p in spec.parameters for target, _ in p.when}
    plans: dict[str, _Plan] = {}
    fixes: dict[str, tuple[Any, str]] = {}
    for p in spec.parameters:
        body, s = bodies.get(p.name, {}), ranges.get(p.name)
        if p.is_constant:
            continue
        unmoved = _unmoved(p, s, narrow)
        if unmoved is not None or s is None:
            plans[p.name] = _Plan(dict(body), "kept", unmoved or "")
            continue
        make = _categorical if p.distribution == "categorical" else _numeric
        plans[p.name] = make(p, s, body, need.get(p.name, []))
        found = None if p.name in named else _fix(p, plans[p.name], review, best)
        if found is not None:
            fixes[p.name] = found
    if fixes and len(fixes) == len(plans):
        for name in fixes:
            plans[name].comment += ("; not fixed: every parameter looks exhausted, and a sweep "
                                    "must search something")
        fixes = {}
    for name, (value, why) in fixes.items():
        keep = {k: v for k, v in bodies.get(name, {}).items() if k == "when"}
        plans[name] = _Plan({"value": value, **keep}, "fixed", why)
    return plans


def _points(review: SweepReview, plans: Mapping[str, _Plan], order: Sequence[str]
            ) -> list[dict[str, Any]]:
    """The next best configs, on the parameters the new spec still searches, once each."""
    searched = [n for n in order if n in plans and plans[n].kind != "fixed"
                and not review.spec.parameter(n).is_placeholder]
    out: list[dict[str, Any]] = []
    for r in _point_sources(review):
        point = {k: r.config[k] for k in searched if k in r.config}
        if point and point not in out:
            out.append(point)
    return out


def _seeds(review: SweepReview, data: dict[str, Any]) -> dict[str, str]:
    """New seed, the split pinned; returns the comments on ``seed`` and ``cv``."""
    old, name = int(review.spec.seed), review.name
    data["seed"] = old + SEED_STEP
    comments = {"seed": f"{old} + {SEED_STEP}: fresh trial seeds (each hashes the sweep seed "
                        f"with its config), so the baseline and the queued points are "
                        f"measured again, not replayed from {name}"}
    cv = data.get("cv")
    if isinstance(cv, dict) and cv.get("seed") is None:
        data["cv"] = {**cv, "seed": old}
        comments["cv"] = (f"seed {old}: the folds {name} used, kept although `seed` changed "
                          "(the same split in every experiment)")
    elif not isinstance(cv, dict):
        comments["seed"] += (f". Without `cv:` the hold-out split follows this seed, so it is "
                             f"not the one {name} validated on: compare trials within this "
                             "sweep (its baseline runs here), or add `cv: {folds: 5, seed: N}` "
                             "to pin the split from now on")
    return comments


def _bodies(raw: Any, prefix: str = "") -> dict[str, dict[str, Any]]:
    """Each parameter's raw body (the mapping itself, to edit in place), by dotted name;
    nested ``parameters:`` groups are walked as the spec's parser walks them."""
    out: dict[str, dict[str, Any]] = {}
    for key, body in (raw.items() if isinstance(raw, dict) else ()):
        if isinstance(body, dict) and "parameters" in body:
            out.update(_bodies(body["parameters"], f"{prefix}{key}."))
        elif isinstance(body, dict):
            out[f"{prefix}{key}"] = body
    return out


def _summary(plans: Mapping[str, _Plan], points: Sequence[Any]) -> str:
    kinds = [pl.kind for pl in plans.values()]
    parts = [f"{kinds.count(k)} {k}" for k in ("narrowed", "widened", "moved", "fixed", "kept")
             if kinds.count(k)]
    return (f"ranges: {', '.join(parts) or 'none searched'}; {len(points)} configuration(s) "
            "queued first")


def plan_next(review: SweepReview, *, file: str | None = None, today: str | None = None
              ) -> NextSpec:
    """The next spec from ``review`` (see the module's rules), as commented YAML.

    ``file`` is named in the header's "run it" line, ``today`` (YYYY-MM-DD) dates it.
    The text is loaded back with :func:`~orchestrator.sweepspec.load_spec` before it is
    returned: what this returns is a valid spec (a SpecError would be a bug of orch's).
    """
    from orchestrator.sweepspec import load_spec

    if not review.ranked:
        raise ValueError(f"sweep {review.sweep_id}: a next spec needs at least one finished "
                         "trial in `ranked`, got none")
    data = copy.deepcopy(dict(review.effective))
    bodies = _bodies(data.get("parameters"))
    plans = _plan_parameters(review, bodies)
    for name, plan in plans.items():
        bodies[name].clear()
        bodies[name].update(plan.body)
    comments = _texts(review, data)
    comments.update({k: [v] for k, v in _seeds(review, data).items()})
    points = _baseline_and_points(review, data, plans, comments, order=list(bodies))
    header = _header(review, plans, points, file, today)
    text = _render(data, comments, plans, header, list(review.effective))
    return NextSpec(text=text, name=str(data["name"]), spec=load_spec(text),
                    baseline_from=review.ranked[0].trial_id, points=tuple(points),
                    changes={n: pl.kind for n, pl in plans.items()},
                    fixed={n: pl.comment for n, pl in plans.items() if pl.kind == "fixed"},
                    summary=_summary(plans, points), problems=review.problems)


def _texts(review: SweepReview, data: dict[str, Any]) -> dict[str, list[str]]:
    """The new name, an empty hypothesis and expected result; returns their comments."""
    old = review.name
    data["name"] = next_name(str(data.get("name") or old))
    data["hypothesis"] = data["expected"] = ""
    comments = {"name": [f"the sweep after {old} (sweep {review.sweep_id})"],
                "experiment": ["the same experiment: the sweeps sit side by side in MLflow"],
                "hypothesis": ["write what you expect to change and why before running"],
                "expected": ["and the result that would confirm it, as a rule orch judges, "
                             f"e.g. `{_rule_example(review)}`"]}
    if review.spec.hypothesis:
        comments["hypothesis"].append(f"{old} tested: {review.spec.hypothesis}")
    if review.spec.expected:
        comments["expected"].append(f"{old} expected: {review.spec.expected}")
    return comments


def _baseline_and_points(review: SweepReview, data: dict[str, Any],
                         plans: Mapping[str, _Plan], comments: dict[str, list[str]], *,
                         order: Sequence[str]) -> list[dict[str, Any]]:
    """The best trial's config as ``baseline:``, the next best as ``points_to_evaluate:``
    (for the methods that take them), keys in the spec's ``order``; returns the points."""
    from orchestrator.sweepspec._points import SAMPLED_METHODS

    best, old = review.ranked[0], review.name
    searched = {p.name for p in review.spec.parameters if not p.is_constant}
    data["baseline"] = {k: best.config[k] for k in order if k in searched and k in best.config}
    at = f" at epoch {best.step}" if best.step is not None else ""
    comments["baseline"] = [
        f"the best trial of {old}: {best.trial_id}, {review.metric} {best.value:.4g}{at}. A "
        "config, not its run id: it runs again in this sweep, at this sweep's budget and "
        "seed, and every trial is compared with it on equal terms"]
    method = str(data.get("method", review.spec.method))
    points = _points(review, plans, order) if method in SAMPLED_METHODS else []
    data.pop("points_to_evaluate", None)
    if points:
        data["points_to_evaluate"] = points
        ids = ", ".join(r.trial_id for r in _point_sources(review))
        comments["points_to_evaluate"] = [
            f"the next best of {old} ({ids}), on the parameters still searched: tried first, "
            "after the baseline (Optuna's enqueue_trial); they count within run_cap"]
    elif method == "grid":
        comments["baseline"].append("no points_to_evaluate: a grid runs every point of its "
                                    "space anyway")
    elif method not in SAMPLED_METHODS:
        comments["baseline"].append(f"no points_to_evaluate: method {method} starts from its "
                                    f"own population (only {', '.join(SAMPLED_METHODS)} take "
                                    "points)")
    else:
        comments["baseline"].append(f"no points_to_evaluate: {old} has no other usable trial")
    return points


def _rule_example(review: SweepReview) -> str:
    better = "<=" if review.goal == "minimize" else ">="
    return f"{review.metric} {better} baseline {'-' if better == '<=' else '+'} 0.005"


def _header(review: SweepReview, plans: Mapping[str, _Plan], points: Sequence[Any],
            file: str | None, today: str | None) -> list[str]:
    day = today or time.strftime("%Y-%m-%d", time.gmtime())
    target = file or "<this file>"
    lines = [f"Next sweep after {review.name} (sweep {review.sweep_id}, started "
             f"{review.started}), written by `orch next` on {day} from its review.",
             f"From {review.budget or 'the trials'}: {_summary(plans, points)}. Each change "
             "says why, next to it.",
             f"Verdict on {review.name}: {review.verdict or 'none recorded'}"
             + (f" — {review.verdict_reason}" if review.verdict_reason else "")]
    if len(review.matched) < MIN_TO_NARROW:
        lines.append(f"Every range is kept: {len(review.matched)} trial(s) at one budget, and "
                     f"{MIN_TO_NARROW} are needed before any range is narrowed or a parameter "
                     "fixed (a handful of points is not a range).")
    if review.notes:
        lines.append(f"Notes on {review.name} (`orch note`):")
        lines += [f"  {i}. " + note.strip().replace("\n", "\n     ")
                  for i, note in enumerate(review.notes, 1)]
    else:
        lines.append(f"No notes on {review.name} yet: `orch note {review.sweep_id} \"what I "
                     "learnt\"` keeps your reflection with it.")
    lines += [f"Not read from the store: {p}" for p in review.problems]
    lines += ["Before running: write `hypothesis:` (and `expected:`) below. Then:",
              f"  orch validate {target} && orch sweep {target}"]
    return lines


# --------------------------------------------------------------------------- writing


class _Dumper(yaml.SafeDumper):
    """Safe YAML, never an anchor: every value is written out where it stands."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _yaml(value: Any, flow: bool | None) -> str:
    return yaml.dump(value, Dumper=_Dumper, sort_keys=False, default_flow_style=flow,
                     width=10**6, allow_unicode=True)


def _inline(key: str, value: Any) -> str:
    """``key: {flow value}`` on one line."""
    return _yaml({key: value}, True).strip()[1:-1]


_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def _comment(text: str, indent: int = 0) -> list[str]:
    """``text`` as comment lines: wrapped, each paragraph's later lines indented."""
    pad, out = " " * indent, []
    for para in _CONTROL.sub(" ", str(text)).splitlines() or [""]:
        lead = len(para) - len(para.lstrip(" "))
        wrapped = textwrap.wrap(para.strip(), width=max(40, COMMENT_WIDTH - indent - 2 - lead),
                                break_long_words=False, break_on_hyphens=False) or [""]
        out += [f"{pad}# {' ' * lead}{line}".rstrip() if i == 0 else
                f"{pad}# {' ' * lead}  {line}" for i, line in enumerate(wrapped)]
    return out


def _parameter_lines(raw: Mapping[str, Any], plans: Mapping[str, _Plan], prefix: str,
                     indent: int) -> list[str]:
    pad, lines = " " * indent, []
    for key, body in raw.items():
        dotted = f"{prefix}{key}"
        if isinstance(body, dict) and "parameters" in body:
            lines += [f"{pad}{_yaml(str(key), True).splitlines()[0]}:", f"{pad}  parameters:"]
            lines += _parameter_lines(body["parameters"], plans, f"{dotted}.", indent + 4)
            continue
        plan = plans.get(dotted)
        if plan is not None and plan.comment:
            lines += _comment(plan.comment, indent)
        lines.append(f"{pad}{_inline(key, body)}")
    return lines


def _keys(data: Mapping[str, Any], recorded: Sequence[str]) -> list[str]:
    """The order keys are written in: name, experiment, hypothesis, expected first, then as
    recorded;
    a new ``seed`` goes before the parameters, a new ``baseline`` after them, and the
    points right after the baseline."""
    out = ["name", *(["experiment"] if "experiment" in data else []), "hypothesis", "expected"]
    rest = [k for k in data if k not in (*out, "points_to_evaluate")]
    for key, offset in (("seed", 0), ("baseline", 1)):
        if key not in recorded and key in rest and "parameters" in rest:
            rest.remove(key)
            rest.insert(rest.index("parameters") + offset, key)
    out += rest
    if "points_to_evaluate" in data:
        out.insert(out.index("baseline") + 1, "points_to_evaluate")
    return out


def _render(data: Mapping[str, Any], comments: Mapping[str, list[str]],
            plans: Mapping[str, _Plan], header: list[str], recorded: Sequence[str]) -> str:
    lines: list[str] = []
    for line in header:
        lines += _comment(line)
    lines.append("")
    for key in _keys(data, recorded):
        for text in comments.get(key, []):
            lines += _comment(text)
        value = data[key]
        if key == "parameters" and isinstance(value, dict):
            lines.append("parameters:")
            lines += _parameter_lines(value, plans, "", 2)
        elif key == "baseline" and isinstance(value, dict) and value:
            lines.append(_yaml({key: value}, False).rstrip())
        elif isinstance(value, (dict, list)):
            lines.append(_yaml({key: value}, None).rstrip())
        else:
            lines.append(_yaml({key: value}, False).rstrip())
    return "\n".join(lines) + "\n"


def next_spec(sweep: str | SweepReview, *, tracking_uri: str | None = None,
              file: str | None = None) -> str:
    """The next sweep's spec, as commented YAML text, from a recorded sweep (id, prefix or
    name, as ``orch report`` takes it) or a :class:`SweepReview` read already.

    >>> text = next_spec("digits-tpe-asha", tracking_uri="sqlite:///mlflow.db")  # doctest: +SKIP
    """
    if isinstance(sweep, SweepReview):
        return plan_next(sweep, file=file).text
    from orchestrator.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(tracking_uri)
    return plan_next(read_review(sweep, tracking_uri=uri), file=file).text
