"""Built-in trainables on scikit-learn's bundled 8x8 digits (1,797 images, 10 classes).

Nothing is downloaded. Both trainables take every key of
:class:`orchestrator.toolkit.TrainSettings` (``optimizer``, ``lr``,
``epochs``, ``lr_schedule``, ``train_fraction`` ...) plus their own model keys,
and run K-fold when the sweep has a ``cv:`` section.

Each trainable ``<name>`` has a companion ``<name>_lr_find_setup(config)``
returning ``(model_factory, X, y)``: the hook ``orch lr-find`` uses to run the
LR range test on the same model and data (see :mod:`orchestrator.method`).

>>> from orchestrator import capture_reports
>>> with capture_reports(metric="val_loss", seed=0) as got:   # doctest: +SKIP
...     digits_mlp({"epochs": 3})
>>> got.reports[-1]["val_acc"] > 0.8                           # doctest: +SKIP
True
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import numpy as np

__all__ = [
    "ACTIVATIONS",
    "digits_cnn",
    "digits_cnn_lr_find_setup",
    "digits_mlp",
    "digits_mlp_lr_find_setup",
    "load_digits_arrays",
]

N_CLASSES = 10
IMAGE_SIDE = 8  # pixels per side of a digits image
PIXEL_MAX = 16.0  # digits pixels are integers 0..16; divided by this to lie in [0, 1]
ACTIVATIONS = ("relu", "tanh", "sigmoid")

DEFAULT_WIDTH = 64  # units per hidden layer (MLP)
DEFAULT_DEPTH = 2  # hidden layers (MLP)
DEFAULT_ACTIVATION = "relu"
DEFAULT_CHANNELS = 16  # feature maps of the first conv layer; the second has twice as many


@functools.lru_cache(maxsize=1)
def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The digits as ``(X, y)``: float32 pixels in [0, 1], shape (1797, 64), int64 labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / PIXEL_MAX).astype(np.float32)
    y = digits.target.astype(np.int64)
    X.flags.writeable = y.flags.writeable = False  # cached: shared by every trial
    return X, y


def _whole(config: Mapping[str, Any], key: str, default: int) -> int:
    value = config.get(key, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not number >= 1 or number != int(number):
        raise ValueError(f"`{key}` must be a whole number >= 1, but got {value!r}")
    return int(number)


def _activation(config: Mapping[str, Any]) -> Any:
    from torch import nn

    name = str(config.get("activation", DEFAULT_ACTIVATION)).lower()
    layers = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid}
    if name not in layers:
        raise ValueError(
            f"`activation` must be one of {', '.join(map(repr, ACTIVATIONS))}, "
            f"but got {config.get('activation')!r}"
        )
    return layers[name]


def digits_mlp(config: Mapping[str, Any]) -> None:
    """A multi-layer perceptron on the flattened 64 pixels.

    Model keys: ``width`` (units per hidden layer, default 64), ``depth``
    (hidden layers, default 2), ``activation`` (relu, tanh, sigmoid) and
    ``dropout`` (after each hidden layer).
    """
    from orchestrator.toolkit import fit_classifier

    fit_classifier(*digits_mlp_lr_find_setup(config), config)


def digits_mlp_lr_find_setup(config: Mapping[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(model_factory, X, y)`` of :func:`digits_mlp` for ``config``."""
    from torch import nn

    from orchestrator.toolkit import TrainSettings

    settings = TrainSettings.from_config(config)
    width = _whole(config, "width", DEFAULT_WIDTH)
    depth = _whole(config, "depth", DEFAULT_DEPTH)
    activation = _activation(config)
    X, y = load_digits_arrays()

    def model() -> nn.Module:
        layers: list[nn.Module] = []
        inputs = X.shape[1]
        for _ in range(depth):
            layers += [nn.Linear(inputs, width), activation()]
            if settings.dropout:
                layers.append(nn.Dropout(settings.dropout))
            inputs = width
        layers.append(nn.Linear(inputs, N_CLASSES))
        return nn.Sequential(*layers)

    return model, X, y


def digits_cnn(config: Mapping[str, Any]) -> None:
    """A small conv net on the 8x8 images: two 3x3 convs, 2x2 max-pool, linear head.

    Model keys: ``channels`` (feature maps of the first conv, default 16; the
    second has twice as many), ``activation`` and ``dropout`` (before the head).
    """
    from orchestrator.toolkit import fit_classifier

    fit_classifier(*digits_cnn_lr_find_setup(config), config)


def digits_cnn_lr_find_setup(config: Mapping[str, Any]) -> tuple[Any, np.ndarray, np.ndarray]:
    """``(model_factory, images, y)`` of :func:`digits_cnn` for ``config``."""
    from torch import nn

    from orchestrator.toolkit import TrainSettings

    settings = TrainSettings.from_config(config)
    channels = _whole(config, "channels", DEFAULT_CHANNELS)
    activation = _activation(config)
    X, y = load_digits_arrays()
    images = X.reshape(-1, 1, IMAGE_SIDE, IMAGE_SIDE)
    pooled = (IMAGE_SIDE // 2) ** 2

    def model() -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, channels, kernel_size=3, padding=1),
            activation(),
            nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
            activation(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Dropout(settings.dropout),
            nn.Linear(2 * channels * pooled, N_CLASSES),
        )

    return model, images, y
