"""`orch ls`, `orch export` and `orch ui`: the recorded sweeps, as a table, files and pages."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator.cli._common import EXIT_ERROR, TrackingOpt, cell, fail, out, say
from orchestrator.errors import OrchError

__all__ = ["export", "ls", "ui"]


def ls(tracking_uri: TrackingOpt = None) -> None:
    """List recorded sweeps: name, when, trials by outcome, best metric."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking import list_sweeps

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        say(out, f"no sweeps recorded in {uri} (there is no store there yet: `orch sweep "
            "SPEC` creates it, or pass --tracking-uri)")
        return
    try:
        sweeps = list_sweeps(tracking_uri=uri)
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    if not sweeps:
        say(out, f"no sweeps recorded in {uri}")
        return
    rows = [_sweep_row(sw) for sw in sweeps]
    # In a terminal: its width. Piped: wide, so every line stays whole for grep and cut.
    console = out if out.is_terminal else Console(width=PIPED_WIDTH, soft_wrap=True)
    console.print(_ls_table(rows, console.width))


LS_COLUMNS = ("sweep", "name", "experiment", "started", "status", "done", "stopped",
              "failed", "best", "verdict")
LS_NARROW = ("sweep", "name", "status", "done/stop/fail", "best", "verdict")
LS_FLEXIBLE = ("name", "experiment")  # free text: shortened (…) to fit; the rest never is
LS_GAP = 2  # spaces between columns
LS_MIN_NAME = 8  # characters of a name kept before the narrow layout is used
PIPED_WIDTH = 200  # characters per line of `orch ls` when its output is not a terminal


def _ls_table(rows: list[dict[str, str]], width: int) -> Table:
    """One line per sweep at any width: ids, counts, best and verdict are never cut; names
    are shortened, and a narrow terminal gets the compact columns (LS_NARROW)."""
    from rich.cells import cell_len

    def natural(cols: tuple[str, ...]) -> dict[str, int]:
        return {c: max([cell_len(c)] + [cell_len(r[c]) for r in rows]) for c in cols}

    for cols in (LS_COLUMNS, LS_NARROW):
        widths = natural(cols)
        fixed = sum(w for c, w in widths.items() if c not in LS_FLEXIBLE)
        room = width - fixed - LS_GAP * (len(cols) - 1)
        flexible = [c for c in cols if c in LS_FLEXIBLE]
        if room >= LS_MIN_NAME * len(flexible):
            break
    share = max(room, 1) // max(len(flexible), 1)
    for c in flexible:  # a short column gives what it does not use to the next
        widths[c] = min(widths[c], max(share, LS_MIN_NAME))
    table = Table(box=None, show_edge=False, pad_edge=False, padding=(0, LS_GAP // 2))
    for c in cols:
        table.add_column(c, no_wrap=True, overflow="ellipsis", width=widths[c],
                         justify="right" if c in ("done", "stopped", "failed") else "left",
                         header_style="bold")
    for r in rows:
        table.add_row(*(cell(r[c]) for c in cols))
    return table


def _sweep_row(sw: Any) -> dict[str, str]:
    counts = {k: str(sw.trials.get(k, 0)) for k in ("completed", "early_stopped", "failed")}
    best = f"{sw.metric}={sw.best_value:.4g}" if sw.best_value is not None else "-"
    started = sw.started.strftime("%Y-%m-%d %H:%M") if sw.started else "-"
    return {"sweep": sw.sweep_id, "name": sw.name, "experiment": sw.experiment,
            "started": started, "status": sw.status, "done": counts["completed"],
            "stopped": counts["early_stopped"], "failed": counts["failed"],
            "done/stop/fail": "/".join(counts.values()), "best": best,
            "verdict": sw.tags.get("orch.verdict", "-")}


def export(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id, prefix or name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Parquet files.")] = Path("export"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write a sweep's trials and metric histories as Parquet (pandas/DuckDB read them)."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking import export_sweep

    try:
        paths = export_sweep(sweep_ref, tracking_uri=resolve_tracking_uri(tracking_uri),
                             out_dir=out_dir)
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    for p in paths:
        say(out, f"wrote {p}")


def ui(
    tracking_uri: TrackingOpt = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the same store and print its address."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking import serve_ui

    uri = resolve_tracking_uri(tracking_uri)
    try:
        handle = serve_ui(tracking_uri=uri, port=port)
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    for line in ui_lines(handle.url, uri):
        say(out, line)
    say(out, "(Ctrl-C to stop)")
    # A closed terminal (SIGHUP) or `kill` (SIGTERM) stops the server too: it runs in its
    # own session, so without this it would outlive orch, unauthenticated and writable.
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM,
                                                                     signal.SIGHUP)}
    try:
        handle.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def ui_lines(base: str, tracking_uri: str) -> list[str]:
    """What ``orch ui`` prints: addresses that open on the runs (not MLflow's GenAI pages),
    the newest sweep's with the reviewer's columns."""
    from orchestrator.tracking import Store, list_sweeps
    from orchestrator.tracking._review import ui_address

    lines = [f"MLflow UI: {ui_address(base)}"]
    try:
        sweeps = list_sweeps(tracking_uri=tracking_uri)
    except OrchError:
        return lines
    if not sweeps:
        return lines
    newest = sweeps[0]
    view = False
    try:
        Store(tracking_uri).save_ui_view(newest)
        view = True
    except Exception:  # noqa: BLE001 - a read-only store: the plain address still opens on runs
        pass
    lines.append(f"newest sweep {newest.sweep_id} ({newest.name}): "
                 f"{ui_address(base, experiment_id=newest.experiment_id, view=view)}")
    return lines


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
