"""Every bad input gets a clear error and loses nothing: one table, run as a user would.

Each case is a spec (and maybe `--set` values) that once passed `orch validate` and
then crashed, hung or did something it should not. Now each must end at validate
with the exit status, the words that say what is wrong, no traceback, no markup,
and no file written anywhere in the working folder but the spec itself.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.errors import SpecError
from orchestrator.sweepspec import SweepSpec, load_spec

runner = CliRunner()

BASE = """\
trainable: digits_mlp
method: {method}
metric: {{name: val_loss}}
seed: {seed}
parameters:
  lr: {lr}
  optimizer: {opt}
"""
GOOD = dict(method="random", seed=0, lr="{min: 0.001, max: 0.1}",
            opt="{values: [adam, sgd]}")


def spec(**changes) -> str:
    return BASE.format(**{**GOOD, **changes})


BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}]\n" for i in range(7))

# (id, spec text, --set values, exit status, words the output must contain)
CASES = [
    ("subprocess.run", spec().replace("digits_mlp", "subprocess:run"), [], 2,
     ["standard library", "subprocess"]),
    ("subprocess.Popen", spec().replace("digits_mlp", "subprocess:Popen"), [], 2,
     ["standard library"]),
    ("subprocess.getoutput", spec().replace("digits_mlp", "subprocess.getoutput"), [], 2,
     ["standard library"]),
    ("os.system", spec().replace("digits_mlp", "os:system"), [], 2, ["standard library"]),
    ("builtins.eval", spec().replace("digits_mlp", "builtins:eval"), [], 2,
     ["standard library"]),
    ("nan bound", spec(lr="{min: .nan, max: 0.1}"), [], 2, ["parameters.lr.min", "finite"]),
    ("inf bound", spec(lr="{min: 0.001, max: .inf}"), [], 2, ["parameters.lr.max", "finite"]),
    ("nan q", spec(lr="{distribution: q_uniform, min: 0, max: 1, q: .nan}"), [], 2,
     ["parameters.lr.q", "finite"]),
    ("seed -1", spec(seed=-1), [], 2, ["seed", "4294967295"]),
    ("seed 2**32", spec(seed=2**32), [], 2, ["seed", "4294967295"]),
    ("nan reduction", spec() + "early_terminate: {type: asha, reduction_factor: .nan}\n", [], 2,
     ["early_terminate.reduction_factor", "finite"]),
    ("nan mu", spec(lr="{distribution: normal, mu: .nan, sigma: 1}"), [], 2,
     ["parameters.lr.mu", "finite"]),
    ("inf sigma", spec(lr="{distribution: normal, mu: 0, sigma: .inf}"), [], 2,
     ["parameters.lr.sigma", "finite"]),
    ("nan probabilities", spec(opt="{values: [adam, sgd], probabilities: [.nan, .nan]}"), [], 2,
     ["probabilities", "finite"]),
    ("nan cpu", spec() + "resources: {cpu: .nan}\n", [], 2, ["resources.cpu", "finite"]),
    ("1e400", spec(lr="{min: 0.001, max: 1e400}"), [], 2, ["parameters.lr.max", "finite"]),
    ("--set circular", spec(), ["parameters.optimizer.values=&a [1, *a]"], 2,
     ["--set parameters.optimizer.values", "nests"]),
    ("--set alias bomb", spec(), ["description=" + BOMB.replace("\n", "\n")], 2,
     ["--set description", "alias bomb"]),
    ("list spec with --set", "- a\n- b\n", ["run_cap=2"], 2, ["must be a YAML mapping"]),
    ("free-text expected with brackets", spec() + "expected: 'val_acc [/] better'\n", [], 0,
     ["[/]"]),
    ("1e-5 is a number", spec(lr="{distribution: log_uniform_values, min: 1e-5, max: 5e-3}"),
     [], 0, ["1e-5 read as the number 1e-05"]),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_each_bad_input_ends_at_validate_with_a_clear_error(case, tmp_path, monkeypatch):
    _, text, sets, status, words = case
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(text)
    args = ["validate", "spec.yaml"] + [a for s in sets for a in ("--set", s)]
    result = runner.invoke(app, args)
    out = result.output
    assert result.exit_code == status, out
    assert "Traceback" not in out and "[red]" not in out
    for word in words:
        assert word in out, (word, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spec.yaml"]  # nothing written


def test_a_baseline_run_that_does_not_exist_is_refused_before_ray_starts(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(spec() + "baseline: " + "0a" * 16 + "\n")
    import sys

    before = "ray" in sys.modules
    result = runner.invoke(app, ["sweep", "spec.yaml", "--no-tracking", "--no-live"])
    assert result.exit_code == 4, result.output
    assert "baseline" in result.output and "point --tracking-uri" in result.output
    assert ("ray" in sys.modules) == before  # refused before Ray was even imported


def test_a_one_megabyte_spec_is_a_spec():
    values = ", ".join(f"v{i:06d}" for i in range(80_000))
    text = spec(opt=f"{{values: [{values}]}}")
    assert len(text) > 640_000
    loaded = load_spec(text)
    assert len(loaded.parameter("optimizer").values) == 80_000


# ---------------------------------------------------------------------------- the loader

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10, 2**40),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12))
KEYS = st.sampled_from(["trainable", "method", "metric", "parameters", "name", "seed",
                        "run_cap", "early_terminate", "baseline", "cv", "resources", "values",
                        "min", "max", "q", "distribution", "value", "when", "goal", "type",
                        "probabilities", "mu", "sigma", "from", "x", "lr"])
DOCS = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(KEYS, inner, max_size=6)),
                    max_leaves=25)


@settings(max_examples=300, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(doc=DOCS)
def test_any_document_is_a_spec_or_a_spec_error(doc):
    try:
        assert isinstance(load_spec(doc if isinstance(doc, dict) else {"x": doc}), SweepSpec)
    except SpecError as exc:
        assert exc.issues and all(str(i) for i in exc.issues)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(text=st.text(alphabet=st.sampled_from(list("abc:[]{}&*!-_ .,\n'\"#|>%@`\\1e5")),
                    max_size=80))
def test_any_text_is_a_spec_or_a_spec_error(text):
    try:
        load_spec(text + "\n")
    except SpecError as exc:
        assert exc.issues


def test_a_spec_file_is_read_only(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(textwrap.dedent(spec()))
    before = path.stat().st_mtime_ns
    load_spec(Path(path))
    assert path.stat().st_mtime_ns == before
