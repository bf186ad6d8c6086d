"""Gradient and weight statistics, gathered during an epoch.

"Weights" are the parameter tensors with two or more dimensions (linear and
conv kernels); biases and normalisation scales are left out of the per-layer
numbers because their gradients say little about vanishing or exploding.
"""

from __future__ import annotations

import math

import torch

__all__ = ["EpochStats"]


def _norms(tensors: list[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), device=like.device)
    return torch.stack([t.detach().norm().float() if t is not None else zero for t in tensors])


class EpochStats:
    """Gradient norms per step and the weights' change over one epoch.

    Create it at the start of the epoch, call :meth:`observe_gradients` after
    each ``backward()`` (before clipping, so the raw norm is seen), then
    :meth:`summary` at the end. Norms stay on the device until the summary,
    so a GPU is not synchronised every step.
    """

    def __init__(self, params: list[torch.nn.Parameter]) -> None:
        self.params = params
        self.weights = [i for i, p in enumerate(params) if p.ndim >= 2]
        self.start = [p.detach().clone() for p in params]
        self.steps = 0
        self.total_sum = torch.zeros((), device=params[0].device)
        self.layer_sum = torch.zeros(len(self.weights), device=params[0].device)

    def observe_gradients(self) -> None:
        norms = _norms([p.grad for p in self.params], like=self.params[0])
        self.total_sum += norms.norm()
        self.layer_sum += norms[self.weights]
        self.steps += 1

    def summary(self) -> dict[str, float]:
        """The epoch's ``grad_norm*``, ``weight_norm`` and ``update_ratio``.

        ``grad_norm`` is the global L2 norm of all gradients, averaged over the
        epoch's steps; the ``grad_norm_layer_*``, ``grad_norm_first`` and
        ``grad_norm_last`` are each weight tensor's gradient norm, averaged over
        the steps. ``update_ratio`` is ``||w_end - w_start|| / ||w_start||`` over
        all parameters for the whole epoch (not a per-step mean).
        """
        nan = math.nan
        out = {
            "grad_norm": nan,
            "grad_norm_layer_min": nan,
            "grad_norm_layer_max": nan,
            "grad_norm_first": nan,
            "grad_norm_last": nan,
        }
        if self.steps:
            out["grad_norm"] = float(self.total_sum) / self.steps
            if self.weights:
                layer = (self.layer_sum / self.steps).tolist()
                out["grad_norm_layer_min"] = min(layer)
                out["grad_norm_layer_max"] = max(layer)
                out["grad_norm_first"] = layer[0]
                out["grad_norm_last"] = layer[-1]
        with torch.no_grad():
            now = _norms(list(self.params), like=self.params[0]).norm()
            before = _norms(self.start, like=self.params[0]).norm()
            moved = _norms(
                [p - s for p, s in zip(self.params, self.start, strict=True)], like=self.params[0]
            )
            out["weight_norm"] = float(now)
            out["update_ratio"] = float(moved.norm() / before) if float(before) > 0 else nan
        return out
