"""The `orch` command line: every command, registered here in one place.

========================  ==================================================
``_common``               consoles, plain-text printing, options, exit codes
``_sweep``                validate, sweep, resume, and the end-of-sweep summary
``_records``              ls, export, ui
``_dashboard``            dashboard (Optuna's, over the study a sweep kept)
``_method``               lr-find, ablate, report, next, compare, reproduce, note
========================  ==================================================

Exit status: 0 success; 2 invalid spec or usage; 3 some trials failed; 4 another
error (records lost included); 130 interrupted.
"""

from __future__ import annotations

import os
import sys

import typer

from orchestrator.cli import _dashboard, _method, _records, _sweep
from orchestrator.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_TRIALS_FAILED,
    err,
    out,
    say,
)

__all__ = ["EXIT_ERROR", "EXIT_INTERRUPTED", "EXIT_INVALID", "EXIT_OK", "EXIT_TRIALS_FAILED",
           "app", "err", "main", "out"]

app = typer.Typer(
    name="orch",
    help="Disciplined hyperparameter search for deep learning: Ray Tune spreads trials, "
    "Optuna picks configs, ASHA stops poor ones early, MLflow records everything.\n\n"
    "Exit status: 0 ok; 2 invalid spec/usage; 3 some trials failed; 4 other error; "
    "130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(_sweep.validate)
app.command()(_sweep.sweep)
app.command("resume")(_sweep.resume)
app.command("ls")(_records.ls)
app.command()(_records.export)
app.command()(_records.ui)
app.command()(_dashboard.dashboard)
app.command("lr-find")(_method.lr_find)
app.command()(_method.ablate)
app.command()(_method.report)
app.command("next")(_method.next_sweep)
app.command()(_method.compare)
app.command()(_method.reproduce)
app.command()(_method.note)


def main() -> None:
    """Console entry point: orch's errors are handled by each command; anything else is
    a bug, shown as one line (the traceback goes to a file) and exit status 4."""
    try:
        app()
    except KeyboardInterrupt:
        say(err, "interrupted")
        sys.exit(EXIT_INTERRUPTED)
    except Exception as exc:  # noqa: BLE001 - the last line of defence: never a raw traceback
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="orch-crash-", suffix=".txt")
        with os.fdopen(fd, "w") as fh:
            traceback.print_exc(file=fh)
        say(err, ("error:", "bold red"), f" orch stopped on an unexpected {type(exc).__name__}: "
            f"{exc}. This is a bug in orch; the traceback is in {path} (please include it "
            "in a report).")
        sys.exit(EXIT_ERROR)




if __name__ == "__main__":
    main()
