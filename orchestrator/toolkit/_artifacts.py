"""The plots and tables a trial leaves behind: confusion matrix and learning curves.

Figures are drawn on matplotlib's Agg canvas directly, so importing this
module never changes the backend of a user's session.
"""

from __future__ import annotations

import functools
import json
import math
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["save_confusion_matrix", "save_curves"]

FIGURE_DPI = 100  # dots per inch of saved PNGs
CONFUSION_PNG = "confusion_matrix.png"
CONFUSION_JSON = "confusion_matrix.json"
CURVES_PNG = "curves.png"


# matplotlib's text rendering (FreeType) is not thread-safe, and Ray runs trials in
# threads of a reused actor: draw one figure at a time per process.
_DRAW_LOCK = threading.Lock()


def _serialised(fn: Any) -> Any:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _DRAW_LOCK:
            return fn(*args, **kwargs)

    return wrapper


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=FIGURE_DPI)
    FigureCanvasAgg(figure)
    return figure


@_serialised
def save_confusion_matrix(
    matrix: np.ndarray,
    *,
    folder: Path,
    labels: Sequence[Any] | None = None,
    folds: int = 1,
    epoch: int | None = None,
) -> tuple[Path, Path]:
    """Write ``confusion_matrix.json`` and ``confusion_matrix.png`` into ``folder``.

    Rows are true labels, columns predicted labels. The JSON holds ``labels``,
    ``matrix``, ``samples`` (the matrix's sum), ``folds`` and ``epoch``.
    """
    matrix = np.asarray(matrix, dtype=np.int64)
    labels = list(range(len(matrix))) if labels is None else list(labels)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    table = {
        "labels": [label.item() if hasattr(label, "item") else label for label in labels],
        "matrix": matrix.tolist(),
        "rows": "true label",
        "columns": "predicted label",
        "samples": int(matrix.sum()),
        "folds": folds,
        "epoch": epoch,
    }
    json_path = folder / CONFUSION_JSON
    json_path.write_text(json.dumps(table, indent=1) + "\n")

    size = max(4.0, 0.45 * len(labels) + 2)
    figure = _figure(size, size)
    ax = figure.add_subplot()
    ax.imshow(matrix, cmap="Blues")
    ticks = range(len(labels))
    ax.set_xticks(ticks, [str(label) for label in labels])
    ax.set_yticks(ticks, [str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    summed = f", summed over {folds} folds" if folds > 1 else ""
    ax.set_title(f"confusion matrix (validation{summed})")
    threshold = matrix.max() / 2 if matrix.size else 0
    for (row, col), count in np.ndenumerate(matrix):
        color = "white" if count > threshold else "black"
        ax.text(col, row, str(count), ha="center", va="center", color=color, fontsize=8)
    figure.tight_layout()
    png_path = folder / CONFUSION_PNG
    figure.savefig(png_path)
    return json_path, png_path


def _series(history: Sequence[dict[str, Any]], key: str) -> np.ndarray:
    return np.array([float(h.get(key, math.nan)) for h in history])


@_serialised
def save_curves(history: Sequence[dict[str, Any]], *, folder: Path) -> Path:
    """Write ``curves.png``: train/val loss and val accuracy against epoch.

    With K-fold reports (``val_loss_std`` ...) the fold spread is drawn as a band.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    epochs = _series(history, "epoch")
    figure = _figure(10, 4)
    loss_ax, acc_ax = figure.subplots(1, 2)
    for ax, keys, title in (
        (loss_ax, ("train_loss", "val_loss"), "loss"),
        (acc_ax, ("val_acc",), "validation accuracy"),
    ):
        for key in keys:
            mean = _series(history, key)
            ax.plot(epochs, mean, marker="o", markersize=3, label=key)
            std = _series(history, f"{key}_std")
            if np.isfinite(std).any():
                ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend()
    figure.tight_layout()
    path = folder / CURVES_PNG
    figure.savefig(path)
    return path
