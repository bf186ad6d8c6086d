"""Trainables in the shapes of Ray Tune's quick start and documentation, as Ray users write
them (Ray's own wheel ships no quick-start module to import)."""

from ray import tune


def objective(config):
    """Ray's quick start: the function returns its result."""
    score = config["a"] ** 2 + config["b"]
    return {"score": score}


def train_fn(config, data=None):
    """Ray's `tune.with_parameters` pattern: large objects passed beside the config."""
    for step in range(3):
        tune.report({"loss": config["x"] * sum(data) + step})


train = tune.with_parameters(train_fn, data=[1, 2, 3])
