"""W&B sweep files as W&B documents them (issue 15, items 1-12), and the spec keys that
go beyond W&B (stop, time_budget_s, metric_constraints, pbt): tables of what is
accepted, what is refused, and the words the user sees. No Ray."""

from __future__ import annotations

import copy
import re

import pytest

from orchestrator.errors import SpecError
from orchestrator.sweepspec import PBT, Metric, load_spec

BASE = {
    "trainable": "digits_mlp",
    "method": "random",
    "metric": {"name": "val_loss", "goal": "minimize"},
    "parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-4, "max": 1e-1}},
}


def spec(**changes):
    data = copy.deepcopy(BASE)
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def issues_of(data, **kw) -> list[str]:
    with pytest.raises(SpecError) as info:
        load_spec(data, **kw)
    return [str(i) for i in info.value.issues]


def assert_issue(found: list[str], path: str, *fragments: str) -> None:
    ok = [p for p in found if p.startswith(path) and all(f in p for f in fragments)]
    assert ok, f"no issue at {path!r} with {fragments}; got:\n" + "\n".join(found)


# ------------------------------------------------------------------ 1. dotted parameter names

DOTTED = {"model.lr": {"distribution": "log_uniform_values", "min": 1e-5, "max": 1e-2},
          "model.dropout": {"values": [0.0, 0.1]}, "trainer.max_epochs": {"value": 10}}
NESTED = {"model": {"parameters": {"lr": {"distribution": "log_uniform_values", "min": 1e-5,
                                          "max": 1e-2},
                                   "dropout": {"values": [0.0, 0.1]}}},
          "trainer": {"parameters": {"max_epochs": {"value": 10}}}}


def test_dotted_names_are_the_same_parameters_as_nested_ones():
    dotted, nested = load_spec(spec(parameters=DOTTED)), load_spec(spec(parameters=NESTED))
    assert [p.name for p in dotted.parameters] == ["model.lr", "model.dropout",
                                                   "trainer.max_epochs"]
    assert dotted.parameters == nested.parameters


def test_dotted_names_give_the_trainable_a_nested_config():
    import optuna

    from orchestrator.engine._sampling import OptunaSpace, make_sampler
    from orchestrator.sweepspec import nest

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    for params in (DOTTED, NESTED):
        s = load_spec(spec(parameters=params, seed=3))
        study = optuna.create_study(sampler=make_sampler(s))
        config = nest(OptunaSpace(s.parameters, method=s.method)(study.ask()), sep="/")
        assert set(config) == {"model", "trainer"}
        assert 1e-5 <= config["model"]["lr"] <= 1e-2
        assert config["model"]["dropout"] in (0.0, 0.1)
        assert config["trainer"] == {"max_epochs": 10}


@pytest.mark.parametrize("params", [DOTTED, NESTED], ids=["dotted", "nested"])
def test_set_reaches_a_parameter_whichever_way_it_is_spelled(params):
    s = load_spec(spec(parameters=params), overrides=["parameters.model.lr.max=0.1",
                                                      "parameters.trainer.max_epochs.value=3"])
    assert s.parameter("model.lr").max == 0.1
    assert s.parameter("trainer.max_epochs").value == 3


def test_set_still_takes_the_explicit_group_path_and_adds_new_parameters():
    s = load_spec(spec(parameters=NESTED), overrides=[
        "parameters.model.parameters.lr.min=0.001", "parameters.model.width.values=[32, 64]"])
    assert s.parameter("model.lr").min == 0.001
    assert s.parameter("model.width").values == (32, 64)


DOTTED_BAD = [
    ("empty part", {"a..b": {"value": 1}}, "parameters.a..b", "not allowed"),
    ("trailing dot", {"a.": {"value": 1}}, "parameters.a.", "not allowed"),
    ("leading dot", {".a": {"value": 1}}, "parameters..a", "not allowed"),
    ("slash", {"a/b": {"value": 1}}, "parameters.a/b", "not allowed"),
    ("twice", {"model.lr": {"value": 1}, "model": {"parameters": {"lr": {"value": 2}}}},
     "parameters.model.parameters.lr", "defined twice"),
    ("value and group", {"model": {"value": 1}, "model.lr": {"value": 2}},
     "parameters.model.lr", "'model' is a parameter", "rename"),
]


@pytest.mark.parametrize("case", DOTTED_BAD, ids=[c[0] for c in DOTTED_BAD])
def test_dotted_names_that_cannot_be_a_config_are_refused(case):
    _, params, path, *fragments = case
    assert_issue(issues_of(spec(parameters=params)), path, *fragments)


# ------------------------------------------------------------------ 3. metric optional

@pytest.mark.parametrize("method", ["grid", "random"])
def test_grid_and_random_run_without_a_metric(method):
    s = load_spec(spec(method=method, metric=None,
                       parameters={"opt": {"values": ["adam", "sgd"]}}))
    assert s.metric is None and s.metrics == ()
    assert any("no best trial" in n for n in s.notes)


NEEDS_METRIC = [
    ("bayes", {"method": "bayes"}, "metric", "learns from a metric"),
    ("tpe", {"method": "tpe"}, "metric", "learns from a metric"),
    ("gp", {"method": "gp"}, "metric", "learns from a metric"),
    ("cmaes", {"method": "cmaes"}, "metric", "learns from a metric"),
    ("pbt", {"method": "pbt"}, "metric", "learns from a metric"),
    ("early stopping", {"early_terminate": {"type": "hyperband", "min_iter": 3}}, "metric",
     "early stopping compares trials"),
]


@pytest.mark.parametrize("case", NEEDS_METRIC, ids=[c[0] for c in NEEDS_METRIC])
def test_a_metric_is_required_where_something_learns_from_it(case):
    _, changes, path, fragment = case
    found = issues_of({**spec(metric=None), **changes})
    assert_issue(found, path, fragment, "add e.g. metric:")


# ------------------------------------------------------------------ 4. W&B keys orch does not use

def test_wandb_keys_without_meaning_here_are_accepted_with_a_note():
    extra = {"controller": {"type": "local"}, "job": "me/proj/job-train:latest",
             "queue": "gpu-queue", "image_uri": "docker.io/me/train:1", "apiVersion": "v1",
             "kind": "sweep", "scheduler": {"job": "x", "num_workers": 2}, "entity": "me",
             "command": ["${env}", "python", "${program}", "${args}"],
             "description": "from W&B", "launch": {"queue": "q"}}
    s = load_spec({**BASE, **extra})
    for key in extra:
        if key != "description":
            assert any(f"`{key}:`" in n for n in s.notes), key
    assert s.description == "from W&B"


def test_method_custom_is_refused_with_the_method_to_use():
    found = issues_of(spec(method="custom", scheduler={"engine": "optuna"}))
    assert_issue(found, "method", "custom", "use method tpe")


# ------------------------------------------------------------------ 5. distributions

def test_every_distribution_wandb_documents_is_accepted():
    params = {
        "c": {"distribution": "constant", "value": 2.71828},
        "cat": {"distribution": "categorical", "values": ["elu", "relu"]},
        "cwp": {"distribution": "categorical_w_probabilities", "values": [1, 2, 3],
                "probabilities": [0.5, 0.3, 0.2]},
        "i": {"distribution": "int_uniform", "min": 1, "max": 4},
        "u": {"distribution": "uniform", "min": 0, "max": 1},
        "qu": {"distribution": "q_uniform", "min": 0, "max": 256, "q": 1},
        "lu": {"distribution": "log_uniform", "min": -9.2, "max": -2.3},
        "luv": {"distribution": "log_uniform_values", "min": 1e-4, "max": 0.1},
        "qlu": {"distribution": "q_log_uniform", "min": 2, "max": 6, "q": 2},
        "qluv": {"distribution": "q_log_uniform_values", "min": 32, "max": 256, "q": 8},
        "ilu": {"distribution": "inv_log_uniform", "min": 0, "max": 7},
        "iluv": {"distribution": "inv_log_uniform_values", "min": 0.1, "max": 10},
        "n": {"distribution": "normal", "mu": 100, "sigma": 10},
        "qn": {"distribution": "q_normal", "mu": 0, "sigma": 1, "q": 0.5},
        "ln": {"distribution": "log_normal", "mu": 0, "sigma": 1},
        "qln": {"distribution": "q_log_normal", "mu": 0, "sigma": 1},
        "be": {"distribution": "beta", "a": 8, "b": 2},
        "qbe": {"distribution": "q_beta", "a": 2, "b": 8, "q": 0.05},
    }
    s = load_spec(spec(parameters=params))
    assert s.parameter("cwp").distribution == "categorical"
    assert s.parameter("cwp").probabilities == (0.5, 0.3, 0.2)
    assert (s.parameter("be").a, s.parameter("be").b) == (8, 2)
    assert s.parameter("qln").q == 1.0  # W&B: q defaults to 1
    assert (s.parameter("iluv").min, s.parameter("iluv").max) == (0.1, 10)


HINTS = [  # (written, suggested or None): a hint only for a clear typo
    ("inv_log_uniform_value", "inv_log_uniform_values"),
    ("log_unifrom", "log_uniform"),
    ("LogUniform", "log_uniform"),
    ("log-uniform-values", "log_uniform_values"),
    ("lognormal", "log_normal"),
    ("categorical_w_probability", "categorical_w_probabilities"),
    ("inv_uniform", None),  # not int_uniform: inv and int mean different things
    ("gaussian", None),
    ("q_log_uniform_value", "q_log_uniform_values"),
    ("inv_normal", None),
    ("betta", "beta"),
    ("inv_log_normal", None),  # no such distribution: not log_normal, not inv_log_uniform
    ("qbeta", "q_beta"),
    ("q_bta", None),  # words under four letters must match exactly
]


@pytest.mark.parametrize("written,hint", HINTS, ids=[h[0] for h in HINTS])
def test_unknown_distribution_hint_never_proposes_other_semantics(written, hint):
    found = issues_of(spec(parameters={"x": {"distribution": written, "min": 1, "max": 2}}))
    (line,) = [f for f in found if f.startswith("parameters.x.distribution")]
    assert f"unknown distribution {written!r}" in line
    if hint is None:
        assert "did you mean" not in line and "valid distributions" in line
    else:
        assert f"did you mean {hint!r}?" in line


BAD_DISTRIBUTIONS = [
    ("beta a zero", {"distribution": "beta", "a": 0, "b": 2}, "parameters.x.a", "a > 0"),
    ("w_probabilities without them", {"distribution": "categorical_w_probabilities",
                                      "values": [1, 2]}, "parameters.x", "needs `probabilities`"),
    ("inv values bound zero", {"distribution": "inv_log_uniform_values", "min": 0, "max": 1},
     "parameters.x.min", "needs min > 0"),
    ("beta with min", {"distribution": "beta", "min": 0, "max": 1}, "parameters.x",
     "does not use 'max', 'min'"),
    ("q on beta", {"distribution": "beta", "q": 0.1}, "parameters.x.q", "q_beta"),
]


@pytest.mark.parametrize("case", BAD_DISTRIBUTIONS, ids=[c[0] for c in BAD_DISTRIBUTIONS])
def test_new_distributions_check_their_own_keys(case):
    _, body, path, *fragments = case
    assert_issue(issues_of(spec(parameters={"x": body})), path, *fragments)


# ------------------------------------------------------------------ 6. impute

def test_impute_settings_are_kept_on_the_metric():
    s = load_spec(spec(method="bayes", metric={"name": "val_loss", "impute": "worst",
                                               "impute_while_running": False}))
    assert (s.metric.impute, s.metric.impute_while_running) == ("worst", None)
    s = load_spec(spec(metric={"name": "val_loss", "impute": "best",
                               "impute_while_running": "latest"}))
    assert (s.metric.impute, s.metric.impute_while_running) == ("best", "latest")
    assert load_spec(BASE).metric.impute == "worst"  # W&B's default
    assert_issue(issues_of(spec(metric={"name": "l", "impute": "mean"})), "metric.impute",
                 "'latest', 'best' or 'worst'")
    assert_issue(issues_of(spec(metric={"name": "l", "impute_while_running": True})),
                 "metric.impute_while_running", "latest, best, worst or false")


# ------------------------------------------------------------------ 8. log_uniform bounds

@pytest.mark.parametrize("dist,low,high", [("log_uniform", "1.0001", "1.105"),
                                           ("q_log_uniform", "1.0001", "1.105"),
                                           ("inv_log_uniform", "0.9048", "0.9999")])
def test_value_like_exponent_bounds_validate_with_a_warning(dist, low, high):
    s = load_spec(spec(parameters={"lr": {"distribution": dist, "min": 0.0001, "max": 0.1}}))
    (note,) = [n for n in s.notes if n.startswith("parameters.lr")]
    assert f"{dist}_values" in note and low in note and high in note


def test_exponent_bounds_that_look_like_exponents_give_no_warning():
    s = load_spec(spec(parameters={"lr": {"distribution": "log_uniform", "min": -9.2,
                                          "max": -2.3}}))
    assert not [n for n in s.notes if n.startswith("parameters.lr")]


# ------------------------------------------------------------------ 10. names

def test_a_file_without_name_is_named_after_the_file(tmp_path):
    path = tmp_path / "pointnet sweep (1).yaml"
    path.write_text("trainable: digits_mlp\nmethod: random\nmetric: {name: val_loss}\n"
                    "parameters:\n  lr: {min: 0.001, max: 0.1}\n")
    s = load_spec(path)
    assert (s.name, s.slug) == ("pointnet sweep (1)", "pointnet-sweep-1")
    s = load_spec(spec(name="ResNet-50: lr sweep (v2)"))
    assert (s.name, s.slug) == ("ResNet-50: lr sweep (v2)", "ResNet-50-lr-sweep-v2")


# ------------------------------------------------------------------ 11. messages

TYPE_FIXES = [
    ("quoted exponent", spec(parameters={"lr": {"min": "1e-5", "max": 0.1}}),
     "parameters.lr.min", "got '1e-5'", "without quotes: min: 1e-05"),
    ("fraction for int", spec(run_cap=5.1), "run_cap", "got 5.1", "whole number", "run_cap: 5"),
    ("quoted int", spec(seed="7"), "seed", "got '7'", "without quotes: seed: 7"),
    ("text for bool", spec(cv={"folds": 5, "stratify": "yes"}), "cv.stratify",
     "true or false"),
    ("number for text", spec(hypothesis=3), "hypothesis", "write text"),
    ("list for mapping", spec(resources=[1, 2]), "resources", "write a mapping"),
]


@pytest.mark.parametrize("case", TYPE_FIXES, ids=[c[0] for c in TYPE_FIXES])
def test_type_errors_say_what_to_write_instead(case):
    _, data, path, *fragments = case
    assert_issue(issues_of(data), path, *fragments)


def test_unknown_key_lists_keys_as_written_and_messages_carry_no_markup():
    found = issues_of(spec(parameters={"lr": {"zzz": 1, "min": 0.1, "max": 0.2}}))
    (line,) = [f for f in found if "unknown key 'zzz'" in f]
    assert "from" in line and "from_" not in line
    assert_issue(issues_of(spec(parameters={"lr": {"fromm": "lr_find"}})), "parameters.lr",
                 "did you mean 'from'?")
    text = "\n".join(found)
    assert not re.search(r"\[/?(red|bold|yellow|green|dim)?\]", text)


# ------------------------------------------------------------------ 12. metrics: several objectives

TWO = [{"name": "val_loss", "goal": "minimize"}, {"name": "n_params", "goal": "minimize"}]


@pytest.mark.parametrize("method", ["tpe", "bayes", "random", "grid", "gp"])
def test_metrics_list_gives_every_objective_and_metric_is_the_first(method):
    s = load_spec(spec(metric=None, metrics=TWO, method=method,
                       parameters={"w": {"values": [16, 32]}}))
    assert s.metrics == (Metric("val_loss", "minimize"), Metric("n_params", "minimize"))
    assert s.metric == s.metrics[0] and s.multi_objective


def test_early_stopping_with_several_objectives_says_it_judges_the_first():
    s = load_spec(spec(metric=None, metrics=TWO, method="tpe",
                       early_terminate={"type": "hyperband", "min_iter": 3}))
    assert any("judges the first metric, val_loss" in n for n in s.notes)
    assert load_spec(BASE).metrics == (load_spec(BASE).metric,)


METRICS_BAD = [
    ("both forms", {"metrics": TWO}, "metrics", "exclude each other"),
    ("one objective", {"metric": None, "metrics": TWO[:1]}, "metrics", "two or more"),
    ("not a list", {"metric": None, "metrics": {"name": "x"}}, "metrics", "two or more"),
    ("twice", {"metric": None, "metrics": [TWO[0], TWO[0]]}, "metrics", "listed twice"),
    ("cmaes", {"metric": None, "metrics": TWO, "method": "cmaes"}, "metrics",
     "CmaEsSampler is single-objective", "use method tpe"),
    ("pbt", {"metric": None, "metrics": TWO, "method": "pbt"}, "metrics", "one metric"),
    ("bad item", {"metric": None, "metrics": [TWO[0], {"goal": "up"}]}, "metrics[1]",
     "name"),
    ("target", {"metric": None, "metrics": [TWO[0], {**TWO[1], "target": 1}]},
     "metrics[1].target", "several objectives"),
]


@pytest.mark.parametrize("case", METRICS_BAD, ids=[c[0] for c in METRICS_BAD])
def test_metrics_list_is_checked(case):
    _, changes, path, *fragments = case
    assert_issue(issues_of(spec(**changes)), path, *fragments)


# ------------------------------------------------------------------ stop, time budget, constraints

def test_stop_time_budget_and_constraints_are_typed():
    s = load_spec(spec(stop={"training_iteration": 10, "val_acc": 0.98, "time_total_s": 600},
                       time_budget_s=3600,
                       metric_constraints=["n_params <= 50000", "latency_ms < 5"]))
    assert s.stop == (("training_iteration", 10), ("val_acc", 0.98), ("time_total_s", 600))
    assert isinstance(s.stop[0][1], int) and s.time_budget_s == 3600.0
    assert [(r.metric, r.op, r.value) for r in s.metric_constraints] == [
        ("n_params", "<=", 50000.0), ("latency_ms", "<", 5.0)]
    s = load_spec(spec(stop={"val_loss": 2.0}))  # the sweep minimizes val_loss
    assert any("stop.val_loss" in n and "metric.target" in n for n in s.notes)


RUN_BAD = [
    ("stop not a mapping", {"stop": 10}, "stop", "threshold", "training_iteration: 10"),
    ("stop fractional iterations", {"stop": {"training_iteration": 2.5}},
     "stop.training_iteration", "whole number"),
    ("stop text", {"stop": {"val_acc": "high"}}, "stop.val_acc", "a number"),
    ("stop negative seconds", {"stop": {"time_total_s": -1}}, "stop.time_total_s", "> 0"),
    ("stop bad name", {"stop": {"../x": 1}}, "stop.../x", "not a metric name"),
    ("time budget zero", {"time_budget_s": 0}, "time_budget_s", "seconds > 0"),
    ("constraint free text", {"metric_constraints": ["small model please"]},
     "metric_constraints[0]", "not a rule"),
    ("constraint on the baseline", {"metric_constraints": ["n_params <= baseline"]},
     "metric_constraints[0]", "compares with the baseline"),
    ("constraint not a list", {"metric_constraints": "n_params <= 5"}, "metric_constraints",
     "list of rules"),
    ("constraint not text", {"metric_constraints": [5]}, "metric_constraints[0]", "not a rule"),
]


@pytest.mark.parametrize("case", RUN_BAD, ids=[c[0] for c in RUN_BAD])
def test_stop_budget_and_constraints_are_checked(case):
    _, changes, path, *fragments = case
    assert_issue(issues_of(spec(**changes)), path, *fragments)


def test_constraints_never_evaluate_code():
    found = issues_of(spec(metric_constraints=["__import__('os').system('true') <= 1"]))
    assert_issue(found, "metric_constraints[0]", "not a rule")


# ------------------------------------------------------------------ population-based training

def test_pbt_and_pb2_take_their_section_with_defaults():
    s = load_spec(spec(method="pbt"))
    assert s.pbt == PBT() and s.scheduler_name == "pbt"
    s = load_spec(spec(method="pb2", pbt={"interval": 2, "quantile": 0.5}))
    assert (s.pbt.interval, s.pbt.quantile) == (2, 0.5)
    assert load_spec(BASE).pbt is None


PBT_BAD = [
    ("interval zero", {"method": "pbt", "pbt": {"interval": 0}}, "pbt.interval", ">= 1 epoch"),
    ("quantile above half", {"method": "pbt", "pbt": {"quantile": 0.6}}, "pbt.quantile",
     "(0, 0.5]"),
    ("quantile zero", {"method": "pbt", "pbt": {"quantile": 0}}, "pbt.quantile", "(0, 0.5]"),
    ("resample above one", {"method": "pbt", "pbt": {"resample_probability": 1.5}},
     "pbt.resample_probability", "[0, 1]"),
    ("pb2 resample", {"method": "pb2", "pbt": {"resample_probability": 0.2}},
     "pbt.resample_probability", "pb2"),
    ("pb2 categorical", {"method": "pb2", "parameters": {
        "lr": {"min": 0.001, "max": 0.1}, "opt": {"values": ["adam", "sgd"]}}},
     "parameters.opt", "numeric ranges", "method pbt"),
    ("pb2 no range", {"method": "pb2", "parameters": {"opt": {"values": ["adam", "sgd"]}}},
     "parameters", "numeric range"),
    ("section without pbt", {"pbt": {"interval": 2}}, "pbt", "method pbt or pb2"),
    ("early stopping", {"method": "pbt", "early_terminate": {"type": "asha"}},
     "early_terminate", "itself the scheduler"),
    ("conditional", {"method": "pbt", "parameters": {
        "opt": {"values": ["a", "b"]}, "m": {"min": 0.1, "max": 0.9, "when": {"opt": "a"}}}},
     "parameters.m.when", "mutation"),
    ("unknown key", {"method": "pbt", "pbt": {"intervall": 2}}, "pbt.intervall",
     "did you mean 'interval'"),
]


@pytest.mark.parametrize("case", PBT_BAD, ids=[c[0] for c in PBT_BAD])
def test_pbt_settings_are_checked(case):
    _, changes, path, *fragments = case
    assert_issue(issues_of(spec(**changes)), path, *fragments)


# ------------------------------------------------------------------ every problem at once

def test_new_sections_report_all_their_problems_together():
    found = issues_of(spec(method="pbt", pbt={"interval": 0, "quantile": 2},
                           stop={"training_iteration": 0}, time_budget_s=-5,
                           metric_constraints=["nope"],
                           parameters={"a..b": {"value": 1}, "x": {"distribution": "beta",
                                                                   "a": -1}}))
    for path in ("pbt.interval", "pbt.quantile", "stop.training_iteration", "time_budget_s",
                 "metric_constraints[0]", "parameters.a..b", "parameters.x.a"):
        assert any(f.startswith(path) for f in found), (path, found)
