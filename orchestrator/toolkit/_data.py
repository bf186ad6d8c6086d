"""Features and labels as the training loop sees them: arrays or a torch Dataset."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

__all__ = ["ClassificationData", "labels_of"]

LABEL_ATTRIBUTES = ("targets", "labels", "y")  # where datasets commonly keep their labels


def labels_of(dataset: Any) -> np.ndarray:
    """The class labels of a torch ``Dataset``.

    Taken from its ``targets``, ``labels`` or ``y`` attribute when it has one
    (torchvision and most custom datasets do), otherwise from the second
    element of every ``dataset[i]`` (which loads the whole dataset once).
    """
    for name in LABEL_ATTRIBUTES:
        labels = getattr(dataset, name, None)
        if labels is not None:
            break
    else:
        labels = [dataset[i][1] for i in range(len(dataset))]
    if isinstance(labels, torch.Tensor):
        return labels.detach().cpu().numpy()
    return np.asarray([int(label) for label in labels])


def _check_labels(y: np.ndarray) -> np.ndarray:
    if y.ndim != 1 or len(y) == 0 or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        shown = np.unique(y)[:5] if y.size else y
        raise ValueError(
            "labels must be a non-empty 1-D array of class indices 0..C-1, but got "
            f"dtype {y.dtype}, shape {y.shape}, values like {shown.tolist()}; "
            "encode them with `classes, y = np.unique(y, return_inverse=True)`"
        )
    return y.astype(np.int64)


class ClassificationData:
    """Features and integer labels, served in (shuffled) mini-batches of given indices.

    ``X`` is an array or tensor of samples (first axis) with labels ``y``, or a
    torch ``Dataset`` yielding ``(features, label)``; then ``y`` may be left
    out (see :func:`labels_of`). Arrays are indexed directly, which is far
    faster on small data than a DataLoader; datasets go through a DataLoader.
    """

    def __init__(self, X: Any, y: Any = None) -> None:
        self.dataset: Dataset | None = None
        self.features: torch.Tensor | None = None
        if isinstance(X, Dataset):
            self.dataset = X
            labels = labels_of(X) if y is None else y
        else:
            if y is None:
                raise ValueError("`y` is required when `X` is an array; pass the labels")
            if not torch.is_tensor(X):
                X = np.asarray(X)
                X = X if X.flags.writeable else X.copy()  # torch wants writable memory
            features = torch.as_tensor(X)
            self.features = features.float() if features.is_floating_point() else features
            labels = y
        labels = labels.detach().cpu().numpy() if torch.is_tensor(labels) else np.asarray(labels)
        self.labels = _check_labels(labels)
        self.targets = torch.as_tensor(self.labels)
        size = len(self.dataset) if self.dataset is not None else len(self.features)
        if size != len(self.labels):
            raise ValueError(
                f"`X` and `y` must hold the same number of samples, but got {size} and "
                f"{len(self.labels)}"
            )
        self.n_classes = int(self.labels.max()) + 1

    def batches(
        self,
        indices: np.ndarray,
        *,
        batch_size: int,
        device: torch.device,
        generator: torch.Generator | None = None,
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Mini-batches of ``indices``; shuffled with ``generator`` when one is given."""
        if self.dataset is not None:
            loader = DataLoader(
                Subset(self.dataset, indices.tolist()),
                batch_size=batch_size,
                shuffle=generator is not None,
                generator=generator,
            )
            for xb, yb in loader:
                yield xb.to(device), torch.as_tensor(yb).long().to(device)
            return
        order = torch.tensor(indices)  # a copy: split arrays are read-only
        if generator is not None:
            order = order[torch.randperm(len(order), generator=generator)]
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            yield self.features[chosen].to(device), self.targets[chosen].to(device)
