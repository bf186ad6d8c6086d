"""``--set key=value``: overrides applied to the spec's data before it is checked.

A key is a dotted path (``run_cap``, ``metric.goal``, ``parameters.lr.max``). Because a
parameter's own name may contain dots (``model.lr``, W&B's Hydra style) and nested
parameters sit under ``parameters:`` groups, each step of the path takes the longest
key that exists at that level, and a parameter group is entered through its
``parameters:`` without naming it: ``parameters.model.lr.max`` reaches the same ``max``
whether the spec writes ``model.lr:`` or ``model: {parameters: {lr: ...}}``. Values are
read by the same YAML reader, with the same limits, as a spec file.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import SpecError
from orchestrator.sweepspec._issues import Issues, show
from orchestrator.sweepspec._yaml import parse_yaml

__all__ = ["apply_overrides"]

GROUP_KEY = "parameters"  # a nested parameter group holds its members under this key


def apply_overrides(data: dict[str, Any], overrides: Sequence[str] | Mapping[str, Any],
                    issues: Issues) -> dict[str, Any]:
    """A copy of ``data`` with every override set (problems go to ``issues``)."""
    data = copy.deepcopy(data)
    for key, value in _parse(overrides, issues):
        _set(data, key, value, issues)
    return data


def _parse(overrides: Sequence[str] | Mapping[str, Any], issues: Issues) -> list[tuple[str, Any]]:
    if isinstance(overrides, Mapping):
        return [(str(k), v) for k, v in overrides.items()]
    items: list[tuple[str, Any]] = []
    for text in overrides:
        key, sep, raw = str(text).partition("=")
        key = key.strip()
        if not sep or not key:
            issues.add("--set", f"an override must look like key=value, got {text!r}",
                       "e.g. --set run_cap=4 or --set parameters.lr.max=0.1")
            continue
        # The same reader and limits as a spec file (aliases, tags, depth, 1e-5).
        try:
            value, _, notes = parse_yaml(raw, source=f"--set {key}") if raw.strip() \
                else ("", {}, [])
        except SpecError as exc:
            for issue in exc.issues:
                issues.add(f"--set {key}", issue.message, issue.fix)
            continue
        for note in notes:
            issues.note(f"--set {key}: {note}")
        items.append((key, value))
    return items


def _set(data: dict[str, Any], key: str, value: Any, issues: Issues) -> None:
    parts = key.split(".")
    node: dict[str, Any] = data
    i = 0
    in_parameters = False
    while True:
        found = _longest(node, parts, i)
        if found is None and in_parameters and isinstance(node.get(GROUP_KEY), dict) \
                and parts[i] != GROUP_KEY:
            node = node[GROUP_KEY]  # enter a nested group without naming `parameters`
            found = _longest(node, parts, i)
        end = found if found is not None else i + 1
        name = ".".join(parts[i:end])
        if end == len(parts):
            node[name] = value
            return
        nxt = node.get(name)
        if nxt is None:
            node[name] = nxt = {}
        if not isinstance(nxt, dict):
            issues.add(f"--set {key}", f"{'.'.join(parts[:end])!r} is {show(nxt)}, not a mapping",
                       "override a key that exists, or the whole value")
            return
        in_parameters = in_parameters or (node is data and name == GROUP_KEY)
        node, i = nxt, end


def _longest(node: dict[str, Any], parts: list[str], start: int) -> int | None:
    """The end of the longest ``parts[start:end]`` that is a key of ``node``, or None."""
    for end in range(len(parts), start, -1):
        if ".".join(parts[start:end]) in node:
            return end
    return None
