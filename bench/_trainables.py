"""Trainables the benchmarks run, importable by Ray workers as ``bench._trainables``.

Each reports through :func:`orchestrator.report` (which is ``ray.tune.report``
inside a plain Ray Tune trial too), so orch and stock Ray Tune run the same code.
"""

from __future__ import annotations

import math
import os
import time

import numpy as np

import orchestrator

BRANIN_MIN = 0.397887  # global minimum of the Branin function
HARTMANN6_MIN = -3.32237  # global minimum of the 6-dimensional Hartmann function


def trivial(config):
    """Reports once and returns: the cost of a trial is all bookkeeping."""
    orchestrator.report({"loss": float(config.get("x", 0.0))})


def sleeper(config):
    """Sleeps one second ``k`` times, reporting after each second."""
    for i in range(int(config.get("k", 1))):
        time.sleep(1.0)
        orchestrator.report({"loss": float(config.get("x", 0.0)), "step": i})


def streamer(config):
    """Reports ``rate`` times a second for ``seconds``, paced by the clock.

    Each report carries ``elapsed`` (seconds since the first line), so the driver
    can tell whether reporting itself slowed the trial down.
    """
    rate, seconds = float(config["rate"]), float(config["seconds"])
    n = round(rate * seconds)
    t0 = time.perf_counter()
    for i in range(n):
        wait = t0 + (i + 1) / rate - time.perf_counter()
        if wait > 0:
            time.sleep(wait)
        orchestrator.report({"loss": float(config.get("x", 0.0)), "i": i,
                             "elapsed": time.perf_counter() - t0})


def stamp(config):
    """Writes the wall-clock time it started to ``$ORCH_BENCH_STAMP`` (then reports once)."""
    path = os.environ.get("ORCH_BENCH_STAMP") or config.get("stamp_file")
    if path:
        with open(path, "a", encoding="utf-8") as f:
            f.write(f"{time.time():.6f}\n")
    orchestrator.report({"loss": float(config.get("x", 0.0))})


def branin_value(x1: float, x2: float) -> float:
    a, b, c = 1.0, 5.1 / (4 * math.pi**2), 5.0 / math.pi
    r, s, t = 6.0, 10.0, 1.0 / (8 * math.pi)
    return a * (x2 - b * x1**2 + c * x1 - r) ** 2 + s * (1 - t) * math.cos(x1) + s


_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]],
                        dtype=float)


def hartmann6_value(x) -> float:
    x = np.asarray(x, dtype=float)
    inner = (_H6_A * (x - _H6_P) ** 2).sum(axis=1)
    return float(-(_H6_ALPHA * np.exp(-inner)).sum())


def branin(config):
    """Branin on x1 in [-5, 10], x2 in [0, 15]; reports ``value`` once."""
    orchestrator.report({"value": branin_value(config["x1"], config["x2"])})


def hartmann6(config):
    """Hartmann-6 on [0, 1]^6 (keys x1..x6); reports ``value`` once."""
    orchestrator.report({"value": hartmann6_value([config[f"x{i}"] for i in range(1, 7)])})


# ---------------------------------------------------------------- multi-fidelity (bench/_mf.py)
# The multi-fidelity Branin and Hartmann-6 of Kandasamy et al. 2017 ("Multi-fidelity Bayesian
# optimisation with continuous approximations", BOCA), as Dragonfly implements them, with one
# fidelity z in (0, 1] for every fidelity dimension. At z = 1 both are the usual functions, so
# the published optima hold: Branin 0.397887, Hartmann-6 -3.32237.
MF_BRANIN_DELTA = (0.01, 0.1, -0.005)  # Dragonfly's delta_b, delta_c, delta_t
MF_HARTMANN_DELTA = 0.1  # Dragonfly's delta per fidelity dimension (alpha_z = alpha - delta(1-z))


def branin_mf_value(x1: float, x2: float, z: float) -> float:
    """Multi-fidelity Branin on x1 in [-5, 10], x2 in [0, 15], fidelity z in (0, 1]."""
    db, dc, dt = MF_BRANIN_DELTA
    b = 5.1 / (4 * math.pi**2) - (1.0 - z) * db
    c = 5.0 / math.pi - (1.0 - z) * dc
    t = 1.0 / (8 * math.pi) - (1.0 - z) * dt
    return (x2 - b * x1**2 + c * x1 - 6.0) ** 2 + 10.0 * (1 - t) * math.cos(x1) + 10.0


def hartmann6_mf_value(x, z: float) -> float:
    """Multi-fidelity Hartmann-6 on [0, 1]^6, fidelity z in (0, 1]."""
    x = np.asarray(x, dtype=float)
    alpha = _H6_ALPHA - MF_HARTMANN_DELTA * (1.0 - z)
    inner = (_H6_A * (x - _H6_P) ** 2).sum(axis=1)
    return float(-(alpha * np.exp(-inner)).sum())


MF_FUNCTIONS = {  # name -> (value(config, z), parameter names)
    "branin": (lambda c, z: branin_mf_value(c["x1"], c["x2"], z), ("x1", "x2")),
    "hartmann6": (lambda c, z: hartmann6_mf_value([c[f"x{i}"] for i in range(1, 7)], z),
                  tuple(f"x{i}" for i in range(1, 7))),
}


def mf_value(function: str, config, epoch: int, epochs: int) -> float:
    """The value after ``epoch`` of ``epochs`` fidelity steps (z = epoch / epochs)."""
    return MF_FUNCTIONS[function][0](config, epoch / epochs)


def multi_fidelity(config):
    """One fidelity step per "epoch", reported at once: ``value`` at z = epoch / epochs.

    ``config["function"]`` is ``branin`` or ``hartmann6``; ``config["epochs"]`` the
    highest fidelity (z = 1).
    """
    function, epochs = config["function"], int(config["epochs"])
    for epoch in range(1, epochs + 1):
        orchestrator.report({"value": mf_value(function, config, epoch, epochs),
                             "epoch": epoch})


def curves(config):
    """``epochs`` reports of three made-up curves (train_loss, val_loss, val_acc), at once:
    what a small training records, for the tracking-server case (bench/_server.py)."""
    x = float(config.get("x", 0.5))
    for epoch in range(1, int(config.get("epochs", 5)) + 1):
        orchestrator.report({"epoch": epoch, "train_loss": (1 + x) / epoch,
                             "val_loss": (1.2 + x) / epoch + 0.01 * epoch,
                             "val_acc": 1 - (0.5 + x) / (epoch + 1)})
