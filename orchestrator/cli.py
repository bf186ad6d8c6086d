"""The `orch` command line.

Exit status: 0 success; 2 invalid spec or usage (bad option, trainable that cannot
be imported); 3 the sweep ran but some trials failed; 4 another orch error
(resources no node has, tracking store unreachable, sweep not found);
130 interrupted (Ctrl-C / SIGTERM).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

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
out = Console(soft_wrap=True)  # messages stay whole lines (copy-paste, grep)
err = Console(stderr=True, soft_wrap=True)

SpecArg = Annotated[Path, typer.Argument(help="Sweep spec (YAML, W&B sweep syntax).")]
SetOpt = Annotated[list[str] | None, typer.Option(
    "--set", help="Override a spec value: key=value, dotted keys for nesting "
    "(e.g. --set run_cap=4 --set parameters.lr.max=0.1). Repeatable.")]
TrackingOpt = Annotated[str | None, typer.Option(
    "--tracking-uri", envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking store (default: sqlite:///mlflow.db in the working directory).")]


def _fail(exc: OrchError, code: int) -> typer.Exit:
    if isinstance(exc, SpecError):
        err.print(f"[bold red]invalid spec[/] {exc.source}: {len(exc.issues)} problem(s)",
                  highlight=False)
        for issue in exc.issues:
            err.print(f"  [red]✗[/] {issue}", highlight=False, markup=False)
    else:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
    return typer.Exit(code)


def _load(spec: Path, sets: list[str] | None) -> Any:
    from orchestrator._trainable import check_trainable
    from orchestrator.spec import load_spec

    loaded = load_spec(spec, overrides=sets or [])
    check_trainable(loaded.trainable)
    return loaded


@app.command()
def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec completely without running anything (imports no Ray)."""
    try:
        s = _load(spec, set_)
    except SpecError as exc:
        raise _fail(exc, EXIT_INVALID) from None
    except TrainableImportError as exc:
        raise _fail(exc, EXIT_INVALID) from None
    out.print(f"[green]✓[/] {spec}: {s.name} — method {s.method}, {len(s.searched)} searched "
              f"parameter(s), budget {s.run_cap} trial(s)"
              f"{' (default)' if s.run_cap_defaulted else ''}, metric {s.metric.name} "
              f"({s.metric.goal}), early stopping {s.scheduler_name}", highlight=False)
    for note in s.notes:
        out.print(f"  [yellow]note:[/] {note}", highlight=False)


def _preview(s: Any) -> list[dict[str, Any]]:
    from orchestrator.space import grid_configs, nest

    if s.method == "grid":
        return [nest(c) for c in grid_configs(s.parameters)[:PREVIEW_CONFIGS]]
    import optuna

    from orchestrator.space import make_sampler
    from orchestrator.space import OptunaSpace

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
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    if s.run_cap_defaulted:
        out.print(f"[yellow]note:[/] no run_cap: running {s.run_cap} trials", highlight=False)
    if dry_run:
        out.print(f"[bold]{s.name}[/]: {s.method} over {len(s.searched)} parameter(s), "
                  f"{s.run_cap} trial(s), early stopping {s.scheduler_name}, metric "
                  f"{s.metric.name} ({s.metric.goal}); each trial cpu={s.resources.cpu:g} "
                  f"gpu={'auto' if s.resources.gpu is None else format(s.resources.gpu, 'g')}",
                  highlight=False)
        for i, cfg in enumerate(_preview(s), 1):
            out.print(f"  config {i}: {cfg}", highlight=False, markup=False)
        return
    if address:
        from orchestrator.api import bound_cluster_connect

        bound_cluster_connect()
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

    if address:
        from orchestrator.api import bound_cluster_connect

        bound_cluster_connect()
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
        err.print(f"[bold red]refused:[/] the spec changed since sweep {sw.sweep_id} started; "
                  "a resumed sweep must run the same spec. Difference:", highlight=False)
        err.print(diff, markup=False, highlight=False)
        raise typer.Exit(EXIT_INVALID)
    spec = load_spec(stored)  # placeholders (`from: lr_find`) were resolved when it started
    out.print(f"resuming sweep {sw.sweep_id} ({sw.name}) from {path}", highlight=False)
    try:
        result = run_sweep(spec, address=address, tracking_uri=uri, live=live,
                           resume=Resume(sweep_id=sw.sweep_id, experiment_path=path,
                                         parent_run_id=sw.parent_run_id))
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
    if result.counts["failed"]:
        raise typer.Exit(EXIT_TRIALS_FAILED)


def print_summary(result: Any) -> None:
    """The end-of-sweep summary: best trial, counts, baseline, failures, where records are."""
    from orchestrator.method._cli import print_verdict

    s, metric = result.spec, result.metric
    counts = result.counts
    out.print()
    state = "[red]interrupted[/]" if result.interrupted else "[green]finished[/]"
    out.print(f"[bold]{s.name}[/] {state} in {result.wall_s:.1f}s — "
              f"{counts['completed']} completed, {counts['early_stopped']} early-stopped, "
              f"{counts['failed']} failed, {counts['killed']} killed"
              f"{' — target reached' if result.target_reached else ''}", highlight=False)
    best = result.best
    if best is not None:
        out.print(f"best {metric}: [bold]{best.value(metric):.5g}[/] (trial {best.trial_id})",
                  highlight=False)
        out.print(f"best config: {best.config}", highlight=False, markup=False)
    else:
        out.print(f"[red]no trial finished with a finite {metric}[/]")
    print_verdict(result)  # hypothesis verdict: confirmed / refuted / inconclusive
    base = result.baseline
    if base is not None and base.value(metric) is not None:
        delta = (best.value(metric) - base.value(metric)) if best is not None else None
        out.print(f"baseline {metric}: {base.value(metric):.5g}"
                  + (f" (best − baseline = {delta:+.5g})" if delta is not None else ""),
                  highlight=False)
    diagnoses: dict[str, int] = {}
    for r in result.records:
        if r.diagnosis:
            diagnoses[r.diagnosis] = diagnoses.get(r.diagnosis, 0) + 1
    if diagnoses:
        out.print("diagnosis: " + ", ".join(f"{k} {v}" for k, v in sorted(diagnoses.items())),
                  highlight=False)
    failed = [r for r in result.records if r.outcome == "failed"]
    if failed:
        table = Table(title="failed trials", title_justify="left", show_edge=False)
        table.add_column("trial")
        table.add_column("error", overflow="fold")
        for r in failed[:20]:
            table.add_row(r.trial_id, r.error or "")
        out.print(table)
    if result.tracking_uri:
        out.print(f"records: MLflow {result.tracking_uri} — experiment {s.experiment!r}, "
                  f"sweep {result.sweep_id}, parent run {result.parent_run_id}", highlight=False)
        out.print("review: orch ui   |   orch ls   |   orch export " + result.sweep_id,
                  highlight=False)
    for warning in result.warnings:
        out.print(f"[bold yellow]warning:[/] {warning}", highlight=False)
    for problem in result.tracking_problems:
        out.print(f"[bold red]tracking:[/] {problem}", highlight=False)
    out.print(f"trial files: {result.storage}", highlight=False)


@app.command("ls")
def ls(tracking_uri: TrackingOpt = None) -> None:
    """List recorded sweeps: name, when, trials by outcome, best metric."""
    from orchestrator.tracking import resolve_tracking_uri
    from orchestrator.tracking._review import list_sweeps

    uri = resolve_tracking_uri(tracking_uri)
    try:
        sweeps = list_sweeps(tracking_uri=uri)
    except OrchError as exc:
        raise _fail(exc, EXIT_ERROR) from None
    if not sweeps:
        out.print(f"no sweeps recorded in {uri}")
        return
    table = Table(show_edge=False)
    for col in ("sweep", "name", "experiment", "started", "status", "completed",
                "early-stopped", "failed", "best"):
        table.add_column(col, no_wrap=True)
    for sw in sweeps:
        table.add_row(*_sweep_row(sw))
    Console(width=max(out.width, 160)).print(table)


def _sweep_row(sw: Any) -> list[str]:
    counts = sw.trials
    best = f"{sw.metric}={sw.best_value:.5g}" if sw.best_value is not None else "-"
    started = sw.started.strftime("%Y-%m-%d %H:%M") if sw.started else "-"
    return [sw.sweep_id, sw.name, sw.experiment, started, sw.status,
            str(counts.get("completed", 0)), str(counts.get("early_stopped", 0)),
            str(counts.get("failed", 0)), best]


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
        out.print(f"wrote {p}", highlight=False)


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
    out.print(f"MLflow UI: {handle.url}  (Ctrl-C to stop)", highlight=False)
    try:
        handle.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        handle.stop()


# Further command groups register themselves on `app` here (one import line each).
from orchestrator.method._cli import register as _register_method; _register_method(app)  # noqa: E402,E702


def main() -> None:
    """Console entry point."""
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(EXIT_INTERRUPTED)


if __name__ == "__main__":
    main()
