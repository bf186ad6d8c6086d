"""Fixed data splits: K folds or one holdout, the same in every trial and process.

The splits come from scikit-learn (``StratifiedKFold``, ``KFold``,
``train_test_split``); this module validates the request, caches the result
in-process (an actor reused across trials splits once) and fingerprints it so
that runs on different splits are never silently compared.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from orchestrator.engine._context import cv_settings, split_seed

__all__ = ["cv_folds", "fold_indices", "holdout_split", "resolve_cv", "split_fingerprint"]

Split = tuple[np.ndarray, np.ndarray]  # (train indices, validation indices)

DEFAULT_FOLDS = 5  # when `cv:` names no `folds`
DEFAULT_STRATIFY = True  # keep class proportions in every fold
HOLDOUT_FRACTION = 0.2  # share of samples validated on without K-fold
FINGERPRINT_CHARS = 16  # hex characters kept of the sha256 (64 bits)
CACHE_SIZE = 32  # split requests remembered per process
CV_KEYS = ("folds", "stratify", "seed")

_CACHE: OrderedDict[tuple[Any, ...], list[Split]] = OrderedDict()


def _labels_digest(y: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(f"{y.dtype.str}{y.shape}".encode())
    if y.dtype == object:  # the bytes of an object array are pointers: hash the values
        h.update(repr(y.tolist()).encode())
    else:
        h.update(np.ascontiguousarray(y))
    return h.hexdigest()


def _cached(key: tuple[Any, ...], make: Any) -> list[Split]:
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    splits = []
    for train, val in make():
        train, val = np.sort(train).astype(np.int64), np.sort(val).astype(np.int64)
        train.flags.writeable = val.flags.writeable = False  # shared by every caller
        splits.append((train, val))
    _CACHE[key] = splits
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)
    return splits


def cv_folds(y: Any, *, folds: int, stratify: bool, seed: int) -> list[Split]:
    """K shuffled folds of ``range(len(y))`` as ``(train, val)`` index arrays.

    >>> y = np.array([0, 1] * 5)
    >>> [len(val) for _, val in cv_folds(y, folds=5, stratify=True, seed=0)]
    [2, 2, 2, 2, 2]

    The validation parts never overlap and together cover every index. With
    ``stratify`` each fold keeps the class proportions of ``y``; that needs at
    least ``folds`` samples of every class. Results are cached per (labels,
    folds, stratify, seed) in this process; the arrays are read-only.
    """
    y = np.asarray(y)
    if isinstance(folds, bool) or int(folds) != folds or folds < 2:
        raise ValueError(f"`folds` must be a whole number >= 2, but got {folds!r}")
    folds = int(folds)
    if folds > len(y):
        raise ValueError(
            f"`folds` must be at most the number of samples ({len(y)}), but got {folds}; "
            "use fewer folds"
        )
    if stratify:
        classes, counts = np.unique(y, return_counts=True)
        smallest = int(counts.min())
        if folds > smallest:
            rare = classes[counts.argmin()].item()
            raise ValueError(
                f"stratified `folds` must be at most the smallest class count ({smallest}, "
                f"class {rare!r}), but got {folds}; use at most {smallest} folds "
                "or set `stratify: false`"
            )
    key = ("folds", _labels_digest(y), folds, bool(stratify), int(seed))

    def make() -> Any:
        from sklearn.model_selection import KFold, StratifiedKFold

        splitter_class = StratifiedKFold if stratify else KFold
        splitter = splitter_class(n_splits=folds, shuffle=True, random_state=int(seed))
        return splitter.split(np.zeros(len(y)), y)

    return _cached(key, make)


def holdout_split(y: Any, *, seed: int, fraction: float = HOLDOUT_FRACTION) -> Split:
    """One ``(train, val)`` split with ``fraction`` of the samples in ``val``.

    Stratified when every class has at least two samples and the validation
    part can hold one of each class; shuffled with ``seed`` otherwise.
    """
    y = np.asarray(y)
    if not 0 < fraction < 1:
        raise ValueError(f"holdout `fraction` must be in (0, 1), but got {fraction!r}")
    classes, counts = np.unique(y, return_counts=True)
    n_val = int(np.ceil(fraction * len(y)))
    stratify = counts.min() >= 2 and len(classes) <= min(n_val, len(y) - n_val)
    key = ("holdout", _labels_digest(y), float(fraction), int(seed))

    def make() -> Any:
        from sklearn.model_selection import train_test_split

        train, val = train_test_split(
            np.arange(len(y)),
            test_size=fraction,
            random_state=int(seed),
            stratify=y if stratify else None,
        )
        return [(train, val)]

    return _cached(key, make)[0]


def resolve_cv(cv: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
    """``cv`` (default: the sweep's ``cv:`` settings) with every key filled, or None."""
    if cv is None:
        cv = cv_settings()
    if cv is None:
        return None
    unknown = sorted(set(cv) - set(CV_KEYS))
    if unknown:
        raise ValueError(
            f"`cv` accepts only the keys {', '.join(CV_KEYS)}, but got {', '.join(unknown)}"
        )
    seed = cv.get("seed")
    return {
        "folds": cv.get("folds", DEFAULT_FOLDS),
        "stratify": bool(cv.get("stratify", DEFAULT_STRATIFY)),
        "seed": int(seed) if seed is not None else split_seed(),
    }


def fold_indices(y: Any, *, cv: Mapping[str, Any] | None = None) -> list[Split]:
    """The splits :func:`fit_classifier` trains on, for users who write their own loop.

    ``cv`` is a mapping with ``folds``, ``stratify`` and ``seed`` (default:
    the sweep's ``cv:`` settings, :func:`orchestrator.cv_settings`). Without
    K-fold it is one fixed holdout split of 20%, seeded by
    :func:`orchestrator.split_seed` so that every trial validates on the same
    samples.
    """
    spec = resolve_cv(cv)
    if spec is None:
        return [holdout_split(y, seed=split_seed())]
    return cv_folds(y, folds=spec["folds"], stratify=spec["stratify"], seed=spec["seed"])


def _as_array(data: Any) -> np.ndarray | None:
    if isinstance(data, np.ndarray):
        return data
    if hasattr(data, "detach") and hasattr(data, "cpu"):  # a torch tensor
        return data.detach().cpu().numpy()
    inner = getattr(data, "data", None)  # e.g. torchvision datasets keep their images here
    if inner is not None and inner is not data:
        return _as_array(inner)
    return None


def split_fingerprint(X: Any, y: Any, splits: Sequence[Split]) -> str:
    """A short sha256 hex digest of the data, the labels and the split indices.

    >>> X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    >>> len(split_fingerprint(X, y, [(np.array([0, 1]), np.array([2, 3]))]))
    16

    The same data and splits give the same fingerprint in every process.
    ``X`` may be an array, a tensor or a dataset: a dataset's ``data``
    attribute is hashed when it has one, otherwise only its length (the labels
    and the indices are always hashed).
    """
    h = hashlib.sha256()
    features = _as_array(X)
    if features is not None:
        h.update(f"X{features.dtype.str}{features.shape}".encode())
        h.update(np.ascontiguousarray(features))
    else:
        h.update(f"X{type(X).__name__}{len(X)}".encode())
    h.update(b"y" + _labels_digest(np.asarray(y)).encode())
    for train, val in splits:
        h.update(b"train" + np.asarray(train, dtype=np.int64).tobytes())
        h.update(b"val" + np.asarray(val, dtype=np.int64).tobytes())
    return h.hexdigest()[:FINGERPRINT_CHARS]
