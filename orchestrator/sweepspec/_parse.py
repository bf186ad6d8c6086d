"""Turn YAML (or a mapping) into a validated :class:`SweepSpec`, reporting every problem at once.

The pipeline, each step its own module:

1. ``_yaml`` reads the text safely (lines kept, limits enforced, ``1e-5`` a number);
2. ``_overrides`` applies ``--set`` values;
3. ``_shapes`` checks each section's shape with pydantic (types, unknown keys, words);
4. the sections are read: ``_sections`` (method, trainable, names, budget, baseline,
   resources, cv, numbers), ``_objectives`` (metric, metrics, constraints),
   ``_parameters`` and ``_conditions`` (the space), ``_early`` (early stopping) and
   ``_running`` (stop, PBT), ``_points`` (points to try first, confirmation seeds);
5. the rules that tie sections together (a metric for the method, for early stopping).

Every problem becomes an :class:`~orchestrator.errors.Issue` with its YAML path, its
line, the rule and the bad value, and a fix, collected by ``_issues``; a spec with any
is refused with all of them. Nothing here imports Ray or MLflow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.errors import SpecError
from orchestrator.sweepspec._conditions import resolve_when
from orchestrator.sweepspec._early import read_early_terminate
from orchestrator.sweepspec._issues import Issues, show
from orchestrator.sweepspec._model import SweepSpec
from orchestrator.sweepspec._objectives import check_objectives, read_constraints, read_objectives
from orchestrator.sweepspec._overrides import apply_overrides
from orchestrator.sweepspec._parameters import build_parameters
from orchestrator.sweepspec._points import read_confirm_seeds, read_points
from orchestrator.sweepspec._running import read_pbt, read_stop
from orchestrator.sweepspec._sections import (
    Top,
    note_wandb_keys,
    read_baseline,
    read_budget,
    read_cv,
    read_method,
    read_names,
    read_numbers,
    read_resources,
    read_texts,
    read_trainable,
    slugify,
)
from orchestrator.sweepspec._shapes import TopShape
from orchestrator.sweepspec._yaml import parse_yaml, read_yaml_file

__all__ = ["load_spec", "slugify"]

NOT_A_MAPPING_FIX = "start from search_spaces/quick.yaml"


def load_spec(
    spec: str | Path | Mapping[str, Any],
    *,
    overrides: Sequence[str] | Mapping[str, Any] = (),
    trainable: str | None = None,
) -> SweepSpec:
    """Read and validate a sweep spec; raise :class:`SpecError` listing every problem.

    ``spec`` is a path to a YAML file, YAML text, or a mapping. ``overrides``
    are ``key=value`` strings (dotted keys for nesting, values parsed as YAML)
    or a mapping of dotted keys, applied before validation.

    >>> s = load_spec({"trainable": "digits_mlp", "method": "random",
    ...                "metric": {"name": "val_loss"},
    ...                "parameters": {"lr": {"min": 0.001, "max": 0.1}}},
    ...               overrides=["run_cap=3"])
    >>> s.run_cap, s.parameter("lr").distribution
    (3, 'uniform')
    """
    data, lines, notes, source = _read(spec)
    issues = Issues(lines)
    for note in notes:
        issues.note(note)
    if overrides:
        if data is None:
            data = {}
        if not isinstance(data, dict):
            issues.add("", f"a spec must be a YAML mapping, got {show(data)}", NOT_A_MAPPING_FIX)
            raise SpecError(issues.items, source=source)
        data = apply_overrides(data, overrides, issues)
        if issues.items:
            raise SpecError(issues.items, source=source)
    return _build(data, source, trainable, issues)


def _read(spec: str | Path | Mapping[str, Any]) -> tuple[Any, dict[str, int], list[str], str]:
    """(data, path -> line, notes, source) from a mapping, a file or YAML text."""
    if isinstance(spec, Mapping):
        return dict(spec), {}, [], "<mapping>"
    if isinstance(spec, Path) or (isinstance(spec, str) and "\n" not in spec
                                  and spec.strip().endswith((".yaml", ".yml"))):
        data, lines, _, notes = read_yaml_file(spec)
        return data, lines, notes, str(spec)
    data, lines, notes = parse_yaml(str(spec))
    return data, lines, notes, "<string>"


def _build(data: Any, source: str, trainable: str | None, issues: Issues) -> SweepSpec:
    _non_finite(data, "", issues)
    if not isinstance(data, dict):
        issues.add("", f"a spec must be a YAML mapping, got {show(data)}", NOT_A_MAPPING_FIX)
        raise SpecError(issues.items, source=source)
    try:
        TopShape.model_validate(data)
    except ValidationError as exc:
        issues.from_pydantic(exc, "", TopShape)
    top = Top(data)
    method = read_method(top, issues)
    tname = read_trainable(top, trainable, issues)
    note_wandb_keys(top, trainable, issues)
    objectives = read_objectives(data.get("metric"), data.get("metrics"), issues)
    constraints = read_constraints(data.get("metric_constraints"), issues)
    built, found = build_parameters(data["parameters"], method, issues) \
        if isinstance(data.get("parameters"), dict) else ({}, {})
    built = resolve_when(built, found, method, issues)
    parameters = tuple(built[n] for n in found if n in built)
    run_cap, defaulted = read_budget(top, method, parameters, found, issues)
    early = read_early_terminate(data["early_terminate"], issues) \
        if isinstance(data.get("early_terminate"), dict) else None
    if objectives is not None:
        check_objectives(objectives, method, early=top.has("early_terminate"), issues=issues)
    pbt = read_pbt(data.get("pbt"), method, built, found, objectives=objectives or (),
                   early=top.has("early_terminate"), issues=issues)
    stop = read_stop(data.get("stop"), objectives or (), issues)
    points = read_points(data.get("points_to_evaluate"), method, built, run_cap, issues)
    confirm_seeds = read_confirm_seeds(data.get("confirm_seeds"), issues)
    name, experiment = read_names(top, source, issues)
    texts = read_texts(top, issues)
    baseline, repeats = read_baseline(top, issues)
    numbers = read_numbers(top, issues)
    resources = read_resources(data.get("resources"), issues, method)
    cv = read_cv(data.get("cv"), issues)
    if issues.items or method is None or objectives is None or tname is None:
        # method/objectives/trainable being None always comes with an issue already added.
        raise SpecError(issues.items, source=source)
    return SweepSpec(
        name=name, slug=slugify(name), trainable=tname, method=method,
        metric=objectives[0] if objectives else None, metrics=objectives,
        parameters=parameters, run_cap=run_cap, run_cap_defaulted=defaulted,
        experiment=experiment, hypothesis=texts["hypothesis"], expected=texts["expected"],
        description=texts["description"], baseline=baseline, baseline_repeats=repeats,
        early_terminate=early, resources=resources, cv=cv, stop=stop,
        metric_constraints=constraints, pbt=pbt, storage_path=top.get("storage_path", str),
        points_to_evaluate=points, confirm_seeds=confirm_seeds,
        raw=data, source=source, notes=tuple(issues.notes), **numbers,
    )


def _non_finite(value: Any, path: str, issues: Issues) -> None:
    """Every number in a spec is finite: NaN and ±inf are refused wherever they stand."""
    if isinstance(value, float) and not math.isfinite(value):
        issues.add(path, f"must be a finite number, got {value!r}",
                   "write a finite number (NaN and infinity are never meaningful here)")
    elif isinstance(value, dict):
        for k, v in value.items():
            _non_finite(v, f"{path}.{k}" if path else str(k), issues)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _non_finite(v, f"{path}[{i}]", issues)
