"""HarmonyDream's learnable loss harmonizers (Ma et al., ICML 2024), usable on any multi-loss model."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Harmonizer"]


class Harmonizer(nn.Module):
    """Balance several losses with one learnable scale each.

    For every named loss ``L_i`` a scalar ``s_i`` (initialised at 0, so ``sigma_i = e^{s_i} = 1``) is learned
    jointly with the model, and the total is the rectified form of HarmonyDream::

        total = sum_i  L_i * exp(-s_i) + log(1 + exp(s_i))

    At the optimum over ``s_i`` the coefficient ``exp(-s_i)`` is ``2 / (L + sqrt(L^2 + 4L))``, so large losses
    are scaled down and small ones up. Put the ``s_i`` in the same optimizer as the model.

    Example::

        harmonizer = Harmonizer(["obs", "reward", "dyn"])
        optimizer = torch.optim.Adam([*model.parameters(), *harmonizer.parameters()], lr=1e-4)
        total = harmonizer({"obs": l_obs, "reward": l_rew, "dyn": l_kl})

    :param names: names of the harmonized losses, in a fixed order.
    """

    def __init__(self, names: Iterable[str]) -> None:
        super().__init__()
        self.names = list(names)
        if not self.names:
            raise ValueError("Harmonizer needs at least one loss name, e.g. Harmonizer(['obs', 'reward', 'dyn']).")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Harmonizer names must be unique, got {self.names}.")
        self.log_sigma = nn.Parameter(torch.zeros(len(self.names)))

    def forward(self, losses: Mapping[str, Tensor], reg_weights: Mapping[str, float] | None = None) -> Tensor:
        """Harmonized total of the scalar losses named at construction (other keys are an error).

        :param reg_weights: optional weight ``r_i`` of the regulariser of some losses (1 for the others), giving
            ``sum_i L_i exp(-s_i) + r_i log(1 + exp(s_i))``. HarmonyDream-V3 harmonizes its two KL terms with one
            ``s``, adding the regulariser once, with the dynamics term's relative weight ``0.5 / 0.6``.
        """
        missing = [n for n in self.names if n not in losses]
        extra = [n for n in losses if n not in self.names]
        if missing or extra:
            raise KeyError(
                f"Harmonizer expects losses {self.names}; missing {missing}, unexpected {extra}. "
                "Harmonize only the listed losses and add the others to the total yourself."
            )
        stacked = torch.stack([losses[n].reshape(()) for n in self.names])
        s = self.log_sigma.to(stacked.dtype)
        reg = F.softplus(s)
        if reg_weights:
            unknown = [n for n in reg_weights if n not in self.names]
            if unknown:
                raise KeyError(f"reg_weights names {unknown} are not harmonized losses {self.names}.")
            # python floats times single entries: no host-to-device copy (capturable in a CUDA graph)
            reg = torch.stack([r * reg_weights.get(n, 1.0) for n, r in zip(self.names, reg.unbind(0), strict=True)])
        return (stacked * torch.exp(-s) + reg).sum()

    def coefficient_tensors(self) -> dict[str, Tensor]:
        """Current ``exp(-s_i)`` for each loss name as detached 0-d tensors on the parameters' device.

        Unlike :meth:`coefficients` this never reads back to the host, so it can run inside a training step
        captured in a CUDA graph (the values are read after the step).
        """
        return dict(zip(self.names, torch.exp(-self.log_sigma.detach()).unbind(0), strict=True))

    def log_sigma_tensors(self) -> dict[str, Tensor]:
        """Current ``s_i`` for each loss name as detached 0-d tensors (see :meth:`coefficient_tensors`)."""
        return dict(zip(self.names, self.log_sigma.detach().clone().unbind(0), strict=True))

    def coefficients(self) -> dict[str, float]:
        """Current ``exp(-s_i)`` for each loss name (:meth:`coefficient_tensors` read back as floats)."""
        return {name: float(c) for name, c in self.coefficient_tensors().items()}

    def log_sigmas(self) -> dict[str, float]:
        """Current ``s_i`` for each loss name (:meth:`log_sigma_tensors` read back as floats)."""
        return {name: float(s) for name, s in self.log_sigma_tensors().items()}

    @staticmethod
    def optimal_coefficient(loss: float) -> float:
        """Closed-form minimiser of ``L e^{-s} + log(1 + e^s)`` over ``s``, returned as ``e^{-s}``."""
        sigma = (loss + (loss * loss + 4.0 * loss) ** 0.5) / 2.0
        return 1.0 / sigma
