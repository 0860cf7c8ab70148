"""The cross-entropy method over action sequences (as in PlaNet and the VP2 visual-planning benchmark)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

from sb3_worldmodels.planning.base import Planner

__all__ = ["CEMPlanner"]


class CEMPlanner(Planner):
    """Cross-entropy method: sample sequences from a diagonal Gaussian, refit it to the lowest-cost ``elites``.

    Each iteration draws ``population`` sequences ``clip(mean + std * noise, -1, 1)`` (the current mean is always
    one of them), scores them with the predictor, and moves mean and std towards those of the elites
    (``momentum`` keeps that fraction of the old values). The plan is the best sequence seen.

    :param elites: sequences the distribution is refit to.
    :param init_std: std of the first iteration, in the ``[-1, 1]`` action scale.
    :param min_std: floor of the std, so that the search never collapses to a point.
    :param momentum: weight of the old mean and std in each refit.
    :param kwargs: the :class:`~sb3_worldmodels.planning.base.Planner` parameters (model, action space, horizon,
        population, iterations, context, goal, costs, ...).
    """

    def __init__(
        self, *args: Any, elites: int = 10, init_std: float = 1.0, min_std: float = 0.05, momentum: float = 0.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if not 1 <= elites <= self.population:
            raise ValueError(f"elites must be in [1, population={self.population}], got {elites}.")
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum}.")
        self.elites, self.init_std, self.min_std, self.momentum = elites, init_std, min_std, momentum

    def _optimize(self, evaluate: Callable[[Tensor], Tensor], mean: Tensor) -> Tensor:
        std = mean.new_full(mean.shape, self.init_std)
        best, best_cost = mean, float("inf")
        for _ in range(self.iterations):
            samples = (mean + std * self.sample_noise(self.population, *mean.shape)).clamp(-1.0, 1.0)
            samples[0] = mean
            costs = evaluate(samples)
            order = costs.argsort()
            if float(costs[order[0]]) < best_cost:
                best, best_cost = samples[order[0]], float(costs[order[0]])
            elite = samples[order[: self.elites]]
            mean = self.momentum * mean + (1 - self.momentum) * elite.mean(0)
            spread = elite.std(0, unbiased=False) if self.elites > 1 else std
            std = (self.momentum * std + (1 - self.momentum) * spread).clamp(min=self.min_std)
        return best
