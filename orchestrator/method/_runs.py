"""Working with recorded runs: ``orch note``, ``orch compare`` and ``orch reproduce``.

All three read (and ``note`` writes) the MLflow store through ``MlflowClient``;
a run is named by its MLflow run id or its ``orch.trial_id``, a sweep as
:func:`orchestrator.tracking._review.find_sweep` accepts it.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.errors import TrackingError

__all__ = ["NOTE_PREFIX", "Reproduction", "RunComparison", "add_note", "compare_runs",
           "find_run", "notes_of", "reproduce", "sweep_spec"]

NOTE_PREFIX = "orch.note."  # orch.note.1, orch.note.2 ... on the sweep's parent run
NOTE_SEPARATOR = "\n\n---\n"  # between notes appended to mlflow.note.content
DEFAULT_TOLERANCE = 1e-6  # relative: CPU training with the same seed repeats exactly


def _store(tracking_uri: str) -> Any:
    from orchestrator.tracking import Store

    return Store(tracking_uri)


def find_run(ref: str, *, tracking_uri: str) -> Any:
    """The MLflow run ``ref`` names: a run id, else a unique ``orch.trial_id``."""
    return _store(tracking_uri).find_run(ref)


def sweep_spec(parent_run_id: str, *, tracking_uri: str) -> Any:
    """The spec a sweep was run with: its effective spec (after ``--set``), else its
    ``spec.yaml`` artifact; None if neither is recorded."""
    from orchestrator.sweepspec import load_spec

    store = _store(tracking_uri)
    effective = store.effective_spec(parent_run_id)
    if effective is not None:
        try:
            return load_spec(effective)
        except Exception:  # noqa: BLE001 - recorded by an older orch, or not loadable
            pass
    text = store.text(parent_run_id, "spec.yaml")
    if text is None:
        return None
    try:
        return load_spec(text if "\n" in text else text + "\n")
    except Exception:  # noqa: BLE001 - e.g. a trainable passed as a function
        try:
            import yaml

            data = yaml.safe_load(text)
            return load_spec(data, trainable=data.get("trainable") or "unknown:unknown")
        except Exception:  # noqa: BLE001
            return None


# --------------------------------------------------------------------------- note


def notes_of(tags: dict[str, str]) -> list[str]:
    """The notes on a parent run, oldest first."""
    found = []
    for key, value in tags.items():
        if key.startswith(NOTE_PREFIX) and key[len(NOTE_PREFIX):].isdigit():
            found.append((int(key[len(NOTE_PREFIX):]), value))
    return [v for _, v in sorted(found)]


def add_note(sweep_ref: str, text: str, *, tracking_uri: str) -> int:
    """Add a reflection note to a sweep; returns its number.

    Stored as tag ``orch.note.<n>`` on the parent run and appended to MLflow's
    ``mlflow.note.content`` (the run's description in the MLflow UI).
    """
    from orchestrator.tracking import find_sweep

    text = (text or "").strip()
    if not text:
        raise TrackingError("a note needs text: orch note SWEEP \"what I learned\"")
    sweep = find_sweep(sweep_ref, tracking_uri=tracking_uri)
    store = _store(tracking_uri)
    tags = store.run(sweep.parent_run_id).data.tags
    n = len(notes_of(tags)) + 1
    stamp = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    old = tags.get("mlflow.note.content", "")
    new = f"{old}{NOTE_SEPARATOR if old else ''}**Note {n}** ({stamp} UTC): {text}"
    store.set_tags(sweep.parent_run_id, {f"{NOTE_PREFIX}{n}": text[:5000],
                                         "mlflow.note.content": new[-7000:]})
    return n


# --------------------------------------------------------------------------- compare


@dataclass(frozen=True)
class RunComparison:
    """Two runs side by side, in the one sign convention: ``trial − reference``.

    The reference is the baseline when exactly one of the two runs is a baseline,
    else run B; ``swapped`` says the baseline was A. ``metric_diff`` maps a metric to
    ``(trial value, reference value, trial − reference)`` at the step both reached;
    ``intervals`` the fold-paired comparison where both runs have per-fold values.
    """

    run_a: str
    run_b: str
    config_diff: dict[str, tuple[Any, Any]]  # only keys whose values differ: (A, B)
    metric_diff: dict[str, tuple[float | None, float | None, float | None]]
    fingerprint_a: str | None
    fingerprint_b: str | None
    trial: str = ""  # run id of the run compared
    reference: str = ""  # run id of the run it is compared with
    swapped: bool = False  # the reference is A (the baseline)
    step: dict[str, int] = field(default_factory=dict)  # metric -> the step compared at
    intervals: dict[str, Any] = field(default_factory=dict)  # metric -> Comparison

    @property
    def same_split(self) -> bool | None:
        """True/False when both runs carry a split fingerprint, else None (unknown)."""
        if not self.fingerprint_a or not self.fingerprint_b:
            return None
        return self.fingerprint_a == self.fingerprint_b


COMPARED_METRICS = ("val_loss", "val_acc", "train_loss")  # shown first when present


def _at_common_step(store: Any, trial: Any, ref: Any, key: str
                    ) -> tuple[int | None, float | None, float | None]:
    """``(step, trial value, reference value)`` at the deepest step both logged ``key``."""
    th = {m.step: m.value for m in store.history(trial.info.run_id, key)}
    rh = {m.step: m.value for m in store.history(ref.info.run_id, key)}
    both = set(th) & set(rh)
    if not both:
        return None, trial.data.metrics.get(key), ref.data.metrics.get(key)
    step = max(both)
    return step, th[step], rh[step]


def _fold_interval(store: Any, trial: Any, ref: Any, key: str, step: int | None) -> Any:
    from orchestrator.method._stats import compare_paired

    folds = sorted(int(k.rsplit("_fold", 1)[1]) for k in trial.data.metrics
                   if k.startswith(f"{key}_fold") and k.rsplit("_fold", 1)[1].isdigit())
    if len(folds) < 2 or step is None or any(f"{key}_fold{k}" not in ref.data.metrics
                                             for k in folds):
        return None
    tv, rv = [], []
    for k in folds:
        t = {m.step: m.value for m in store.history(trial.info.run_id, f"{key}_fold{k}")}
        r = {m.step: m.value for m in store.history(ref.info.run_id, f"{key}_fold{k}")}
        if step not in t or step not in r:
            return None
        tv.append(t[step])
        rv.append(r[step])
    goal = "minimize" if "loss" in key else "maximize"
    return compare_paired(tv, rv, metric=key, goal=goal)


def compare_runs(ref_a: str, ref_b: str, *, tracking_uri: str) -> RunComparison:
    """Config and metric differences of two runs (``trial − reference``, at the step both
    reached, with the fold-paired 95% interval where both have folds), and whether their
    splits match."""
    store = _store(tracking_uri)
    a, b = store.find_run(ref_a), store.find_run(ref_b)
    pa, pb = a.data.params, b.data.params
    config = {k: (pa.get(k), pb.get(k)) for k in sorted(set(pa) | set(pb))
              if pa.get(k) != pb.get(k)}
    swapped = a.data.tags.get("orch.role") == "baseline" != b.data.tags.get("orch.role")
    trial, ref = (b, a) if swapped else (a, b)
    mt, mr = trial.data.metrics, ref.data.metrics
    keys = [k for k in COMPARED_METRICS if k in mt or k in mr]
    keys += sorted(k for k in set(mt) | set(mr) if k not in keys and "_fold" not in k)
    metrics, steps, intervals = {}, {}, {}
    for k in keys:
        if k in mt and k in mr:
            step, vt, vr = _at_common_step(store, trial, ref, k)
        else:
            step, vt, vr = None, mt.get(k), mr.get(k)
        metrics[k] = (vt, vr, vt - vr if vt is not None and vr is not None else None)
        if step is not None:
            steps[k] = step
        if k in COMPARED_METRICS:
            found = _fold_interval(store, trial, ref, k, step)
            if found is not None:
                intervals[k] = found
    return RunComparison(run_a=a.info.run_id, run_b=b.info.run_id, config_diff=config,
                         metric_diff=metrics,
                         fingerprint_a=a.data.tags.get("orch.split_fingerprint"),
                         fingerprint_b=b.data.tags.get("orch.split_fingerprint"),
                         trial=trial.info.run_id, reference=ref.info.run_id, swapped=swapped,
                         step=steps, intervals=intervals)


# --------------------------------------------------------------------------- reproduce


@dataclass
class Reproduction:
    """A recorded trial run again: its recorded and reproduced metric, and the verdict."""

    run_id: str
    metric: str
    epoch: int
    recorded: float | None
    reproduced: float | None
    tolerance: float
    seed: int
    config: dict[str, Any]
    warnings: list[str] = field(default_factory=list)

    @property
    def rel_error(self) -> float | None:
        if self.recorded is None or self.reproduced is None:
            return None
        scale = max(abs(self.recorded), abs(self.reproduced), 1e-12)
        return abs(self.reproduced - self.recorded) / scale

    @property
    def matches(self) -> bool:
        err = self.rel_error
        return err is not None and err <= self.tolerance


def _typed(value: str, param: Any | None) -> Any:
    """An MLflow param string back to the config value (via the spec when known)."""
    if param is not None and param.distribution == "categorical":
        for v in param.values:
            shown = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
            if shown == value:
                return v
    if param is not None and param.is_constant:
        v = param.value
        shown = json.dumps(v) if isinstance(v, (list, dict)) else str(v)
        if shown == value:
            return v
    if value == "None":
        return None
    import yaml

    try:
        out = yaml.safe_load(value)
    except yaml.YAMLError:
        return value
    if param is not None and param.distribution not in ("categorical", "constant") and \
            isinstance(out, int) and not isinstance(out, bool) and \
            param.distribution not in ("int_uniform",) and not param.distribution.startswith("q_"):
        return float(out)
    return out


class _StopAt(list):
    """A report sink that ends the trainable once the recorded epoch is reached."""

    def __init__(self, epoch: int) -> None:
        super().__init__()
        self.epoch = epoch

    def append(self, item: Any) -> None:
        super().append(item)
        if len(self) >= self.epoch:
            raise _Reached()


class _Reached(BaseException):
    """Raised by :class:`_StopAt` (a BaseException so user code's ``except Exception``
    cannot swallow it, as Ray's own stop signal)."""


def reproduce(run_ref: str, *, tracking_uri: str, tolerance: float = DEFAULT_TOLERANCE,
              trainable: Any = None) -> Reproduction:
    """Run one recorded trial again, in this process, and compare its metric.

    The config comes from the run's params (typed through the sweep's spec),
    the seed from its ``orch.seed`` tag (what :func:`engine.make_trial_function`
    derived), the split from the sweep's ``cv:`` and seed. The trial stops at the
    epoch it was recorded to (early-stopped trials too). Warns when the code's git
    commit differs from the recorded one, or either tree is dirty.
    """
    from orchestrator.engine._context import capture_reports
    from orchestrator.engine._trainable import load_trainable
    from orchestrator.sweepspec import nest
    from orchestrator.tracking import git_state as _git_state

    run = find_run(run_ref, tracking_uri=tracking_uri)
    tags = run.data.tags
    warnings: list[str] = []
    parent = tags.get("mlflow.parentRunId")
    spec = sweep_spec(parent, tracking_uri=tracking_uri) if parent else None
    store = _store(tracking_uri)
    parent_tags = store.run(parent).data.tags if parent else {}
    metric = parent_tags.get("orch.metric") or (spec.metric.name if spec else "")
    if not metric:
        raise TrackingError(f"run {run.info.run_id} belongs to no recorded sweep with a metric; "
                            "reproduce runs trials of orch sweeps")
    if "orch.seed" not in tags:
        raise TrackingError(f"run {run.info.run_id} has no orch.seed tag (recorded before its "
                            "first report?); it cannot be reproduced exactly")
    seed = int(tags["orch.seed"])
    params = {p.name: p for p in spec.parameters} if spec else {}
    config = nest({k: _typed(v, params.get(k)) for k, v in run.data.params.items()})
    if spec is None:
        warnings.append("the sweep's spec.yaml artifact is missing: config types guessed, "
                        "no K-fold settings")
    cv = spec.cv.as_dict(spec.seed) if spec and spec.cv else None
    sweep_seed = int(parent_tags.get("orch.seed", spec.seed if spec else 0))
    split = cv["seed"] if cv else sweep_seed
    commit, dirty = _git_state(os.getcwd())
    was = tags.get("orch.git_commit", "")
    if was and commit and was != commit:
        warnings.append(f"code differs: recorded at commit {was[:12]}, now {commit[:12]}")
    if tags.get("orch.git_dirty") == "true":
        warnings.append("the recorded run's working tree had uncommitted changes")
    if dirty == "true":
        warnings.append("this working tree has uncommitted changes")
    history = store.history(run.info.run_id, metric)
    last = max(history, key=lambda m: (m.step, m.timestamp)) if history else None
    epoch = int(last.step) if last is not None else 0
    ref = (store.run(parent).data.params.get("trainable") if parent else None) or \
        (spec.trainable if spec else "")
    fn = trainable if trainable is not None else load_trainable(ref)
    with capture_reports(metric=metric, seed=seed, split_seed=split, cv=cv,
                         keep_checkpoints=False) as got:
        sink = _StopAt(epoch) if epoch > 0 else []
        got.context.sink = sink
        try:
            fn(dict(config))
        except _Reached:
            pass
    row = next((r for r in sink if int(r.get("epoch", -1)) == epoch), sink[-1] if sink else None)
    value = row.get(metric) if row else None
    reproduced = float(value) if value is not None and math.isfinite(float(value)) else None
    return Reproduction(run_id=run.info.run_id, metric=metric, epoch=epoch,
                        recorded=float(last.value) if last is not None else None,
                        reproduced=reproduced, tolerance=tolerance, seed=seed, config=config,
                        warnings=warnings)
