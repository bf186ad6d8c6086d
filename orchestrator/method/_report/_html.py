"""The report's HTML pieces: escaped text, tables, sections, numbers shown to the digits
the data support. No scripts, no external URLs (see :mod:`orchestrator.method._report`)."""

from __future__ import annotations

import html
import math
from typing import Any

__all__ = ["CSS", "cell", "esc", "fmt", "para", "section", "table"]


def esc(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def fmt(x: Any, digits: int = 4) -> str:
    """A number to ``digits`` significant digits; None as a dash."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if math.isfinite(x) else str(x)
    return str(x)


class cell(str):  # noqa: N801 - a marker type, used like a function
    """Already-escaped HTML for a table cell (a figure, a badge)."""


def table(head: list[str], rows: list[list[Any]], cls: str = "") -> str:
    th = "".join(f"<th>{esc(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f"<td>{c if isinstance(c, cell) else esc(fmt(c))}</td>" for c in row)
        + "</tr>" for row in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def section(sid: str, title: str, body: str) -> str:
    return f'<section id="{sid}"><h2>{esc(title)}</h2>{body}</section>'


def para(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{esc(text)}</p>'


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1200px;color:#222;line-height:1.45;padding:0 1em}
h1{border-bottom:2px solid #444}h2{border-bottom:1px solid #ccc;margin-top:2em}
h3{margin-bottom:.2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}
td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f2f2f2}img{max-width:100%;height:auto;display:block;margin:.5em 0}
dt{font-weight:bold;margin-top:.4em}.muted{color:#666;font-size:.9em}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:.4em .8em}
.verdict{padding:.1em .5em;border-radius:.3em}.confirmed{background:#cfc}
.refuted{background:#fcc}.inconclusive{background:#eee}
.better{color:#1a7f37;font-weight:bold}.worse{color:#b42318;font-weight:bold}
.grid{display:flex;flex-wrap:wrap;gap:1em}.grid>div{flex:0 0 auto}
"""
