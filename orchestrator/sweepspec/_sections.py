"""The top-level sections that stand alone: method, trainable, W&B's keys, names and texts,
the budget, the baseline, resources, K-fold and the run's numbers.

Each reader takes the spec's data after its shape check (:class:`Top` returns a value
only when its type is right: pydantic has already said why otherwise), adds issues
and notes, and returns what it could build.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from orchestrator.sweepspec._issues import Issues, show, suggest
from orchestrator.sweepspec._model import (
    CV,
    DEFAULT_CPU,
    DEFAULT_RUN_CAP,
    DEFAULT_STRATIFY,
    METHODS,
    POPULATION_METHODS,
    Parameter,
    Resources,
)
from orchestrator.sweepspec._parameters import RawParameters
from orchestrator.sweepspec._rules import parse_rule
from orchestrator.sweepspec._shapes import WANDB_IGNORED, CVShape, ResourcesShape

__all__ = ["MAX_GRID_SIZE", "MAX_SEED", "Top", "slugify"]

MAX_SEED = 2**32 - 1  # numpy's and Optuna's samplers take seeds in [0, 2**32)
MAX_GRID_SIZE = 100_000  # configs: a bigger grid is almost certainly a mistake
MAX_NAME_CHARS = 200  # a sweep or experiment name, as the user writes it
MAX_TEXT_CHARS = 5000  # hypothesis, expected, description
SLUG_CHARS = 80  # characters of the safe name derived for folders and default experiments
TRAINABLE_RE = re.compile(r"^[A-Za-z_][\w.]*(:[A-Za-z_]\w*)?$")
BASELINE_RUN_RE = re.compile(r"[0-9a-fA-F]{32}")  # an MLflow run id
# Control characters (NUL, bidi overrides, ...) never belong in free text sent to MLflow.
CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200f\u202a-\u202e\u2066-\u2069]")


class Top:
    """The spec's top-level mapping: a value only when it has the type asked for."""

    def __init__(self, data: dict[Any, Any]) -> None:
        self.data = data

    def get(self, key: str, kind: type | tuple[type, ...]) -> Any:
        value = self.data.get(key)
        return value if isinstance(value, kind) and not isinstance(value, bool) else None

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None


def read_method(top: Top, issues: Issues) -> str | None:
    method = top.get("method", str)
    if method is None:
        return None
    low = method.lower()
    if low in METHODS:
        return low
    if low == "custom":
        issues.add("method", "method custom hands the search to a W&B Launch scheduler "
                   "(Optuna or Ax), which orch does not run", "use method tpe (Optuna's TPE, "
                   "run by orch itself), or gp or cmaes")
    else:
        issues.add("method", f"unknown method {method!r}", suggest(low, METHODS, what="methods"))
    return None


def read_trainable(top: Top, override: str | None, issues: Issues) -> str | None:
    given = top.get("trainable", str)
    if top.has("program") and override is None and given is None:
        issues.add("program", "W&B's `program:` runs a script; orch runs a Python function",
                   "replace `program:` with `trainable: module:function` or a built-in "
                   "(digits_mlp, digits_cnn)")
    name = override or given
    if name is None and not top.has("program"):
        issues.add("trainable", "required key is missing",
                   "add `trainable: digits_mlp` or `trainable: mymodule:train`")
    elif name is not None and not TRAINABLE_RE.fullmatch(name):
        issues.add("trainable", f"{show(name)} is not a built-in name or `module:function`",
                   "e.g. trainable: digits_mlp, or trainable: mypkg.train:fit")
    return name


def note_wandb_keys(top: Top, override: str | None, issues: Issues) -> None:
    """W&B's keys with no meaning here: accepted, and named."""
    for key in WANDB_IGNORED:
        if not top.has(key):
            continue
        if key == "program":
            if override or top.has("trainable"):
                issues.note("`program:` ignored: `trainable:` says what runs")
        else:
            issues.note(f"`{key}:` is a W&B setting with no meaning here; ignored")


def read_names(top: Top, source: str, issues: Issues) -> tuple[str, str]:
    """(name, experiment). The name as written is kept (shown, tagged); folders use
    :func:`slugify` of it; without one, the file's name."""
    given = top.get("name", str)
    name = given or (Path(source).stem if source and not source.startswith("<") else "sweep")
    if given is not None:
        _check_name(given, "name", issues)
    name = CONTROL_RE.sub("", name).strip() or "sweep"
    key = "experiment" if top.get("experiment", str) is not None else "project"
    experiment = top.get(key, str)
    if experiment is None:
        return name, slugify(name)
    _check_name(experiment, key, issues)
    return name, experiment


def slugify(text: str) -> str:
    """A name safe for folders and MLflow: word characters, '.', '-' (no '/', no '..').

    >>> slugify("ResNet-50: lr sweep (v2)")
    'ResNet-50-lr-sweep-v2'
    >>> slugify("[wide] 幅 sweep")
    'wide-幅-sweep'
    """
    slug = re.sub(r"[^\w.\-]+", "-", text, flags=re.UNICODE)
    slug = re.sub(r"\.{2,}", ".", re.sub(r"-{2,}", "-", slug)).strip("-._")
    return slug[:SLUG_CHARS].rstrip("-._") or "sweep"


def _check_name(value: str, path: str, issues: Issues) -> None:
    """Any text a person would write as a title: it is shown as is, never used as a path."""
    if not value.strip():
        issues.add(path, "must not be empty", "e.g. name: digits lr sweep")
    elif len(value) > MAX_NAME_CHARS:
        issues.add(path, f"is {len(value)} characters (limit {MAX_NAME_CHARS})", "shorten it")
    elif CONTROL_RE.search(value) or "\n" in value or "\r" in value or "\t" in value:
        issues.add(path, f"{show(value)} contains control characters or line breaks",
                   "write the name on one line of plain text")


def read_texts(top: Top, issues: Issues) -> dict[str, str]:
    """hypothesis, expected, description: free text, control characters removed."""
    texts: dict[str, str] = {}
    for key in ("hypothesis", "expected", "description"):
        text = top.get(key, str)
        if text is not None and len(text) > MAX_TEXT_CHARS:
            issues.add(key, f"is {len(text)} characters (limit {MAX_TEXT_CHARS})", "shorten it")
        texts[key] = CONTROL_RE.sub("", text).strip() if text is not None else ""
    if texts["expected"] and parse_rule(texts["expected"]) is None:
        issues.note(f"`expected` is free text ({texts['expected'][:80]!r}), so the verdict can "
                    "only be inconclusive; write it as a rule orch can check, e.g. `val_acc >= "
                    "baseline + 0.005` or `val_loss < 0.1`")
    return texts


def read_budget(top: Top, method: str | None, parameters: Sequence[Parameter],
                raw: RawParameters, issues: Issues) -> tuple[int, bool]:
    """(run_cap, defaulted): run_cap or Ray's num_samples, capped by a grid's size."""
    run_cap, num_samples = top.get("run_cap", int), top.get("num_samples", int)
    for key, value in (("run_cap", run_cap), ("num_samples", num_samples)):
        if value is not None and value < 1:
            issues.add(key, f"must be >= 1 trial, got {value}", "give a positive trial budget")
    if run_cap is not None and num_samples is not None and run_cap != num_samples:
        issues.add("num_samples", f"run_cap ({run_cap}) and num_samples ({num_samples}) are the "
                   "same budget with different values", "keep only run_cap")
    budget = run_cap if run_cap is not None else num_samples
    if method == "grid" and len(parameters) == len(raw):
        size = _grid_size(parameters, raw, issues)
        if size > MAX_GRID_SIZE:
            issues.add("parameters", f"the grid has {size} configs (over {MAX_GRID_SIZE})",
                       "narrow the values, set run_cap, or use method random")
        budget = size if budget is None else min(budget, size)
    if budget is None:
        return DEFAULT_RUN_CAP, True
    return budget, False


def _grid_size(params: Sequence[Parameter], raw: RawParameters, issues: Issues) -> int:
    size = 1
    for p in params:
        values = p.grid_values()
        if values is None:
            issues.add(raw[p.name][0], f"method grid needs discrete values, but {p.name!r} is "
                       f"{p.distribution} (continuous)",
                       "list `values:`, use int_uniform or q_uniform, or pick method random")
            return 0
        size *= max(1, len(values))
    if size <= MAX_GRID_SIZE and any(p.when for p in params):
        from orchestrator.sweepspec._space import grid_configs  # conditionals shrink the grid

        size = len(grid_configs(params))
    return size


def read_baseline(top: Top, issues: Issues) -> tuple[dict[str, Any] | str | None, int]:
    """(baseline, repeats): a config mapping or an MLflow run id."""
    baseline = top.get("baseline", (dict, str))
    if isinstance(baseline, str) and not BASELINE_RUN_RE.fullmatch(baseline.strip()):
        issues.add("baseline", f"a baseline is a config mapping or an MLflow run id (32 hex "
                   f"characters), got {show(baseline)}", "paste the run id from `orch ls`/the UI")
    repeats = top.get("baseline_repeats", int) or 1
    if repeats < 1:
        issues.add("baseline_repeats", f"must be >= 1, got {repeats}", "e.g. 3")
    elif repeats > 1 and not isinstance(baseline, dict):
        issues.add("baseline_repeats", "repeats apply to a baseline config, but `baseline:` is "
                   f"{'a run id' if baseline else 'not set'}", "give `baseline:` as a config")
    return baseline, repeats


def read_resources(raw: Any, issues: Issues, method: str | None = None) -> Resources:
    if not isinstance(raw, dict):
        return Resources()
    try:
        rm = ResourcesShape.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, "resources", ResourcesShape)
        return Resources()
    cpu = DEFAULT_CPU if rm.cpu is None else rm.cpu
    if cpu <= 0:
        issues.add("resources.cpu", f"must be > 0, got {cpu:g}", "e.g. cpu: 1")
    if rm.gpu is not None and rm.gpu < 0:
        issues.add("resources.gpu", f"must be >= 0, got {rm.gpu:g}", "e.g. gpu: 0.25")
    if rm.gpu is not None and 1 < rm.gpu and not float(rm.gpu).is_integer():
        issues.add("resources.gpu", f"a fraction above 1 GPU cannot be placed, got {rm.gpu:g}",
                   "use a fraction <= 1 or a whole number")
    workers = 1 if rm.workers is None else rm.workers
    _check_workers(workers, rm.gpu, method, issues)
    return Resources(cpu=cpu, gpu=rm.gpu, workers=workers)


def _check_workers(workers: int, gpu: float | None, method: str | None, issues: Issues) -> None:
    """`workers` > 1: one Ray Train job per trial, `cpu` and `gpu` per worker."""
    if workers < 1:
        issues.add("resources.workers", f"must be >= 1, got {workers}",
                   "e.g. workers: 2 (data-parallel workers per trial; 1: one process)")
        return
    if workers == 1:
        return
    if gpu is not None and gpu > 0 and not float(gpu).is_integer():
        issues.add("resources.gpu", f"with `workers: {workers}` each worker needs whole GPUs "
                   f"(two ranks of one job cannot share a GPU under NCCL), got {gpu:g}",
                   "use gpu: 1 per worker, or gpu: 0 for CPU workers (gloo)")
    if method in POPULATION_METHODS:
        issues.add("resources.workers", f"method {method} copies Ray Tune checkpoints between "
                   f"trials, but a trial of {workers} workers keeps Ray Train's, got "
                   f"workers: {workers}", f"use workers: 1 with {method}, or another method "
                   "(tpe, random, ...) with early_terminate")


def read_cv(raw: Any, issues: Issues) -> CV | None:
    if not isinstance(raw, dict):
        return None
    try:
        cm = CVShape.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, "cv", CVShape)
        return None
    if cm.folds < 2:
        issues.add("cv.folds", f"K-fold needs folds >= 2, got {cm.folds}",
                   "use 5 or 10, or remove `cv:` for a single hold-out split")
        return None
    return CV(folds=cm.folds, stratify=DEFAULT_STRATIFY if cm.stratify is None else cm.stratify,
              seed=cm.seed)


def read_numbers(top: Top, issues: Issues) -> dict[str, Any]:
    """seed, max_concurrent, max_failures and the time limits, each in its range."""
    out: dict[str, Any] = {"max_concurrent": top.get("max_concurrent", int)}
    if out["max_concurrent"] is not None and out["max_concurrent"] < 1:
        issues.add("max_concurrent", f"must be >= 1, got {out['max_concurrent']}", "or remove it")
    seed = top.get("seed", int)
    if seed is not None and not 0 <= seed <= MAX_SEED:
        issues.add("seed", f"must be a whole number in [0, {MAX_SEED}] (the samplers' range), "
                   f"got {seed}", f"e.g. seed: {seed % (MAX_SEED + 1)}")
        seed = 0
    out["seed"] = seed or 0
    out["max_failures"] = top.get("max_failures", int) or 0
    if out["max_failures"] < 0:
        issues.add("max_failures", f"must be >= 0, got {out['max_failures']}",
                   "0 means no retries")
    for key, example, what in (("trial_timeout_s", 3600, "a trial"),
                               ("report_timeout_s", 600, "a report"),
                               ("time_budget_s", 7200, "the sweep")):
        value = top.get(key, (int, float))
        if value is not None and (not math.isfinite(value) or value <= 0):
            issues.add(key, f"must be a finite number of seconds > 0, got {value!r}",
                       f"e.g. {key}: {example}, or remove it for no limit on {what}")
            value = None
        out[key] = float(value) if value is not None else None
    return out
