"""``orch report``: one self-contained HTML file reviewing a recorded sweep.

Everything comes from the MLflow store (parent run, trial runs, their metric
histories and artifacts), so a sweep can be reviewed long after it ran, on any
machine that sees the store, and early-stopped trials are drawn from their recorded
points like any other. The file has no scripts and no external URLs: figures are
PNGs inlined as ``data:`` URIs, styles are inline. It is also logged to the sweep's
parent run as ``report.html``.

Sections (each a ``<section id=...>``, in this order): ``aim`` (hypothesis,
expected, verdict and what it judged), ``baseline`` (the best trials against the
baseline at the epoch both reached, trial − baseline with 95% intervals),
``best-trials`` (ranked, with what each changed), ``curves`` (every trial, the
baseline and the best highlighted, then one panel per trial), ``gradients``
(gradient norms and update/weight ratio per trial, with the vanishing/exploding
verdict), ``confusion``, ``importance`` (fANOVA and PED-ANOVA at a matched budget,
bootstrap spread), ``plots`` (optimisation history, intermediate values, parallel
coordinates, slices, contour of the two most important), ``diagnosis``, ``budget``
(what early stopping saved), ``next-ranges`` and ``notes``; ``objectives`` (the Pareto
front, the constraints) for several objectives or constraints and ``population`` (the
best trial's PBT schedule) for pbt/pb2. An ablation
(``orch ablate``) gets ``ablation`` (the factor = value table) in place of
``importance`` and the search plots.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.method._report import _sections as sections
from orchestrator.method._report._data import SweepData, load
from orchestrator.method._report._html import CSS, esc, para, section, table
from orchestrator.method._report._importance import importance, plots, studies, top_parameters
from orchestrator.method._report._objectives import objectives, population
from orchestrator.method._report._ranges import RangeSuggestion, suggest_ranges

__all__ = ["ABLATION_SECTIONS", "REPORT_SECTIONS", "RangeSuggestion", "Report", "build_report",
           "suggest_ranges", "write_report"]

REPORT_SECTIONS = ("aim", "baseline", "best-trials", "curves", "gradients", "confusion",
                   "importance", "plots", "diagnosis", "budget", "next-ranges", "notes")
ABLATION_SECTIONS = ("aim", "ablation", "best-trials", "curves", "gradients", "confusion",
                     "diagnosis", "notes")
REPORT_NAME = "report.html"


@dataclass
class Report:
    """The HTML text and where it went."""

    html: str
    sweep_id: str
    path: Path | None = None
    logged: bool = False
    problems: list[str] = field(default_factory=list)


def _verdict(data: SweepData) -> Any:
    from orchestrator.method._verdict import assess

    spec = data.spec
    return assess(metric=data.metric, goal=data.goal, expected=data.ptags.get("orch.expected", ""),
                  hypothesis=data.ptags.get("orch.hypothesis", ""), runs=data.runs,
                  folds=data.folds, parameters=spec.parameters if spec is not None else (),
                  baseline=data.baseline_config or None)


def _next_ranges(data: SweepData, budget: Any) -> str:
    if data.spec is None:
        return para("No spec.yaml recorded: no ranges to suggest.")
    at = {t.trial_id: t for t in data.trials}
    sign = 1.0 if data.goal == "minimize" else -1.0
    ranked = sorted(budget.values, key=lambda tid: sign * budget.values[tid])
    found = suggest_ranges(data.spec, [dict(at[t].config) for t in ranked],
                           tried=[dict(t.config) for t in data.trials if t.rows])
    return (para(f"From matched budgets: {budget.describe()}.", "muted") +
            table(["parameter", "this sweep", "next sweep", "why"], [r.as_row() for r in found]))


def _search_sections(data: SweepData, problems: list[str]) -> dict[str, Any]:
    """``importance``, ``plots`` and ``next-ranges``, sharing the rebuilt studies."""
    if data.spec is None or not data.ranked:
        why = para("No spec.yaml recorded or no finished trial: not computed.")
        return {"importance": lambda: why, "plots": lambda: why, "next-ranges": lambda: why}
    try:
        matched, history, dists, budget = studies(data)
    except Exception as exc:  # noqa: BLE001 - the sections say so
        problems.append(f"study: {type(exc).__name__}: {exc}")
        why = para(f"The trials could not be rebuilt as an Optuna study: {exc}")
        return {"importance": lambda: why, "plots": lambda: why,
                "next-ranges": lambda: _next_ranges(data, data.budget)}
    from orchestrator.method._report._importance import _seed

    return {"importance": lambda: importance(data, matched, dists, budget),
            "plots": lambda: plots(data, matched, history, budget,
                                   top_parameters(matched, dists, _seed(data))),
            "next-ranges": lambda: _next_ranges(data, budget)}


def _sections_for(data: SweepData) -> tuple[str, ...]:
    """The report's sections; ``objectives`` after ``baseline`` for several objectives or
    constraints, ``population`` after ``curves`` for PBT/PB2."""
    spec, order = data.spec, list(REPORT_SECTIONS)
    if spec is not None and (len(spec.metrics) >= 2 or spec.metric_constraints):
        order.insert(order.index("baseline") + 1, "objectives")
    if spec is not None and spec.method in ("pbt", "pb2"):
        order.insert(order.index("curves") + 1, "population")
    return tuple(order)


TITLES = {"aim": "Aim and verdict", "baseline": "Best trials against the baseline",
          "best-trials": "Trials, best first", "curves": "Learning curves of every trial",
          "gradients": "Gradient health", "confusion": "Confusion matrices",
          "importance": "Parameter importance", "plots": "The search, in pictures",
          "diagnosis": "Diagnosis", "budget": "What early stopping saved",
          "next-ranges": "Suggested ranges for the next sweep",
          "ablation": "One factor at a time", "notes": "Notes and reflection",
          "objectives": "Objectives and constraints", "population": "Population-based training"}


def build_report(sweep_ref: str, *, tracking_uri: str) -> Report:
    """Read a recorded sweep and render the report's HTML (nothing is written)."""
    data = load(sweep_ref, tracking_uri=tracking_uri)
    problems: list[str] = []
    verdict = _verdict(data)
    makers: dict[str, Any] = {
        "aim": lambda: sections.aim(data, verdict),
        "baseline": lambda: sections.baseline(data),
        "best-trials": lambda: sections.best_trials(data),
        "curves": lambda: sections.curves(data),
        "gradients": lambda: sections.gradients(data),
        "confusion": lambda: sections.confusion(data),
        "diagnosis": lambda: sections.diagnosis(data),
        "budget": lambda: sections.budget(data),
        "ablation": lambda: sections.ablation(data),
        "notes": lambda: sections.notes(data),
        "objectives": lambda: objectives(data),
        "population": lambda: population(data),
    }
    is_ablation = data.ptags.get("orch.ablation") == "true"
    order = ABLATION_SECTIONS if is_ablation else _sections_for(data)
    if not is_ablation:
        makers.update(_search_sections(data, problems))

    def guarded(name: str) -> str:
        try:
            return makers[name]()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the rest
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return para(f"This section could not be built: {type(exc).__name__}: {exc}")

    body = "".join(section(sid, TITLES[sid], guarded(sid)) for sid in order)
    return Report(html=_page(data, body), sweep_id=data.sweep.sweep_id, problems=problems)


def _page(data: SweepData, body: str) -> str:
    sweep = data.sweep
    started = sweep.started.strftime("%Y-%m-%d %H:%M UTC")
    head = (f"<h1>{esc(sweep.name)}</h1><p class=\"muted\">sweep {esc(sweep.sweep_id)} · "
            f"experiment {esc(sweep.experiment)} · started {esc(started)} · status "
            f"{esc(sweep.status)} · metric {esc(data.metric)} ({esc(data.goal)}) · "
            f"{len(data.trials)} trials, {len(data.bases)} baseline run(s) · parent run "
            f"{esc(sweep.parent_run_id)}</p>")
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>orch report: {esc(sweep.name)}</title><style>{CSS}</style></head>"
            f"<body>{head}{body}<p class=\"muted\">Generated by orch on "
            f"{esc(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}.</p></body></html>")


def write_report(sweep_ref: str, *, tracking_uri: str,
                 out: str | os.PathLike[str] | None = None, log: bool = True) -> Report:
    """Build the report, write it to ``out`` (default ``report-<sweep id>.html``) and log
    it to the sweep's parent run as ``report.html``."""
    from orchestrator.tracking import Store, find_sweep

    report = build_report(sweep_ref, tracking_uri=tracking_uri)
    path = Path(out) if out else Path(f"report-{report.sweep_id}.html")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.html, encoding="utf-8")
    report.path = path
    if log:
        try:
            sweep = find_sweep(report.sweep_id, tracking_uri=tracking_uri)
            Store(tracking_uri).log_text(sweep.parent_run_id, report.html, REPORT_NAME)
            report.logged = True
        except Exception as exc:  # noqa: BLE001 - the file is written either way
            report.problems.append(f"not logged to MLflow: {type(exc).__name__}: {exc}")
    return report
