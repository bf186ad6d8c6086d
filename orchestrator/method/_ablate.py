"""``orch ablate``: one factor at a time around the baseline, every run in parallel.

From the baseline config (``baseline:`` over the space's constants), each searched
parameter is varied **alone** over its values, all other parameters held at the
baseline:

* discrete parameters (``values``, ``int_uniform``, ``q_uniform``) take every value,
  unless there are more than ``MAX_DISCRETE``: then they are treated as ranges;
* ranges take ``quantiles`` points (default 3) at the quantiles ``(i + ½) / n`` of
  the distribution — evenly in log space for log distributions, through the
  inverse CDF for normal ones — rounded to 4 significant digits;
* a value equal to the baseline's is the baseline itself and is not run again.

``when:`` is respected: a parameter whose condition is false at the baseline is not
varied (it would take two changes); a change that switches a conditional parameter
off removes it from the config, and one that switches it on gives it its middle
value (the median quantile, or the first of its values) — listed in ``filled``.

All points run as one sweep (:func:`orchestrator.engine.run_sweep` with
``configs=``), after the baseline (``baseline_repeats`` times), with no early
stopping, so every point trains as long as the baseline. K-fold applies where the
spec has ``cv:``.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import TYPE_CHECKING, Any

from orchestrator.engine import USABLE
from orchestrator.errors import Issue, SpecError
from orchestrator.method._stats import compare_one_sample, compare_paired, noise_floor

if TYPE_CHECKING:
    from orchestrator.engine import SweepResult
    from orchestrator.sweepspec import Parameter, SweepSpec

__all__ = ["Ablation", "AblationPoint", "AblationRow", "ablation_plan", "ablation_values",
           "run_ablation"]

DEFAULT_QUANTILES = 3  # points per continuous range
MAX_DISCRETE = 7  # more discrete values than this are sampled like a range
SIGNIFICANT = 4  # digits kept of a continuous value
BASELINE_LABEL = "(baseline)"  # orch.ablation.param of the baseline runs
ABLATION_CSV = "ablation.csv"
ABLATION_JSON = "ablation.json"


@dataclass(frozen=True)
class AblationPoint:
    """One run: ``param`` set to ``value``, everything else at the baseline."""

    param: str
    value: Any
    config: dict[str, Any]  # flat, dotted keys
    filled: dict[str, Any] = field(default_factory=dict)  # switched on by the change
    dropped: tuple[str, ...] = ()  # switched off by the change


@dataclass(frozen=True)
class AblationRow:
    """The outcome of one point against the baseline."""

    param: str
    value: Any
    metric: float | None
    diff: float | None
    spread: float | None  # std over folds (cv) or the baseline's over repeats
    spread_of: str  # "folds" / "baseline repeats" / ""
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    outcome: str = ""
    trial_id: str = ""

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Ablation:
    """The plan, the sweep that ran it and the table."""

    spec: SweepSpec
    baseline: dict[str, Any]
    points: list[AblationPoint]
    skipped: list[tuple[str, str]]
    result: SweepResult | None = None
    rows: list[AblationRow] = field(default_factory=list)
    baseline_value: float | None = None
    problems: list[str] = field(default_factory=list)

    def csv(self) -> str:
        buf = io.StringIO()
        names = [f.name for f in dataclasses.fields(AblationRow)]
        writer = csv.DictWriter(buf, fieldnames=names)
        writer.writeheader()
        for row in self.rows:
            d = row.as_dict()
            d["value"] = _label(d["value"])
            writer.writerow(d)
        return buf.getvalue()

    def to_json(self) -> str:
        return json.dumps({
            "metric": self.spec.metric.name, "goal": self.spec.metric.goal,
            "baseline": self.baseline, "baseline_value": self.baseline_value,
            "rows": [r.as_dict() for r in self.rows],
            "points": [dataclasses.asdict(p) for p in self.points],
            "skipped": [{"param": n, "reason": why} for n, why in self.skipped],
        }, indent=1, default=str)


def _label(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _round(x: float) -> float:
    return float(f"{x:.{SIGNIFICANT}g}")


def _quantile(p: Parameter, q: float) -> Any:
    from orchestrator.sweepspec import quantize as _quantize

    d = p.distribution
    if d in ("uniform", "q_uniform", "int_uniform"):
        x = p.min + (p.max - p.min) * q  # type: ignore[operator]
    elif d in ("log_uniform_values", "q_log_uniform_values"):
        x = math.exp(math.log(p.min) + (math.log(p.max) - math.log(p.min)) * q)  # type: ignore[arg-type]
    elif d in ("log_uniform", "q_log_uniform"):
        x = math.exp(p.min + (p.max - p.min) * q)  # type: ignore[operator]
    elif d in ("normal", "q_normal"):
        x = p.mu + p.sigma * NormalDist().inv_cdf(q)
    elif d in ("log_normal", "q_log_normal"):
        x = math.exp(p.mu + p.sigma * NormalDist().inv_cdf(q))
    else:
        raise ValueError(f"parameter {p.name!r} ({d}) has no quantiles")
    if d == "int_uniform":
        return int(round(x))
    if d.startswith("q_"):
        return _quantize(x, p.q or 1.0)
    return _round(x)


def ablation_values(p: Parameter, *, quantiles: int = DEFAULT_QUANTILES) -> tuple[Any, ...]:
    """The values one parameter takes in the ablation (see the module's rules).

    >>> from orchestrator.sweepspec import Parameter
    >>> ablation_values(Parameter("lr", "log_uniform_values", min=1e-4, max=1e-1))
    (0.0003162, 0.003162, 0.03162)
    """
    if quantiles < 1:
        raise ValueError(f"`quantiles` must be >= 1, but got {quantiles!r}")
    grid = p.grid_values()
    if grid is not None and len(grid) <= MAX_DISCRETE:
        return tuple(grid)
    out: list[Any] = []
    for i in range(quantiles):
        v = _quantile(p, (i + 0.5) / quantiles)
        if all(v != w for w in out):
            out.append(v)
    return tuple(out)


def _default(p: Parameter) -> Any:
    if p.is_constant:
        return p.value
    grid = p.grid_values()
    if grid is not None and len(grid) <= MAX_DISCRETE:
        return grid[0]
    return _quantile(p, 0.5)


def ablation_plan(spec: SweepSpec, *, quantiles: int = DEFAULT_QUANTILES) -> tuple[
        dict[str, Any], list[AblationPoint], list[tuple[str, str]]]:
    """``(baseline, points, skipped)``: the flat baseline config, one point per
    (parameter, value) and the parameters not varied with the reason."""
    from orchestrator.sweepspec import active as _active
    from orchestrator.sweepspec import baseline_config, flatten, sampling_order
    from orchestrator.sweepspec import same as _same

    base = baseline_config(spec)
    if base is None:
        raise SpecError([Issue("baseline", "an ablation varies one parameter at a time "
                               "around a baseline, but the spec has no `baseline:` config",
                               "add `baseline: {lr: 0.001, width: 64, ...}`")],
                        source=spec.source)
    flat = flatten(base)
    order = sampling_order(spec.parameters)
    points: list[AblationPoint] = []
    skipped: list[tuple[str, str]] = []
    for p in spec.parameters:
        if p.is_constant:
            continue
        if p.is_placeholder:
            skipped.append((p.name, f"`from: {p.source}` is not resolved yet"))
            continue
        if not _active(p, flat):
            needs = ", ".join(f"{dep} in {list(v)}" for dep, v in p.when)
            skipped.append((p.name, f"inactive at the baseline (needs {needs})"))
            continue
        for value in ablation_values(p, quantiles=quantiles):
            if p.name in flat and _same(flat[p.name], value):
                continue
            cfg = {**flat, p.name: value}
            filled: dict[str, Any] = {}
            dropped: list[str] = []
            for other in order:
                if other.name == p.name:
                    continue
                on = _active(other, cfg)
                if not on and other.name in cfg and other.when:
                    del cfg[other.name]
                    dropped.append(other.name)
                elif on and other.name not in cfg and other.when and \
                        not _active(other, flat):
                    cfg[other.name] = filled[other.name] = _default(other)
            points.append(AblationPoint(p.name, value, cfg, filled, tuple(dropped)))
    if not points:
        raise SpecError([Issue("parameters", "nothing to ablate: no searched parameter "
                               "differs from the baseline"
                               + ("".join(f"; {n}: {why}" for n, why in skipped)),
                               "search at least one parameter active at the baseline")],
                        source=spec.source)
    return flat, points, skipped


def _key(config: dict[str, Any]) -> str:
    from orchestrator.sweepspec import flatten

    return json.dumps(flatten(config), sort_keys=True, default=str)


def _rows(ab: Ablation) -> None:
    """Fill ``ab.rows`` from the sweep's records."""
    result, spec = ab.result, ab.spec
    if result is None:
        raise RuntimeError("the ablation has not run yet: call run_ablation first")
    metric, goal = spec.metric.name, spec.metric.goal
    folds = spec.cv.folds if spec.cv else None
    bases = [r for r in result.records if r.role == "baseline" and r.history
             and r.outcome in USABLE]
    base_values = [v for v in (r.value(metric) for r in bases) if v is not None]
    ab.baseline_value = sum(base_values) / len(base_values) if base_values else None
    base_folds = None
    if folds and bases:
        per = [[r.history[-1].get(f"{metric}_fold{k}") for k in range(folds)] for r in bases]
        if all(v is not None for row in per for v in row):
            base_folds = [sum(row[k] for row in per) / len(per) for k in range(folds)]
    by_config = {_key(r.config): r for r in result.records if r.role == "trial"}
    noise = noise_floor(base_values) if len(base_values) >= 2 else None
    for point in ab.points:
        rec = by_config.get(json.dumps(point.config, sort_keys=True, default=str))
        value = rec.value(metric) if rec is not None else None
        row: dict[str, Any] = {"param": point.param, "value": point.value, "metric": value,
                               "diff": None, "spread": None, "spread_of": "",
                               "outcome": rec.outcome if rec else "missing",
                               "trial_id": rec.trial_id if rec else ""}
        if value is not None and ab.baseline_value is not None:
            row["diff"] = value - ab.baseline_value
        if rec is not None and value is not None and folds:
            fv = [rec.history[-1].get(f"{metric}_fold{k}") for k in range(folds)]
            if all(v is not None for v in fv):
                row["spread"], row["spread_of"] = noise_floor(fv), "folds"
                if base_folds is not None:
                    c = compare_paired(fv, base_folds, metric=metric, goal=goal)
                    row.update(diff=c.diff, ci_low=c.ci[0], ci_high=c.ci[1], p_value=c.p_value)
        elif value is not None and noise is not None:
            row["spread"], row["spread_of"] = noise, "baseline repeats"
            c = compare_one_sample(value, base_values, metric=metric, goal=goal)
            row.update(ci_low=c.ci[0], ci_high=c.ci[1], p_value=c.p_value)
        ab.rows.append(AblationRow(**row))


def _record(ab: Ablation) -> None:
    """Per-run tags ``orch.ablation.param``/``value``; CSV and JSON on the parent run."""
    result = ab.result
    if result is None or not result.tracking_uri or not result.parent_run_id:
        return
    from types import SimpleNamespace

    from orchestrator.tracking import Store

    store = Store(result.tracking_uri)
    runs = store.trial_runs(SimpleNamespace(parent_run_id=result.parent_run_id,
                                            experiment_id=result.experiment_id))
    run_of = {r.data.tags.get("orch.trial_id"): r.info.run_id for r in runs}
    by_trial = {row.trial_id: row for row in ab.rows if row.trial_id}
    for rec in result.records:
        run_id = run_of.get(rec.trial_id)
        if run_id is None:
            continue
        if rec.role == "baseline":
            tags = {"orch.ablation.param": BASELINE_LABEL, "orch.ablation.value": ""}
        elif rec.trial_id in by_trial:
            row = by_trial[rec.trial_id]
            tags = {"orch.ablation.param": row.param, "orch.ablation.value": _label(row.value)}
        else:
            continue
        store.set_tags(run_id, tags)
    store.log_text(result.parent_run_id, ab.csv(), ABLATION_CSV)
    store.log_text(result.parent_run_id, ab.to_json(), ABLATION_JSON)
    store.set_tags(result.parent_run_id, {"orch.ablation": "true"})


def run_ablation(spec: SweepSpec, *, trainable: Callable[..., Any] | None = None,
                 quantiles: int = DEFAULT_QUANTILES, address: str | None = None,
                 tracking_uri: str | None = None, tracking: bool = True,
                 storage_path: str | None = None, live: bool | None = False) -> Ablation:
    """Plan the ablation, run every point in one sweep, and tabulate it against the baseline.

    >>> ab = run_ablation(load_spec("search_spaces/quick.yaml"))   # doctest: +SKIP
    >>> [(r.param, r.value, r.diff) for r in ab.rows]               # doctest: +SKIP
    """
    from orchestrator.engine import run_sweep
    from orchestrator.method._lr_find import resolve_placeholders

    spec = resolve_placeholders(spec, trainable=trainable, tracking_uri=tracking_uri,
                                tracking=tracking)
    base, points, skipped = ablation_plan(spec, quantiles=quantiles)
    # No early stopping: every point trains as long as the baseline it is compared with.
    run_spec = dataclasses.replace(spec, name=f"{spec.name}-ablation",
                                   slug=f"{spec.slug}-ablation", method="grid",
                                   run_cap=len(points), early_terminate=None,
                                   run_cap_defaulted=False)
    ab = Ablation(spec=run_spec, baseline=base, points=points, skipped=skipped)
    from orchestrator.method._verdict import verdict_for

    ab.result = run_sweep(run_spec, trainable=trainable, address=address,
                          tracking_uri=tracking_uri, tracking=tracking,
                          storage_path=storage_path, live=live,
                          configs=[p.config for p in points], verdict=verdict_for)
    _rows(ab)
    if tracking:
        try:
            _record(ab)
        except Exception as exc:  # noqa: BLE001 - the table stands without its record
            ab.problems.append(f"ablation tags/artifacts not recorded: "
                               f"{type(exc).__name__}: {exc}")
    return ab
