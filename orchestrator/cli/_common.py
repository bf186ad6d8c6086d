"""What every command shares: consoles, plain-text printing, options, exit codes, errors.

Exit status: 0 success; 2 invalid spec or usage (bad option, trainable that cannot
be imported); 3 the sweep ran but some trials failed; 4 another orch error
(resources no node has, tracking store unreachable or records lost, sweep not
found); 130 interrupted (Ctrl-C, SIGTERM, SIGHUP).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

from orchestrator.errors import OrchError, SpecError

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_TRIALS_FAILED",
           "NoTracking", "SetOpt", "SpecArg", "SweepArg", "TrackingOpt", "cell", "err", "fail",
           "load", "load_checked", "out", "say"]

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_TRIALS_FAILED = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130

# Piped, every message stays one whole line (grep, cut); in a terminal rich wraps at words.
out = Console(soft_wrap=not sys.stdout.isatty())
err = Console(stderr=True, soft_wrap=not sys.stderr.isatty())

Part = str | tuple[str, str]  # plain text, or (text, rich style)


def say(console: Console, *parts: Part) -> None:
    """Print one line built from plain text and (text, style) parts.

    Nothing is read as rich markup: user and error text (``[errno 30]``,
    ``cannot open [/data/x.csv]``) is shown exactly as it is.
    """
    console.print(Text.assemble(*parts), highlight=False)


def cell(value: Any) -> Text:
    """A table cell shown as text, never as markup."""
    return value if isinstance(value, Text) else Text("" if value is None else str(value))


SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (YAML, W&B sweep syntax).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a spec value: key=value, dotted keys for nesting "
    "(e.g. --set run_cap=4 --set parameters.lr.max=0.1). Repeatable.")]
TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking store (default: sqlite:///mlflow.db in the working directory).")]


def fail(exc: OrchError, code: int) -> typer.Exit:
    """Print an orch error (a spec's every problem, or one line) and the exit to raise."""
    if isinstance(exc, SpecError):
        say(err, ("invalid spec", "bold red"), f" {exc.source}: {len(exc.issues)} problem(s)")
        for issue in exc.issues:
            say(err, ("  ✗ ", "red"), str(issue))
    else:
        say(err, ("error:", "bold red"), f" {exc}")
    return typer.Exit(code)


def load(spec: Path, sets: list[str] | None) -> Any:
    """The spec, its trainable checked (nothing imported or run)."""
    return load_checked(spec, sets)[0]


def load_checked(spec: Path, sets: list[str] | None) -> tuple[Any, Any]:
    """The spec and where its trainable comes from (nothing is imported or run)."""
    from orchestrator.engine._trainable import check_trainable
    from orchestrator.sweepspec import load_spec

    loaded = load_spec(spec, overrides=sets or [])
    return loaded, check_trainable(loaded.trainable)


SweepArg = Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id, prefix or name.")]
NoTracking = Annotated[bool, typer.Option("--no-tracking", help="Record nothing in MLflow.")]
