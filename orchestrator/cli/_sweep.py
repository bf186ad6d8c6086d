"""`orch validate`, `orch sweep` and `orch resume`, and the summary a sweep ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli._common import (
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_INVALID,
    EXIT_TRIALS_FAILED,
    SetOpt,
    SpecArg,
    TrackingOpt,
    cell,
    err,
    fail,
    load,
    load_checked,
    out,
    say,
)
from orchestrator.errors import OrchError, SpecError, TrainableImportError

__all__ = ["print_summary", "resume", "sweep", "validate"]

PREVIEW_CONFIGS = 5  # configs shown by --dry-run


def print_verdict(result: Any, verdict: Any = None) -> None:
    """The sweep's verdict on its hypothesis: confirmed, refuted or inconclusive, and what
    it judged (one factor, or the best configuration); ``verdict`` when already judged
    (e.g. by ``orchestrator.method.confirm``)."""
    from orchestrator.method import verdict_for

    v = verdict if verdict is not None else verdict_for(result)
    color = {"confirmed": "green", "refuted": "red"}.get(v.status, "yellow")
    say(out, "verdict: ", (v.status, f"bold {color}"), f" — {v.reason}")


def validate(spec: SpecArg, set_: SetOpt = None) -> None:
    """Check a spec completely without running anything (imports no Ray)."""
    try:
        s, info = load_checked(spec, set_)
    except SpecError as exc:
        raise fail(exc, EXIT_INVALID) from None
    except TrainableImportError as exc:
        raise fail(exc, EXIT_INVALID) from None
    say(out, ("✓", "green"), f" {spec}: {s.name} — method {s.method}, {len(s.searched)} "
        f"searched parameter(s), budget {s.run_cap} trial(s)"
        f"{' (default)' if s.run_cap_defaulted else ''}, {_objectives(s)}, early stopping "
        f"{s.scheduler_name}")
    say(out, f"  runs: {info.describe()}")
    notes = list(s.notes)
    if s.cv is not None and info.reads_folds is False:
        notes.append(f"`cv:` is set, but {s.trainable} never asks for its folds (it calls none "
                     "of fit_classifier, orchestrator.cv_settings(), toolkit.fold_indices): its "
                     "trials are not K-fold. Read them as the README's 'Your own trainable' "
                     "shows, or remove `cv:`")
    notes.extend(_method_notes(s))
    for note in notes:
        say(out, ("  note:", "yellow"), f" {note}")


def _method_notes(s: Any) -> list[str]:
    """What happens after the sweep because of `expected:` (confirmation), or why a verdict
    can only be inconclusive (free text)."""
    from orchestrator.method import confirmation_seeds
    from orchestrator.sweepspec import parse_rule

    if not s.expected:
        return []
    if parse_rule(s.expected) is None:
        return [f"`expected: {s.expected}` is free text, so the verdict can only be "
                "inconclusive; write it as a rule orch can check, e.g. "
                f"`expected: {_rule_example(s)}`"]
    n = confirmation_seeds(s)
    if n == 0:
        return []
    if s.baseline is None:
        return ["no confirmation on fresh seeds after the sweep: it reruns the judged "
                "configuration beside the baseline, and this spec has none (add `baseline:`)"]
    if isinstance(s.baseline, str):
        return ["no confirmation on fresh seeds after the sweep: the baseline is a recorded "
                "run, which cannot be run again (give the baseline as a config to confirm)"]
    return [f"after the sweep, the judged configuration and the baseline run again on {n} "
            "fresh seeds each, in full, and the verdict is judged on those "
            "(`confirm_seeds: N` sets how many, 0 turns it off)"]


def _rule_example(s: Any) -> str:
    metric = s.metric.name if s.metric else "val_acc"
    better = ">=" if s.metric is None or s.metric.goal == "maximize" else "<="
    step = "+ 0.005" if better == ">=" else "- 0.005"
    return f"{metric} {better} baseline {step}"


def _objectives(s: Any) -> str:
    """What the sweep optimises, in words: its metric(s) and goal(s), or none."""
    metrics = list(s.metrics) or ([s.metric] if s.metric else [])
    if not metrics:
        return "no metric (every point runs; no best is named)"
    words = ", ".join(f"{m.name} ({m.goal})" for m in metrics)
    return f"metric {words}" if len(metrics) == 1 else f"metrics {words}"


def _preview(s: Any) -> list[dict[str, Any]]:
    from orchestrator.sweepspec import grid_configs, nest

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
            current = load(spec, set_)
        except (SpecError, TrainableImportError) as exc:
            raise fail(exc, EXIT_INVALID) from None
        _resume(None, current, tracking_uri=tracking_uri, address=address, live=live)
        return
    try:
        s = load(spec, set_)
        s = resolve_placeholders(s, tracking_uri=tracking_uri, tracking=not no_tracking,
                                 preview=dry_run)  # `from: lr_find` → LR range test
    except (SpecError, TrainableImportError) as exc:
        raise fail(exc, EXIT_INVALID) from None
    for note in s.notes:
        say(out, ("note:", "yellow"), f" {note}")
    if s.run_cap_defaulted:
        say(out, ("note:", "yellow"), f" no run_cap: running {s.run_cap} trials")
    if dry_run:
        say(out, (s.name, "bold"), f": {s.method} over {len(s.searched)} parameter(s), "
            f"{s.run_cap} trial(s), early stopping {s.scheduler_name}, {_objectives(s)}; "
            f"each trial cpu={s.resources.cpu:g} "
            f"gpu={'auto' if s.resources.gpu is None else format(s.resources.gpu, 'g')}")
        for i, cfg in enumerate(_preview(s), 1):
            say(out, f"  config {i}: {cfg}")
        return
    from orchestrator.engine import run_sweep
    from orchestrator.method import verdict_for

    try:
        result = run_sweep(s, address=address, tracking_uri=tracking_uri,
                           tracking=not no_tracking, storage_path=storage_path, live=live,
                           spec_text=spec.read_text(encoding="utf-8"), verdict=verdict_for)
    except TrainableImportError as exc:
        raise fail(exc, EXIT_INVALID) from None
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    _finish(result, _confirmed(result, address=address, storage_path=storage_path, live=live,
                               tracking=not no_tracking))


FRONT_SHOWN = 10  # Pareto-front trials listed in the summary (all are tagged orch.pareto)


def _print_best(result: Any) -> None:
    """The best trial; for several objectives the Pareto front; with constraints how many
    trials held them; without a metric, that none is named."""
    s, metric = result.spec, result.metric
    if not metric:
        say(out, "no metric: every point ran, none is named best (add `metric:` to compare)")
        return
    best = result.best
    if s.multi_objective:
        _print_front(result)
    elif best is not None:
        say(out, f"best {metric}: ", (f"{best.value(metric):.5g}", "bold"),
            f" (trial {best.trial_id})")
        say(out, f"best config: {best.config}")
    else:
        say(out, (f"no trial finished with a finite {metric}", "red"))
    if s.metric_constraints:
        _print_feasibility(result)


def _print_front(result: Any) -> None:
    names = [m.name for m in result.spec.metrics]
    first = result.spec.metrics[0]
    front = sorted(result.pareto, key=lambda r: r.value(first.name)
                   * (1 if first.goal == "minimize" else -1))
    say(out, f"Pareto front ({', '.join(f'{m.name} {m.goal}' for m in result.spec.metrics)}):"
        f" {len(front)} trial(s)" + (", none yet" if not front else ""))
    for r in front[:FRONT_SHOWN]:
        values = ", ".join(f"{n}={r.value(n):.5g}" for n in names)
        say(out, f"  {r.trial_id}: {values} — {r.config}")
    if len(front) > FRONT_SHOWN:
        say(out, f"  ... {len(front) - FRONT_SHOWN} more (tagged orch.pareto=true in MLflow)")


def _print_feasibility(result: Any) -> None:
    searched = [r for r in result.records if r.role == "trial" and r.history]
    ok = result.feasible_ids
    bad = [r for r in searched if r.trial_id not in ok]
    worst = []
    for rule in result.spec.metric_constraints:
        gaps = [abs(v - rule.threshold()) for r in bad
                if (v := r.value(rule.metric)) is not None and not rule.holds(v)]
        if gaps:
            worst.append(f"{rule.text} missed by up to {max(gaps):.4g} in {len(gaps)}")
    say(out, f"constraints: {len(searched) - len(bad)} of {len(searched)} trial(s) feasible"
        + (f"; {'; '.join(worst)}" if worst else ""))


def _confirmed(result: Any, **run: Any) -> Any:
    """The verdict confirmed on fresh seeds (``confirm_seeds``; on by default with
    ``expected:``), or None when there is nothing to confirm. A confirmation that is
    interrupted prints the sweep's own summary and exits 130."""
    from orchestrator.method import confirm, confirmation_seeds

    n = confirmation_seeds(result.spec)
    if n == 0 or result.interrupted or result.tracking_problems or result.best is None:
        return None
    say(out, f"confirming the verdict: the judged configuration and the baseline again, "
        f"{n} fresh seeds each, no early stopping (confirm_seeds: 0 turns this off)")
    try:
        return confirm(result, seeds=n, **run)
    except KeyboardInterrupt:
        print_summary(result)
        say(err, ("interrupted:", "bold red"), " the confirmation stopped; the verdict above "
            "is the sweep's own, unconfirmed")
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except OrchError as exc:
        say(err, ("warning:", "yellow"), f" the confirmation did not run: {exc}")
        return None


def _resume(ref: str | None, current: Any, *, tracking_uri: str | None, address: str | None,
            live: bool | None) -> None:
    """Find an interrupted sweep (by reference, or the spec's newest), check the spec is
    unchanged, and continue it."""
    import difflib
    import json

    from orchestrator.engine import Resume, run_sweep
    from orchestrator.method import verdict_for
    from orchestrator.sweepspec import load_spec
    from orchestrator.tracking import resolve_tracking_uri, resumable_sweep

    uri = resolve_tracking_uri(tracking_uri)
    try:
        sw, path, stored = resumable_sweep(ref, name=current.name if current else None,
                                           tracking_uri=uri)
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
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
                           verdict=verdict_for,
                           resume=Resume(sweep_id=sw.sweep_id, experiment_path=path,
                                         parent_run_id=sw.parent_run_id,
                                         after_storage_problem=after_storage))
    except OrchError as exc:
        raise fail(exc, EXIT_ERROR) from None
    _finish(result, _confirmed(result, address=address, live=live, tracking_uri=uri))


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


def resume(
    sweep_ref: Annotated[str, typer.Argument(metavar="SWEEP", help="Sweep id, prefix or name.")],
    tracking_uri: TrackingOpt = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster address.")] = None,
    live: Annotated[bool | None, typer.Option("--live/--no-live")] = None,
) -> None:
    """Continue an interrupted sweep (driver killed, Ctrl-C): nothing finished runs again."""
    _resume(sweep_ref, None, tracking_uri=tracking_uri, address=address, live=live)


def _finish(result: Any, verdict: Any = None) -> None:
    """Print the summary and exit with the sweep's status."""
    print_summary(result, verdict)
    if result.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)
    if result.tracking_problems:  # records lost or incomplete: the sweep did not do its job
        raise typer.Exit(EXIT_ERROR)
    if result.counts["failed"]:
        raise typer.Exit(EXIT_TRIALS_FAILED)


def print_summary(result: Any, verdict: Any = None) -> None:
    """The end-of-sweep summary: best trial, counts, the baseline at matched budgets, the
    verdict, failures, where records are (``verdict``: one already judged, e.g. confirmed)."""
    s, metric = result.spec, result.metric
    counts = result.counts
    out.print()
    state = ("interrupted", "red") if result.interrupted else ("finished", "green")
    say(out, (s.name, "bold"), " ", state, f" in {result.wall_s:.1f}s — "
        f"{counts['completed']} completed, {counts['early_stopped']} early-stopped, "
        f"{counts['failed']} failed, {counts['killed']} killed"
        f"{' — target reached' if result.target_reached else ''}")
    _print_best(result)
    from orchestrator.method import against_baseline
    from orchestrator.tracking._review import ui_address

    line = against_baseline(result) if metric else None  # at the epoch both reached
    if line:
        say(out, line)
    if metric:
        print_verdict(result, verdict)  # hypothesis verdict: confirmed / refuted / inconclusive
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
        if result.tracking_uri.startswith(("http://", "https://")) and result.experiment_id:
            say(out, "open: " + ui_address(result.tracking_uri, experiment_id=result.experiment_id,
                                           run_id=result.parent_run_id))  # on the runs, not GenAI
        dashboard = (f"   |   orch dashboard {result.sweep_id}"
                     if s.method not in ("grid", "pbt", "pb2") else "")
        say(out, f"review: orch ui   |   orch report {result.sweep_id}   |   orch ls   |   "
            f"orch export {result.sweep_id}{dashboard}")
        if metric and not result.interrupted:
            say(out, f"next: orch next {result.sweep_id}   (the next spec, written from "
                "this review)")
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
