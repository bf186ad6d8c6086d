"""The command line: help, validate, exit statuses, and the main command end to end."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import EXIT_INVALID, EXIT_OK, EXIT_TRIALS_FAILED, app

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


def test_help_describes_every_command():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("sweep", "validate", "ls", "export", "ui"):
        assert command in result.output
    assert "Exit status" in result.output


def test_validate_accepts_the_examples():
    for spec in sorted((ROOT / "search_spaces").glob("*.yaml")):
        result = runner.invoke(app, ["validate", str(spec)])
        assert result.exit_code == EXIT_OK, (spec, result.output)


def test_invalid_spec_exits_2_with_every_problem(tmp_path):
    spec = tmp_path / "bad.yaml"
    spec.write_text("trainable: digits_mlp\nmethod: bayz\nmetric: {name: val_loss}\n"
                    "parameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}\n")
    for command in ("validate", "sweep"):
        result = runner.invoke(app, [command, str(spec)])
        assert result.exit_code == EXIT_INVALID
        assert "method (line 2): unknown method 'bayz'" in result.output
        assert "parameters.lr.min (line 5): log_uniform_values needs min > 0, got 0" in \
            result.output


def test_unimportable_trainable_exits_2_naming_the_module(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("trainable: no_such_module:train\nmethod: random\n"
                    "metric: {name: loss}\nparameters:\n  x: {min: 0, max: 1}\n")
    result = runner.invoke(app, ["validate", str(spec)])
    assert result.exit_code == EXIT_INVALID
    assert "no_such_module" in result.output and "cannot be found" in result.output


def test_set_overrides_and_dry_run_show_the_plan():
    result = runner.invoke(app, ["sweep", str(ROOT / "search_spaces/conditional.yaml"),
                                 "--dry-run", "--set", "run_cap=3", "--set", "seed=4"])
    assert result.exit_code == EXIT_OK, result.output
    assert "3 trial(s)" in result.output
    assert result.output.count("config ") == 3


@pytest.mark.e2e
def test_failed_trials_exit_3(ray_session, store, tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("name: fails\ntrainable: _trainables:raises_above\nmethod: grid\n"
                    "metric: {name: loss}\nparameters:\n  x: {values: [0.2, 0.9]}\n")
    result = runner.invoke(app, ["sweep", str(spec), "--no-live", "--tracking-uri", store])
    assert result.exit_code == EXIT_TRIALS_FAILED, result.output
    assert "boom at x=0.900" in result.output
    assert "1 completed" in result.output and "1 failed" in result.output


@pytest.mark.e2e
def test_main_command_runs_a_real_sweep_with_no_set_up(tmp_path):
    """The README's main command, in a fresh folder, as a new user runs it."""
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    proc = subprocess.run(["orch", "sweep", "search_spaces/quick.yaml"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "digits-quick finished" in out and "best val_loss" in out
    assert "5 completed" in out  # 4 trials + the baseline
    assert (tmp_path / "mlflow.db").is_file()

    from mlflow import MlflowClient

    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("digits-quick")
    runs = client.search_runs([exp.experiment_id])
    assert all(r.info.status == "FINISHED" for r in runs)
    by_sweep: dict[str, int] = {}
    for r in runs:
        sweep = r.data.tags["orch.sweep_id"]
        by_sweep[sweep] = by_sweep.get(sweep, 0) + 1
    # the sweep (parent, 4 trials, baseline), then the confirmation (`expected:` is a rule):
    # parent, the chosen config and the baseline on 3 fresh seeds each
    assert sorted(by_sweep.values()) == [6, 7]
    assert "confirm" in out.lower()
    best = [r for r in runs if r.data.tags.get("orch.role") == "trial"]
    assert max(r.data.metrics["val_acc"] for r in best) > 0.9  # real training on digits


def test_cli_script_is_installed():
    exe = shutil.which("orch")
    assert exe, "the `orch` console script is not on PATH; run the README's install command"
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "sweep" in proc.stdout
