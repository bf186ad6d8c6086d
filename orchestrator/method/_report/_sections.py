"""The report's sections that read the trials directly: aim and verdict, the baseline
comparison at matched budgets, the ranked trials, every trial's curves, gradient health,
confusion matrices, diagnosis, budget, the ablation table and the notes."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from orchestrator.method._budget import RunView, common_step
from orchestrator.method._report._data import SweepData
from orchestrator.method._report._html import cell, esc, fmt, para, table
from orchestrator.method.figures import (
    BASELINE,
    BEST,
    OTHER,
    draw_confusion_matrix,
    figure,
    png_tag,
    recall_by_class,
    robust_limits,
)

__all__ = ["ablation", "aim", "baseline", "best_trials", "budget", "confusion", "curves",
           "diagnosis", "gradients", "notes"]

TOP_COMPARED = 5  # trials compared with the baseline in the table
TOP_TRIALS = 12  # rows of the ranked-trials table
MAX_PANELS = 24  # small multiples (curves, gradients): the best, then the rest, baseline first
PANEL_COLUMNS = 4
LOG_SPAN = 10.0  # a log axis spans at least this factor
CONFUSIONS = 4  # confusion matrices shown (best trials first), besides the baseline's
CONFUSION_COLUMNS = 3  # matrices per row: big enough to read every count
GRADIENT_KEYS = ("grad_norm", "grad_norm_first", "grad_norm_last")
GRADIENT_COLORS = {"grad_norm": "#1f77b4", "grad_norm_first": "#2ca02c",
                   "grad_norm_last": "#9467bd", "update_ratio": "#d62728"}


def _label(run: RunView) -> str:
    return f"{run.trial_id} (baseline)" if run.role == "baseline" else run.trial_id


def _series(run: RunView, key: str) -> dict[int, float]:
    return {s: float(row[key]) for s, row in sorted(run.rows.items())
            if key in row and math.isfinite(float(row[key]))}


def _shown_runs(data: SweepData) -> list[RunView]:
    """Baseline first, then every usable trial best first, then the others (failed ...)."""
    ranked = data.ranked
    rest = [t for t in data.trials if t not in ranked and t.rows]
    return [*data.bases, *ranked, *rest][:MAX_PANELS]


# --------------------------------------------------------------------------- aim


def aim(data: SweepData, verdict: Any) -> str:
    tags = data.ptags
    hyp = tags.get("orch.hypothesis", "") or "(no hypothesis was written down)"
    exp = tags.get("orch.expected", "") or "(no expected result was written down)"
    kind = "a machine-checkable rule" if verdict.rule else "plain text: it can only end " \
        "inconclusive; write it as a rule, e.g. `val_acc >= baseline + 0.005`"
    confirmed = tags.get("orch.confirmation_sweep_id")
    shown_status, shown_reason = verdict.status, verdict.reason
    extra = ""
    if confirmed:
        shown_status = tags.get("orch.verdict", verdict.status)
        shown_reason = tags.get("orch.verdict_reason", "")
        extra = para(f"Before the confirmation (on the folds the trial was chosen on) the "
                     f"verdict was: {verdict.status} — {verdict.reason}", "muted")
    elif verdict.rule is not None and verdict.comparison is None and verdict.config:
        extra = para("Nothing in this sweep answers the hypothesis directly: the confirmation "
                     "step (`confirm_seeds`, on by default with `expected:`) or `orch ablate` "
                     "runs the one-factor configuration above and the baseline on fresh seeds.",
                     "note")
    elif verdict.rule is not None:
        extra = para("The judged trial was chosen on the very folds it is tested on, so this "
                     "interval is optimistic (the winner's curse). The confirmation step "
                     "re-runs it and the baseline on fresh seeds (`confirm_seeds`, on by "
                     "default with `expected:`); this sweep has no confirmation recorded.",
                     "note")
    elif tags.get("orch.verdict") and tags["orch.verdict"] != verdict.status:
        extra = para(f"Recorded at the end of the sweep: {tags['orch.verdict']} — "
                     f"{tags.get('orch.verdict_reason', '')}")
    return (f"<dl><dt>Hypothesis</dt><dd>{esc(hyp)}</dd><dt>Expected</dt><dd>{esc(exp)} "
            f"<small>({esc(kind)})</small></dd><dt>Verdict</dt><dd><b class=\"verdict "
            f"{esc(shown_status)}\">{esc(shown_status)}</b> — {esc(shown_reason)}</dd></dl>"
            + extra)


# --------------------------------------------------------------------------- baseline


def _standing(comp: Any) -> cell:
    cls = "better" if comp.better else ("worse" if comp.worse else "")
    return cell(f'<span class="{cls}">{esc(comp.standing)} the baseline</span>')


def baseline(data: SweepData) -> str:
    from orchestrator.method._verdict import _compare, when

    bases = data.bases
    if not bases:
        return para("This sweep has no baseline run: nothing to compare against. Give the "
                    "spec a `baseline:` config (with `cv:` or `baseline_repeats: 3` for "
                    "intervals).")
    rows, notes = [], set()
    for t in data.ranked[:TOP_COMPARED]:
        step = common_step(t, bases, data.metric)
        if step is None:
            continue
        comp, why = _compare(data.metric, data.goal, t.row(step), [b.row(step) for b in bases],
                             data.folds)
        at = when(t.row(step), step)
        if comp is None:
            notes.add(why)
            base = sum(b.value(data.metric, step) or 0 for b in bases) / len(bases)
            rows.append([t.trial_id, at, t.value(data.metric, step), base,
                         (t.value(data.metric, step) or 0) - base, "–", "–", "no interval"])
            continue
        rows.append([t.trial_id, at, comp.trial_mean, comp.baseline_mean, comp.diff,
                     f"[{comp.ci[0]:+.3g}, {comp.ci[1]:+.3g}]", comp.p_value, _standing(comp)])
        notes.add(f"At {at}: {comp.test}; {comp.noise_text}.")
    head = ["trial", "compared at", data.metric, "baseline", "trial − baseline", "95% CI", "p",
            "verdict"]
    lead = para("Each trial is compared with the baseline at the epoch both reached (an "
                "early-stopped trial with the baseline at the epoch it stopped), as trial − "
                "baseline. \"Not significantly different\" means the interval contains 0.")
    return lead + table(head, rows) + "".join(para(n, "muted") for n in sorted(notes))


def best_trials(data: SweepData) -> str:
    from orchestrator.method._verdict import changed

    base_cfg = data.baseline_config
    rows = []
    for t in [*data.ranked[:TOP_TRIALS], *data.bases]:
        diff = changed(t.config, base_cfg) if base_cfg and t.role == "trial" else {}
        if diff:
            cfg = ", ".join(f"{k}={fmt(b, 3)}" for k, (_, b) in diff.items())
        elif base_cfg and t.role == "trial":
            cfg = "(the baseline's configuration)"
        else:
            cfg = ", ".join(f"{k}={fmt(t.config[k], 3)}" for k in data.searched if k in t.config)
        rows.append([_label(t), t.value(data.metric), t.value("val_acc"), t.outcome,
                     t.last_step(data.metric), t.tags.get("orch.diagnosis", ""), cfg])
    head = ["trial", data.metric, "val_acc", "outcome", "epochs", "diagnosis",
            "changed from the baseline" if base_cfg else "config"]
    return (para("Ranked by how far early stopping let them run, then by the metric at their "
                 "last epoch: a trial cut at epoch 2 is not ranked against one trained for "
                 "18 on its last value.", "muted") + table(head, rows))


# --------------------------------------------------------------------------- curves


def _overview(data: SweepData, key: str, ax: Any, best: RunView | None) -> bool:
    drawn = False
    series = []
    for run in [*data.trials, *data.bases]:
        s = _series(run, key)
        if not s:
            continue
        series.append(s)
        is_best, is_base = best is not None and run is best, run.role == "baseline"
        color = BEST if is_best else (BASELINE if is_base else OTHER)
        ax.plot(list(s), list(s.values()), color=color, lw=2.2 if is_best or is_base else 0.9,
                alpha=1 if is_best or is_base else 0.7, zorder=3 if is_best or is_base else 2,
                label=f"best: {run.trial_id}" if is_best else ("baseline" if is_base else None))
        if run.outcome == "early_stopped":
            last = max(s)
            ax.plot([last], [s[last]], "x", color=color, ms=6, zorder=4)
        if key.endswith("loss"):  # where over-fitting would start: the lowest point
            low = min(s, key=s.get)
            ax.plot([low], [s[low]], "o", color=color, ms=3, zorder=4)
        drawn = True
    limits = robust_limits(series)
    if limits:
        ax.set_ylim(*limits)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_title(key)
    ax.grid(alpha=0.3)
    return drawn


def _draw_keys(ax: Any, run: RunView, keys: Sequence[str], colors: dict[str, str] | None,
               color: str) -> None:
    styles = {"train_loss": ":", "grad_norm_first": "--", "grad_norm_last": "-."}
    for key in keys:
        s = _series(run, key)
        if not s:
            continue
        c = colors.get(key, color) if colors else color
        ax.plot(list(s), list(s.values()), styles.get(key, "-"), color=c, lw=1.4, label=key,
                marker="o", ms=2.5)  # a trial cut after one epoch is a point, not a line
        band = _series(run, f"{key}_std")
        if band:
            xs = [x for x in s if x in band]
            ax.fill_between(xs, [s[x] - band[x] for x in xs], [s[x] + band[x] for x in xs],
                            color=c, alpha=0.15, lw=0)


def _plain_log(ax: Any) -> None:
    """Log-axis ticks as plain numbers (0.3, not 3 × 10⁻¹), without minor labels, spanning
    at least a factor of ``LOG_SPAN`` (a flat curve is not zoomed into its noise)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    values = [y for line in ax.get_lines() for y in line.get_ydata() if y > 0]
    if values:
        lo, hi = min(values), max(values)
        if hi / lo < LOG_SPAN:
            mid = math.sqrt(lo * hi)
            ax.set_ylim(mid / math.sqrt(LOG_SPAN), mid * math.sqrt(LOG_SPAN))
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0), numticks=6))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.2g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _panels(runs: Sequence[RunView], keys: Sequence[str], best: RunView | None, *,
            log: bool = False, limits: Any = None, title: Any = None,
            colors: dict[str, str] | None = None, twin: str = "") -> Any:
    """One small panel per run, shared x; ``twin`` is drawn on a right-hand log axis."""
    from matplotlib.ticker import MaxNLocator

    rows = math.ceil(len(runs) / PANEL_COLUMNS)
    fig = figure(12, 2.4 * rows)
    axes = fig.subplots(rows, PANEL_COLUMNS, sharex=True, squeeze=False)
    for ax, run in zip(axes.flat, runs):
        color = BEST if run is best else (BASELINE if run.role == "baseline" else "C0")
        _draw_keys(ax, run, keys, colors, color)
        if twin and _series(run, twin):
            right = ax.twinx()
            _draw_keys(right, run, [twin], colors, color)
            right.set_yscale("log")
            _plain_log(right)
            right.tick_params(labelsize=6, colors=(colors or {}).get(twin, color))
        if log:
            ax.set_yscale("log")
            _plain_log(ax)
        elif limits == "own":  # each panel its own shape: where its curve turns
            own = robust_limits([s for s in (_series(run, k) for k in keys) if s])
            if own:
                ax.set_ylim(*own)
        head = title(run) if title else \
            f"{_label(run)} · {run.outcome} · {run.tags.get('orch.diagnosis', '')}"
        ax.set_title(head, fontsize=8, color=color if run is best or run.role == "baseline"
                     else "black", fontweight="bold" if run is best else "normal")
        ax.tick_params(labelsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(runs):]:
        ax.set_visible(False)
    handles, labels = [], []
    for ax in fig.axes:
        h, lab = ax.get_legend_handles_labels()
        for hh, ll in zip(h, lab):
            if ll not in labels:
                handles.append(hh)
                labels.append(ll)
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8,
               bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / max(rows * 2.4, 1)))
    return fig


def curves(data: SweepData) -> str:
    ranked = data.ranked
    best = ranked[0] if ranked else None
    keys = [k for k in dict.fromkeys([data.metric, "val_acc"])
            if any(_series(r, k) for r in data.runs)]
    if not keys:
        return para("No trial reported any point to draw.")
    fig = figure(12, 4.2)
    axes = fig.subplots(1, len(keys), squeeze=False)[0]
    for ax, key in zip(axes, keys):
        _overview(data, key, ax, best)
    axes[0].legend(fontsize=8, loc="best")
    fig.tight_layout()
    drawn = [r for r in [*data.trials, *data.bases] if any(_series(r, k) for k in keys)]
    alt = f"{', '.join(keys)} of " + ", ".join(f"{_label(r)} ({r.outcome})" for r in drawn)
    out = [para(f"Every trial ({len(data.trials)}) and the baseline: grey lines are trials, "
                "red the best, black the baseline; × marks where early stopping cut a trial, "
                "● each loss curve's lowest point (over-fitting starts after it). The y-axis "
                "leaves out epoch 1, whose loss is far above the rest."), png_tag(fig, alt=alt)]
    runs = _shown_runs(data)
    loss_keys = [k for k in dict.fromkeys([data.metric, "val_loss", "train_loss"])
                 if k.endswith("loss") or k == data.metric]
    panels = _panels(runs, loss_keys, best, limits="own")
    out += [f"<h3>Each trial: {esc(', '.join(loss_keys))}</h3>",
            para("One panel per trial, each on its own y-axis from epoch 2 on, so the turn of "
                 "every curve shows (compare levels in the plot above); the band is the spread "
                 "over folds. Over-fitting shows as the solid validation curve turning up while "
                 "the dotted training curve keeps falling." + (f" The first {MAX_PANELS} of "
                 f"{len(data.runs)} runs." if len(data.runs) > MAX_PANELS else ""), "muted"),
            png_tag(panels, alt="one panel each: " + ", ".join(
                f"{_label(r)} ({r.outcome})" for r in runs))]
    return "".join(out)


# --------------------------------------------------------------------------- gradients


def gradients(data: SweepData) -> str:
    from orchestrator.engine import gradient_health

    runs = [r for r in _shown_runs(data) if _series(r, "grad_norm")]
    if not runs:
        return para("No trial recorded gradient statistics (grad_norm ...); the toolkit's "
                    "fit_classifier records them every epoch.")
    health = {r.trial_id: gradient_health([{**row, "epoch": s} for s, row in
                                           sorted(r.rows.items())]) for r in runs}
    best = data.ranked[0] if data.ranked else None
    keys = [k for k in GRADIENT_KEYS if any(_series(r, k) for r in runs)]
    fig = _panels(runs, keys, best, log=True, colors=GRADIENT_COLORS, twin="update_ratio",
                  title=lambda r: f"{_label(r)} · gradients {health[r.trial_id].label}")
    rows = [[_label(r), health[r.trial_id].label, health[r.trial_id].reason] for r in runs]
    return (para("Per trial, over epochs (log scales): the global gradient norm, the first and "
                 "last weight layer's gradient norms (left axis), and the update/weight ratio "
                 "(||Δw|| / ||w|| over the epoch, right axis, red). Vanishing gradients show "
                 "as the first "
                 "layer's norm falling orders of magnitude below the last's; exploding as "
                 "norms shooting up; an update ratio far below 1e-3 means the weights "
                 "barely move.") + png_tag(fig) +
            table(["trial", "gradients", "why"], rows))


# --------------------------------------------------------------------------- confusion


def confusion(data: SweepData) -> str:
    wanted = [*data.ranked[:CONFUSIONS], *data.bases[:1]]
    found, missing = [], []
    for run in wanted:
        table_ = data.confusion(run)
        (found if table_ else missing).append((run, table_))
    if not found:
        return para("No trial recorded a confusion_matrix.json (the toolkit's fit_classifier "
                    "writes one at a trial's last epoch).")
    cols = min(len(found), CONFUSION_COLUMNS)
    rows = math.ceil(len(found) / cols)
    fig = figure(4.3 * cols, 4.4 * rows)
    axes = list(fig.subplots(rows, cols, squeeze=False).flat)
    for ax in axes[len(found):]:
        ax.set_visible(False)
    worst = []
    for ax, (run, t) in zip(axes, found):
        labels = [str(x) for x in t.get("labels", range(len(t["matrix"])))]
        draw_confusion_matrix(ax, t["matrix"], labels, fontsize=8,
                              title=f"{_label(run)}, epoch {t.get('epoch')}")
        low = recall_by_class(t["matrix"], labels)[:3]
        worst.append(f"{_label(run)}: " + ", ".join(f"{lab} ({acc:.0%})" for acc, lab in low))
    fig.tight_layout()
    text = para("Validation confusion matrices (summed over folds); classes recalled least "
                "well: " + "; ".join(worst) + ".")
    if missing:
        text += para("No confusion matrix recorded for " + ", ".join(
            f"{_label(r)} ({r.outcome}, epoch {r.last_step(data.metric)})" for r, _ in missing)
            + ": the toolkit writes it at a trial's last planned epoch, which an early-stopped "
              "trial never reaches.", "muted")
    return png_tag(fig) + text


# --------------------------------------------------------------------------- diagnosis


def diagnosis(data: SweepData) -> str:
    counts = Counter(r.tags.get("orch.diagnosis") or "(none)" for r in data.runs)
    outcomes = Counter(r.outcome or "(none)" for r in data.runs)
    flagged = [[_label(r), r.tags.get("orch.diagnosis"), r.tags.get("orch.diagnosis_reason", "")]
               for r in data.runs
               if r.tags.get("orch.diagnosis") not in (None, "", "healthy")]
    return (table(["diagnosis", "trials"], sorted(counts.items())) +
            table(["outcome", "trials"], sorted(outcomes.items())) +
            (table(["trial", "diagnosis", "why"], flagged) if flagged else ""))


def budget(data: SweepData) -> str:
    max_t = data.number("early_terminate.max_t")
    rows, run, planned = [], 0, 0
    for t in data.trials:
        done = len(t.steps(data.metric))
        plan = t.config.get("epochs")
        plan = int(max(float(plan) if isinstance(plan, (int, float)) else (max_t or done), done))
        run, planned = run + done, planned + plan
        if t.outcome == "early_stopped":
            rows.append([t.trial_id, done, plan, t.tags.get("orch.stopped_at_epoch", "")])
    saved = planned - run
    text = (f"Trials ran {run} epochs; had every trial run to its last epoch they would have "
            f"run {planned}. Early stopping saved {saved} epochs "
            f"({saved / planned:.0%} of the budget)." if planned else "No epochs recorded.")
    if data.pparams.get("scheduler", "fifo") == "fifo":
        text += " (This sweep had no early stopping.)"
    return para(text) + (table(["early-stopped trial", "epochs run", "epochs planned",
                                "stopped at"], rows) if rows else "")


# --------------------------------------------------------------------------- ablation


def ablation(data: SweepData) -> str:
    """The one-factor-at-a-time table (``ablation.json``): factor = value, effect, CI, p."""
    import json

    text = data.store.text(data.sweep.parent_run_id, "ablation.json")
    try:
        found = json.loads(text) if text else None
    except ValueError:
        found = None
    if not found:
        return para("This ablation recorded no ablation.json.")
    rows = []
    for r in found.get("rows", []):
        ci = (f"[{r['ci_low']:+.3g}, {r['ci_high']:+.3g}]"
              if r.get("ci_low") is not None else "–")
        value = r["value"] if isinstance(r["value"], str) else json.dumps(r["value"])
        rows.append([f"{r['param']} = {value}", r.get("metric"), r.get("diff"), ci,
                     r.get("p_value"), r.get("spread"), r.get("outcome")])
    head = ["factor = value", data.metric, "effect (point − baseline)", "95% CI", "p",
            "spread", "outcome"]
    return (para(f"Each point changes one parameter from the baseline ({data.metric} = "
                 f"{fmt(found.get('baseline_value'))}); everything else stays at the baseline, "
                 "and every point trains the full budget. The effect is point − baseline, "
                 "paired over folds where the spec has `cv:`.") + table(head, rows) +
            para("Parameter importance (fANOVA) is not computed for an ablation: it models a "
                 "search over the whole space, not points that vary one factor at a time.",
                 "muted"))


def notes(data: SweepData) -> str:
    from orchestrator.method._runs import notes_of

    found = notes_of(data.ptags)
    if not found:
        return para('No notes yet. Add your reflection with `orch note SWEEP "what I learned"`:'
                    " which change helped, was it what you expected, and why?")
    return "<ol>" + "".join(f"<li>{esc(n)}</li>" for n in found) + "</ol>"
