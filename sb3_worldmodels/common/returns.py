"""Returns for actor-critic learning in imagination: lambda-returns and the percentile return normaliser."""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["lambda_returns", "ReturnNormalizer"]


def lambda_returns(rewards: Tensor, values: Tensor, discounts: Tensor, lam: float | Tensor) -> Tensor:
    """TD(lambda) returns along the time axis 1.

    Index t is a state of a trajectory with ``H + 1`` states. ``rewards[:, t]`` is the reward
    received on arriving in state t, ``discounts[:, t]`` is ``gamma * continue_t`` and ``values[:, t]``
    the critic's value of state t. Returns, for t = 0..H-1::

        R_t = r_{t+1} + d_{t+1} * ((1 - lam_{t+1}) * v_{t+1} + lam_{t+1} * R_{t+1}),   R_H = v_H

    :param lam: a float, or a tensor of the same (N, H + 1) shape for a per-state lambda (0 where the
        return must bootstrap fully from ``values``, e.g. the last state of an episode in a replayed window).
    :return: (N, H) returns for states 0..H-1.
    """
    lam_shape_ok = not isinstance(lam, Tensor) or lam.shape == rewards.shape
    if not (rewards.shape == values.shape == discounts.shape) or not lam_shape_ok:
        raise ValueError(
            f"rewards {tuple(rewards.shape)}, values {tuple(values.shape)} and discounts "
            f"{tuple(discounts.shape)} (and a tensor lam) must have the same (N, H + 1) shape."
        )
    horizon = rewards.shape[1] - 1
    ret = values[:, -1]
    out = []
    for t in reversed(range(horizon)):
        lam_t = lam[:, t + 1] if isinstance(lam, Tensor) else lam
        ret = rewards[:, t + 1] + discounts[:, t + 1] * ((1 - lam_t) * values[:, t + 1] + lam_t * ret)
        out.append(ret)
    return torch.stack(out[::-1], 1)


class ReturnNormalizer(nn.Module):
    """DreamerV3's return scale: EMA of the 5th-95th percentile range, used as ``max(1, S)``.

    :param decay: EMA decay of the percentiles.
    :param low: lower percentile in [0, 1].
    :param high: upper percentile in [0, 1].
    :param max_scale_floor: the scale never goes below this (1.0 in DreamerV3).
    """

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95, max_scale_floor: float = 1.0):
        super().__init__()
        self.decay, self.q_low, self.q_high, self.floor = decay, low, high, max_scale_floor
        self.register_buffer("low", torch.zeros(()))
        self.register_buffer("high", torch.zeros(()))
        # the percentiles as a tensor built once (not per update: a host-to-device copy inside the update would
        # stall the GPU queue and cannot be captured in a CUDA graph); not saved, so old checkpoints still load
        self.register_buffer("quantiles", torch.tensor([low, high]), persistent=False)

    @torch.no_grad()
    def update(self, returns: Tensor) -> None:
        """Fold the percentiles of a batch of returns into the EMA (in place: no host sync, capturable)."""
        flat = returns.detach().float().flatten()
        qs = torch.quantile(flat, self.quantiles.to(flat.dtype))
        self.low.mul_(self.decay).add_((1 - self.decay) * qs[0])
        self.high.mul_(self.decay).add_((1 - self.decay) * qs[1])

    @property
    def scale(self) -> Tensor:
        """``max(floor, high - low)``."""
        return torch.clamp(self.high - self.low, min=self.floor)
