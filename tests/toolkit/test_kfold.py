"""Fixed splits: K folds and the holdout, their caching and fingerprints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from orchestrator import capture_reports
from orchestrator.toolkit import cv_folds, fold_indices, holdout_split, split_fingerprint

ROOT = Path(__file__).resolve().parents[2]
Y = np.repeat(np.arange(4), [30, 20, 12, 9])  # imbalanced on purpose


@pytest.mark.parametrize("stratify", [True, False])
@pytest.mark.parametrize("folds", [2, 3, 5])
def test_folds_partition_every_index(folds: int, stratify: bool) -> None:
    splits = cv_folds(Y, folds=folds, stratify=stratify, seed=0)
    assert len(splits) == folds
    vals = np.concatenate([val for _, val in splits])
    assert sorted(vals.tolist()) == list(range(len(Y)))  # cover, and never overlap
    for train, val in splits:
        assert not set(train.tolist()) & set(val.tolist())
        assert len(train) + len(val) == len(Y)


def test_stratified_folds_keep_class_proportions() -> None:
    for _, val in cv_folds(Y, folds=3, stratify=True, seed=1):
        counts = np.bincount(Y[val], minlength=4)
        expected = np.bincount(Y) / 3
        assert np.all(np.abs(counts - expected) <= 1)


def test_fold_count_is_validated() -> None:
    with pytest.raises(ValueError, match=r"`folds` must be a whole number >= 2, but got 1"):
        cv_folds(Y, folds=1, stratify=False, seed=0)
    with pytest.raises(ValueError, match=r"smallest class count \(9, class 3\), but got 10"):
        cv_folds(Y, folds=10, stratify=True, seed=0)
    assert len(cv_folds(Y, folds=10, stratify=False, seed=0)) == 10


def test_seed_changes_folds_and_cache_returns_readonly_arrays() -> None:
    first = cv_folds(Y, folds=3, stratify=True, seed=0)
    assert cv_folds(Y.copy(), folds=3, stratify=True, seed=0) is first  # cached by content
    other = cv_folds(Y, folds=3, stratify=True, seed=1)
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(first, other, strict=True))
    with pytest.raises(ValueError):
        first[0][1][0] = 99


def test_holdout_is_stratified_and_ignores_the_trial_seed() -> None:
    with capture_reports(seed=1, split_seed=7):
        ((train_a, val_a),) = fold_indices(Y)
    with capture_reports(seed=2, split_seed=7):
        ((train_b, val_b),) = fold_indices(Y)
    assert np.array_equal(val_a, val_b) and np.array_equal(train_a, train_b)
    assert len(val_a) == int(np.ceil(0.2 * len(Y)))
    assert set(np.unique(Y[val_a])) == {0, 1, 2, 3}
    assert np.array_equal(val_a, holdout_split(Y, seed=7)[1])


def test_fold_indices_follows_the_sweep_cv_settings() -> None:
    cv = {"folds": 3, "stratify": True, "seed": 4}
    with capture_reports(cv=cv):
        splits = fold_indices(Y)
    assert splits is cv_folds(Y, folds=3, stratify=True, seed=4)
    with pytest.raises(ValueError, match="only the keys folds, stratify, seed, but got fold"):
        fold_indices(Y, cv={"fold": 3})


def test_fingerprint_depends_on_data_and_splits() -> None:
    X = np.arange(len(Y) * 2, dtype=np.float32).reshape(len(Y), 2)
    splits = cv_folds(Y, folds=3, stratify=True, seed=0)
    fp = split_fingerprint(X, Y, splits)
    assert len(fp) == 16 and int(fp, 16) >= 0
    assert split_fingerprint(X.copy(), Y.copy(), splits) == fp
    assert split_fingerprint(X + 1, Y, splits) != fp
    assert split_fingerprint(X, Y, cv_folds(Y, folds=3, stratify=True, seed=1)) != fp


_CHILD = """
import json, numpy as np
from orchestrator.toolkit import cv_folds, split_fingerprint
y = np.repeat(np.arange(4), [30, 20, 12, 9])
X = np.arange(len(y) * 2, dtype=np.float32).reshape(len(y), 2)
splits = cv_folds(y, folds=3, stratify=True, seed=5)
print(json.dumps({"vals": [v.tolist() for _, v in splits], "fp": split_fingerprint(X, y, splits)}))
"""


def test_same_seed_gives_same_folds_in_another_process() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _CHILD], cwd=ROOT, capture_output=True, text=True, check=True
    )
    child = json.loads(out.stdout)
    X = np.arange(len(Y) * 2, dtype=np.float32).reshape(len(Y), 2)
    splits = cv_folds(Y, folds=3, stratify=True, seed=5)
    assert child["vals"] == [val.tolist() for _, val in splits]
    assert child["fp"] == split_fingerprint(X, Y, splits)
