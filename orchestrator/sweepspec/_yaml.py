"""Read YAML safely and remember where every key came from.

Only ``yaml.SafeLoader`` constructs values (no Python object tags). The node
tree is walked once to build a map from dotted path to line number, so every
spec error can name its line. Limits bound the time and memory a hostile file
can cost: the text's size, and how far aliases expand it (an alias bomb is a
small file that expands exponentially when walked; a big plain file is fine).

One reading differs from PyYAML's YAML 1.1 on purpose: an unquoted ``1e-5`` is
a float, as in YAML 1.2 and in every user's head (PyYAML reads it as text, and
W&B then refuses ``min: 1e-5``). Each such value is named in a note. Files and
``--set`` values go through the same reader and the same limits.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from orchestrator.errors import Issue, SpecError

MAX_SPEC_BYTES = 16 * 1024 * 1024  # 16 MiB of text: a real spec is a few kB, a big one 1 MB
MAX_EXPANSION = 100_000  # nodes that aliases add when expanded, beyond the document's own
MAX_DEPTH = 200  # nesting levels; a spec nests a few
# YAML 1.2's float without a dot (1e-5, +2E3): YAML 1.1 (PyYAML) reads these as text.
FLOAT_12 = re.compile(r"[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)[eE][-+]?[0-9]+")
_STD = "tag:yaml.org,2002:"
ALLOWED_TAGS = frozenset(
    _STD + t for t in ("str", "int", "float", "bool", "null", "map", "seq", "timestamp")
)


class _Walker:
    def __init__(self) -> None:
        self.lines: dict[str, int] = {}
        self.notes: list[str] = []
        self.visited = 0
        self.distinct: set[int] = set()

    def _refuse(self, path: str, node: yaml.Node, message: str, fix: str) -> SpecError:
        return SpecError([Issue(path, message, fix, node.start_mark.line + 1)])

    def build(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        self.visited += 1
        self.distinct.add(id(node))
        if self.visited - len(self.distinct) > MAX_EXPANSION:
            raise self._refuse(path, node, f"aliases expand the document by more than "
                               f"{MAX_EXPANSION} nodes (an alias bomb?)",
                               "write the spec out without deeply nested aliases")
        if depth > MAX_DEPTH:
            raise self._refuse(path, node, f"the YAML nests more than {MAX_DEPTH} levels "
                               "(or an alias refers to itself)", "a spec nests a few levels")
        self.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag not in ALLOWED_TAGS:
            raise self._refuse(path, node, f"YAML tag {node.tag!r} is not allowed",
                               "specs are plain YAML: remove the `!!python/...` or custom tag")
        if isinstance(node, yaml.MappingNode):
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    merged = self.build(value_node, path, depth + 1)
                    for item in merged if isinstance(merged, list) else [merged]:
                        if isinstance(item, dict):
                            for k, v in item.items():
                                out.setdefault(k, v)
                    continue
                key = _SafeScalar.construct(key_node)
                child = f"{path}.{key}" if path else str(key)
                self.lines[child] = key_node.start_mark.line + 1
                if key in out:
                    raise self._refuse(child, key_node, "duplicate key (YAML keeps only the "
                                       "last, so one value would be lost)", "remove one of them")
                out[key] = self.build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, f"{path}[{i}]", depth + 1)
                    for i, item in enumerate(node.value)]
        value = _SafeScalar.construct(node)
        if isinstance(value, str) and node.style is None and FLOAT_12.fullmatch(value):
            self.notes.append(f"{path or '<value>'} (line {node.start_mark.line + 1}): "
                              f"{value} read as the number {float(value)!r} (YAML 1.1 would "
                              "read it as text)")
            return float(value)
        return value


class _SafeScalar:
    _loader_cls = yaml.SafeLoader

    @classmethod
    def construct(cls, node: yaml.Node) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise SpecError(
                [Issue("", "mapping keys must be plain scalars", "", node.start_mark.line + 1)]
            )
        loader = cls._loader_cls("")
        try:
            return loader.construct_object(node, deep=True)
        finally:
            loader.dispose()


def parse_yaml(text: str, *, source: str = "<string>") -> tuple[Any, dict[str, int], list[str]]:
    """Parse YAML text into plain Python values, a path → line map, and notes."""
    if len(text.encode("utf-8", errors="replace")) > MAX_SPEC_BYTES:
        raise SpecError(
            [Issue("", f"the spec is larger than {MAX_SPEC_BYTES} bytes", "a spec is a few kB; "
                   "keep data out of it")],
            source=source,
        )
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise SpecError([Issue("", "the YAML is nested too deeply to be a spec",
                               "a spec nests a few levels; flatten it")], source=source) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = exc.problem or "YAML syntax error"
        context = f" ({exc.context})" if exc.context else ""
        raise SpecError(
            [Issue("", f"YAML syntax error: {problem}{context}", "fix the YAML at that line", line)],
            source=source,
        ) from None
    except yaml.YAMLError as exc:
        raise SpecError([Issue("", f"YAML error: {exc}", "fix the YAML")], source=source) from None
    if node is None:
        return None, {}, []
    walker = _Walker()
    try:
        data = walker.build(node, "")
    except RecursionError:
        raise SpecError([Issue("", "the YAML is nested too deeply to be a spec",
                               "a spec nests a few levels; flatten it")], source=source) from None
    except SpecError as exc:
        raise SpecError(exc.issues, source=source) from None
    except yaml.constructor.ConstructorError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise SpecError(
            [
                Issue(
                    "",
                    f"YAML tag not allowed: {exc.problem}",
                    "specs are plain YAML: remove the `!!python/...` or custom tag",
                    line,
                )
            ],
            source=source,
        ) from None
    return data, walker.lines, walker.notes


def read_yaml_file(path: str | Path) -> tuple[Any, dict[str, int], str, list[str]]:
    """Read a spec file: (data, lines, raw text, notes). Errors name the file."""
    p = Path(path)
    if not p.is_file():
        raise SpecError(
            [Issue("", f"spec file {str(p)!r} does not exist", "check the path")], source=str(p)
        )
    size = p.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(
            [Issue("", f"the spec is {size} bytes, over the limit of {MAX_SPEC_BYTES}",
                   "a spec is a few kB; keep data out of it")],
            source=str(p),
        )
    try:
        text = p.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError(
            [Issue("", f"the file is not UTF-8 text ({exc.reason} at byte {exc.start})",
                   "save it as UTF-8")],
            source=str(p),
        ) from None
    data, lines, notes = parse_yaml(text, source=str(p))
    return data, lines, text, notes
