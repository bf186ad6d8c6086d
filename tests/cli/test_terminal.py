"""The commands as a person types them: in a real pseudo-terminal, screen read back.

Every other CLI test pipes the output, where rich draws nothing live; these run
``orch`` in a pty (``tests/_tty.py``: pexpect + the pyte terminal emulator) and
read the screen a person would see, in the middle of a sweep and at its end, at
80 and 160 columns. Screens are kept under ``tmp_path`` (``*.screen.txt``) for a
human to read when a test fails.
"""

from __future__ import annotations

import re
import shutil
import signal
import sqlite3
from pathlib import Path

import pytest
import _tty
from rich.cells import cell_len

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(400)]
ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
ORCH = shutil.which("orch") or "orch"
MARKUP = re.compile(r"\[/?(red|green|yellow|bold|dim|cyan)[^\]]*\]|\[/\]")


def _statuses(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute("select status from runs")]


def _keep(tmp_path: Path, name: str, text: str) -> None:
    (tmp_path / f"{name}.screen.txt").write_text(text)


def _assert_clean(screen: str, cols: int, *, markup: bool = True) -> None:
    assert "Traceback" not in screen, screen[-4000:]
    if markup:  # (a spec whose own text has brackets checks that it shows literally)
        assert not MARKUP.search(screen), MARKUP.search(screen)
    assert all(len(line) <= cols for line in screen.splitlines())


def _mid_sweep(snapshots: dict[str, str]):
    """A watch that keeps the first screen showing a running trial in the live table."""

    def watch(text: str, child, session) -> None:
        if "mid" not in snapshots and re.search(r"│\s*running\s*│", text) and "ETA" in text:
            snapshots["mid"] = text

    return watch


def test_main_command_in_a_terminal_shows_the_live_table_and_the_summary(tmp_path):
    """The README's main command, exactly as typed, in an 80-column terminal."""
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    snaps: dict[str, str] = {}
    got = _tty.run([ORCH, "sweep", "search_spaces/quick.yaml"], cwd=tmp_path, cols=80,
                   watch=_mid_sweep(snaps))
    _keep(tmp_path, "end-80", got.screen)
    assert got.status == 0, got.screen[-3000:]
    assert "mid" in snaps, "the live table never showed a running trial:\n" + got.screen[-3000:]
    mid = snaps["mid"]
    _keep(tmp_path, "mid-80", mid)
    for word in ("digits-quick", "random/fifo", "done", "running", "completed",
                 "early-stopped", "failed", "elapsed", "ETA", "best val_loss", "trial",
                 "status", "epoch", "val_loss"):
        assert word in mid, (word, mid)
    _assert_clean(got.screen, 80)
    end = got.screen
    assert "digits-quick finished" in end and "5 completed" in end
    assert re.search(r"best val_loss: \d", end) and "records: MLflow" in end
    assert set(_statuses(tmp_path / "mlflow.db")) == {"FINISHED"}


AWKWARD = """\
name: '[wide] 幅の広い名前 [/] sweep'
trainable: _trainables:slow
method: random
metric: {name: loss}
run_cap: 14
max_concurrent: 2
seed: 3
hypothesis: 'brackets [/] and [bold] stay text'
expected: 'loss [/] better'
parameters:
  x: {min: 0.0, max: 1.0}
  a_rather_long_parameter_name_for_a_column: {values: ['[red]not markup[/]', 'ünïcödé 漢字漢字漢字漢字漢字漢字']}
  opt: {values: [adam]}
  epochs: {value: 2}
  pause: {value: 0.05}
"""


def test_awkward_names_and_many_trials_keep_the_layout_at_160_columns(tmp_path):
    """Brackets, wide characters, long values and more trials than rows: the layout holds."""
    (tmp_path / "awkward.yaml").write_text(AWKWARD)
    snaps: dict[str, str] = {}
    env = _tty.clean_env(PYTHONPATH=f"{ROOT}:{TESTS}")
    got = _tty.run([ORCH, "sweep", "awkward.yaml"], cwd=tmp_path, cols=160, env=env,
                   watch=_mid_sweep(snaps))
    _keep(tmp_path, "end-160", got.screen)
    assert got.status == 0, got.screen[-3000:]
    mid = snaps.get("mid", "")
    _keep(tmp_path, "mid-160", mid)
    assert "幅の広い名前" in mid and "[wide]" in mid, mid
    _assert_clean(got.screen, 160, markup=False)
    assert "[wide] 幅の広い名前 [/] sweep finished" in got.screen
    end = got.screen
    assert "… and" in end and "more trials" in end  # 14 trials, 12 rows
    assert "14 completed" in end
    assert "[red]not markup[/]" in end or "[red]not markup" in end  # shown as text
    # every table row of the live view is one line: the separators line up
    rows = [ln for ln in mid.splitlines() if ln.count("│") >= 4]
    columns = {tuple(cell_len(ln[:m.start()]) for m in re.finditer("│", ln)) for ln in rows}
    assert rows and len(columns) == 1, "\n".join(rows)  # in screen cells: 漢 takes two
    assert set(_statuses(tmp_path / "mlflow.db")) == {"FINISHED"}


def test_ctrl_c_in_a_terminal_stops_the_sweep_with_runs_closed(tmp_path):
    """Ctrl-C reaches the whole foreground process group, as in a real terminal."""
    spec = AWKWARD.replace("run_cap: 14", "run_cap: 30").replace("{value: 0.05}",
                                                                 "{value: 0.5}")
    spec = spec.replace("{value: 2}", "{value: 20}")
    (tmp_path / "long.yaml").write_text(spec)
    pressed: dict[str, str] = {}

    def press(text: str, child, session) -> None:
        if "mid" not in pressed and re.search(r"│\s*running\s*│", text):
            pressed["mid"] = text
            child.sendintr()  # the terminal's Ctrl-C: SIGINT to the foreground group

    env = _tty.clean_env(PYTHONPATH=f"{ROOT}:{TESTS}")
    got = _tty.run([ORCH, "sweep", "long.yaml"], cwd=tmp_path, cols=100, env=env,
                   watch=press, timeout=200)
    _keep(tmp_path, "ctrl-c", got.screen)
    assert "mid" in pressed, got.screen[-3000:]
    assert got.status == 130, (got.status, got.signal, got.screen[-3000:])
    assert "interrupted" in got.screen
    _assert_clean(got.screen, 100, markup=False)
    statuses = _statuses(tmp_path / "mlflow.db")
    assert "RUNNING" not in statuses, statuses


def test_validate_errors_and_ls_read_well_in_a_terminal(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("trainable: digits_mlp\nmethod: bayz\nmetric: {name: val_loss}\n"
                   "parameters:\n  lr: {distribution: log_uniform_values, min: 0, max: 1}\n")
    got = _tty.run([ORCH, "validate", str(bad)], cwd=tmp_path, cols=80, timeout=60)
    _keep(tmp_path, "validate", got.screen)
    assert got.status == 2
    _assert_clean(got.screen, 80)
    assert "invalid spec" in got.screen and "✗ method (line 2): unknown method" in got.screen

    empty = _tty.run([ORCH, "ls"], cwd=tmp_path, cols=80, timeout=60)
    assert empty.status == 0 and "no sweeps recorded" in empty.screen


def test_ls_fits_an_80_column_terminal_with_ids_whole(tmp_path, ray_session):
    import orchestrator
    from _trainables import quadratic

    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ids = []
    for name in ("a sweep with a rather long name [v2]", "short"):
        result = orchestrator.sweep(
            {"name": name, "method": "random", "metric": {"name": "loss"}, "run_cap": 2,
             "parameters": {"x": {"min": 0.0, "max": 1.0}, "epochs": {"value": 1}}},
            trainable=quadratic, tracking_uri=store, storage_path=str(tmp_path / "r"))
        ids.append(result.sweep_id)
    got = _tty.run([ORCH, "ls", "--tracking-uri", store], cwd=tmp_path, cols=80, timeout=60)
    _keep(tmp_path, "ls", got.screen)
    assert got.status == 0, got.screen
    _assert_clean(got.screen, 80)
    rows = [ln for ln in got.lines() if any(i in ln for i in ids)]
    assert len(rows) == 2 and all(i in got.screen for i in ids)  # one line each, ids whole
    assert "[v2]" in got.screen or any("…" in r for r in rows)


def test_lr_find_and_ablate_read_well_in_a_terminal(tmp_path):
    shutil.copytree(ROOT / "search_spaces", tmp_path / "search_spaces")
    found = _tty.run([ORCH, "lr-find", "search_spaces/quick.yaml", "--steps", "60"],
                     cwd=tmp_path, cols=80, timeout=200)
    _keep(tmp_path, "lr-find", found.screen)
    assert found.status == 0, found.screen[-3000:]
    _assert_clean(found.screen, 80)
    assert "suggested lr (steepest descent)" in found.screen
    assert "log_uniform_values" in found.screen

    ablated = _tty.run([ORCH, "ablate", "search_spaces/quick.yaml", "--quantiles", "2",
                        "--set", "parameters.epochs.value=2"], cwd=tmp_path, cols=80,
                       timeout=300)
    _keep(tmp_path, "ablate", ablated.screen)
    assert ablated.status == 0, ablated.screen[-3000:]
    _assert_clean(ablated.screen, 80)
    assert "one factor at a time" in ablated.screen
    table = [ln for ln in ablated.lines() if ln.count("│") >= 6]
    assert len(table) >= 3, ablated.screen[-3000:]  # lr x2, optimizer, width
