"""The Python entry point: :func:`sweep`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.engine._trainable import reference_of
from orchestrator.sweepspec import SweepSpec, load_spec

__all__ = ["sweep"]


def sweep(
    spec: str | Path | Mapping[str, Any] | SweepSpec,
    *,
    trainable: Callable[[dict[str, Any]], Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    tracking: bool = True,
    storage_path: str | None = None,
    live: bool = False,
    confirm: bool = True,
    **spec_overrides: Any,
) -> Any:
    """Run a sweep from Python and return a :class:`~orchestrator.engine.SweepResult`.

    ``spec`` is a YAML path, YAML text, a mapping or a loaded spec. ``trainable``
    is your own function of ``config`` (it need not be named in the spec).
    Top-level spec keys can be overridden as keywords (``run_cap=4``), nested
    ones with ``overrides={"parameters.lr.max": 0.1}``.

    >>> import orchestrator
    >>> result = orchestrator.sweep("search_spaces/quick.yaml", run_cap=2)  # doctest: +SKIP
    >>> result.best.config, result.trials.shape                             # doctest: +SKIP

    With ``expected:`` in the spec the verdict is confirmed on fresh seeds after the
    sweep (``confirm_seeds``, 3 by default; ``confirm=False`` skips it) and kept as
    ``result.verdict``; see :func:`orchestrator.method.confirm`.
    """
    from orchestrator.engine import run_sweep

    merged = {**(overrides or {}), **spec_overrides}
    text = None
    if isinstance(spec, SweepSpec):
        loaded = spec if not merged else load_spec(spec.raw, overrides=merged)
    else:
        if isinstance(spec, (str, Path)) and Path(str(spec)).is_file():
            text = Path(str(spec)).read_text(encoding="utf-8")
        loaded = load_spec(spec, overrides=merged,
                           trainable=reference_of(trainable) if trainable is not None else None)
    from orchestrator.method import resolve_placeholders, verdict_for

    loaded = resolve_placeholders(loaded, trainable=trainable, tracking_uri=tracking_uri,
                                  tracking=tracking)  # `from: lr_find` → LR range test
    result = run_sweep(loaded, trainable=trainable, address=address,
                       tracking_uri=tracking_uri, tracking=tracking, storage_path=storage_path,
                       live=live, spec_text=text, verdict=verdict_for)
    if confirm and not result.interrupted and result.best is not None:
        from orchestrator.method import confirm as confirm_verdict
        from orchestrator.method import confirmation_seeds

        if confirmation_seeds(loaded) > 0:
            result.verdict = confirm_verdict(result, trainable=trainable, address=address,
                                             tracking=tracking, storage_path=storage_path,
                                             live=live)
    return result
