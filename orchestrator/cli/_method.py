"""The method as commands: `orch lr-find`, `ablate`, `report`, `next`, `compare`, `reproduce`,
`note`.

Heavy imports (Ray, torch, MLflow) happen inside the commands, so ``orch --help``
stays fast. ``reproduce`` exits 3 when the metric is not reproduced within the
tolerance.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_TRIALS_FAILED,
    NoTracking,
    SetOpt,
    SpecArg,
    SweepArg,
    TrackingOpt,
    cell,
    err,
    fail,
    load,
    out,
    say,
)

__all__ = ["ablate", "compare", "lr_find", "next_sweep", "note", "report", "reproduce"]


def _fmt(x: Any, digits: int = 4) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}"
    return str(x)


def _load(spec: Path, sets: list[str] | None) -> Any:
    from orchestrator.errors import SpecError, TrainableImportError

    try:
        return load(spec, sets)
    except (SpecError, TrainableImportError) as exc:
        raise fail(exc, EXIT_INVALID) from None


def _failing(exc: Exception) -> typer.Exit:
    from orchestrator.errors import SpecError, TrainableImportError

    code = EXIT_INVALID if isinstance(exc, (SpecError, TrainableImportError)) else EXIT_ERROR
    return fail(exc, code)


def lr_find(
    spec: SpecArg,
    set_: SetOpt = None,
    start_lr: Annotated[float, typer.Option(help="First learning rate.")] = 1e-7,
    end_lr: Annotated[float, typer.Option(help="Last learning rate.")] = 10.0,
    steps: Annotated[int, typer.Option(help="Mini-batches (one LR each).")] = 300,
    plot: Annotated[Path | None, typer.Option("--plot", help="Also write the PNG here.")] = None,
    tracking_uri: TrackingOpt = None,
    no_tracking: NoTracking = False,
) -> None:
    """LR range test on the spec's baseline: suggested LR and log range for the sweep."""
    from orchestrator.errors import OrchError
    from orchestrator.method import lr_find as run_lr_find

    s = _load(spec, set_)
    try:
        found = run_lr_find(s, tracking_uri=tracking_uri, tracking=not no_tracking,
                        plot_path=plot, start_lr=start_lr, end_lr=end_lr, steps=steps)
    except OrchError as exc:
        raise _failing(exc) from None
    except ValueError as exc:
        say(err, ("error:", "bold red"), f" {exc}")
        raise typer.Exit(EXIT_INVALID) from None
    r = found.result
    lo, hi = r.range
    say(out, f"LR range test on {s.name}: {r.steps} batches from {start_lr:g}, "
          f"stopped: {r.stopped}")
    say(out, "suggested lr (steepest descent): ", (f"{r.suggested_lr:.3g}", "bold"),
          f"; lowest smoothed loss at {r.lr_at_min:.3g}")
    say(out, "suggested range: ",
          (f"lr: {{distribution: log_uniform_values, min: {lo:g}, max: {hi:g}}}", "bold"),
          "  (or write `lr: {from: lr_find}` in the spec)")
    say(out, f"plot: {found.plot}")
    if found.run_id:
        say(out, f"recorded: MLflow {found.tracking_uri}, run {found.run_id} "
              "(orch.role=lr_find)")
    for problem in found.problems:
        say(err, ("tracking:", "bold red"), f" {problem}")


def ablate(
    spec: SpecArg,
    set_: SetOpt = None,
    quantiles: Annotated[int, typer.Option(help="Points per continuous range.")] = 3,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    tracking_uri: TrackingOpt = None,
    no_tracking: NoTracking = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan only.")] = False,
) -> None:
    """One factor at a time around the baseline: every point in one parallel sweep."""
    from orchestrator.errors import OrchError
    from orchestrator.method import ablation_plan, run_ablation

    s = _load(spec, set_)
    try:
        if dry_run:
            base, points, skipped = ablation_plan(s, quantiles=quantiles)
            say(out, f"baseline: {base}")
            for p in points:
                extra = f"  (+{p.filled})" if p.filled else ""
                extra += f"  (-{list(p.dropped)})" if p.dropped else ""
                say(out, f"  {p.param} = {p.value!r}{extra}")
            for name, why in skipped:
                say(out, ("  skipped", "yellow"), f" {name}: {why}")
            return
        ab = run_ablation(s, quantiles=quantiles, address=address,
                          tracking_uri=tracking_uri, tracking=not no_tracking)
    except OrchError as exc:
        raise _failing(exc) from None
    metric = s.metric.name
    table = Table(title=cell(f"{s.name}: one factor at a time (baseline {metric} = "
                               f"{_fmt(ab.baseline_value)})"), title_justify="left")
    for col in ("parameter", "value", metric, "Δ vs baseline", "spread (±)", "95% CI",
                "p", "outcome"):
        table.add_column(cell(col))
    for r in ab.rows:
        ci = f"[{r.ci_low:+.3g}, {r.ci_high:+.3g}]" if r.ci_low is not None else "–"
        table.add_row(*map(cell, (
            r.param, json.dumps(r.value) if not isinstance(r.value, str) else r.value,
            _fmt(r.metric), f"{r.diff:+.4g}" if r.diff is not None else "–",
            f"{_fmt(r.spread, 3)} ({r.spread_of})" if r.spread is not None else "–",
            ci, _fmt(r.p_value, 3), r.outcome)))
    out.print(table)
    for name, why in ab.skipped:
        say(out, ("not varied:", "yellow"), f" {name}: {why}")
    res = ab.result
    if res is not None and res.parent_run_id:
        say(out, f"recorded: MLflow {res.tracking_uri}, sweep {res.sweep_id}, parent "
              f"run {res.parent_run_id} (ablation.csv, ablation.json)")
    for problem in [*ab.problems, *(res.tracking_problems if res else [])]:
        say(err, ("tracking:", "bold red"), f" {problem}")
    if res is not None and res.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if res is not None and res.counts["failed"]:
        raise typer.Exit(EXIT_TRIALS_FAILED)


def report(
    sweep_ref: SweepArg,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="HTML file (default: report-<sweep id>.html).")] = None,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write one self-contained HTML review of a sweep and log it to its parent run."""
    from orchestrator.errors import OrchError
    from orchestrator.method import write_report
    from orchestrator.tracking import resolve_tracking_uri

    try:
        rep = write_report(sweep_ref, tracking_uri=resolve_tracking_uri(tracking_uri),
                           out=out_file)
    except OrchError as exc:
        raise _failing(exc) from None
    say(out, f"wrote {rep.path}" + (" (also logged to the sweep's parent run as "
                                       "report.html)" if rep.logged else ""))
    for problem in rep.problems:
        say(err, ("report:", "yellow"), f" {problem}")


def _cannot_write(path: Path, problem: str) -> typer.Exit:
    say(err, ("error:", "bold red"), f" cannot write the next spec to {path}: {problem}; "
        "choose another --out (in a folder you can write to), or --out - to print it")
    return typer.Exit(EXIT_ERROR)


def _writable(path: Path, *, force: bool) -> None:
    """Exit 2 when ``path`` exists (unless ``force``), 4 when a file stands where one of its
    folders should be."""
    if path.exists() and not force:
        say(err, ("error:", "bold red"), f" {path} exists and was left as it is; pass --force "
            "to overwrite it, or choose another --out")
        raise typer.Exit(EXIT_INVALID)
    blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        raise _cannot_write(path, f"{blocker} is a file, not a folder")


def _write_new(path: Path, text: str, *, force: bool) -> None:
    """Write ``text`` to ``path``, which must not exist unless ``force``; errors say what to
    do (exit 2: it exists; 4: it cannot be written)."""
    problem = None
    _writable(path, force=force)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w" if force else "x", encoding="utf-8") as fh:
            fh.write(text)
    except FileExistsError:  # a file where a folder of the path should be, or a race
        problem = f"{path.parent} is not a folder" if not path.parent.is_dir() else \
            f"{path} appeared meanwhile"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem:
        raise _cannot_write(path, problem)


def next_sweep(
    sweep_ref: SweepArg,
    out_file: Annotated[Path | None, typer.Option(
        "--out", help="Spec file to write (default: <next name>.yaml in the working "
        "directory; '-' prints it).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite --out if it exists.")] = False,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Write the next sweep's spec from this one's review: the best config as the baseline,
    ranges narrowed (or widened at an edge), exhausted parameters fixed, the next best
    configs tried first; the verdict and your notes as comments, the hypothesis to write."""
    from orchestrator.errors import OrchError
    from orchestrator.method import next_name, plan_next, read_review
    from orchestrator.sweepspec import slugify
    from orchestrator.tracking import resolve_tracking_uri

    if out_file is not None and str(out_file) != "-":
        _writable(out_file, force=force)  # before the review is read: fail fast
    try:
        review = read_review(sweep_ref, tracking_uri=resolve_tracking_uri(tracking_uri))
        path = out_file or Path(f"{slugify(next_name(review.name))}.yaml")
        printed = str(path) == "-"
        planned = plan_next(review, file=None if printed else str(path))
    except OrchError as exc:
        raise _failing(exc) from None
    for problem in planned.problems:
        say(err, ("next:", "yellow"), f" {problem}")
    if printed:
        sys.stdout.write(planned.text)
        return
    _write_new(path, planned.text, force=force)
    say(out, f"wrote {path}: {planned.name}, the sweep after {review.name} "
        f"({review.sweep_id}); baseline = its best trial {planned.baseline_from}; "
        f"{planned.summary}")
    say(out, f"next: write `hypothesis:` in {path}, then `orch validate {path} && orch sweep "
        f"{path}`")


def compare(
    run_a: Annotated[str, typer.Argument(metavar="RUN_A", help="Run id or trial id.")],
    run_b: Annotated[str, typer.Argument(metavar="RUN_B", help="Run id or trial id.")],
    tracking_uri: TrackingOpt = None,
) -> None:
    """Config and metric differences of two runs, trial − baseline (A − B when neither is the
    baseline) at the step both reached, with the fold-paired 95% interval; warns when their
    data splits differ."""
    from orchestrator.errors import OrchError
    from orchestrator.method import compare_runs
    from orchestrator.tracking import resolve_tracking_uri

    try:
        cmp = compare_runs(run_a, run_b, tracking_uri=resolve_tracking_uri(tracking_uri))
    except OrchError as exc:
        raise _failing(exc) from None
    same = cmp.same_split
    if same is False:
        say(err, ("WARNING: the runs were trained and validated on DIFFERENT data "
                      "splits", "bold red"),
              f" (orch.split_fingerprint {cmp.fingerprint_a} vs {cmp.fingerprint_b}): "
              "their metrics are not comparable.")
    elif same is None:
        say(err, ("warning:", "yellow"), " at least one run has no "
              "orch.split_fingerprint: cannot tell whether they used the same split.")
    else:
        say(out, f"same data split (fingerprint {cmp.fingerprint_a})")
    table = Table(title="config differences", title_justify="left")
    for col in ("parameter", "A", "B"):
        table.add_column(col)
    for k, (a, b) in cmp.config_diff.items():
        table.add_row(*map(cell, (k, _fmt(a), _fmt(b))))
    out.print(table if cmp.config_diff else cell("configs are identical"))
    trial, ref = ("B", "A") if cmp.swapped else ("A", "B")
    why = " (A is the baseline)" if cmp.swapped else ""
    mt = Table(title=cell(f"metrics: {trial} − {ref}{why}, at the step both reached"),
                title_justify="left")
    for col in ("metric", "step", trial, ref, f"{trial} − {ref}", "95% CI", "p"):
        mt.add_column(cell(col))
    for k, (t, r, d) in cmp.metric_diff.items():
        c = cmp.intervals.get(k)
        mt.add_row(*map(cell, (k, str(cmp.step.get(k, "–")), _fmt(t), _fmt(r),
                               f"{d:+.4g}" if d is not None else "–",
                               f"[{c.ci[0]:+.4g}, {c.ci[1]:+.4g}]" if c else "–",
                               _fmt(c.p_value, 3) if c else "–")))
    out.print(mt)
    if cmp.intervals:
        say(out, "95% CI and p: paired t-test over the folds, at the step both reached.")
    if cmp.intervals and same is False:
        say(err, ("warning:", "yellow"), " the paired intervals pair folds of different "
            "splits: they mean nothing here.")


def reproduce(
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id or trial id.")],
    tolerance: Annotated[float, typer.Option(help="Relative tolerance.")] = 1e-6,
    tracking_uri: TrackingOpt = None,
) -> None:
    """Run one recorded trial again in-process and check its metric (exit 3 if off)."""
    from orchestrator.errors import OrchError
    from orchestrator.method import reproduce as run_again
    from orchestrator.tracking import resolve_tracking_uri

    try:
        rep = run_again(run, tracking_uri=resolve_tracking_uri(tracking_uri),
                        tolerance=tolerance)
    except OrchError as exc:
        raise _failing(exc) from None
    for w in rep.warnings:
        say(err, ("warning:", "yellow"), f" {w}")
    say(out, f"run {rep.run_id}: seed {rep.seed}, config {rep.config}")
    say(out, f"{rep.metric} at epoch {rep.epoch}: recorded {_fmt(rep.recorded, 10)}, "
          f"reproduced {_fmt(rep.reproduced, 10)} (relative difference "
          f"{_fmt(rep.rel_error, 3)}, tolerance {rep.tolerance:g})")
    if rep.matches:
        say(out, ("reproduced", "green"))
    else:
        say(out, ("NOT reproduced", "bold red"))
        raise typer.Exit(EXIT_TRIALS_FAILED)


def note(
    sweep_ref: SweepArg,
    text: Annotated[str, typer.Argument(help="Your reflection on the sweep.")],
    tracking_uri: TrackingOpt = None,
) -> None:
    """Add a reflection note to a sweep (shown in the MLflow UI and in the report)."""
    from orchestrator.errors import OrchError
    from orchestrator.method import add_note
    from orchestrator.tracking import resolve_tracking_uri

    try:
        n = add_note(sweep_ref, text, tracking_uri=resolve_tracking_uri(tracking_uri))
    except OrchError as exc:
        raise _failing(exc) from None
    say(out, f"note {n} added to {sweep_ref}")
