"""The `orch` command line.

Exit status: 0 success; 2 invalid spec or usage (bad option, trainable that cannot
be imported); 3 the sweep ran but some trials failed; 4 another orch error
(resources no node has, tracking store unreachable, sweep not found);
130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from orchestrator.errors import OrchError, SpecError, TrainableImportError

EXIT_OK = 0
EXIT_INVALID = 2
EXIT_TRIALS_FAILED = 3
EXIT_ERROR = 4
EXIT_INTERRUPTED = 130
PREVIEW_CONFIGS = 5  # configs shown by --dry-run

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


def _fail(exc: OrchError, code: int) -> typer.Exit:
    if isinstance(exc, SpecError):
        say(err, ("invalid spec", "bold red"), f" {exc.source}: {len(exc.issues)} problem(s)")
        for issue in exc.issues:
            say(err, ("  ✗ ", "red"), str(issue))
    else:
        say(err, ("error:", "bold red"), f" {exc}")
    return typer.Exit(code)


def _load(spec: Path, sets: list[str] | None) -> Any:
    return _load_checked(spec, sets)[0]


def _load_checked(spec: Path, sets: list[str] | None) -> tuple[Any, Any]:
    """The spec and where its trainable comes from (nothing is imported or run)."""
    from orchestrator.engine._trainable import check_trainable
    from orchestrator.spec import load_spec

    loaded = load_spec(spec, overrides=sets or [])
    return loaded, check_trainable(loaded.trainable)


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec completely without running anything (imports no Ray)."""
    try:
        s, info = _load_checked(spec, set_)
    except SpecError as exc:
        raise _fail(exc, EXIT_INVALID) from None
    except TrainableImportError as exc:
        raise _fail(exc, EXIT_INVALID) from None
    say(out, ("✓", "green"), f" {spec}: {s.name} — method {s.method}, {len(s.searched)} "
        f"searched parameter(s), budget {s.run_cap} trial(s)"
        f"{' (default)' if s.run_cap_defaulted else ''}, metric {s.metric.name} "
        f"({s.metric.goal}), early stopping {s.scheduler_name}")
    say(out, f"  runs: {info.describe()}")
    for note in s.notes:
        say(out, ("  note:", "yellow"), f" {note}")


def _preview(s: Any) -> list[dict[str, Any]]:
    from orchestrator.spec._space import grid_configs, nest

    if s.method == "grid":
        return [nest(c) for c in grid_configs(s.parameters)[:PREVIEW_CONFIGS]]
    import optuna

    from orchestrator.engine._sampling import OptunaSpace, make_sampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=make_sampler(s))
    space = OptunaSpace(s.parameters, method=s.method)
    configs = []
    for _ in range(min(PREVIEW_CONFIGS, s.run_cap)):
        trial = study.ask()
        configs.append(nest(space(trial), sep="/"))
    return configs


@app.command()
def sweep(
    spec: SpecArg,
    set_: SetOpt = None,
    address: Annotated[str | None, typer.Option(
        help="Ray cluster: auto, HOST:PORT or ray://HOST:10001 (default: start Ray locally).")] = None,
    tracking_uri: TrackingOpt = None,
    no_tracking: Annotated[bool, typer.Option("--no-tracking", help="Record nothing in MLflow.")] = False,
    storage_path: Annotated[str | None, typer.Option(
        help="Where Ray Tune keeps trial files and checkpoints (folder or URI).")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="Validate and show the plan and a few configs; run nothing.")] = False,
    live: Annotated[bool | None, typer.Option(
        "--live/--no-live", help="Live table of trials (default: on in a terminal).")] = None,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Continue this spec's newest interrupted sweep: finished trials are "
        "kept, unfinished ones continue from their last checkpoint.")] = False,
) -> None:
    """Run a sweep: Ray Tune trials, searched by the spec's method, recorded in MLflow."""
    from orchestrator.method import resolve_placeholders

    if resume:
        try:
            current = _load(spec, set_)
        except (SpecError, TrainableImportError) as exc:
            raise _fail(exc, EXIT_INVALID) from None
        _resume(None, current, tracking_uri=tracking_uri, address=address, live=live)
        return
    try:
        s = _load(spec, set_)
        s = resolve_placeholders(s, tracking_uri=tracking_uri, tracking=not no_tracking,
                                 preview=dry_run)  # `from: lr_find` → LR range test
    except (SpecError, TrainableImportError) as exc:
        raise _fail(exc, EXIT_INVALID) from None
    for note in s.notes:
        say(out, ("note:", "yellow"), f" {note}")
    if s.run_cap_defaulted:
        say(out, ("note:", "yellow"), f" no run_cap: running {s.run_cap} trials")
    if dry_run:
        say(out, (s.name, "bold"), f": {s.method} over {len(s.searched)} parameter(s), "
            f"{s.run_cap} trial(s), early stopping {s.scheduler_name}, metric "
            f"{s.metric.name} ({s.metric.goal}); each trial cpu={s.resources.cpu:g} "
            f"gpu={'auto' if s.resources.gpu is None else format(s.resources.gpu, 'g')}")
        for i, cfg in enumerate(_preview(s), 1):
            say(out, f"  config {i}: {cfg}")
        return
    from orchestrator.engine import run_sweep

    try:
        result = run_sweep(s, address=address, tracking_uri=tracking_uri,
                           tracking=not no_tracking, storage_path=storage_path, live=live,
                           spec_text=spec.read_text(encoding="utf-8"))
    except TrainableImportError as exc:
        raise _fail(exc, EXIT_INVALID) from None
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    _finish(result)


def _resume(ref: str | None, current: Any, *, tracking_uri: str | None, address: str | None,
            live: bool | None) -> None:
    """Find an interrupted sweep (by reference, or the spec's newest), check the spec is
    unchanged, and continue it."""
    import difflib
    import json
    import tempfile

    from mlflow import MlflowClient

    from orchestrator.engine import Resume, run_sweep
    from orchestrator.spec import load_spec
    from orchestrator.tracking import EFFECTIVE_SPEC, resolve_tracking_uri
    from orchestrator.tracking._review import find_sweep, list_sweeps

    uri = resolve_tracking_uri(tracking_uri)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    try:
        if ref is not None:
            sw = find_sweep(ref, tracking_uri=uri)
        else:
            found = [x for x in list_sweeps(tracking_uri=uri)
                     if x.name == current.name and x.status != "finished"]
            if not found:
                raise OrchError(f"no interrupted sweep named {current.name!r} in {uri}; "
                                "run it without --resume")
            sw = found[0]
        if sw.status == "finished":
            raise OrchError(f"sweep {sw.sweep_id} finished; nothing to resume")
        client = MlflowClient(uri)
        path = client.get_run(sw.parent_run_id).data.tags.get("orch.storage", "")
        if not path or not _storage_exists(path):
            raise OrchError(f"sweep {sw.sweep_id}: its Ray Tune folder {path or '(unknown)'} "
                            "is gone, so its trials cannot be restored")
        with tempfile.TemporaryDirectory() as tmp:
            stored = json.loads(Path(client.download_artifacts(
                sw.parent_run_id, EFFECTIVE_SPEC, tmp)).read_text())
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    except Exception as exc:  # the store answered, but not with this sweep's records
        raise _fail(OrchError(f"sweep {ref or current.name!r} cannot be resumed from {uri}: "
                              f"{type(exc).__name__}: {exc}"), EXIT_ERROR) from None
    if current is not None and _comparable(current, stored) != stored:
        def dump(d: Any) -> list[str]:
            return json.dumps(d, indent=2, sort_keys=True, default=str).splitlines()

        diff = "\n".join(difflib.unified_diff(dump(stored), dump(_comparable(current, stored)),
                                               "recorded spec", "this spec", lineterm=""))
        say(err, ("refused:", "bold red"), f" the spec changed since sweep {sw.sweep_id} "
            "started; a resumed sweep must run the same spec. Difference:")
        say(err, diff)
        raise typer.Exit(EXIT_INVALID)
    spec = load_spec(stored)  # placeholders (`from: lr_find`) were resolved when it started
    say(out, f"resuming sweep {sw.sweep_id} ({sw.name}) from {path}")
    try:
        after_storage = sw.tags.get("orch.stopped_for", "").startswith("storage")
        result = run_sweep(spec, address=address, tracking_uri=uri, live=live,
                           resume=Resume(sweep_id=sw.sweep_id, experiment_path=path,
                                         parent_run_id=sw.parent_run_id,
                                         after_storage_problem=after_storage))
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    _finish(result)


def _storage_exists(path: str) -> bool:
    """Whether a sweep folder exists: a local path or a URI (s3://, gs://) via pyarrow."""
    if "://" not in path:
        return Path(path).exists()
    import pyarrow.fs

    fs, inner = pyarrow.fs.FileSystem.from_uri(path)
    return fs.get_file_info(inner).type != pyarrow.fs.FileType.NotFound


def _comparable(current: Any, stored: dict[str, Any]) -> dict[str, Any]:
    """`current`'s effective spec, with `from: lr_find` placeholders taken as the recorded
    sweep resolved them (the range test is not run again to compare)."""
    import copy

    mine = copy.deepcopy(current.effective())
    for p in current.placeholders:
        src, dst = stored.get("parameters", {}), mine.get("parameters", {})
        *heads, last = p.name.split(".")
        for h in heads:
            src = src.get(h, {}).get("parameters", {})
            dst = dst.get(h, {}).get("parameters", {})
        if last in src:
            dst[last] = src[last]
    return mine


@app.command("resume")
def resume_cmd(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id, prefix or name.")],
    tracking_uri: TrackingOpt = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    live: Annotated[bool | None, typer.Option("--live/--no-live")] = None,
) -> None:
    """Continue an interrupted sweep (driver killed, Ctrl-C): nothing finished runs again."""
    _resume(sweep_ref, None, tracking_uri=tracking_uri, address=address, live=live)


def _finish(result: Any) -> None:
    """Print the summary and exit with the sweep's status."""
    print_summary(result)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.tracking_problems:  # records lost or incomplete: the sweep did not do its job
        raise typer.Exit(EXIT_ERROR)
    if result.counts["failed"]:
        raise typer.Exit(EXIT_TRIALS_FAILED)


def print_summary(result: Any) -> None:
    """The end-of-sweep summary: best trial, counts, baseline, failures, where records are."""
    from orchestrator.method._cli import print_verdict

    s, metric = result.spec, result.metric
    counts = result.counts
    out.print()
    state = ("interrupted", "red") if result.interrupted else ("finished", "green")
    say(out, (s.name, "bold"), " ", state, f" in {result.wall_s:.1f}s — "
        f"{counts['completed']} completed, {counts['early_stopped']} early-stopped, "
        f"{counts['failed']} failed, {counts['killed']} killed"
        f"{' — target reached' if result.target_reached else ''}")
    best = result.best
    if best is not None:
        say(out, f"best {metric}: ", (f"{best.value(metric):.5g}", "bold"),
            f" (trial {best.trial_id})")
        say(out, f"best config: {best.config}")
    else:
        say(out, (f"no trial finished with a finite {metric}", "red"))
    print_verdict(result)  # hypothesis verdict: confirmed / refuted / inconclusive
    base = result.baseline
    if base is not None and base.value(metric) is not None:
        delta = (best.value(metric) - base.value(metric)) if best is not None else None
        say(out, f"baseline {metric}: {base.value(metric):.5g}"
            + (f" (best − baseline = {delta:+.5g})" if delta is not None else ""))
    diagnoses: dict[str, int] = {}
    for r in result.records:
        if r.diagnosis:
            diagnoses[r.diagnosis] = diagnoses.get(r.diagnosis, 0) + 1
    if diagnoses:
        say(out, "diagnosis: " + ", ".join(f"{k} {v}" for k, v in sorted(diagnoses.items())))
    failed = [r for r in result.records if r.outcome == "failed"]
    if failed:
        table = Table(title="failed trials", title_justify="left", show_edge=False)
        table.add_column("trial")
        table.add_column("error", overflow="fold")
        for r in failed[:20]:
            table.add_row(cell(r.trial_id), cell(r.error or ""))
        out.print(table)
    if result.tracking_uri:
        say(out, f"records: MLflow {result.tracking_uri} — experiment {s.experiment!r}, "
            f"sweep {result.sweep_id}, parent run {result.parent_run_id}")
        say(out, "review: orch ui   |   orch ls   |   orch export " + result.sweep_id)
        if result.interrupted:
            say(out, ("resume: ", "bold"), f"orch resume {result.sweep_id}   (finished trials "
                "are kept, the unfinished continue, the rest of the budget runs)")
    if result.storage_problem:
        say(out, ("storage:", "bold red"), f" the sweep stopped because {result.storage_problem};"
            " nothing is lost: make the storage writable, then `orch resume "
            f"{result.sweep_id}`")
    for warning in result.warnings:
        say(out, ("warning:", "bold yellow"), f" {warning}")
    for problem in result.tracking_problems:
        say(out, ("tracking:", "bold red"), f" {problem}")
    say(out, f"trial files: {result.storage}")


@app.command("ls")
def ls(tracking_uri: TrackingOpt = None) -> None:
    """List recorded sweeps: name, when, trials by outcome, best metric."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking._review import list_sweeps

    uri = resolve_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///") and not Path(uri[len("sqlite:///"):]).exists():
        say(out, f"no sweeps recorded in {uri} (there is no store there yet: `orch sweep "
            "SPEC` creates it, or pass --tracking-uri)")
        return
    try:
        sweeps = list_sweeps(tracking_uri=uri)
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
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


@app.command()
def export(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id, prefix or name.")],
    out_dir: Annotated[Path, typer.Option("--out", help="Folder for the Parquet files.")] = Path("export"),
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write a sweep's trials and metric histories as Parquet (pandas/DuckDB read them)."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking._review import export_sweep

    try:
        paths = export_sweep(sweep_ref, tracking_uri=resolve_tracking_uri(tracking_uri),
                             out_dir=out_dir)
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    for p in paths:
        say(out, f"wrote {p}")


@app.command()
def ui(
    tracking_uri: TrackingOpt = None,
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 (0: any free port).")] = 5000,
) -> None:
    """Start the MLflow UI on 127.0.0.1 over the same store and print its address."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking._review import serve_ui

    try:
        handle = serve_ui(tracking_uri=resolve_tracking_uri(tracking_uri), port=port)
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    say(out, f"MLflow UI: {handle.url}  (Ctrl-C to stop)")
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


def _exit_on_signal(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)


# Further command groups register themselves on `app` here (one import line each).
from orchestrator.method._cli import register as _register_method; _register_method(app)  # noqa: E402,E702


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
