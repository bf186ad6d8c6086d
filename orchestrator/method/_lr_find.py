"""``orch lr-find``: the LR range test on a spec's baseline, recorded in MLflow, and
``from: lr_find`` placeholders resolved with it before a sweep.

The hook a trainable provides
-----------------------------
The range test needs the trainable's model and data, not its training loop. A
trainable module exposes them with a function next to the trainable, looked up
in this order:

1. ``<trainable>_lr_find_setup(config)`` (e.g. ``digits_mlp_lr_find_setup``), for
   modules holding several trainables;
2. ``lr_find_setup(config)``.

It returns ``(model_factory, X, y)``, exactly what the trainable passes to
:func:`orchestrator.toolkit.fit_classifier`::

    def lr_find_setup(config):
        X, y = load_my_data()
        return (lambda: MyNet(config["width"])), X, y

    def train(config):
        fit_classifier(*lr_find_setup(config), config)

The config is the spec's baseline (``baseline:`` over the space's constants;
the constants alone when there is no baseline), so the optimiser, batch size
and model are the baseline's.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import Issue, OrchError, SpecError, TrainableImportError

if TYPE_CHECKING:
    from orchestrator.sweepspec import SweepSpec
    from orchestrator.toolkit import LRRangeResult

__all__ = ["LRFind", "find_lr_setup", "lr_find", "plot_lr_find", "resolve_placeholders",
           "start_config"]

SETUP_SUFFIX = "_lr_find_setup"  # <trainable>_lr_find_setup(config)
SETUP_NAME = "lr_find_setup"  # or one per module
LR_FIND_PNG = "lr_find.png"
LR_FIND_JSON = "lr_find.json"
PREVIEW_VALUE = "<from lr_find>"  # what a dry run shows for a placeholder


@dataclass(frozen=True)
class LRFind:
    """One range test: the config it ran on, its result, and where it was recorded."""

    config: dict[str, Any]
    result: LRRangeResult
    run_id: str | None = None
    tracking_uri: str | None = None
    plot: Path | None = None
    problems: tuple[str, ...] = ()


def find_lr_setup(trainable: str | Callable[..., Any]) -> Callable[[dict[str, Any]], Any]:
    """The ``lr_find_setup`` hook of a trainable (a spec reference or the function itself)."""
    from orchestrator.engine._trainable import _ensure_cwd_on_path, split_reference

    if callable(trainable):
        module_name = getattr(trainable, "__module__", None) or "__main__"
        func = getattr(trainable, "__name__", "")
        module = sys.modules.get(module_name)
        ref = f"{module_name}:{func}"
    else:
        ref = trainable
        module_name, func = split_reference(trainable)
        _ensure_cwd_on_path()
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # user code: report, do not raise raw
            raise TrainableImportError(f"trainable {ref!r}: importing module {module_name!r} "
                                       f"failed: {type(exc).__name__}: {exc}") from exc
    for name in (f"{func}{SETUP_SUFFIX}", SETUP_NAME):
        hook = getattr(module, name, None)
        if callable(hook):
            return hook
    raise TrainableImportError(
        f"trainable {ref!r} has no LR-finder hook: module {module_name!r} defines neither "
        f"`{func}{SETUP_SUFFIX}(config)` nor `{SETUP_NAME}(config)`; add one returning "
        "(model_factory, X, y), the arguments your trainable gives fit_classifier")


def start_config(spec: SweepSpec) -> dict[str, Any]:
    """The config the range test runs on: the baseline, else the space's constants."""
    from orchestrator.sweepspec import baseline_config, constants, nest

    base = baseline_config(spec)
    return base if base is not None else nest(constants(spec.parameters))


def plot_lr_find(result: LRRangeResult, path: str | os.PathLike[str], *,
                 title: str = "LR range test") -> Path:
    """Draw loss (raw and smoothed) against the learning rate, with the suggestion."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.2), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    finite = np.isfinite(result.losses)
    ax.plot(result.lrs[finite], result.losses[finite], color="0.75", lw=0.8, label="batch loss")
    ax.plot(result.lrs, result.smoothed, color="C0", lw=2, label="smoothed loss")
    lo, hi = result.range
    ax.axvspan(lo, hi, color="C2", alpha=0.15, label=f"suggested range [{lo:.3g}, {hi:.3g}]")
    ax.axvline(result.suggested_lr, color="C3", ls="--",
               label=f"steepest descent {result.suggested_lr:.3g}")
    ax.set_xscale("log")
    good = result.smoothed[np.isfinite(result.smoothed)]
    if len(good):
        top = min(float(good.max()), 4 * float(good.min())) * 1.1
        ax.set_ylim(max(0.0, float(good.min()) * 0.8) if good.min() > 0 else None, top)
    ax.set_xlabel("learning rate")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title} ({result.steps} batches, stopped: {result.stopped})")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out


def _record(spec: SweepSpec, found: LRRangeResult, config: dict[str, Any], plot: Path,
            tracking_uri: str | None) -> tuple[str, str]:
    """One MLflow run tagged ``orch.role=lr_find`` in the spec's experiment."""
    from orchestrator.sweepspec import flatten
    from orchestrator.tracking import Store, git_state

    store = Store(tracking_uri, create=True)
    commit, dirty = git_state(os.getcwd())
    lo, hi = found.range
    tags = {"orch.role": "lr_find", "orch.sweep_name": spec.name,
            "orch.suggested_lr": f"{found.suggested_lr:.6g}",
            "orch.lr_range": f"[{lo:.6g}, {hi:.6g}]", "orch.stopped": found.stopped,
            "orch.git_commit": commit, "orch.git_dirty": dirty,
            "mlflow.note.content": (
                f"LR range test of {spec.name}: steepest descent at lr={found.suggested_lr:.3g}, "
                f"suggested log range [{lo:.3g}, {hi:.3g}] ({found.stopped} after "
                f"{found.steps} batches).")}
    params = {f"lr_find.{k}": v for k, v in found.settings.items()}
    params.update({f"config.{k}": v for k, v in flatten(config).items()})
    points = [(k, v, 0) for k, v in (
        ("suggested_lr", found.suggested_lr), ("lr_at_min", found.lr_at_min),
        ("range_low", lo), ("range_high", hi), ("steps", float(found.steps)))]
    for i, (lr, loss, smooth) in enumerate(zip(found.lrs, found.losses, found.smoothed)):
        points.append(("lr_find_lr", float(lr), i))
        points += [(key, float(value), i) for key, value in
                   (("lr_find_loss", loss), ("lr_find_smoothed", smooth)) if math.isfinite(value)]
    run_id = store.record_run(experiment=spec.experiment, run_name=f"{spec.name}-lr-find",
                              tags=tags, params=params, metrics=points,
                              texts={LR_FIND_JSON: json.dumps(found.to_dict(), indent=1)},
                              files=[(plot, LR_FIND_PNG)])
    return run_id, store.uri


def lr_find(spec: SweepSpec, *, trainable: Callable[..., Any] | None = None,
            tracking_uri: str | None = None, tracking: bool = True,
            plot_path: str | os.PathLike[str] | None = None,
            **options: Any) -> LRFind:
    """Run the LR range test on the spec's baseline config; record it unless ``tracking=False``.

    ``options`` go to :func:`orchestrator.toolkit.lr_range_test` (``start_lr``,
    ``end_lr``, ``steps``, ``smoothing``, ``diverge_factor``). Tracking failures do
    not lose the result: they are listed in ``problems``.
    """
    from orchestrator.engine._context import capture_reports, derive_seed
    from orchestrator.toolkit import lr_range_test

    hook = find_lr_setup(trainable if trainable is not None else spec.trainable)
    config = start_config(spec)
    cv = spec.cv.as_dict(spec.seed) if spec.cv else None
    seed = derive_seed(spec.seed, "lr_find")
    # The trainable's own helpers may read the trial context (split seed, cv).
    with capture_reports(seed=seed, split_seed=cv["seed"] if cv else spec.seed, cv=cv):
        model_factory, X, y = hook(dict(config))
        found = lr_range_test(model_factory, X, y, config, cv=cv, seed=seed, **options)
    plot = Path(plot_path) if plot_path else Path(tempfile.mkdtemp(prefix="orch-lr-find-")) \
        / LR_FIND_PNG
    plot_lr_find(found, plot, title=f"LR range test — {spec.name}")
    run_id = uri = None
    problems: list[str] = []
    if tracking:
        try:
            run_id, uri = _record(spec, found, config, plot, tracking_uri)
        except Exception as exc:  # noqa: BLE001 - the result stands without its record
            problems.append(f"the LR range test was not recorded: {type(exc).__name__}: {exc}")
    return LRFind(config=config, result=found, run_id=run_id, tracking_uri=uri, plot=plot,
                  problems=tuple(problems))


def _raw_key(name: str) -> str:
    """``a.lr`` → ``parameters.a.parameters.lr`` (where the parameter sits in the YAML)."""
    return "parameters." + ".parameters.".join(name.split("."))


def resolve_placeholders(spec: SweepSpec, *, trainable: Callable[..., Any] | None = None,
                         tracking_uri: str | None = None, tracking: bool = True,
                         preview: bool = False, **options: Any) -> SweepSpec:
    """Replace every ``from: lr_find`` parameter by ``log_uniform_values`` over the
    range an LR range test suggests; a spec without placeholders comes back unchanged.

    ``preview=True`` (``orch sweep --dry-run``) runs nothing: placeholders become the
    constant ``"<from lr_find>"`` so the plan can be shown. The range test is recorded
    like ``orch lr-find`` (one run tagged ``orch.role=lr_find``), and the result is
    added to the returned spec's ``notes``.
    """
    from orchestrator.sweepspec import load_spec

    placeholders = spec.placeholders
    if not placeholders:
        return spec
    overrides: dict[str, Any] = {"name": spec.name, "experiment": spec.experiment}
    if preview:
        for p in placeholders:
            overrides[_raw_key(p.name)] = _with_when({"value": PREVIEW_VALUE}, p)
        resolved = load_spec(spec.raw, overrides=overrides, trainable=spec.trainable)
        return dataclasses.replace(resolved, notes=resolved.notes + tuple(
            f"{p.name}: from lr_find — an LR range test sets its range when the sweep runs"
            for p in placeholders))
    try:
        found = lr_find(spec, trainable=trainable, tracking_uri=tracking_uri,
                        tracking=tracking, **options)
    except OrchError:
        raise
    except Exception as exc:  # user code or bad settings: name the placeholder that needed it
        raise SpecError([Issue(f"{_raw_key(placeholders[0].name)}.from",
                               f"the LR range test failed: {type(exc).__name__}: {exc}",
                               "fix the baseline config or the trainable's lr_find_setup, "
                               "or give the range explicitly")], source=spec.source) from exc
    lo, hi = found.result.range
    for p in placeholders:
        overrides[_raw_key(p.name)] = _with_when(
            {"distribution": "log_uniform_values", "min": lo, "max": hi}, p)
    resolved = load_spec(spec.raw, overrides=overrides, trainable=spec.trainable)
    where = f" (MLflow run {found.run_id})" if found.run_id else ""
    notes = [f"{p.name}: from lr_find → log_uniform_values [{lo:.3g}, {hi:.3g}]; steepest "
             f"descent at {found.result.suggested_lr:.3g}{where}" for p in placeholders]
    notes += list(found.problems)
    return dataclasses.replace(resolved, notes=resolved.notes + tuple(notes))


def _with_when(body: dict[str, Any], p: Any) -> dict[str, Any]:
    if p.when:
        body["when"] = {dep: list(values) if len(values) > 1 else values[0]
                        for dep, values in p.when}
    return body


