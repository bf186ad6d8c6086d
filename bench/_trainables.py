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
