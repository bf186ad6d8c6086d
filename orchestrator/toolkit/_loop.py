"""The training loop: K folds (or one holdout) trained in lockstep, one report per epoch.

Reads top to bottom: build one :class:`_Fold` per split, resume from the
trial's checkpoint if Ray restarted it, then every epoch train and validate
each fold, combine the folds' numbers into one report, and send it with a
checkpoint of every fold. The sweep's scheduler (ASHA ...) therefore stops
trials on the cross-validated metric, epoch by epoch, and a trial that fails
(``max_failures``) carries on from its last finished epoch.
"""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from orchestrator.engine._context import (
    _checkpoint_problem,
    artifact_dir,
    derive_seed,
    load_checkpoint,
    report,
    set_tag,
    split_seed,
    trial_seed,
)
from orchestrator.engine._diagnosis import Diagnosis, diagnose
from orchestrator.errors import NonFiniteMetricError
from orchestrator.toolkit._artifacts import save_confusion_matrix, save_curves
from orchestrator.toolkit._data import ClassificationData
from orchestrator.toolkit._kfold import Split, fold_indices, resolve_cv, split_fingerprint
from orchestrator.toolkit._optim import LRSchedule, build_optimizer
from orchestrator.toolkit._settings import TrainSettings
from orchestrator.toolkit._stats import EpochStats

__all__ = ["EPOCH_METRICS", "FitResult", "default_device", "fit_classifier", "seed_everything"]

EVAL_BATCH_SIZE = 1024  # samples per forward pass when validating (no gradients kept)
GPU_CHECK_EVERY = 16  # steps between host reads of the loss on a GPU (divergence check)
EPOCH_METRICS = (  # measured every epoch, in report order (K-fold adds _std and _fold<k>)
    "epoch",
    "train_loss",
    "val_loss",
    "val_acc",
    "lr",
    "grad_norm",
    "grad_norm_layer_min",
    "grad_norm_layer_max",
    "grad_norm_first",
    "grad_norm_last",
    "weight_norm",
    "update_ratio",
)
PER_FOLD_METRICS = ("val_loss", "val_acc")  # also reported per fold, as <name>_fold<k>
CHECKPOINT_FORMAT = "orch.fit_classifier/1"  # a checkpoint of another layout is not resumed


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, numpy's global generator and torch (CPU and CUDA)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when a GPU is visible (Ray sets CUDA_VISIBLE_DEVICES for GPU trials), else CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _rng_state(device: torch.device) -> dict[str, Any]:
    """Every global generator training draws from (dropout, augmentation, user code)."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any], device: torch.device) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


@dataclass
class FitResult:
    """What :func:`fit_classifier` leaves besides its reports.

    ``history`` is the list of reports sent, ``models`` one trained model per
    fold, ``splits`` the ``(train, val)`` indices, ``confusion`` the validation
    confusion matrix of the last epoch (summed over folds).
    """

    history: list[dict[str, Any]]
    models: list[nn.Module]
    splits: list[Split]
    fingerprint: str
    confusion: np.ndarray
    diagnosis: Diagnosis


@dataclass
class _Fold:
    """One split's model, optimiser, schedule and shuffling generator."""

    index: int
    train: np.ndarray
    val: np.ndarray
    model: nn.Module
    optimizer: torch.optim.Optimizer
    schedule: LRSchedule
    generator: torch.Generator
    predictions: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))


@dataclass
class _Divergence:
    fold: int
    step: int
    steps: int
    metrics: dict[str, float]


def _subsample(train: np.ndarray, fraction: float, *, seed: int) -> np.ndarray:
    """A fixed random share of the training indices (the same in every trial)."""
    if fraction >= 1:
        return train
    keep = max(1, round(fraction * len(train)))
    chosen = np.random.default_rng(seed).choice(len(train), size=keep, replace=False)
    return np.sort(train[chosen])


def _check_every(device: torch.device) -> int:
    """Steps between reads of the loss on the host: every step on the CPU (free)."""
    return 1 if device.type == "cpu" else GPU_CHECK_EVERY


def _train_epoch(
    fold: _Fold, data: ClassificationData, loss_fn: Callable, s: TrainSettings, device: torch.device
) -> dict[str, float] | _Divergence:
    model, params = fold.model, [p for p in fold.model.parameters() if p.requires_grad]
    model.train()
    stats = EpochStats(params)
    total, seen, lr = 0.0, 0, fold.schedule.lr
    steps = math.ceil(len(fold.train) / s.batch_size)
    # On a GPU, reading the loss back every step would synchronise every step: the
    # running sum stays on the device and is checked every few steps instead.
    check_every = _check_every(device)
    on_device = torch.zeros((), device=device)
    batches = data.batches(
        fold.train, batch_size=s.batch_size, device=device, generator=fold.generator
    )
    for step, (xb, yb) in enumerate(batches, start=1):
        loss = loss_fn(model(xb), yb)
        if check_every == 1:
            value = loss.item()
        else:
            on_device += loss.detach() * len(yb)
            value = (on_device.item() if step % check_every == 0 or step == steps
                     else 0.0)  # 0.0: not read this step; the sum is read below
        if not math.isfinite(value):  # diverged: stop now, report, end the trial
            metrics = {"train_loss": value, "val_loss": math.nan, "val_acc": math.nan, "lr": lr}
            return _Divergence(fold.index, step, steps, {**metrics, **stats.summary()})
        fold.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        stats.observe_gradients()
        if s.grad_clip:
            nn.utils.clip_grad_norm_(params, s.grad_clip)
        lr = fold.schedule.lr  # the LR this step uses (onecycle changes it every step)
        fold.optimizer.step()
        fold.schedule.after_batch()
        if check_every == 1:
            total += value * len(yb)
        seen += len(yb)
    if check_every != 1:
        total = float(on_device.item())
    return {"train_loss": total / seen, "lr": lr, **stats.summary()}


@torch.no_grad()
def _evaluate(
    fold: _Fold, data: ClassificationData, loss_fn: Callable, device: torch.device
) -> dict[str, float]:
    fold.model.eval()
    total, correct, predictions = 0.0, 0, []
    for xb, yb in data.batches(fold.val, batch_size=EVAL_BATCH_SIZE, device=device):
        logits = fold.model(xb)
        total += loss_fn(logits, yb).item() * len(yb)
        predicted = logits.argmax(dim=1)
        correct += int((predicted == yb).sum())
        predictions.append(predicted.cpu().numpy())
    fold.predictions = np.concatenate(predictions)
    return {"val_loss": total / len(fold.val), "val_acc": correct / len(fold.val)}


def _combine(per_fold: list[dict[str, float]]) -> dict[str, float]:
    """One report from the folds' numbers: mean, ``_std`` and ``_fold<k>`` values."""
    if len(per_fold) == 1:
        return dict(per_fold[0])
    combined: dict[str, float] = {}
    for key in per_fold[0]:
        values = np.array([metrics[key] for metrics in per_fold], dtype=float)
        combined[key] = float(values.mean())
        combined[f"{key}_std"] = float(values.std())
    for key in PER_FOLD_METRICS:
        for k, metrics in enumerate(per_fold):
            combined[f"{key}_fold{k}"] = metrics[key]
    return combined


def _confusion(folds: list[_Fold], data: ClassificationData) -> np.ndarray:
    """The last validation's confusion matrix, summed over the folds (rows: true labels)."""
    from sklearn.metrics import confusion_matrix

    done = [fold for fold in folds if len(fold.predictions) == len(fold.val)]
    # A model may have more outputs than the labels use; give every predicted class a column.
    size = max([data.n_classes] + [int(fold.predictions.max()) + 1 for fold in done])
    matrix = np.zeros((size, size), dtype=np.int64)
    for fold in done:
        matrix += confusion_matrix(data.labels[fold.val], fold.predictions,
                                   labels=np.arange(size))
    return matrix


def _save_artifacts(
    history: list[dict[str, Any]],
    folds: list[_Fold],
    data: ClassificationData,
    *,
    with_matrix: bool,
) -> np.ndarray:
    """Write curves.png and (unless diverged) the confusion matrix; return the matrix."""
    folder = artifact_dir()
    matrix = _confusion(folds, data)
    if history:
        save_curves(history, folder=folder)
    if with_matrix and matrix.sum():
        epoch = history[-1]["epoch"] if history else None
        save_confusion_matrix(matrix, folder=folder, folds=len(folds), epoch=epoch)
    return matrix


def _save_matrix_table(folds: list[_Fold], data: ClassificationData, epoch: int) -> None:
    matrix = _confusion(folds, data)
    if matrix.sum():
        save_confusion_matrix(matrix, folder=artifact_dir(), folds=len(folds), epoch=epoch,
                              draw=False)


def _save_artifacts_quietly(
    history: list[dict[str, Any]], folds: list[_Fold], data: ClassificationData
) -> None:
    """Best effort while another exception is on its way: never replace it."""
    try:
        _save_artifacts(history, folds, data, with_matrix=True)
    except Exception as error:  # noqa: BLE001 - the original exception matters more
        warnings.warn(f"could not save the trial's artifacts: {error}", stacklevel=2)


def fit_classifier(
    model_factory: Callable[[], nn.Module],
    X: Any,
    y: Any = None,
    config: Mapping[str, Any] | None = None,
    *,
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
    cv: Mapping[str, Any] | None = None,
    checkpoint: bool = True,
) -> FitResult:
    """Train a classifier on every fold in lockstep and report once per epoch.

    >>> from orchestrator import capture_reports
    >>> X, y = np.random.rand(60, 4).astype("float32"), np.arange(60) % 2
    >>> with capture_reports(metric="val_loss"):
    ...     result = fit_classifier(lambda: nn.Linear(4, 2), X, y, {"epochs": 2})
    >>> [r["epoch"] for r in result.history]
    [1, 2]

    ``model_factory()`` builds a fresh model that returns one logit per class; it is called
    once per fold, right after the fold's seed is set (derived from
    :func:`orchestrator.trial_seed` and the fold index). ``X`` holds the samples (array or
    tensor, first axis) and ``y`` their labels, integers ``0..C-1``; or ``X`` is a torch
    ``Dataset`` of ``(features, label)`` and ``y`` may be omitted (see :func:`labels_of`).
    ``config`` supplies the training keys of :class:`TrainSettings`; other keys are ignored.
    ``loss`` defaults to cross-entropy and must average over the batch.

    ``cv`` (default: the sweep's ``cv:``) selects K-fold; without it one fixed 20% holdout,
    seeded by :func:`orchestrator.split_seed`, validates every trial on the same samples. The
    split's fingerprint is tagged as ``split_fingerprint`` before the first report.

    Each report holds ``epoch`` (from 1), ``train_loss``, ``val_loss``, ``val_acc``, ``lr``,
    ``grad_norm``, ``grad_norm_layer_min``, ``grad_norm_layer_max``, ``grad_norm_first``,
    ``grad_norm_last``, ``weight_norm`` and ``update_ratio`` (see :class:`EpochStats`; ``lr``
    is the learning rate of the epoch's last step), then ``n_classes`` (so
    :func:`orchestrator.engine._diagnosis.diagnose` can judge under-fitting from the history
    alone) and ``n_params`` (trainable parameters: an objective or a constraint like any
    metric, e.g. ``metric_constraints: ["n_params <= 20000"]``). With K folds each measured number is the fold mean, with ``<name>_std`` beside it,
    and ``val_loss_fold<k>`` / ``val_acc_fold<k>`` (k from 0) per fold.

    ``train_fraction`` trains on a fixed random share of each fold's training samples
    (validation is untouched). Training runs on ``torch_threads`` CPU threads (default 1),
    restored afterwards; the same config and trial seed then give identical reports on CPU (on
    GPU, cuDNN may still vary in the last digits).

    Every report carries a checkpoint (``checkpoint=False``: none): each fold's model,
    optimiser and LR schedule, the random generators (Python, numpy, torch, each fold's
    shuffling) and the history. When Ray Tune restarts a failed trial (``max_failures``), the
    run resumes after the last reported epoch and gives exactly the reports an uninterrupted
    run would have given (on CPU); a checkpoint of another split or fold count, or one that
    cannot be read, is ignored with a warning and training starts over.

    A non-finite training loss stops training at once: that epoch is reported with the bad
    ``train_loss`` and a NaN ``val_loss``, then
    :class:`~orchestrator.errors.NonFiniteMetricError` is raised. At the end ``curves.png``,
    ``confusion_matrix.png`` and ``confusion_matrix.json`` are written to
    :func:`orchestrator.artifact_dir`. Call it from a trainable and return nothing: Ray Tune
    takes a returned value for a last report.
    """
    s = TrainSettings.from_config(config)
    data = ClassificationData(X, y)
    splits = fold_indices(data.labels, cv=cv)
    spec = resolve_cv(cv)
    fingerprint = split_fingerprint(X, data.labels, splits)
    set_tag("split_fingerprint", fingerprint)
    device = default_device()
    set_tag("device", str(device))
    loss_fn = loss if loss is not None else nn.CrossEntropyLoss()
    threads = torch.get_num_threads()
    torch.set_num_threads(s.torch_threads)
    try:
        folds, history, matrix = _train(splits, model_factory, data, loss_fn, s, device,
                                        fingerprint, checkpoint,
                                        split_seed=spec["seed"] if spec else split_seed())
    finally:
        torch.set_num_threads(threads)
    return FitResult(
        history=history,
        models=[fold.model for fold in folds],
        splits=list(splits),
        fingerprint=fingerprint,
        confusion=matrix,
        diagnosis=diagnose(history, n_classes=data.n_classes),
    )


def _train(splits: list[Split], model_factory: Callable[[], nn.Module],
           data: ClassificationData, loss_fn: Callable, s: TrainSettings, device: torch.device,
           fingerprint: str, checkpoint: bool, *, split_seed: int
           ) -> tuple[list[_Fold], list[dict[str, Any]], np.ndarray]:
    """Build the folds, resume from the trial's checkpoint when Ray restarted it, train."""
    folds = _build_folds(splits, model_factory, s, device, split_seed=split_seed)
    history: list[dict[str, Any]] = []
    saved = load_checkpoint() if checkpoint else None
    if saved is not None and not _resume(saved, folds, fingerprint, device, history):
        # a half-restored fold must not be trained on
        folds, history = _build_folds(splits, model_factory, s, device,
                                      split_seed=split_seed), []
    loop = _Loop(folds, data, loss_fn, s, device, history, fingerprint, checkpoint)
    try:
        loop.run(start=len(history) + 1)
    except NonFiniteMetricError:
        raise
    except Exception:  # a failure: keep what helps explain it
        _save_artifacts_quietly(history, folds, data)
        raise
    # Stopped early (Ray raises SystemExit in report): save nothing. The driver has
    # closed the trial's run already, and with actor reuse the next trial may be
    # drawing in this process; matplotlib's text rendering is not thread-safe.
    matrix = (loop.matrix if loop.matrix is not None
              else _save_artifacts(history, folds, data, with_matrix=True))
    return folds, history, matrix


def _build_folds(splits: list[Split], model_factory: Callable[[], nn.Module], s: TrainSettings,
                 device: torch.device, *, split_seed: int) -> list[_Fold]:
    """One fresh model, optimiser, schedule and shuffling generator per split, each seeded
    from the trial's seed and the fold's index."""
    folds = []
    for k, (train, val) in enumerate(splits):
        # The subsample depends on the split seed only, so every trial sees the same one.
        train = _subsample(train, s.train_fraction,
                           seed=derive_seed(split_seed, "train_fraction", k))
        seed = derive_seed(trial_seed(), "fold", k)
        seed_everything(seed)
        model = model_factory().to(device)
        optimizer = build_optimizer(model.parameters(), s)
        schedule = LRSchedule(optimizer, s, steps_per_epoch=math.ceil(len(train) / s.batch_size))
        generator = torch.Generator().manual_seed(seed)
        folds.append(_Fold(k, train, val, model, optimizer, schedule, generator))
    return folds


def _checkpoint_state(
    folds: list[_Fold], history: list[dict[str, Any]], fingerprint: str, device: torch.device
) -> dict[str, Any]:
    """Everything the next epoch depends on, for every fold, plus the history so far."""
    return {
        "format": CHECKPOINT_FORMAT,
        "epoch": len(history),
        "folds": len(folds),
        "fingerprint": fingerprint,
        "history": history,
        "rng": _rng_state(device),
        "fold_states": [
            {
                "model": fold.model.state_dict(),
                "optimizer": fold.optimizer.state_dict(),
                "schedule": fold.schedule.state_dict(),
                "generator": fold.generator.get_state(),
                "predictions": fold.predictions,
            }
            for fold in folds
        ],
    }


def _resume(
    state: Mapping[str, Any],
    folds: list[_Fold],
    fingerprint: str,
    device: torch.device,
    history: list[dict[str, Any]],
) -> bool:
    """Restore the folds and ``history`` from a checkpoint; False (with a warning) if unusable."""
    if state.get("format") != CHECKPOINT_FORMAT:
        _checkpoint_problem(f"the checkpoint is not a fit_classifier state "
                            f"(format {state.get('format')!r}, expected {CHECKPOINT_FORMAT!r})")
        return False
    if state.get("folds") != len(folds) or state.get("fingerprint") != fingerprint:
        _checkpoint_problem(
            f"the checkpoint is of {state.get('folds')} fold(s) with split fingerprint "
            f"{state.get('fingerprint')}, but this run has {len(folds)} with {fingerprint}"
        )
        return False
    try:
        for fold, saved in zip(folds, state["fold_states"], strict=True):
            fold.model.load_state_dict(saved["model"])
            fold.optimizer.load_state_dict(saved["optimizer"])
            fold.schedule.load_state_dict(saved["schedule"])
            fold.generator.set_state(saved["generator"])
            fold.predictions = np.asarray(saved["predictions"])
        _set_rng_state(state["rng"], device)
        restored = [dict(row) for row in state["history"]]
    except Exception as exc:  # noqa: BLE001 - a bad checkpoint means a fresh start, not a crash
        _checkpoint_problem(f"the checkpoint does not fit this model ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''})")
        return False
    if len(restored) != state["epoch"]:
        _checkpoint_problem(f"the checkpoint's history has {len(restored)} epochs, "
                            f"not {state['epoch']}")
        return False
    history.extend(restored)
    set_tag("resumed_from_epoch", len(history))
    return True


@dataclass
class _Loop:
    """The epochs: train and validate each fold, then send one combined report."""

    folds: list[_Fold]
    data: ClassificationData
    loss_fn: Callable
    s: TrainSettings
    device: torch.device
    history: list[dict[str, Any]]
    fingerprint: str
    checkpoint: bool
    matrix: np.ndarray | None = None

    def run(self, *, start: int = 1) -> None:
        folds, data = self.folds, self.data
        for epoch in range(start, self.s.epochs + 1):
            per_fold = []
            for fold in folds:
                trained = _train_epoch(fold, data, self.loss_fn, self.s, self.device)
                if isinstance(trained, _Divergence):
                    _diverge(epoch, trained, self.history, folds, data)
                measured = {**trained, **_evaluate(fold, data, self.loss_fn, self.device)}
                metrics = {key: measured[key] for key in EPOCH_METRICS[1:]}
                fold.schedule.after_epoch(metrics["val_loss"])
                per_fold.append(metrics)
            record = {"epoch": epoch, **_combine(per_fold), "n_classes": data.n_classes,
                      "n_params": _n_params(folds[0].model)}
            if not (math.isfinite(record["train_loss"]) and math.isfinite(record["val_loss"])):
                _diverge(epoch, _Divergence(-1, 0, 0, record), self.history, folds, data)
            self.history.append(record)
            state = (_checkpoint_state(folds, self.history, self.fingerprint, self.device)
                     if self.checkpoint else None)
            if epoch == self.s.epochs:
                # Before the last report: a scheduler stopping the trial at its final
                # epoch (ASHA at max_t) ends it inside report(), with nothing after it.
                self.matrix = _save_artifacts(self.history, folds, data, with_matrix=True)
            else:  # a trial stopped early keeps this epoch's matrix (JSON only: cheap)
                _save_matrix_table(folds, data, epoch)
            report(record, checkpoint=state)


def _n_params(model: nn.Module) -> int:
    """Trainable parameters: an objective or a constraint like any metric (``n_params``)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def _diverge(
    epoch: int,
    divergence: _Divergence,
    history: list[dict[str, Any]],
    folds: list[_Fold],
    data: ClassificationData,
) -> None:
    """Report the epoch whose loss is not finite, save the curves, and end the trial."""
    found = divergence.metrics
    record = {"epoch": epoch, **{key: found[key] for key in EPOCH_METRICS[1:] if key in found}}
    record["n_classes"] = data.n_classes
    history.append(record)
    _save_artifacts(history, folds, data, with_matrix=False)
    where = f"fold {divergence.fold}, " if divergence.fold >= 0 and len(folds) > 1 else ""
    step = f"step {divergence.step} of {divergence.steps}" if divergence.step else "validation"
    message = (
        f"train_loss is {record['train_loss']}, val_loss is {record['val_loss']} at epoch "
        f"{epoch} ({where}{step}): the trial diverged; lower `lr`, set `grad_clip`, "
        "or check the data"
    )
    report(record)  # raises NonFiniteMetricError itself when the sweep's metric is a loss
    raise NonFiniteMetricError(message)
