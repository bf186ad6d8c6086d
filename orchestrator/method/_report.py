"""``orch report``: one self-contained HTML file reviewing a recorded sweep.

Everything comes from the MLflow store (parent run, trial runs, their metric
histories and artifacts), so a sweep can be reviewed long after it ran, on any
machine that sees the store. The file has no scripts and no external URLs:
figures are PNGs inlined as ``data:`` URIs, styles are inline. It is also
logged to the sweep's parent run as ``report.html``.

Sections (each an ``<section id=...>``): ``aim`` (hypothesis, expected,
verdict), ``baseline`` (top trials against the baseline with 95% intervals),
``best-trials``, ``curves`` (loss and accuracy of the top trials and the
baseline), ``confusion`` (the best trial's confusion matrix), ``importance``
(Optuna's fANOVA over the finished trials; conditional parameters, which
fANOVA cannot take, are assessed with PED-ANOVA and said so), ``plots``
(Optuna's parallel-coordinate and slice plots), ``diagnosis``, ``budget``
(what early stopping saved), ``next-ranges`` (narrower ranges for the next
sweep) and ``notes`` (``orch note``).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import os
import time
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["REPORT_SECTIONS", "Report", "build_report", "suggest_ranges", "write_report"]

REPORT_SECTIONS = ("aim", "baseline", "best-trials", "curves", "confusion", "importance",
                   "plots", "diagnosis", "budget", "next-ranges", "notes")
TOP_TRIALS = 10  # rows of the best-trials table
TOP_CURVES = 3  # trials drawn in the curves (plus the baseline)
TOP_FRACTION = 0.25  # share of trials whose configs suggest the next ranges (at least 3)
RANGE_MARGIN = 0.1  # the next range is widened by this share of its span on each side
REPORT_NAME = "report.html"
USABLE = ("completed", "early_stopped")
DPI = 90  # dots per inch of the inlined figures


@dataclass
class Report:
    """The HTML text and where it went."""

    html: str
    sweep_id: str
    path: Path | None = None
    logged: bool = False
    problems: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers


def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        if not math.isfinite(x):
            return str(x)
        return f"{x:.{digits}g}"
    return str(x)


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="figure" src="data:image/png;base64,{data}">'


def _figure(w: float, h: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(w, h), dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _table(head: list[str], rows: list[list[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(_fmt(c))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def _section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{_e(title)}</h2>{body}</section>'


def _p(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{_e(text)}</p>'


# --------------------------------------------------------------------------- data


@dataclass
class _Trial:
    run: Any
    trial_id: str
    role: str
    outcome: str
    value: float | None
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]


def _trials(runs: list[Any], metric: str) -> list[_Trial]:
    out = []
    for r in runs:
        v = r.data.metrics.get(metric)
        out.append(_Trial(run=r, trial_id=r.data.tags.get("orch.trial_id") or r.info.run_name,
                          role=r.data.tags.get("orch.role", "trial"),
                          outcome=r.data.tags.get("orch.outcome", ""),
                          value=v if v is not None and math.isfinite(v) else None,
                          params=dict(r.data.params), metrics=dict(r.data.metrics),
                          tags=dict(r.data.tags)))
    return out


def _ranked(trials: list[_Trial], goal: str) -> list[_Trial]:
    ok = [t for t in trials if t.role == "trial" and t.outcome in USABLE and t.value is not None]
    return sorted(ok, key=lambda t: t.value if goal == "minimize" else -t.value)  # type: ignore[operator]


def _number(text: str | None) -> float | None:
    try:
        x = float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) else None


# --------------------------------------------------------------------------- sections


def _aim(parent_tags: dict[str, str], verdict: Any) -> str:
    hyp = parent_tags.get("orch.hypothesis", "") or "(no hypothesis was written down)"
    exp = parent_tags.get("orch.expected", "") or "(no expected result was written down)"
    rule = "a machine-checkable rule" if verdict.rule else "plain text (checked by hand)"
    recorded = parent_tags.get("orch.verdict")
    extra = ""
    if recorded and recorded != verdict.status:
        extra = _p(f"Recorded at the end of the sweep: {recorded} — "
                   f"{parent_tags.get('orch.verdict_reason', '')}")
    return (f"<dl><dt>Hypothesis</dt><dd>{_e(hyp)}</dd><dt>Expected</dt><dd>{_e(exp)} "
            f"<small>({_e(rule)})</small></dd><dt>Verdict</dt><dd><b class=\"verdict "
            f"{_e(verdict.status)}\">{_e(verdict.status)}</b> — {_e(verdict.reason)}</dd></dl>"
            + extra)


def _baseline(ranked: list[_Trial], bases: list[_Trial], metric: str, goal: str,
              folds: int | None) -> str:
    from orchestrator.method._verdict import _compare

    if not bases:
        return _p("This sweep has no baseline run: nothing to compare against. Give the "
                  "spec a `baseline:` config (with `cv:` or `baseline_repeats: 3` for intervals).")
    rows = []
    base_values = [b.value for b in bases if b.value is not None]
    base_mean = sum(base_values) / len(base_values) if base_values else None
    notes = set()
    for t in ranked[:5]:
        comp, why = _compare(metric, goal, t.metrics, [b.metrics for b in bases], folds)
        if comp is None:
            notes.add(why)
            rows.append([t.trial_id, t.value, base_mean,
                         None if base_mean is None else t.value - base_mean,  # type: ignore[operator]
                         "–", "–", "no interval"])
        else:
            rows.append([t.trial_id, comp.trial_mean, comp.baseline_mean, comp.diff,
                         f"[{comp.ci[0]:+.4g}, {comp.ci[1]:+.4g}]", comp.p_value,
                         "beats" if comp.better else ("worse" if comp.worse else "no clear "
                                                      "difference")])
            notes.add(comp.test + (f"; baseline noise floor ±{comp.noise:.3g}"
                                   if math.isfinite(comp.noise) else ""))
    head = ["trial", metric, "baseline", "trial − baseline", "95% CI", "p", "vs baseline"]
    return _table(head, rows) + "".join(_p(n, "muted") for n in sorted(notes))


def _best_table(ranked: list[_Trial], bases: list[_Trial], metric: str,
                searched: list[str]) -> str:
    rows = []
    for i, t in enumerate([*ranked[:TOP_TRIALS], *bases]):
        cfg = ", ".join(f"{k}={t.params[k]}" for k in searched if k in t.params)
        rows.append([t.trial_id if t.role == "trial" else f"{t.trial_id} (baseline)",
                     t.value, t.metrics.get("val_acc"), t.outcome,
                     t.tags.get("orch.stopped_at_epoch") or "", t.tags.get("orch.diagnosis", ""),
                     cfg])
    return _table(["trial", metric, "val_acc", "outcome", "stopped at", "diagnosis", "config"],
                  rows)


def _curves(client: Any, shown: list[_Trial]) -> str:
    if not shown:
        return _p("No finished trial to draw.")
    fig = _figure(11, 4)
    loss_ax, acc_ax = fig.subplots(1, 2)
    for i, t in enumerate(shown):
        color = "black" if t.role == "baseline" else f"C{i}"
        label = f"{t.trial_id} (baseline)" if t.role == "baseline" else t.trial_id
        for ax, key, style in ((loss_ax, "val_loss", "-"), (loss_ax, "train_loss", ":"),
                               (acc_ax, "val_acc", "-")):
            hist = client.history(t.run.info.run_id, key)
            if hist:
                ax.plot([m.step for m in hist], [m.value for m in hist], style, color=color,
                        marker="o", ms=3, label=f"{label} {key}" if ax is loss_ax else label)
    for ax, title in ((loss_ax, "loss (solid: val, dotted: train)"),
                      (acc_ax, "validation accuracy")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    return _png(fig)


def _confusion(client: Any, best: _Trial | None) -> str:
    if best is None:
        return _p("No best trial.")
    try:
        table = json.loads(client.text(best.run.info.run_id, "confusion_matrix.json") or "")
    except ValueError:  # a trainable that writes none
        return _p(f"The best trial ({best.trial_id}) recorded no confusion_matrix.json "
                  "(the toolkit's fit_classifier writes one).")
    import numpy as np

    matrix = np.asarray(table["matrix"])
    labels = [str(x) for x in table.get("labels", range(len(matrix)))]
    fig = _figure(5.5, 5)
    ax = fig.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = matrix.max() / 2 if matrix.size else 0
    for (r, c), n in np.ndenumerate(matrix):
        ax.text(c, r, str(n), ha="center", va="center", fontsize=7,
                color="white" if n > top else "black")
    ax.set_title(f"{best.trial_id}: validation, epoch {table.get('epoch')}, "
                 f"{table.get('folds', 1)} fold(s)")
    fig.tight_layout()
    worst = []
    for i, row in enumerate(matrix):
        total = row.sum()
        if total:
            worst.append((row[i] / total, labels[i]))
    worst.sort()
    hint = ", ".join(f"{lab} ({acc:.0%})" for acc, lab in worst[:3])
    return _png(fig) + _p(f"Classes recalled least well: {hint}.")


def _distributions(spec: Any, trials: list[_Trial]) -> tuple[dict[str, Any], dict[str, dict]]:
    """Optuna distributions of the searched parameters, and each run's typed values."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    from orchestrator.method._runs import _typed

    dists: dict[str, Any] = {}
    values: dict[str, dict] = {t.trial_id: {} for t in trials}
    for p in spec.parameters:
        if p.is_constant:
            continue
        seen = {t.trial_id: _typed(t.params[p.name], p) for t in trials if p.name in t.params}
        if not seen:
            continue
        if p.distribution == "categorical" or p.is_placeholder and not all(
                isinstance(v, (int, float)) for v in seen.values()):
            choices = list(p.values) if p.values else sorted({str(v) for v in seen.values()})
            prim = all(isinstance(c, (type(None), bool, int, float, str)) for c in choices)
            labels = choices if prim else [json.dumps(c, sort_keys=True) for c in choices]
            dists[p.name] = CategoricalDistribution(labels)
            for tid, v in seen.items():
                values[tid][p.name] = v if prim else json.dumps(v, sort_keys=True)
            continue
        nums = [float(v) for v in seen.values() if isinstance(v, (int, float))]
        if not nums:
            continue
        log = p.distribution in ("log_uniform", "log_uniform_values", "q_log_uniform",
                                 "q_log_uniform_values", "log_normal", "q_log_normal") or \
            p.is_placeholder
        lo, hi = min(nums), max(nums)
        if p.min is not None and p.max is not None and not p.distribution.startswith("log_u") \
                and p.distribution != "q_log_uniform":
            lo, hi = min(lo, float(p.min)), max(hi, float(p.max))
        if p.distribution == "int_uniform":
            dists[p.name] = IntDistribution(int(lo), int(hi))
        else:
            if hi <= lo:
                hi = lo * 1.0001 + 1e-12
            dists[p.name] = FloatDistribution(lo, hi, log=log and lo > 0)
        for tid, v in seen.items():
            if isinstance(v, (int, float)):
                values[tid][p.name] = int(v) if p.distribution == "int_uniform" else float(v)
    return dists, values


def _study(spec: Any, ranked: list[_Trial], goal: str) -> tuple[Any, dict[str, Any]]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dists, values = _distributions(spec, ranked)
    study = optuna.create_study(direction=goal)
    for t in ranked:
        params = values.get(t.trial_id, {})
        study.add_trial(optuna.trial.create_trial(
            params=params, distributions={k: dists[k] for k in params}, value=t.value))
    return study, dists


def _importance(study: Any, dists: dict[str, Any], n: int) -> str:
    from optuna.importance import (
        FanovaImportanceEvaluator,
        PedAnovaImportanceEvaluator,
        get_param_importances,
    )

    if n < 2 or not dists:
        return _p(f"Importance needs at least 2 finished trials with searched parameters; "
                  f"this sweep has {n}.")
    counts = Counter(k for t in study.trials for k in t.params)
    full = [k for k in dists if counts[k] == n]
    partial = [k for k in dists if 0 < counts[k] < n]
    parts = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            imp = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=0),
                                        params=full) if full else {}
            rows = [[k, float(v)] for k, v in imp.items()]
            parts.append(_table(["parameter", "fANOVA importance"], rows))
        except Exception as exc:  # noqa: BLE001 - too few or too uniform trials
            parts.append(_p(f"fANOVA could not run: {type(exc).__name__}: {exc}"))
        if partial:
            parts.append(_p(
                "Conditional parameters (" + ", ".join(f"{k}: in {counts[k]}/{n} trials"
                                                       for k in partial)
                + ") are left out of fANOVA, which needs every parameter in every trial; "
                "PED-ANOVA, which takes trials missing a parameter, assessed them instead:"))
            try:
                ped = get_param_importances(study, evaluator=PedAnovaImportanceEvaluator())
                parts.append(_table(["parameter", "PED-ANOVA importance"],
                                    [[k, float(v)] for k, v in ped.items()]))
            except Exception as exc:  # noqa: BLE001
                parts.append(_p(f"PED-ANOVA could not run either: {type(exc).__name__}: {exc}"))
    parts.append(_p(f"Over {n} finished trials (early-stopped ones with the metric at the "
                    "epoch they stopped); few trials make these numbers rough.", "muted"))
    return "".join(parts)


def _optuna_plots(study: Any, n: int) -> str:
    if n < 2 or not any(t.params for t in study.trials):
        return _p("Parallel-coordinate and slice plots need at least 2 finished trials.")
    import matplotlib.pyplot as plt
    import numpy as np
    import optuna.visualization.matplotlib as vm

    out = []
    for name, draw in (("parallel coordinates", vm.plot_parallel_coordinate),
                       ("slice", vm.plot_slice)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                axes = draw(study)
                first = np.asarray(axes).flat[0] if isinstance(axes, np.ndarray) else axes
                fig = first.figure
                if name == "slice":
                    fig.set_size_inches(min(4 * len(np.asarray(axes).flat), 16), 4)
                out.append(f"<h3>{_e(name)}</h3>" + _png(fig))
                plt.close(fig)
            except Exception as exc:  # noqa: BLE001
                out.append(_p(f"The {name} plot could not be drawn: {type(exc).__name__}: {exc}"))
    return "".join(out)


def _diagnosis(trials: list[_Trial]) -> str:
    counts = Counter(t.tags.get("orch.diagnosis") or "(none)" for t in trials)
    outcomes = Counter(t.outcome or "(none)" for t in trials)
    return (_table(["diagnosis", "trials"], sorted(counts.items())) +
            _table(["outcome", "trials"], sorted(outcomes.items())))


def _budget(client: Any, trials: list[_Trial], metric: str, parent_params: dict[str, str]
            ) -> str:
    max_t = _number(parent_params.get("early_terminate.max_t"))
    rows, run, planned = [], 0, 0
    for t in trials:
        hist = client.history(t.run.info.run_id, metric)
        done = len({m.step for m in hist})
        plan = _number(t.params.get("epochs")) or max_t or done
        plan = int(max(plan, done))
        run += done
        planned += plan
        if t.outcome == "early_stopped":
            rows.append([t.trial_id, done, plan, t.tags.get("orch.stopped_at_epoch", "")])
    saved = planned - run
    text = (f"Trials ran {run} epochs; had every trial run to its last epoch they would have "
            f"run {planned}. Early stopping saved {saved} epochs "
            f"({saved / planned:.0%} of the budget)." if planned else "No epochs recorded.")
    if parent_params.get("scheduler", "fifo") == "fifo":
        text += " (This sweep had no early stopping.)"
    return _p(text) + (_table(["early-stopped trial", "epochs run", "epochs planned",
                                "stopped at"], rows) if rows else "")


def suggest_ranges(spec: Any, ranked_values: list[dict[str, Any]], *,
                   fraction: float = TOP_FRACTION, margin: float = RANGE_MARGIN
                   ) -> list[tuple[str, str, str]]:
    """``(parameter, current, suggested)``: the span of the top configs, widened a little.

    ``ranked_values`` holds the typed configs of the finished trials, best first.
    The top ``max(3, fraction × n)`` configs give, per numeric parameter, their
    span widened by ``margin`` of it on each side (in log space for log
    distributions), never beyond the current bounds; per categorical parameter
    the values they use.
    """
    k = max(3, math.ceil(fraction * len(ranked_values)))
    top = ranked_values[:k]
    out = []
    for p in spec.parameters:
        if p.is_constant:
            continue
        seen = [c[p.name] for c in top if p.name in c]
        if not seen:
            continue
        if p.distribution == "categorical":
            used = [v for v in p.values if any(v == s for s in seen)]
            out.append((p.name, f"values {list(p.values)}", f"values {used}"))
            continue
        nums = [float(v) for v in seen if isinstance(v, (int, float))]
        if not nums:
            continue
        log = "log" in p.distribution or p.is_placeholder
        if log and min(nums) <= 0:
            log = False
        f = (lambda x: math.log(x)) if log else (lambda x: x)
        g = (lambda x: math.exp(x)) if log else (lambda x: x)
        lo, hi = f(min(nums)), f(max(nums))
        pad = (hi - lo) * margin if hi > lo else (abs(lo) * margin or margin)
        new_lo, new_hi = g(lo - pad), g(hi + pad)
        cur = ""
        if p.min is not None and p.max is not None:
            bmin, bmax = (math.exp(p.min), math.exp(p.max)) if p.distribution in (
                "log_uniform", "q_log_uniform") else (p.min, p.max)
            new_lo, new_hi = max(new_lo, bmin), min(new_hi, bmax)
            cur = f"{p.distribution} [{_fmt(float(bmin), 3)}, {_fmt(float(bmax), 3)}]"
        if p.distribution == "int_uniform":
            new_lo, new_hi = math.floor(new_lo), math.ceil(new_hi)
        out.append((p.name, cur or p.distribution,
                    f"[{_fmt(float(new_lo), 3)}, {_fmt(float(new_hi), 3)}] "
                    f"(top {len(top)}: {_fmt(min(nums), 3)}…{_fmt(max(nums), 3)})"))
    return out


def _notes(parent_tags: dict[str, str]) -> str:
    from orchestrator.method._runs import notes_of

    notes = notes_of(parent_tags)
    if not notes:
        return _p('No notes yet. Add your reflection with `orch note SWEEP "what I learned"`: '
                  "which change helped, was it what you expected, and why?")
    return "<ol>" + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ol>"


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1150px;color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.9em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}img{max-width:100%;height:auto;display:block;margin:.5em 0}
dt{font-weight:bold;margin-top:.4em}.muted{color:#666;font-size:.9em}
.verdict{padding:.1em .5em;border-radius:.3em}.confirmed{background:#cfc}
.refuted{background:#fcc}.inconclusive{background:#eee}
"""


def build_report(sweep_ref: str, *, tracking_uri: str) -> Report:
    """Read a recorded sweep and render the report's HTML (nothing is written)."""
    from orchestrator.method._runs import sweep_spec
    from orchestrator.method._verdict import judge
    from orchestrator.tracking import Store, find_sweep

    sweep = find_sweep(sweep_ref, tracking_uri=tracking_uri)
    client = Store(tracking_uri)
    parent = client.run(sweep.parent_run_id)
    ptags, pparams = dict(parent.data.tags), dict(parent.data.params)
    metric, goal = sweep.metric, sweep.goal
    spec = sweep_spec(sweep.parent_run_id, tracking_uri=tracking_uri)
    trials = _trials(client.trial_runs(sweep), metric)
    ranked = _ranked(trials, goal)
    bases = [t for t in trials if t.role == "baseline" and t.outcome in USABLE]
    folds = int(_number(pparams.get("cv.folds")) or 0) or None
    best = ranked[0] if ranked else None
    verdict = judge(metric=metric, goal=goal, expected=ptags.get("orch.expected", ""),
                    trial=best.metrics if best else None, baselines=[b.metrics for b in bases],
                    folds=folds, trial_id=best.trial_id if best else "")
    searched = [p.name for p in spec.parameters if not p.is_constant] if spec else \
        sorted({k for t in trials for k in t.params})
    problems: list[str] = []

    def guarded(name: str, make: Any) -> str:
        try:
            return make()
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the rest
            problems.append(f"{name}: {type(exc).__name__}: {exc}")
            return _p(f"This section could not be built: {type(exc).__name__}: {exc}")

    study, dists = None, {}
    if spec is not None and ranked:
        try:
            study, dists = _study(spec, ranked, goal)
        except Exception as exc:  # noqa: BLE001 - importance and plots say so
            problems.append(f"study: {type(exc).__name__}: {exc}")
    ranked_values = [
        {p.name: _typed_param(t, p) for p in spec.parameters if p.name in t.params}
        for t in ranked] if spec else []
    shown = ranked[:TOP_CURVES] + bases[:1]
    sections = [
        ("aim", "Aim and verdict", lambda: _aim(ptags, verdict)),
        ("baseline", "Best trials against the baseline",
         lambda: _baseline(ranked, bases, metric, goal, folds)),
        ("best-trials", "Best trials", lambda: _best_table(ranked, bases, metric, searched)),
        ("curves", "Loss and accuracy curves", lambda: _curves(client, shown)),
        ("confusion", "Confusion matrix of the best trial", lambda: _confusion(client, best)),
        ("importance", "Parameter importance",
         lambda: _importance(study, dists, len(ranked)) if study is not None else
         _p("No spec.yaml recorded or no finished trial: importance not computed.")),
        ("plots", "Parallel coordinates and slices",
         lambda: _optuna_plots(study, len(ranked)) if study is not None else
         _p("No finished trials to plot.")),
        ("diagnosis", "Diagnosis", lambda: _diagnosis(trials)),
        ("budget", "What early stopping saved",
         lambda: _budget(client, [t for t in trials if t.role == "trial"], metric, pparams)),
        ("next-ranges", "Suggested ranges for the next sweep",
         lambda: _table(["parameter", "this sweep", "next sweep"],
                        [list(r) for r in suggest_ranges(spec, ranked_values)])
         if spec is not None and ranked_values else _p("No finished trials to learn from.")),
        ("notes", "Notes and reflection", lambda: _notes(ptags)),
    ]
    body = "".join(_section(sid, title, guarded(sid, make)) for sid, title, make in sections)
    started = sweep.started.strftime("%Y-%m-%d %H:%M UTC")
    head = (f"<h1>{_e(sweep.name)}</h1><p class=\"muted\">sweep {_e(sweep.sweep_id)} · "
            f"experiment {_e(sweep.experiment)} · started {_e(started)} · status "
            f"{_e(sweep.status)} · metric {_e(metric)} ({_e(goal)}) · "
            f"{len([t for t in trials if t.role == 'trial'])} trials, {len(bases)} baseline "
            f"run(s) · parent run {_e(sweep.parent_run_id)}</p>")
    doc = (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
           f"<title>orch report: {_e(sweep.name)}</title><style>{_CSS}</style></head>"
           f"<body>{head}{body}<p class=\"muted\">Generated by orch on "
           f"{_e(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}.</p></body></html>")
    return Report(html=doc, sweep_id=sweep.sweep_id, problems=problems)


def _typed_param(t: _Trial, p: Any) -> Any:
    from orchestrator.method._runs import _typed

    return _typed(t.params[p.name], p)


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
