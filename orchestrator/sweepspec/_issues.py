"""Collecting problems: every one with its YAML path, line, rule, bad value and fix.

:class:`Issues` gathers :class:`~orchestrator.errors.Issue` objects and notes while the
sections of a spec are checked, so that one :class:`~orchestrator.errors.SpecError`
lists them all. :func:`typo_of` proposes a name only for a clear typo (never a name with
other semantics); :func:`suggest` is the looser hint used for keys and words.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from orchestrator.errors import Issue

__all__ = ["Issues", "show", "suggest", "typo_of"]

SHOW_CHARS = 80  # a bad value quoted in a message is cut to this many characters
SUGGEST_CUTOFF = 0.6  # difflib similarity for "did you mean" on keys and words
MIN_TYPO_TOKEN = 4  # shorter words (q, inv, int, log) must match exactly: they change meaning


class Issues:
    """The problems and notes found in one spec, in the order they were found."""

    def __init__(self, lines: Mapping[str, int]) -> None:
        self.items: list[Issue] = []
        self.notes: list[str] = []
        self._lines = lines

    def add(self, path: str, message: str, fix: str = "") -> None:
        self.items.append(Issue(path, message, fix, self._line(path)))

    def note(self, text: str) -> None:
        self.notes.append(text)

    def __len__(self) -> int:
        return len(self.items)

    def _line(self, path: str) -> int | None:
        while path:
            if path in self._lines:
                return self._lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return None

    def from_pydantic(self, exc: ValidationError, prefix: str, model: type[BaseModel]) -> None:
        """One issue per pydantic error, each with a fix; keys named as the user writes them."""
        keys = [f.alias or name for name, f in model.model_fields.items()]
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            path = ".".join([prefix, *loc]) if prefix else ".".join(loc)
            kind, value = err["type"], err.get("input")
            key = loc[-1] if loc else prefix
            if kind == "extra_forbidden":
                self.add(path, f"unknown key {key!r}", suggest(key, keys))
            elif kind == "missing":
                self.add(path, "required key is missing", f"add `{key}:`")
            elif kind == "literal_error":
                expected = err.get("ctx", {}).get("expected", "")
                self.add(path, f"must be one of {expected}, got {show(value)}",
                         suggest(str(value), re.findall(r"'([^']*)'", expected), what="values"))
            else:
                self.add(path, f"{err['msg'].lower()}, got {show(value)}",
                         type_fix(kind, key, value))


def type_fix(kind: str, key: str, value: Any) -> str:
    """What to write instead of a value of the wrong type (pydantic's error ``kind``)."""
    number = _as_number(value)
    if kind.startswith("int"):
        if isinstance(value, float) and math.isfinite(value):
            return f"use a whole number, e.g. {key}: {round(value)}"
        if isinstance(number, int):
            return f"write the number without quotes: {key}: {number}"
        return f"use a whole number, e.g. {key}: 3"
    if kind.startswith("float"):
        if number is not None:
            return f"write the number without quotes: {key}: {number!r}"
        return f"write a number, e.g. {key}: 0.001"
    if kind.startswith("bool"):
        return f"write true or false without quotes, e.g. {key}: true"
    if kind.startswith("string"):
        return f"write text, in quotes if needed: {key}: '{value}'"
    if kind.startswith(("dict", "model")):
        return f"write a mapping, e.g. {key}: {{name: value}}"
    if kind.startswith("list"):
        return f"write a list, e.g. {key}: [a, b]"
    return "check the type this key takes (README: The spec)"


def _as_number(value: Any) -> int | float | None:
    if not isinstance(value, str):
        return None
    text = value.strip()
    try:
        return int(text)
    except ValueError:
        pass
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def show(value: Any) -> str:
    """A value quoted in a message: its repr, cut to :data:`SHOW_CHARS`."""
    text = repr(value)
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS - 3] + "..."


def suggest(word: str, choices: Sequence[str], *, what: str = "keys") -> str:
    """``did you mean 'x'?`` for a close match, else the list of valid ``what``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=SUGGEST_CUTOFF)
    if close:
        return f"did you mean {close[0]!r}?"
    return f"valid {what}: " + ", ".join(choices) if choices else ""


def typo_of(word: str, choices: Sequence[str]) -> str | None:
    """The one choice ``word`` is a clear typo of, or None.

    Clear means: the same name in other case or separators (``LogUniform``,
    ``log-uniform``), or the same words, each at most one edit away, where words
    shorter than :data:`MIN_TYPO_TOKEN` characters must match exactly (``q``, ``inv``,
    ``int``, ``log`` each change what a distribution means); a plural counts as one edit.

    >>> typo_of("inv_log_uniform_value", ["inv_log_uniform_values", "q_log_uniform_values"])
    'inv_log_uniform_values'
    >>> typo_of("inv_uniform", ["int_uniform"]) is None
    True
    >>> typo_of("log_unifrom", ["log_uniform", "log_normal"])
    'log_uniform'
    """
    flat = _squash(word)
    found = [c for c in choices if _squash(c) == flat]
    if not found:
        words = _words(word)
        found = [c for c in choices if _same_words(words, _words(c))]
    return found[0] if len(found) == 1 else None


def _squash(text: str) -> str:
    return re.sub(r"[\s_\-]+", "", text.lower())


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s_\-]+", text.lower()) if w]


def _same_words(a: list[str], b: list[str]) -> bool:
    if len(a) != len(b):
        return False
    edits = 0
    for x, y in zip(a, b):
        if x == y:
            continue
        if min(len(x), len(y)) < MIN_TYPO_TOKEN or \
                (_stem(x) != _stem(y) and _distance(x, y) > 1):
            return False
        edits += 1
    return edits <= 1


def _stem(word: str) -> str:
    """A word without its English plural ending (probabilities -> probability)."""
    if word.endswith("ies"):
        return word[:-3] + "y"
    return word[:-1] if word.endswith("s") else word


def _distance(a: str, b: str) -> int:
    """Optimal string alignment distance (insert, delete, substitute, swap two neighbours)."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
