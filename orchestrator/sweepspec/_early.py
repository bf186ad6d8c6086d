"""``early_terminate:``: ASHA, W&B's hyperband brackets, and the median rule.

``type: asha`` is Ray Tune's ASHA as Ray defines it: rungs at ``grace_period *
reduction_factor**k`` below ``max_t``, and every trial ends at ``max_t``.

``type: hyperband`` is W&B's, exactly as W&B documents and computes it (wandb/sweeps,
``hyperband_stopping.py``): with ``max_iter`` and ``s`` the brackets are
``int(max_iter / eta**i)`` for ``i = 1..s`` (27, s 2, eta 3 -> [3, 9]); with ``min_iter``
alone they are ``int(min_iter * eta**k)`` with no upper end (3 -> [3, 9, 27, 81, ...]);
a run is never stopped for reaching ``max_iter``; ``strict`` judges a run by its value
at the bracket (true) or by its best value so far (false, W&B's documented default).
It runs on Ray's ASHA with rungs placed on W&B's brackets (see :func:`asha_geometry`).

``type: median`` is Ray's MedianStoppingRule.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from orchestrator.sweepspec._issues import Issues, suggest
from orchestrator.sweepspec._model import (
    DEFAULT_GRACE_PERIOD,
    DEFAULT_HYPERBAND_STRICT,
    DEFAULT_MAX_T,
    DEFAULT_MIN_SAMPLES,
    DEFAULT_REDUCTION_FACTOR,
    EarlyTerminate,
)
from orchestrator.sweepspec._shapes import EarlyTerminateShape

__all__ = ["EARLY_TYPES", "asha_geometry", "asha_rungs", "read_early_terminate",
           "wandb_brackets"]

EARLY_TYPES = ("asha", "hyperband", "median")
PATH = "early_terminate"
WANDB_MAX_BRACKETS = 100  # W&B computes at most this many brackets from min_iter
# Epochs: W&B's min_iter brackets go on without end, Ray's ASHA needs a last rung; no run
# reports this many times, so rungs beyond it never matter.
RUNG_HORIZON = 1_000_000
SHOWN_RUNGS = 6  # rungs a note lists before "..." for an open-ended schedule
GEOMETRY_STEPS = 8  # first-rung positions tried in (rung - 1, rung] when fitting ASHA's series

# The keys each type uses, with orch's and W&B's name for the same setting.
USES = {
    "asha": {"type", "grace_period", "min_iter", "max_t", "max_iter", "reduction_factor", "eta"},
    "hyperband": {"type", "grace_period", "min_iter", "max_t", "max_iter", "reduction_factor",
                  "eta", "s", "strict"},
    "median": {"type", "grace_period", "min_iter", "min_samples_required"},
}


def read_early_terminate(raw: Any, issues: Issues) -> EarlyTerminate | None:
    """The section as an :class:`EarlyTerminate`, or None (with issues) when it is wrong."""
    try:
        m = EarlyTerminateShape.model_validate(raw)
    except ValidationError as exc:
        issues.from_pydantic(exc, PATH, EarlyTerminateShape)
        return None
    kind = m.type.lower()
    if kind not in EARLY_TYPES:
        issues.add(f"{PATH}.type", f"unknown early_terminate type {m.type!r}",
                   suggest(kind, EARLY_TYPES, what="types"))
        return None
    unused = sorted(m.model_fields_set - USES[kind])
    if unused:
        issues.add(PATH, f"type {kind} does not use {', '.join(map(repr, unused))}",
                   ("remove it" if len(unused) == 1 else "remove them")
                   + ("; s and strict are W&B's hyperband settings"
                      if {"s", "strict"} & set(unused) else ""))
        return None
    pick = _Picker(m, issues)
    if kind == "hyperband":
        return _hyperband(m, pick, issues)
    grace = pick("grace_period", "min_iter", DEFAULT_GRACE_PERIOD)
    if kind == "median":
        if not _at_least_one(grace, pick.path("grace_period", "min_iter"), issues):
            return None
        et = EarlyTerminate(type="median", grace_period=grace, requested_as="median",
                            min_samples_required=m.min_samples_required or DEFAULT_MIN_SAMPLES)
        issues.note(f"early stopping (median) may stop a trial at any epoch from {grace} on, "
                    f"once {et.min_samples_required} trials have reached that epoch")
        return et
    return _asha(pick, grace, issues)


class _Picker:
    """A setting under either of its names (orch's, W&B's); both with different values is an
    issue. ``path`` names the key the user wrote."""

    def __init__(self, m: EarlyTerminateShape, issues: Issues) -> None:
        self.m, self.issues = m, issues

    def __call__(self, ours: str, theirs: str, default: Any = None) -> Any:
        a, b = getattr(self.m, ours), getattr(self.m, theirs)
        if a is not None and b is not None and a != b:
            self.issues.add(f"{PATH}.{theirs}", f"{theirs} ({b}) and {ours} ({a}) are the same "
                            "setting with different values", f"keep only {ours}")
        value = a if a is not None else b
        return default if value is None else value

    def path(self, ours: str, theirs: str) -> str:
        written = theirs if getattr(self.m, ours) is None and getattr(self.m, theirs) is not None \
            else ours
        return f"{PATH}.{written}"


def _at_least_one(value: int, path: str, issues: Issues) -> bool:
    if value < 1:
        issues.add(path, f"must be >= 1 epoch, got {value}", "use 1 or more")
        return False
    return True


def _eta_ok(eta: float, path: str, issues: Issues) -> bool:
    if not math.isfinite(eta):
        return False  # already reported: every number in a spec is finite
    if eta <= 1:
        issues.add(path, f"must be > 1, got {eta:g}", "use 2, 3 or 4")
        return False
    return True


def _asha(pick: _Picker, grace: int, issues: Issues) -> EarlyTerminate | None:
    max_t = pick("max_t", "max_iter", DEFAULT_MAX_T)
    eta = pick("reduction_factor", "eta", DEFAULT_REDUCTION_FACTOR)
    ok = _at_least_one(grace, pick.path("grace_period", "min_iter"), issues)
    if max_t < grace:
        issues.add(pick.path("max_t", "max_iter"), f"`grace_period <= max_t` must hold, got "
                   f"grace_period={grace}, max_t={max_t}", "raise max_t or lower grace_period")
        ok = False
    ok = _eta_ok(eta, pick.path("reduction_factor", "eta"), issues) and ok
    if not ok:
        return None
    rungs = asha_rungs(grace, eta, max_t)
    issues.note(f"early stopping (asha) may stop trials at epochs {list(rungs)}; every trial "
                f"ends by epoch {max_t} (max_t)")
    return EarlyTerminate(type="asha", grace_period=grace, max_t=max_t, reduction_factor=eta,
                          requested_as="asha", rungs=rungs)


def _hyperband(m: EarlyTerminateShape, pick: _Picker, issues: Issues) -> EarlyTerminate | None:
    eta = pick("eta", "reduction_factor", DEFAULT_REDUCTION_FACTOR)
    min_iter = pick("min_iter", "grace_period")
    max_iter = pick("max_iter", "max_t")
    n_before = len(issues)
    _eta_ok(eta, pick.path("eta", "reduction_factor"), issues)
    for value, path in ((min_iter, pick.path("min_iter", "grace_period")),
                        (max_iter, pick.path("max_iter", "max_t")), (m.s, f"{PATH}.s")):
        if value is not None:
            _at_least_one(value, path, issues)
    if len(issues) > n_before:
        return None
    brackets = _brackets(m, min_iter, max_iter, eta, issues)
    if not brackets:
        return None
    unbounded = max_iter is None
    grace, factor, rungs = asha_geometry(brackets, eta)
    strict = DEFAULT_HYPERBAND_STRICT if m.strict is None else m.strict
    judged = "its value at" if strict else "its best value up to"
    issues.note(f"early stopping (hyperband, W&B's brackets, on Ray's ASHA) may stop trials at "
                f"epochs {_show_rungs(rungs, unbounded)}; none is stopped for its length (not "
                f"at max_iter either); a trial is judged by {judged} each bracket (strict: "
                f"{str(strict).lower()})")
    if rungs != brackets:
        issues.note(f"W&B's brackets {_show_rungs(brackets, unbounded)} are not a geometric "
                    "series (W&B rounds each down to whole epochs), which Ray's ASHA needs: "
                    f"trials can be stopped at {_show_rungs(rungs, unbounded)} instead")
    return EarlyTerminate(type="asha", grace_period=grace, max_t=None, reduction_factor=factor,
                          requested_as="hyperband", rungs=rungs, strict=strict,
                          unbounded=unbounded)


def _brackets(m: EarlyTerminateShape, min_iter: int | None, max_iter: int | None, eta: float,
              issues: Issues) -> tuple[int, ...]:
    """W&B's brackets for the settings given, with a note or an issue where W&B would differ."""
    if max_iter is not None and m.s is not None:
        if min_iter is not None:
            issues.note(f"{PATH}.min_iter is ignored: with max_iter and s, W&B derives the "
                        "brackets from max_iter")
        out = wandb_brackets(max_iter=max_iter, s=m.s, eta=eta)
        if not out:
            issues.add(f"{PATH}.max_iter", f"no bracket: max_iter / eta = {max_iter / eta:g} is "
                       "below 1 epoch", "raise max_iter or lower eta")
        elif len(out) < m.s:
            issues.note(f"{PATH}.s asks for {m.s} brackets, but only {len(out)} lie at 1 epoch "
                        f"or later: {list(out)}")
        return out
    if max_iter is not None and min_iter is None:
        issues.add(f"{PATH}.max_iter", "W&B derives brackets from max_iter only with `s` (how "
                   "many brackets below it)", "add e.g. s: 2 (brackets at max_iter/eta^2 and "
                   "max_iter/eta), or write min_iter: N for brackets N, N*eta, ...")
        return ()
    if min_iter is None:
        issues.add(PATH, "hyperband needs `min_iter`, or `max_iter` and `s`",
                   "e.g. min_iter: 3 (brackets at 3, 9, 27, ... with eta 3)")
        return ()
    if m.s is not None:
        issues.note(f"{PATH}.s is ignored: W&B uses s only with max_iter")
    out = wandb_brackets(min_iter=min_iter, eta=eta)
    if max_iter is not None:
        out = tuple(b for b in out if b <= max_iter / eta) or out[:1]
        issues.note(f"{PATH}: with min_iter and max_iter but no s (W&B itself needs s here), "
                    f"the brackets run from min_iter up to max_iter/eta: {list(out)}")
    return out


def wandb_brackets(*, min_iter: int | None = None, max_iter: int | None = None,
                   s: int | None = None, eta: float = DEFAULT_REDUCTION_FACTOR) -> tuple[int, ...]:
    """W&B's hyperband brackets, computed as W&B computes them (sorted, each once).

    >>> wandb_brackets(max_iter=27, s=2, eta=3)
    (3, 9)
    >>> wandb_brackets(min_iter=3, eta=3)[:5]
    (3, 9, 27, 81, 243)
    """
    out: list[int] = []
    if max_iter is not None:
        band = float(max_iter)
        for _ in range(s or 0):
            band /= eta
            if band < 1:
                break
            out.append(int(band))
    elif min_iter is not None:
        band = float(min_iter)
        for _ in range(WANDB_MAX_BRACKETS):
            if band > RUNG_HORIZON:
                break
            out.append(int(band))
            band *= eta
    return tuple(sorted(set(out)))


def asha_rungs(grace: float, factor: float, max_t: float | None = None,
               count: int | None = None) -> tuple[int, ...]:
    """The epochs of ASHA's rungs: rung ``k`` at ``grace * factor**k``, reached at the first
    whole epoch at or after it (Ray's ``ASHAScheduler`` compares ``iteration >= milestone``).
    With ``max_t``, the rungs below it (Ray ends every trial there); else ``count`` rungs.

    >>> asha_rungs(1, 3, 27)
    (1, 3, 9)
    """
    if count is None:
        count = int(math.log(max_t / grace) / math.log(factor) + 1)  # type: ignore[operator]
    rungs = [math.ceil(grace * factor ** k) for k in range(count)]
    return tuple(r for r in rungs if max_t is None or r < max_t)


def asha_geometry(rungs: Sequence[int], eta: float) -> tuple[float, float, tuple[int, ...]]:
    """``(grace_period, reduction_factor, rungs)`` of the geometric series ASHA's rungs follow
    that reaches exactly ``rungs`` (see :func:`asha_rungs`): ``(rungs[0], eta)`` when that
    works, else a fitted series; when none exists (W&B's rounding can break the series), the
    series through the first and last rung, with the rungs it gives.

    >>> asha_geometry([3, 9], 3.0)
    (3, 3.0, (3, 9))
    >>> asha_geometry([3, 11, 33], 3.0)[2]  # W&B's int(100 / 3**k): no series reaches 11
    (3, 10, 33)
    """
    rungs = tuple(int(r) for r in rungs)
    n = len(rungs)
    candidates: list[tuple[float, float]] = [(rungs[0], eta)]
    if n > 1:
        for j in range(GEOMETRY_STEPS):
            first = rungs[0] - j / GEOMETRY_STEPS  # ceil(first) == rungs[0]
            ratio = _fit_ratio(first, rungs)
            if ratio is not None:
                candidates.append((first, ratio))
    for first, ratio in candidates:
        if ratio > 1 and asha_rungs(first, ratio, count=n) == rungs:
            return first, ratio, rungs
    # Through the first and (a hair below, so rounding cannot pass it) the last rung.
    last = rungs[-1] - 1e-9
    ratio = (last / rungs[0]) ** (1 / (n - 1)) if n > 1 and last > rungs[0] else eta
    return rungs[0], ratio, asha_rungs(rungs[0], ratio, count=n)


def _fit_ratio(first: float, rungs: tuple[int, ...]) -> float | None:
    """A ratio r with rungs[k] - 1 < first * r**k <= rungs[k] for every k, or None."""
    if first <= 0:
        return None
    lo, hi = -math.inf, math.inf
    for k, r in enumerate(rungs[1:], 1):
        if r > 1:
            lo = max(lo, (math.log(r - 1) - math.log(first)) / k)
        hi = min(hi, (math.log(r) - math.log(first)) / k)
    if not lo < hi or not math.isfinite(hi):
        return None
    return math.exp((lo + hi) / 2 if math.isfinite(lo) else hi)


def _show_rungs(rungs: Sequence[int], unbounded: bool) -> str:
    if not unbounded:
        return str(list(rungs))
    head = ", ".join(map(str, rungs[:SHOWN_RUNGS]))
    return f"[{head}, ...] (no upper end, as in W&B)"

