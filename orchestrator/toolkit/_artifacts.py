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
    draw: bool = True,
) -> tuple[Path, Path | None]:
    """Write ``confusion_matrix.json`` and (``draw``) ``confusion_matrix.png`` into ``folder``.

    Rows are true labels, columns predicted labels. The JSON holds ``labels``,
    ``matrix``, ``samples`` (the matrix's sum), ``folds`` and ``epoch``. The loop writes
    the JSON at every epoch (a trial stopped early keeps its latest) and draws the PNG at
    the last; the review draws from the JSON with the same function.
    """
    from orchestrator.method.figures import draw_confusion_matrix

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
    partial = json_path.with_suffix(".json.partial")
    partial.write_text(json.dumps(table, indent=1) + "\n")
    partial.replace(json_path)  # whole or not at all: a trial may be stopped at any moment
    if not draw:
        return json_path, None
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = _figure(size, size)
    summed = f", summed over {folds} folds" if folds > 1 else ""
    draw_confusion_matrix(figure.add_subplot(), matrix, labels, fontsize=8,
                          title=f"confusion matrix (validation{summed})")
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
