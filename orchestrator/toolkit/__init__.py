"""Training helpers for trainables: optimisers, LR schedules, K-fold, statistics, artifacts.

This sub-package imports torch; ``import orchestrator`` does not. The quickest
way in is :func:`fit_classifier`, which turns a model factory and data into a
K-fold (or holdout) training run that reports every epoch::

    from orchestrator.toolkit import fit_classifier

    def train(config):
        fit_classifier(lambda: make_model(config), X, y, config)

Users with their own loop take the pieces: :func:`fold_indices` for the same
splits, :func:`split_fingerprint`, :class:`TrainSettings`,
:func:`build_optimizer`, :class:`LRSchedule`, :class:`EpochStats`,
:func:`seed_everything`, and the artifact writers. :func:`lr_range_test` runs the
LR range test (``orch lr-find``) on the same model factory and data.
"""

from orchestrator.toolkit._artifacts import save_confusion_matrix, save_curves
from orchestrator.toolkit._data import ClassificationData, labels_of
from orchestrator.toolkit._kfold import cv_folds, fold_indices, holdout_split, split_fingerprint
from orchestrator.toolkit._loop import (
    EPOCH_METRICS,
    FitResult,
    default_device,
    fit_classifier,
    seed_everything,
)
from orchestrator.toolkit._lr_range import LRRangeResult, lr_range_test
from orchestrator.toolkit._optim import LRSchedule, build_optimizer
from orchestrator.toolkit._settings import LR_SCHEDULES, OPTIMIZERS, TrainSettings
from orchestrator.toolkit._stats import EpochStats

__all__ = [
    "EPOCH_METRICS",
    "LR_SCHEDULES",
    "OPTIMIZERS",
    "ClassificationData",
    "EpochStats",
    "FitResult",
    "LRRangeResult",
    "LRSchedule",
    "TrainSettings",
    "build_optimizer",
    "cv_folds",
    "default_device",
    "fit_classifier",
    "fold_indices",
    "holdout_split",
    "labels_of",
    "lr_range_test",
    "save_confusion_matrix",
    "save_curves",
    "seed_everything",
    "split_fingerprint",
]
