"""The spec: a table of good and bad specs, with the messages users should see."""

from __future__ import annotations

import copy
import subprocess
import sys
import time

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweepspec import DEFAULT_RUN_CAP, load_spec

BASE = {
    "trainable": "digits_mlp",
    "method": "random",
    "metric": {"name": "val_loss", "goal": "minimize"},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}},
}


def spec_with(**changes):
    data = copy.deepcopy(BASE)
    for dotted, value in changes.items():
        node = data
        *heads, last = dotted.split("__")
        for h in heads:
            node = node.setdefault(h, {})
        if value is DELETE:
            node.pop(last, None)
        else:
            node[last] = value
    return data


DELETE = object()


def problems(data) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(data)
    return [str(i) for i in info.value.issues]


# (description, spec changes, expected fragments of one issue: path, then message parts)
BAD = [
    ("unknown top key", {"paramters": {}}, "paramters", "unknown key", "did you mean 'parameters'"),
    ("unknown method", {"method": "bayz"}, "method", "unknown method 'bayz'", "did you mean 'bayes'"),
    ("bad goal", {"metric__goal": "minimise"}, "metric.goal", "'minimize' or 'maximize'", "minimise"),
    ("missing metric name", {"metric": {"goal": "maximize"}}, "metric.name", "required"),
    ("missing method", {"method": DELETE}, "method", "required"),
    ("missing trainable", {"trainable": DELETE}, "trainable", "required"),
    ("W&B program", {"trainable": DELETE, "program": "train.py"}, "program", "trainable:"),
    ("low > high", {"parameters": {"wd": {"min": 0.5, "max": 0.1}}},
     "parameters.wd.min", "min <= max", "min=0.5 > max=0.1"),
    ("log bound zero", {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 0,
                                              "max": 0.1}}},
     "parameters.lr.min", "log_uniform_values needs min > 0, got 0"),
    ("log bound negative", {"parameters": {"lr": {"distribution": "q_log_uniform_values",
                                                  "min": -1, "max": 1}}},
     "parameters.lr.min", "needs min > 0"),
    ("empty values", {"parameters": {"opt": {"values": []}}}, "parameters.opt.values",
     "non-empty"),
    ("probabilities sum", {"parameters": {"o": {"values": ["a", "b"], "probabilities": [0.5, 0.6]}}},
     "parameters.o.probabilities", "sum to 1", "1.1"),
    ("probabilities length", {"parameters": {"o": {"values": ["a", "b"], "probabilities": [1.0]}}},
     "parameters.o.probabilities", "one probability per value"),
    ("unknown distribution", {"parameters": {"d": {"distribution": "gaussian", "mu": 0}}},
     "parameters.d.distribution", "unknown distribution 'gaussian'"),
    ("no distribution inferable", {"parameters": {"d": {"mu": 0, "sigma": 1}}},
     "parameters.d", "cannot tell the distribution"),
    ("bare scalar parameter", {"parameters": {"x": 3}}, "parameters.x", "must be a mapping",
     "{value: 3}"),
    ("when names missing", {"parameters": {"m": {"min": 0.1, "max": 0.9,
                                                 "when": {"optimizer": "sgd"}}}},
     "parameters.m.when.optimizer", "does not exist"),
    ("when impossible value", {"parameters": {"o": {"values": ["sgd", "adam"]},
                                              "m": {"min": 0.1, "max": 0.9,
                                                    "when": {"o": "rmsprop"}}}},
     "parameters.m.when.o", "can never be 'rmsprop'"),
    ("when on continuous", {"parameters": {"lr": {"min": 0.1, "max": 0.2},
                                           "m": {"values": [1, 2], "when": {"lr": 0.15}}}},
     "parameters.m.when.lr", "continuous"),
    ("when cycle", {"parameters": {"a": {"values": [1, 2], "when": {"b": 1}},
                                   "b": {"values": [1, 2], "when": {"a": 1}}}},
     "parameters.", "cycle"),
    ("grid continuous", {"method": "grid"}, "parameters.lr", "grid needs discrete values",
     "log_uniform_values"),
    ("unknown early_terminate", {"early_terminate": {"type": "bohb"}},
     "early_terminate.type", "unknown early_terminate type 'bohb'"),
    ("grace > max_t", {"early_terminate": {"type": "asha", "grace_period": 10, "max_t": 5}},
     "early_terminate.max_t", "grace_period <= max_t"),
    ("eta <= 1", {"early_terminate": {"type": "hyperband", "min_iter": 1, "eta": 1}},
     "early_terminate.eta", "must be > 1"),
    ("reduction_factor <= 1", {"early_terminate": {"type": "asha", "reduction_factor": 0.5}},
     "early_terminate.reduction_factor", "must be > 1"),
    ("alias conflict", {"early_terminate": {"type": "asha", "max_t": 9, "max_iter": 10}},
     "early_terminate.max_iter", "same setting"),
    ("run_cap zero", {"run_cap": 0}, "run_cap", ">= 1"),
    ("run_cap vs num_samples", {"run_cap": 3, "num_samples": 4}, "num_samples", "same budget"),
    ("run_cap not int", {"run_cap": "ten"}, "run_cap", "valid integer", "'ten'"),
    ("cpu zero", {"resources": {"cpu": 0}}, "resources.cpu", "> 0"),
    ("gpu above one fractional", {"resources": {"gpu": 1.5}}, "resources.gpu", "fraction"),
    ("unknown resources key", {"resources": {"gpus": 1}}, "resources.gpus", "unknown key",
     "did you mean 'gpu'"),
    ("cv folds", {"cv": {"folds": 1}}, "cv.folds", "folds >= 2"),
    ("bad baseline id", {"baseline": "not-a-run"}, "baseline", "32 hex"),
    ("name with newline", {"name": "a\nb"}, "name", "line breaks", "one line"),
    ("q on uniform", {"parameters": {"x": {"distribution": "uniform", "min": 0, "max": 1,
                                           "q": 0.1}}},
     "parameters.x.q", "q_uniform"),
    ("int_uniform fraction", {"parameters": {"x": {"distribution": "int_uniform", "min": 0.5,
                                                   "max": 3}}},
     "parameters.x", "integer bounds"),
    ("sigma zero", {"parameters": {"x": {"distribution": "normal", "mu": 0, "sigma": 0}}},
     "parameters.x.sigma", "sigma > 0"),
    ("unused key", {"parameters": {"x": {"values": [1, 2], "min": 0}}},
     "parameters.x", "does not use 'min'"),
    ("bad trainable ref", {"trainable": "not a ref!"}, "trainable", "module:function"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_spec_is_reported_with_path_rule_and_fix(case):
    _, changes, path, *fragments = case
    found = problems(spec_with(**changes))
    matching = [p for p in found if p.startswith(path) and all(f in p for f in fragments)]
    assert matching, f"expected an issue at {path!r} with {fragments}; got:\n" + "\n".join(found)


def test_every_problem_is_reported_at_once():
    data = spec_with(method="bayz", metric__goal="up", run_cap=0,
                     parameters={"a": {"min": 2, "max": 1}, "b": {"values": []}})
    found = problems(data)
    for path in ("method", "metric.goal", "run_cap", "parameters.a.min", "parameters.b.values"):
        assert any(p.startswith(path) for p in found), (path, found)


def test_yaml_errors_carry_line_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("trainable: digits_mlp\nmethod: random\nmetric: {name: val_loss\n"
                    "parameters:\n  lr: {min: 1, max: 2}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.issues[0].line is not None
    assert "YAML syntax error" in str(info.value)


def test_semantic_errors_carry_line_numbers(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("trainable: digits_mlp\nmethod: random\nmetric: {name: val_loss}\n"
                    "parameters:\n  lr:\n    distribution: log_uniform_values\n"
                    "    min: 0\n    max: 1\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    (issue,) = info.value.issues
    assert (issue.path, issue.line) == ("parameters.lr.min", 7)
    assert "(line 7)" in str(info.value)


@pytest.mark.parametrize("text,fragment", [
    ("a: !!python/object/apply:os.system [echo hi]\n", "not allowed"),
    ("a: !!python/name:os.system\n", "not allowed"),
    ("a: 1\na: 2\n", "duplicate key"),
])
def test_unsafe_or_lossy_yaml_is_refused(text, fragment):
    with pytest.raises(SpecError, match=fragment):
        load_spec(text)


def test_alias_bomb_is_refused_quickly():
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, cur in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    started = time.perf_counter()
    with pytest.raises(SpecError, match="alias bomb"):
        load_spec("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 5


def test_huge_file_is_refused_before_parsing(tmp_path):
    path = tmp_path / "big.yaml"
    from orchestrator.sweepspec._yaml import MAX_SPEC_BYTES

    path.write_text("a: " + "x" * (MAX_SPEC_BYTES + 1) + "\n")
    with pytest.raises(SpecError, match="larger than|over the limit"):
        load_spec(path)


# ----------------------------------------------------------------------------- good specs


def test_wandb_inference_rules():
    s = load_spec(spec_with(parameters={
        "c": {"value": 3}, "cat": {"values": ["a", "b"]}, "i": {"min": 1, "max": 4},
        "f": {"min": 0.0, "max": 1.0}, "n": {"distribution": "normal", "mu": 1, "sigma": 2},
    }))
    kinds = {p.name: p.distribution for p in s.parameters}
    assert kinds == {"c": "constant", "cat": "categorical", "i": "int_uniform", "f": "uniform",
                     "n": "normal"}
    assert s.parameter("i").min == 1 and isinstance(s.parameter("i").min, int)


def test_nested_parameters_become_dotted_names():
    s = load_spec(spec_with(parameters={
        "model": {"parameters": {"width": {"values": [32, 64]},
                                 "act": {"values": ["relu", "tanh"],
                                         "when": {"width": 64}}}}}))
    assert [p.name for p in s.parameters] == ["model.width", "model.act"]
    assert s.parameter("model.act").when == (("model.width", (64,)),)


def test_defaults_and_aliases():
    s = load_spec(spec_with(early_terminate={"type": "asha", "min_iter": 2, "max_iter": 9,
                                             "eta": 2}))
    et = s.early_terminate
    assert (et.type, et.grace_period, et.max_t, et.reduction_factor) == ("asha", 2, 9, 2.0)
    assert et.rungs == (2, 4, 8)
    s = load_spec(spec_with(early_terminate={"type": "hyperband", "min_iter": 2, "max_iter": 9,
                                             "eta": 2}))
    et = s.early_terminate
    assert (et.type, et.requested_as, et.max_t, et.rungs) == ("asha", "hyperband", None, (2, 4))
    assert any("on Ray's ASHA" in n and "[2, 4]" in n for n in s.notes)
    assert s.run_cap == DEFAULT_RUN_CAP and s.run_cap_defaulted
    assert s.experiment == s.name == "sweep"
    assert load_spec(spec_with(num_samples=7)).run_cap == 7


def test_grid_budget_is_grid_size_unless_run_cap_smaller():
    params = {"a": {"values": [1, 2, 3]}, "b": {"distribution": "int_uniform", "min": 0, "max": 1},
              "c": {"distribution": "q_uniform", "min": 0, "max": 1, "q": 0.5}}
    assert load_spec(spec_with(method="grid", parameters=params)).run_cap == 18
    assert load_spec(spec_with(method="grid", parameters=params, run_cap=5)).run_cap == 5


def test_overrides_apply_dotted_keys_before_validation():
    s = load_spec(BASE, overrides=["run_cap=3", "parameters.lr.max=0.5", "metric.goal=maximize",
                                   "seed=7"])
    assert (s.run_cap, s.parameter("lr").max, s.metric.goal, s.seed) == (3, 0.5, "maximize", 7)
    with pytest.raises(SpecError, match="key=value"):
        load_spec(BASE, overrides=["run_cap"])
    with pytest.raises(SpecError, match="parameters.lr.min"):
        load_spec(BASE, overrides=["parameters.lr.min=0"])


def test_wandb_file_runs_with_program_replaced(tmp_path):
    path = tmp_path / "wandb.yaml"
    path.write_text(
        "program: train.py\nmethod: bayes\nmetric:\n  name: val_loss\n  goal: minimize\n"
        "entity: me\nproject: digits\ncommand: [python, train.py]\n"
        "parameters:\n  lr:\n    distribution: log_uniform_values\n    min: 0.0001\n"
        "    max: 0.1\n  optimizer:\n    values: [adam, sgd]\n    probabilities: [0.7, 0.3]\n"
        "early_terminate:\n  type: hyperband\n  min_iter: 3\n")
    with pytest.raises(SpecError, match="trainable"):
        load_spec(path)
    text = path.read_text().replace("program: train.py", "trainable: digits_mlp")
    path.write_text(text)
    s = load_spec(path)
    assert s.experiment == "digits"  # W&B's project names the experiment
    assert s.method == "bayes" and s.early_terminate.grace_period == 3
    assert any("probabilities" in n for n in s.notes)  # honoured by random only


def test_gp_and_cmaes_say_conditionals_are_sampled_at_random():
    params = {"o": {"values": ["a", "b"]}, "m": {"min": 0.0, "max": 1.0, "when": {"o": "a"}}}
    for method in ("gp", "cmaes"):
        s = load_spec(spec_with(method=method, parameters=params))
        assert any("sampled at random" in n for n in s.notes)
    assert not load_spec(spec_with(method="tpe", parameters=params)).notes


def test_spec_is_frozen():
    s = load_spec(BASE)
    with pytest.raises(AttributeError):
        s.run_cap = 3  # type: ignore[misc]


def test_example_specs_validate():
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "search_spaces"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 4
    for f in files:
        load_spec(f)


def test_parsing_imports_neither_ray_nor_mlflow():
    code = ("import sys; from orchestrator.sweepspec import load_spec; "
            "load_spec('search_spaces/tpe_asha.yaml'); "
            "import orchestrator.cli; "
            "print([m for m in ('ray', 'mlflow', 'torch') if m in sys.modules])")
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "[]"
