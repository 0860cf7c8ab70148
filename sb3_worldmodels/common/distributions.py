"""Distributions used by world models and actor-critics.

symlog / symexp squashing, the two-hot categorical over symexp-spaced bins (DreamerV3), one-hot
categoricals with straight-through gradients and uniform mixing ("unimix"), a clipped normal with
straight-through gradients (the DreamerV3-style actor) and a truncated normal with reparameterised samples
(DreamerV2's safe truncated normal).
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "at_least_fp32",
    "symlog",
    "symexp",
    "TwoHotDist",
    "OneHotDist",
    "TruncNormalDist",
    "TruncatedNormalDist",
    "MSEDist",
    "BernoulliDist",
    "unimix_logits",
    "uniform_like",
    "normal_like",
]


def uniform_like(x: Tensor) -> Tensor:
    """Uniform noise in [0, 1) shaped as ``x``: every sampler here draws through this (or :func:`normal_like`), the
    one seam the conformance tests use to feed both our code and the official code the same noise."""
    return torch.rand_like(x)


def normal_like(x: Tensor) -> Tensor:
    """Standard normal noise shaped as ``x`` (see :func:`uniform_like`)."""
    return torch.randn_like(x)


def at_least_fp32(x: Tensor) -> Tensor:
    """Cast half-precision tensors (bf16 / fp16 autocast outputs) to fp32; others pass unchanged."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def symlog(x: Tensor) -> Tensor:
    """``sign(x) * log(1 + abs(x))``: compresses large magnitudes, identity-like near zero."""
    return torch.sign(x) * torch.log1p(torch.abs(x))


def symexp(x: Tensor) -> Tensor:
    """Inverse of :func:`symlog`: ``sign(x) * (exp(abs(x)) - 1)``."""
    return torch.sign(x) * torch.expm1(torch.abs(x))


def unimix_logits(logits: Tensor, unimix: float) -> Tensor:
    """Log-probabilities of ``(1 - unimix) * softmax(logits) + unimix / K`` (DreamerV3's 1% unimix)."""
    if unimix <= 0.0:
        return torch.log_softmax(logits, -1)
    probs = torch.softmax(logits, -1)
    probs = (1.0 - unimix) * probs + unimix / logits.shape[-1]
    return torch.log(probs)


class TwoHotDist:
    """Categorical over fixed bins, read out in symexp space, trained with two-hot targets (DreamerV3).

    :param logits: (..., K) logits over ``K`` bins spaced evenly in symlog space in ``[low, high]``, or wider
        (..., W > K) logits whose last ``W - K`` entries are ``-inf``, as an
        :class:`~sb3_worldmodels.common.nets.AlignedLinear` with ``pad_logits`` returns them: classes of probability
        zero that leave every value and gradient as with the K logits alone.
    :param low: lowest bin in symlog space (default -20).
    :param high: highest bin in symlog space (default 20).
    :param bins: the number of bins ``K`` (default: the width of ``logits``).
    """

    def __init__(self, logits: Tensor, low: float = -20.0, high: float = 20.0, bins: int | None = None) -> None:
        self.logits = logits = at_least_fp32(logits)  # under bf16 autocast too: the bins need the precision
        width = logits.shape[-1]
        k = width if bins is None else bins
        if not 2 <= k <= width:
            raise ValueError(f"TwoHotDist needs 2 <= bins <= the logits' width {width}, got bins={k}.")
        self.bins = torch.linspace(low, high, k, device=logits.device, dtype=logits.dtype)
        # the padded classes have probability 0: any finite value there leaves the mean unchanged
        self._readout = F.pad(self.bins, (0, width - k)) if width > k else self.bins

    @functools.cached_property
    def probs(self) -> Tensor:
        """Bin probabilities (..., K), computed when first read (``log_prob`` does not need them)."""
        return torch.softmax(self.logits, -1)

    @functools.cached_property
    def log_probs(self) -> Tensor:
        """Log-softmax of the logits, computed once for every :meth:`log_prob` call on this distribution."""
        return torch.log_softmax(self.logits, -1)

    @property
    def mean(self) -> Tensor:
        """Expected value in the original (symexp) space, shape (...)."""
        return symexp(self.probs @ self._readout)

    @property
    def mode(self) -> Tensor:
        """Same as :attr:`mean` (the expectation is the prediction, as in DreamerV3)."""
        return self.mean

    def log_prob(self, target: Tensor) -> Tensor:
        """Log-likelihood of ``target`` (shape (...)) under two-hot encoding of ``symlog(target)``.

        The two-hot vector has two non-zero entries, so the likelihood is read with one two-index ``gather`` on the
        log-softmax instead of a dense (..., K) product: the same value and gradient, without one-hot tensors. The
        log-softmax is shared by every call on this distribution (a critic's return target and its slow-critic
        regulariser read the same logits).
        """
        target = symlog(target.detach()).to(self.bins.dtype)
        k = self.bins.shape[0]
        count = torch.searchsorted(self.bins, target.contiguous(), right=True)  # bins <= target
        below = (count - 1).clamp(0, k - 1)
        above = count.clamp(0, k - 1)
        equal = below == above
        dist_lo = torch.where(equal, torch.ones_like(target), torch.abs(self.bins[below] - target))
        dist_hi = torch.where(equal, torch.ones_like(target), torch.abs(self.bins[above] - target))
        weights = torch.stack([dist_hi, dist_lo], -1) / (dist_lo + dist_hi)[..., None]
        picked = self.log_probs.gather(-1, torch.stack([below, above], -1))
        return (picked * weights).sum(-1)


class MSEDist:
    """Unit-variance Gaussian written as a negative squared error (DreamerV2 heads, image decoders).

    :param mode: predicted mean, shape ``(..., *event_shape)``.
    :param dims: number of trailing event dimensions summed in :meth:`log_prob`.
    :param coef: weight of the squared error: 1.0 is DreamerV3's ``-(x - mu)^2``, 0.5 a unit-variance
        Gaussian log-density without its constant (DreamerV2).
    """

    def __init__(self, mode: Tensor, dims: int = 0, coef: float = 1.0) -> None:
        self._mode = at_least_fp32(mode)
        self.dims = dims
        self.coef = coef

    @property
    def mean(self) -> Tensor:
        """The prediction."""
        return self._mode

    @property
    def mode(self) -> Tensor:
        """The prediction."""
        return self._mode

    def log_prob(self, value: Tensor) -> Tensor:
        """Negative weighted squared error, summed over the event dims (constant terms dropped)."""
        err = -self.coef * (self._mode - value) ** 2
        if self.dims:
            err = err.sum(tuple(range(-self.dims, 0)))
        return err


class BernoulliDist:
    """Bernoulli over {0, 1} from logits (continue predictor)."""

    def __init__(self, logits: Tensor) -> None:
        self.logits = at_least_fp32(logits)

    @property
    def mean(self) -> Tensor:
        """P(x = 1)."""
        return torch.sigmoid(self.logits)

    @property
    def mode(self) -> Tensor:
        """1 where P(x = 1) > 0.5."""
        return (self.logits > 0).to(self.logits.dtype)

    def log_prob(self, value: Tensor) -> Tensor:
        """Log-likelihood of ``value`` in {0, 1}."""
        return -F.binary_cross_entropy_with_logits(self.logits, value, reduction="none")


class OneHotDist:
    """One-hot categorical with straight-through sampling and optional uniform mixing.

    :param logits: (..., K) raw logits.
    :param unimix: weight of the uniform distribution mixed into the probabilities.
    """

    def __init__(self, logits: Tensor, unimix: float = 0.0) -> None:
        self.log_probs_all = unimix_logits(at_least_fp32(logits), unimix)
        self.probs = self.log_probs_all.exp()

    @property
    def mode(self) -> Tensor:
        """One-hot argmax with straight-through gradient to the probabilities."""
        idx = self.probs.argmax(-1)
        hard = F.one_hot(idx, self.probs.shape[-1]).to(self.probs.dtype)
        return hard + self.probs - self.probs.detach()

    def rsample(self) -> Tensor:
        """One-hot sample with straight-through gradients (``sample + p - sg(p)``)."""
        # Gumbel-max: argmax(log p + Gumbel noise) is a sample of p, cheaper than torch.multinomial
        noise = -torch.log(-torch.log(uniform_like(self.log_probs_all).clamp_(min=1e-20)))
        idx = (self.log_probs_all.detach() + noise).argmax(-1)
        hard = F.one_hot(idx, self.probs.shape[-1]).to(self.probs.dtype)
        return hard + self.probs - self.probs.detach()

    def sample(self) -> Tensor:
        """One-hot sample without gradient."""
        return self.rsample().detach()

    def log_prob(self, onehot: Tensor) -> Tensor:
        """Log-probability of a one-hot value, shape (...)."""
        return (onehot * self.log_probs_all).sum(-1)

    def entropy(self) -> Tensor:
        """Entropy over the last axis."""
        return -(self.probs * self.log_probs_all).sum(-1)


class TruncNormalDist:
    """Normal clipped to ``[low, high]`` with straight-through gradients (a clipped, not truncated, normal).

    This is the DreamerV3-style actor's distribution; :class:`TruncatedNormalDist` is DreamerV2's.

    Samples are drawn from N(mean, std) and clipped to ``[low + clip, high - clip]``; the gradient of the
    clip is replaced by identity so dynamics backpropagation works. ``log_prob`` and ``entropy`` are those
    of the underlying normal (sum over the action dimensions).
    """

    def __init__(self, mean: Tensor, std: Tensor, low: float = -1.0, high: float = 1.0, clip: float = 1e-6):
        self.mean_ = at_least_fp32(mean)
        self.std = at_least_fp32(std)
        self.low = low
        self.high = high
        self.clip = clip

    @property
    def mode(self) -> Tensor:
        """The (clipped) mean."""
        return self._clip(self.mean_)

    def _clip(self, x: Tensor) -> Tensor:
        clipped = x.clamp(self.low + self.clip, self.high - self.clip)
        return x - x.detach() + clipped.detach()

    def rsample(self) -> Tensor:
        """Reparameterised sample, clipped with a straight-through gradient."""
        return self._clip(self.mean_ + self.std * normal_like(self.mean_))

    def sample(self) -> Tensor:
        """Sample without gradient."""
        return self.rsample().detach()

    def log_prob(self, value: Tensor) -> Tensor:
        """Normal log-density summed over the last axis."""
        var = self.std**2
        lp = -((value - self.mean_) ** 2) / (2 * var) - torch.log(self.std) - 0.5 * math.log(2 * math.pi)
        return lp.sum(-1)

    def entropy(self) -> Tensor:
        """Normal entropy summed over the last axis."""
        return (0.5 + 0.5 * math.log(2 * math.pi) + torch.log(self.std)).sum(-1)


class TruncatedNormalDist(TruncNormalDist):
    """Normal truncated to ``[low, high]`` (DreamerV2's ``SafeTruncatedNormal``), reparameterised.

    Samples are drawn by inverting the CDF, ``x = mean + std * ndtri(Phi(alpha) + u (Phi(beta) - Phi(alpha)))`` with
    ``u ~ U(0, 1)``, so their gradient with respect to ``mean`` and ``std`` is that of the truncated distribution
    (it fades as the mass piles up against a bound, where the clipped normal's straight-through gradient stays 1);
    they are then clipped to ``[low + clip, high - clip]`` with a straight-through gradient, as in the reference.
    ``log_prob`` and ``entropy`` are those of the truncated normal (sum over the action dimensions). The mean is
    expected inside ``[low, high]`` (a ``tanh`` mean), where the inverse CDF is accurate.
    """

    def __init__(self, mean: Tensor, std: Tensor, low: float = -1.0, high: float = 1.0, clip: float = 1e-6):
        super().__init__(mean, std, low, high, clip)
        self.alpha = (low - self.mean_) / self.std
        self.beta = (high - self.mean_) / self.std
        self.cdf_alpha = torch.special.ndtr(self.alpha)
        self.mass = (torch.special.ndtr(self.beta) - self.cdf_alpha).clamp_min(torch.finfo(self.mean_.dtype).tiny)

    def rsample(self) -> Tensor:
        """Reparameterised sample of the truncated normal, clipped with a straight-through gradient."""
        eps = torch.finfo(self.mean_.dtype).eps
        u = uniform_like(self.mean_)
        p = (self.cdf_alpha + u * self.mass).clamp(eps, 1 - eps)
        return self._clip(self.mean_ + self.std * torch.special.ndtri(p))

    def log_prob(self, value: Tensor) -> Tensor:
        """Truncated-normal log-density summed over the last axis (``value`` inside the bounds)."""
        return super().log_prob(value) - torch.log(self.mass).sum(-1)

    def entropy(self) -> Tensor:
        """Truncated-normal entropy summed over the last axis."""
        pdf_alpha = torch.exp(-0.5 * self.alpha**2) / math.sqrt(2 * math.pi)
        pdf_beta = torch.exp(-0.5 * self.beta**2) / math.sqrt(2 * math.pi)
        ent = (0.5 * math.log(2 * math.pi * math.e) + torch.log(self.std) + torch.log(self.mass)
               + (self.alpha * pdf_alpha - self.beta * pdf_beta) / (2 * self.mass))
        return ent.sum(-1)
