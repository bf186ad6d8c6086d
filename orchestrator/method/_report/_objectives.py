"""Report sections for what a sweep optimised beyond one metric, and how PBT moved.

* ``objectives`` (W&B's ``metrics:`` list and/or ``metric_constraints``): the first two
  objectives of every finished trial, the Pareto front highlighted and joined, the
  baseline marked, infeasible trials crossed; how many trials broke each rule and by
  what margin (the recorder's ``orch.pareto`` / ``orch.feasible`` tags are the truth).
* ``population`` (``method: pbt`` / ``pb2``): the best trial's config schedule over
  epochs (``pbt_schedule.json``: each exploit's step, the trial it copied, the config
  it continued with), drawn per searched parameter.
"""

from __future__ import annotations

import json
from typing import Any

from orchestrator.method._report._data import SweepData
from orchestrator.method._report._html import para, table
from orchestrator.method.figures import figure, png_tag

__all__ = ["objectives", "population"]


def _last(run: Any, name: str) -> float | None:
    for step in sorted(run.rows, reverse=True):
        value = run.rows[step].get(name)
        if value is not None:
            return float(value)
    return None


def objectives(data: SweepData) -> str:
    spec = data.spec
    if spec is None:
        return para("No spec.yaml recorded: objectives unknown.")
    parts = []
    if len(spec.metrics) >= 2:
        parts.append(_front(data, [m.name for m in spec.metrics[:2]],
                            [m.goal for m in spec.metrics[:2]]))
    if spec.metric_constraints:
        parts.append(_feasibility(data))
    return "".join(parts) or para("One objective and no constraints.")


def _front(data: SweepData, names: list[str], goals: list[str]) -> str:
    points = [(r, _last(r, names[0]), _last(r, names[1])) for r in data.trials if r.usable]
    points = [(r, x, y) for r, x, y in points if x is not None and y is not None]
    if not points:
        return para(f"No trial reported both {names[0]} and {names[1]}.")
    on = sorted([p for p in points if p[0].tags.get("orch.pareto") == "true"],
                key=lambda p: p[1])
    fig = figure(6.4, 4.6)
    ax = fig.add_subplot()
    rest = [p for p in points if p not in on]
    feasible = [p for p in rest if p[0].tags.get("orch.feasible") != "false"]
    crossed = [p for p in rest if p[0].tags.get("orch.feasible") == "false"]
    ax.scatter([p[1] for p in feasible], [p[2] for p in feasible], color="0.6", s=18,
               label="trial")
    if crossed:
        ax.scatter([p[1] for p in crossed], [p[2] for p in crossed], color="0.6", marker="x",
                   s=22, label="infeasible")
    ax.plot([p[1] for p in on], [p[2] for p in on], "o-", color="tab:red", ms=6,
            label=f"Pareto front ({len(on)})")
    for base in data.bases:
        bx, by = _last(base, names[0]), _last(base, names[1])
        if bx is not None and by is not None:
            ax.scatter([bx], [by], color="black", marker="s", s=40, label="baseline")
            break
    ax.set_xlabel(f"{names[0]} ({goals[0]})")
    ax.set_ylabel(f"{names[1]} ({goals[1]})")
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    rows = [[p[0].trial_id, f"{p[1]:.4g}", f"{p[2]:.4g}",
             ", ".join(f"{k}={_short(v)}" for k, v in p[0].config.items() if k in data.searched)]
            for p in on]
    return (png_tag(fig, alt="Pareto front") +
            para(f"The front: trials no other feasible trial beats on every objective "
                 f"(of {len(points)} finished; the first two objectives drawn, each trial at "
                 "its last value).", "muted") +
            table(["trial", names[0], names[1], "config"], rows))


def _feasibility(data: SweepData) -> str:
    spec = data.spec
    finished = [r for r in data.trials if r.rows]
    bad = [r for r in finished if r.tags.get("orch.feasible") == "false"]
    rows = []
    for rule in spec.metric_constraints:
        gaps = [abs(v - rule.threshold()) for r in bad
                if (v := _last(r, rule.metric)) is not None and not rule.holds(v)]
        missing = sum(1 for r in bad if _last(r, rule.metric) is None)
        rows.append([rule.text, str(len(gaps)),
                     f"{max(gaps):.4g}" if gaps else "–",
                     f"{sorted(gaps)[len(gaps) // 2]:.4g}" if gaps else "–", str(missing)])
    return (para(f"{len(finished) - len(bad)} of {len(finished)} trial(s) met every "
                 "constraint; an infeasible trial is never the best and never on the front.") +
            table(["rule", "trials breaking it", "largest miss", "median miss",
                   "never reported"], rows))


def population(data: SweepData) -> str:
    best = data.ranked[0] if data.ranked else None
    if best is None:
        return para("No finished trial.")
    text = data.text(best, "pbt_schedule.json")
    try:
        schedule = json.loads(text) if text else []
    except ValueError:
        schedule = []
    if not schedule:
        return para(f"The best trial ({best.trial_id}) was never exploited: it kept its "
                    "own config throughout.")
    last = max(best.rows) if best.rows else schedule[-1]["step"]
    names = [n for n in data.searched if any(n in _flat(e["config"]) for e in schedule)]
    fig = figure(6.4, 1.6 + 1.3 * max(1, len(names)))
    axes = fig.subplots(max(1, len(names)), 1, sharex=True, squeeze=False)[:, 0]
    steps = [int(e["step"]) for e in schedule] + [int(last)]
    for ax, name in zip(axes, names):
        values = [_flat(e["config"]).get(name) for e in schedule]
        ax.step(steps, [*values, values[-1]], where="post", color="tab:blue")
        ax.set_ylabel(name, fontsize=8)
    axes[-1].set_xlabel("epoch")
    fig.tight_layout()
    rows = [[str(e["step"]), str(e.get("from") or "(its own start)"),
             ", ".join(f"{k}={_short(v)}" for k, v in _flat(e["config"]).items() if k in names)]
            for e in schedule]
    return (png_tag(fig, alt="PBT schedule") +
            para(f"The best trial ({best.trial_id}): {len(schedule) - 1} exploit(s).",
                 "muted") + table(["from epoch", "copied from", "config"], rows))


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _flat(config: Any) -> dict[str, Any]:
    from orchestrator.sweepspec import flatten

    return dict(flatten(config)) if isinstance(config, dict) else {}
