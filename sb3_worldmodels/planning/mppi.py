"""Model-predictive path integral control over action sequences (Williams et al., as used by VP2 and TD-MPC)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from sb3_worldmodels.planning.base import Planner

__all__ = ["MPPIPlanner"]


class MPPIPlanner(Planner):
    """MPPI: perturb the current plan with Gaussian noise and average the perturbations, weighted by
    ``softmax(-cost / temperature)``.

    Each iteration draws ``population`` sequences ``clip(mean + noise_std * noise, -1, 1)`` (the current mean is
    one of them) and sets the mean to their cost-weighted average; with ``beta > 0`` the noise is smoothed over
    time (``e_t = beta * e_{t-1} + (1 - beta) * n_t``), as in VP2's MPPI. The plan is the final mean.

    :param temperature: the softmax temperature, in cost units (lower: greedier).
    :param noise_std: std of the perturbations, in the ``[-1, 1]`` action scale.
    :param beta: temporal smoothing of the noise, in ``[0, 1)``.
    :param kwargs: the :class:`~sb3_worldmodels.planning.base.Planner` parameters (model, action space, horizon,
        population, iterations, context, goal, costs, ...).
    """

    def __init__(
        self, *args: Any, temperature: float = 0.01, noise_std: float = 0.5, beta: float = 0.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}.")
        if not 0.0 <= beta < 1.0:
            raise ValueError(f"beta must be in [0, 1), got {beta}.")
        self.temperature, self.noise_std, self.beta = temperature, noise_std, beta

    def _optimize(self, evaluate: Callable[[Tensor], Tensor], mean: Tensor) -> Tensor:
        for _ in range(self.iterations):
            noise = self.sample_noise(self.population, *mean.shape)
            if self.beta > 0:
                for t in range(1, noise.shape[1]):
                    noise[:, t] = self.beta * noise[:, t - 1] + (1 - self.beta) * noise[:, t]
            samples = (mean + self.noise_std * noise).clamp(-1.0, 1.0)
            samples[0] = mean
            costs = evaluate(samples)
            weights = torch.softmax(-(costs - costs.min()) / self.temperature, 0)
            mean = (weights[:, None, None] * samples).sum(0)
        return mean
