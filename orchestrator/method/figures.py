"""The figures a review draws, on matplotlib's Agg canvas (the session's backend is never
changed): one place for the confusion matrix and the learning curves, shared by the
report and, through :func:`draw_confusion_matrix`, by the toolkit's per-trial artifacts.

Every function takes an ``Axes`` or a ``Figure`` and draws; none saves or shows.
``numpy`` and ``matplotlib`` only, imported when a function runs.
"""

from __future__ import annotations

import base64
import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["DPI", "draw_confusion_matrix", "figure", "png_tag", "recall_by_class",
           "robust_limits"]

DPI = 90  # dots per inch of a report's inlined figures
BEST, BASELINE, OTHER = "#d62728", "black", "#9a9a9a"  # colours: best trial, baseline, the rest
SKIP_STEPS = 1  # the first report(s) left out when the y-axis is set: epoch 1 is far above
MIN_SPAN = 0.1  # a y-axis spans at least this share of the curve's level


def figure(width: float, height: float, *, dpi: int = DPI) -> Any:
    """A matplotlib Figure on its own Agg canvas (no pyplot, no global state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def png_tag(fig: Any, *, alt: str = "figure") -> str:
    """The figure as an ``<img>`` with a ``data:`` URI (a self-contained page)."""
    import html

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi)  # laid out by the caller (tight_layout)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def draw_confusion_matrix(ax: Any, matrix: Any, labels: Sequence[Any] | None = None, *,
                          title: str = "", fontsize: float = 7) -> None:
    """A confusion matrix (rows: true label, columns: predicted), counts in the cells,
    the diagonal readable on any shade.

    >>> fig = figure(3, 3)
    >>> draw_confusion_matrix(fig.add_subplot(), [[5, 1], [0, 4]], ["a", "b"], title="t")
    """
    import numpy as np

    m = np.asarray(matrix)
    labels = [str(x) for x in (labels if labels is not None else range(len(m)))]
    ax.imshow(m, cmap="Blues", vmin=0)
    ticks = range(len(labels))
    ax.set_xticks(ticks, labels, fontsize=fontsize)
    ax.set_yticks(ticks, labels, fontsize=fontsize)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    top = m.max() / 2 if m.size else 0
    for (r, c), n in np.ndenumerate(m):
        ax.text(c, r, str(n), ha="center", va="center", fontsize=fontsize,
                color="white" if n > top else "black")
    if title:
        ax.set_title(title, fontsize=fontsize + 2)


def recall_by_class(matrix: Any, labels: Sequence[Any]) -> list[tuple[float, str]]:
    """``(recall, label)`` per class with samples, worst first."""
    out = []
    for i, row in enumerate(matrix):
        total = sum(row)
        if total:
            out.append((row[i] / total, str(labels[i])))
    return sorted(out)


def robust_limits(series: Sequence[Mapping[int, float]], *, pad: float = 0.08,
                  skip: int = SKIP_STEPS) -> tuple[float, float] | None:
    """y-limits for curves that show where they turn, not where they start: the range of
    every value after the first ``skip`` steps (all values of a curve too short to spare
    them), never narrower than ``MIN_SPAN`` of the level (a flat curve is not zoomed into
    its noise).

    >>> robust_limits([{1: 2.3, 2: 0.5, 3: 0.4, 4: 0.45, 5: 0.42}])
    (0.392, 0.508)
    """
    values = []
    for s in series:
        steps = sorted(s)
        keep = steps[skip:] if len(steps) >= skip + 3 else steps
        values += [s[k] for k in keep if math.isfinite(s[k])]
    if not values:
        return None
    lo, hi = min(values), max(values)
    span = max(hi - lo, MIN_SPAN * max(abs(lo), abs(hi))) or 1.0
    mid = (lo + hi) / 2 if hi - lo < span else None
    if mid is not None:
        lo, hi = mid - span / 2, mid + span / 2
    return (round(lo - pad * span, 6), round(hi + pad * span, 6))
