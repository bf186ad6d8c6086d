"""W&B sweep files, run through `orch validate` as a W&B user would run them.

Each file in ``tests/conformance/wandb/`` states what W&B users expect in its first
comment lines: ``# expect: accept``, ``warning`` or ``reject``, and ``# look-for: WORDS``
that the output must contain. ``program:`` is replaced by ``trainable: digits_mlp`` (or
that line is added), as the README says. The files are the shared conformance sample
(``../shared/conformance/wandb``, copied here so the suite runs without it) and files
written from W&B's documentation and the wandb/sweeps examples.

Where the shared runner exists (``../shared/conformance/run-wandb``), it is run too, on
its own sample and on these files: the same verdict from the outside.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.cli import app

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent / "wandb"
SHARED = ROOT.parent / "shared" / "conformance"
FILES = sorted(p for p in HERE.iterdir() if p.suffix in (".yaml", ".yml"))
MARKUP = re.compile(r"\[/?(red|green|yellow|bold|dim)?[^\]]*\]\S*\[/\]|\[red\]|\[/\]")


def as_orch_file(text: str) -> str:
    """W&B's `program:` becomes `trainable: digits_mlp` (or that line is added)."""
    if re.search(r"^program:", text, re.M):
        return re.sub(r"^program:.*$", "trainable: digits_mlp", text, count=1, flags=re.M)
    if not re.search(r"^trainable:", text, re.M):
        return "trainable: digits_mlp\n" + text
    return text


def expectation(text: str) -> tuple[str, list[str]]:
    found = re.search(r"^# expect: (\w+)", text, re.M)
    looks = [w.strip() for w in re.findall(r"^# look-for: (.+)$", text, re.M)]
    return (found[1] if found else "accept"), looks


def test_the_sample_holds_the_shared_files_and_more():
    assert len(FILES) >= 30
    if SHARED.is_dir():
        shared = {p.name for p in (SHARED / "wandb").glob("*.yaml")}
        assert shared <= {p.name for p in FILES}, "copy new shared files into " + str(HERE)


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_wandb_file_gets_what_wandb_users_expect(path, tmp_path, monkeypatch):
    text = path.read_text(encoding="utf-8")
    expect, looks = expectation(text)
    spec = tmp_path / path.name
    spec.write_text(as_orch_file(text), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["validate", str(spec)])
    out = result.output
    unexpected = result.exception if not isinstance(result.exception, SystemExit) else None
    assert unexpected is None, f"{type(unexpected).__name__}: {unexpected}\n{out}"
    assert "Traceback" not in out and not MARKUP.search(out), out
    if expect in ("accept", "warning"):
        assert result.exit_code == 0, out
    else:
        assert result.exit_code == 2, out
    for word in looks:
        assert word.lower() in out.lower(), (word, out)


@pytest.mark.parametrize("folder", [None, HERE], ids=["shared sample", "these files"])
def test_the_shared_runner_passes(folder):
    runner = SHARED / "run-wandb"
    if not runner.is_file():
        pytest.skip(f"{runner} is not here (a machine without ../shared)")
    orch = shutil.which("orch") or str(Path(sys.executable).parent / "orch")
    args = [sys.executable, str(runner), *([str(folder)] if folder else []), "--orch", orch]
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0 and " 0 failed" in done.stdout, done.stdout + done.stderr
