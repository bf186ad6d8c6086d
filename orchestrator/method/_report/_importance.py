"""Parameter importance and Optuna's review plots, from the recorded trials.

Two Optuna studies are built from MLflow's record (typed through the spec, over the
distributions the sampler drew from when the sweep kept its Optuna study):

* the **matched** study: the trials that reached the matched budget, each with its
  value *at* that budget (see :mod:`orchestrator.method._budget`): importance,
  parallel-coordinate, slice and contour plots compare like with like;
* the **history** study: every usable trial in the order it started, completed ones
  with their last value, early-stopped ones as pruned with their intermediate
  values: the optimisation history and the intermediate-values plot.

Importance is Optuna's fANOVA (parameters present in every trial) and PED-ANOVA (it
takes trials missing a conditional parameter), each with its spread over
``BOOTSTRAP`` resamples of the trials, evaluators seeded from the sweep's seed.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from typing import Any

from orchestrator.method._budget import Budget
from orchestrator.method._report._data import SweepData
from orchestrator.method._report._html import esc, para, table
from orchestrator.method.figures import png_tag

__all__ = ["MIN_IMPORTANCE", "importance", "plots", "studies", "top_parameters"]

BOOTSTRAP = 20  # resamples of the trials behind each importance's spread
BOOT_TREES = 16  # fANOVA trees per resample (Optuna's default 64 for the point estimate)
MIN_IMPORTANCE = 4  # trials at one budget needed before importance is computed at all
DISAGREE = 0.3  # |fANOVA − PED-ANOVA| at which the two are said to disagree
QUANTILES = (0.1, 0.9)  # the spread shown: the 10th to 90th percentile over resamples
LOG_DISTRIBUTIONS = ("log_uniform", "log_uniform_values", "q_log_uniform",
                     "q_log_uniform_values", "log_normal", "q_log_normal",
                     "inv_log_uniform", "inv_log_uniform_values")


def _distributions(spec: Any, configs: dict[str, dict[str, Any]]) -> tuple[dict, dict]:
    """Optuna distributions of the searched parameters, and each trial's values in them."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    dists: dict[str, Any] = {}
    values: dict[str, dict[str, Any]] = {tid: {} for tid in configs}
    for p in spec.parameters:
        if p.is_constant:
            continue
        seen = {tid: c[p.name] for tid, c in configs.items() if p.name in c}
        if not seen:
            continue
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool)
                      for v in seen.values())
        if p.distribution == "categorical" or not numeric:
            choices = list(p.values) if p.values else sorted({str(v) for v in seen.values()})
            prim = all(isinstance(c, (type(None), bool, int, float, str)) for c in choices)
            labels = choices if prim else [json.dumps(c, sort_keys=True) for c in choices]
            dists[p.name] = CategoricalDistribution(labels)
            for tid, v in seen.items():
                values[tid][p.name] = v if prim else json.dumps(v, sort_keys=True)
            continue
        nums = [float(v) for v in seen.values()]
        lo, hi = min(nums), max(nums)
        log = (p.distribution in LOG_DISTRIBUTIONS or p.is_placeholder) and lo > 0
        if p.distribution == "int_uniform":
            dists[p.name] = IntDistribution(int(lo), max(int(hi), int(lo) + 1))
        else:
            dists[p.name] = FloatDistribution(lo, hi if hi > lo else lo * 1.0001 + 1e-12, log=log)
        for tid, v in seen.items():
            values[tid][p.name] = int(v) if p.distribution == "int_uniform" else float(v)
    return dists, values


def kept_study(data: SweepData) -> Any | None:
    """The Optuna study the sweep kept (``orch.optuna_storage``), or None (grid, PBT, an
    older sweep, a storage that moved)."""
    from orchestrator.engine._study import load_study

    url, sweep_id = data.ptags.get("orch.optuna_storage"), data.ptags.get("orch.sweep_id")
    if not url or not sweep_id:
        return None
    try:
        return load_study(url, sweep_id)
    except Exception:  # noqa: BLE001 - the review stands on MLflow's record alone
        return None


def _sampled_space(kept: Any, dists: dict[str, Any], values: dict[str, dict[str, Any]]
                   ) -> dict[str, Any]:
    """The distributions the sampler drew from (the spec's whole range, not the range the
    trials happened to reach), where they hold the recorded values as they are (not for a
    parameter Optuna drew as a quantile, e.g. the normal family)."""
    from orchestrator.engine._sampling import OPTUNA_SEP

    sampled: dict[str, Any] = {}
    for t in kept.get_trials(deepcopy=False):
        for name, dist in t.distributions.items():
            sampled.setdefault(name.replace(OPTUNA_SEP, "."), dist)
    out = dict(dists)
    for name, dist in sampled.items():
        seen = [v[name] for v in values.values() if name in v]
        if name in dists and seen and all(_holds(dist, v) for v in seen):
            out[name] = dist
    return out


def _holds(dist: Any, value: Any) -> bool:
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        return value in dist.choices
    try:
        return bool(dist.low <= value <= dist.high)
    except TypeError:  # a value of another kind
        return False


def studies(data: SweepData) -> tuple[Any, Any, dict[str, Any], Budget]:
    """``(matched study, history study, distributions, the matched budget)``; the
    distributions are the kept study's where the sweep kept one."""
    import optuna
    from optuna.trial import TrialState, create_trial

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = data.budget
    usable = [t for t in data.trials if t.usable and t.value(data.metric) is not None]
    dists, values = _distributions(data.spec, {t.trial_id: dict(t.config) for t in usable})
    kept = kept_study(data)
    if kept is not None:
        dists = _sampled_space(kept, dists, values)
    matched = optuna.create_study(direction=data.goal)
    history = optuna.create_study(direction=data.goal)
    for t in sorted(usable, key=lambda t: t.started):
        params = values.get(t.trial_id, {})
        d = {k: dists[k] for k in params}
        if t.trial_id in budget.values:
            matched.add_trial(create_trial(params=params, distributions=d,
                                           value=budget.values[t.trial_id]))
        steps = {s: t.value(data.metric, s) for s in t.steps(data.metric)}
        if t.outcome == "early_stopped":
            history.add_trial(create_trial(params=params, distributions=d,
                                           state=TrialState.PRUNED, intermediate_values=steps))
        else:
            history.add_trial(create_trial(params=params, distributions=d,
                                           value=t.value(data.metric),
                                           intermediate_values=steps))
    return matched, history, dists, budget


def _seed(data: SweepData) -> int:
    try:
        return int(float(data.ptags.get("orch.seed") or data.pparams.get("seed") or 0))
    except ValueError:
        return 0


def _estimates(study: Any, params: list[str], make: Any, seed: int) -> dict[str, list[float]]:
    """Importance of ``params`` on ``study`` and on ``BOOTSTRAP`` resamples of its trials."""
    import numpy as np
    import optuna
    from optuna.importance import get_param_importances

    trials = study.trials
    rng = np.random.default_rng(seed)
    out: dict[str, list[float]] = {p: [] for p in params}
    for b in range(BOOTSTRAP):
        resample = optuna.create_study(direction=study.direction)
        resample.add_trials([trials[i] for i in rng.integers(0, len(trials), len(trials))])
        try:
            found = get_param_importances(resample, evaluator=make(seed + b, BOOT_TREES),
                                          params=params, normalize=True)
        except Exception:  # noqa: BLE001 - a resample with one value of a parameter
            continue
        for p in params:
            out[p].append(float(found.get(p, 0.0)))
    return out


def _spread(values: list[float]) -> str:
    import numpy as np

    if len(values) < 5:
        return "–"
    lo, hi = np.quantile(values, QUANTILES)
    return f"{lo:.2g} – {hi:.2g}"


def _point(study: Any, params: list[str], make: Any, seed: int) -> dict[str, float]:
    from optuna.importance import get_param_importances

    return {k: float(v) for k, v in get_param_importances(
        study, evaluator=make(seed, None), params=params).items()}


def importance(data: SweepData, study: Any, dists: dict[str, Any], budget: Budget) -> str:
    from optuna.importance import FanovaImportanceEvaluator, PedAnovaImportanceEvaluator

    n = len(study.trials)
    if n < MIN_IMPORTANCE or not dists:
        return para(f"Importance needs at least {MIN_IMPORTANCE} trials compared at the same "
                    f"budget; this sweep has {n} ({budget.describe()}).")
    seed = _seed(data)
    counts = Counter(k for t in study.trials for k in t.params)
    full = [k for k in dists if counts[k] == n]
    names = [k for k in dists if counts[k]]

    def fanova(s: int, trees: int | None) -> Any:
        return FanovaImportanceEvaluator(seed=s, **({"n_trees": trees} if trees else {}))

    def ped(s: int, trees: int | None) -> Any:
        return PedAnovaImportanceEvaluator()

    rows, fa, pe, problems = [], {}, {}, []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for label, make, params, into in (("fANOVA", fanova, full, fa),
                                          ("PED-ANOVA", ped, names, pe)):
            try:
                into.update(_point(study, params, make, seed) if params else {})
                into["__boot__"] = _estimates(study, params, make, seed) if params else {}
            except Exception as exc:  # noqa: BLE001 - too few or too uniform trials
                problems.append(f"{label} could not run: {type(exc).__name__}: {exc}")
    fboot, pboot = fa.pop("__boot__", {}), pe.pop("__boot__", {})
    for k in sorted(names, key=lambda k: -fa.get(k, pe.get(k, 0.0))):
        rows.append([k, f"{fa[k]:.2g}" if k in fa else "– (conditional)",
                     _spread(fboot.get(k, [])), f"{pe[k]:.2g}" if k in pe else "–",
                     _spread(pboot.get(k, [])), f"{counts[k]}/{n}"])
    head = ["parameter", "fANOVA", "fANOVA 10–90%", "PED-ANOVA", "PED-ANOVA 10–90%", "in trials"]
    out = [para(f"Over {budget.describe()}; the spread is over {BOOTSTRAP} bootstrap resamples "
                f"of those trials (evaluators seeded from the sweep seed {seed}). With "
                f"{n} trials these are rough: read the ranking, not the digits."),
           table(head, rows)]
    out += [para(p, "muted") for p in problems]
    split = [k for k in fa if k in pe and abs(fa[k] - pe[k]) >= DISAGREE]
    if split or (fa and pe and max(fa, key=fa.get) != max(pe, key=pe.get)):
        which = ", ".join(f"{k} ({fa[k]:.2g} vs {pe[k]:.2g})" for k in split) or \
            f"the most important parameter ({max(fa, key=fa.get)} vs {max(pe, key=pe.get)})"
        out.append(para(f"fANOVA and PED-ANOVA disagree on {which}. fANOVA measures how much "
                        "of the metric's variance over the whole space a parameter explains; "
                        "PED-ANOVA how differently it is distributed among the best trials "
                        "than among all. Trust neither alone with this few trials: look at "
                        "the slice plot and the ablation.", "note"))
    return "".join(out)


def _draw(name: str, draw: Any, width: float, height: float) -> str:
    import matplotlib.pyplot as plt
    import numpy as np

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            axes = draw()
        except Exception as exc:  # noqa: BLE001 - e.g. one parameter, one trial
            return para(f"The {name} plot could not be drawn: {type(exc).__name__}: {exc}",
                        "muted")
    first = np.asarray(axes).flat[0] if isinstance(axes, np.ndarray) else axes
    fig = first.figure
    fig.set_size_inches(width, height)
    fig.set_dpi(90)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # colour bars are not tight_layout's: harmless
        fig.tight_layout()
    try:
        return png_tag(fig, alt=name)
    finally:
        plt.close(fig)


def plots(data: SweepData, matched: Any, history: Any, budget: Budget,
          top: list[str]) -> str:
    import optuna.visualization.matplotlib as vm

    target = data.metric
    out = []
    if any(t.state.name == "COMPLETE" for t in history.trials):
        out += ["<h3>Optimisation history</h3>",
                para("Each completed trial's final value in the order trials started, and the "
                     "best so far (early-stopped trials are in the next plot).", "muted"),
                _draw("optimisation history", lambda: vm.plot_optimization_history(
                    history, target_name=target), 10, 3.6)]
    if any(t.intermediate_values for t in history.trials):
        out += ["<h3>Intermediate values</h3>",
                para("Every trial's metric at each epoch, pruned (early-stopped) ones "
                     "included: where the scheduler cut them.", "muted"),
                _draw("intermediate values", lambda: vm.plot_intermediate_values(history),
                      10, 3.6)]
    n = len(matched.trials)
    if n < 2 or not any(t.params for t in matched.trials):
        return "".join(out) + para("Parallel-coordinate, slice and contour plots need at "
                                   f"least 2 trials at one budget ({budget.describe()}).")
    caption = para(f"These use matched budgets: {budget.describe()}.", "muted")
    names = sorted({k for t in matched.trials for k in t.params})
    out += ["<h3>Parallel coordinates</h3>", caption,
            _draw("parallel coordinates", lambda: vm.plot_parallel_coordinate(
                matched, target_name=target), 11, 4)]
    out += ["<h3>Slices</h3>", caption,
            _draw("slice", lambda: vm.plot_slice(matched, target_name=target),
                  min(3.2 * len(names), 16), 3.4)]
    if len(top) >= 2:
        out += [f"<h3>Contour of the two most important: {esc(top[0])} × {esc(top[1])}</h3>",
                caption, _draw("contour", lambda: vm.plot_contour(
                    matched, params=top[:2], target_name=target), 6.5, 5)]
    return "".join(out)


def top_parameters(study: Any, dists: dict[str, Any], seed: int) -> list[str]:
    """The parameters by importance (fANOVA where every trial has them), best first."""
    from optuna.importance import FanovaImportanceEvaluator, get_param_importances

    counts = Counter(k for t in study.trials for k in t.params)
    full = [k for k in dists if counts[k] == len(study.trials)]
    if len(study.trials) < MIN_IMPORTANCE or len(full) < 2:
        return full
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            found = get_param_importances(study, evaluator=FanovaImportanceEvaluator(seed=seed),
                                          params=full)
        except Exception:  # noqa: BLE001
            return full
    return list(found)
