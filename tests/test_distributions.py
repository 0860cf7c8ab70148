"""Tests for :mod:`sb3_worldmodels.common.distributions`."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sb3_worldmodels.common.distributions import (
    BernoulliDist,
    MSEDist,
    OneHotDist,
    TruncatedNormalDist,
    TruncNormalDist,
    TwoHotDist,
    symexp,
    symlog,
    unimix_logits,
)


def twohot_reference(x: torch.Tensor, bins: torch.Tensor) -> torch.Tensor:
    """Independent two-hot encoding of ``symlog(x)`` (float64, one value at a time, edge bins clamped)."""
    out = torch.zeros(*x.shape, bins.shape[0], dtype=torch.float64)
    flat_x = symlog(x.double()).reshape(-1)
    flat_out = out.reshape(-1, bins.shape[0])
    b = bins.double().tolist()
    for n, y in enumerate(flat_x.tolist()):
        if y <= b[0]:
            flat_out[n, 0] = 1.0
            continue
        if y >= b[-1]:
            flat_out[n, -1] = 1.0
            continue
        j = max(i for i in range(len(b)) if b[i] <= y)
        if b[j] == y:
            flat_out[n, j] = 1.0
            continue
        w_hi = (y - b[j]) / (b[j + 1] - b[j])
        flat_out[n, j] = 1.0 - w_hi
        flat_out[n, j + 1] = w_hi
    return out


# ---------------------------------------------------------------------------------------------- symlog
def test_symlog_values():
    x = torch.tensor([-math.e + 1, -1.0, 0.0, 1.0, math.e - 1], dtype=torch.float64)
    expected = torch.tensor([-1.0, -math.log(2.0), 0.0, math.log(2.0), 1.0], dtype=torch.float64)
    torch.testing.assert_close(symlog(x), expected)
    # odd function, identity-like near zero, logarithmic for large values
    torch.testing.assert_close(symlog(torch.tensor([1e-6])), torch.tensor([1e-6]), rtol=1e-5, atol=0)
    torch.testing.assert_close(symlog(torch.tensor([1e6 - 1])), torch.tensor([math.log(1e6)]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_symlog_symexp_round_trip(dtype):
    mags = torch.logspace(-8, 8, 97, dtype=dtype)
    x = torch.cat([-mags.flip(0), torch.zeros(1, dtype=dtype), mags])
    rtol = 1e-5 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(symexp(symlog(x)), x, rtol=rtol, atol=1e-30)
    y = torch.linspace(-15, 15, 301, dtype=dtype)
    torch.testing.assert_close(symlog(symexp(y)), y, rtol=rtol, atol=rtol)
    # zero stays exactly zero, signs are preserved
    assert symlog(torch.zeros(3)).eq(0).all() and symexp(torch.zeros(3)).eq(0).all()
    assert torch.equal(torch.sign(symlog(x)), torch.sign(x))


def test_symexp_values():
    x = torch.tensor([-2.0, 0.0, 3.0], dtype=torch.float64)
    expected = torch.tensor([-(math.exp(2) - 1), 0.0, math.exp(3) - 1], dtype=torch.float64)
    torch.testing.assert_close(symexp(x), expected)


# -------------------------------------------------------------------------------------------- two-hot
# 5 bins at -2, -1, 0, 1, 2 in symlog space make hand computation easy.
SMALL = dict(low=-2.0, high=2.0)


def test_twohot_bins_default():
    d = TwoHotDist(torch.zeros(255))
    assert d.bins.shape == (255,)
    assert d.bins[0].item() == -20.0 and d.bins[-1].item() == 20.0 and abs(d.bins[127].item()) < 1e-6
    torch.testing.assert_close(d.bins[1:] - d.bins[:-1], torch.full((254,), 40 / 254))


def test_twohot_log_prob_on_a_bin():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    d = TwoHotDist(logits, **SMALL)
    log_p = torch.log_softmax(logits, -1)
    for j, b in enumerate([-2.0, -1.0, 0.0, 1.0, 2.0]):
        target = symexp(torch.tensor(b, dtype=torch.float64))
        torch.testing.assert_close(d.log_prob(target), log_p[j])


def test_twohot_log_prob_between_bins():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    d = TwoHotDist(logits, **SMALL)
    log_p = torch.log_softmax(logits, -1)
    # symlog(target) = 0.25: 3/4 on bin 0 (value 0) and 1/4 on bin 1 (value 1)
    target = symexp(torch.tensor(0.25, dtype=torch.float64))
    torch.testing.assert_close(d.log_prob(target), 0.75 * log_p[2] + 0.25 * log_p[3])
    # symlog(target) = -1.6: 0.6 on bin -2, 0.4 on bin -1
    target = symexp(torch.tensor(-1.6, dtype=torch.float64))
    torch.testing.assert_close(d.log_prob(target), 0.6 * log_p[0] + 0.4 * log_p[1])


def test_twohot_log_prob_batched_matches_reference():
    logits = torch.randn(4, 6, 255, dtype=torch.float64)
    d = TwoHotDist(logits)
    x = symexp(torch.empty(4, 6, dtype=torch.float64).uniform_(-19.5, 19.5))
    ref = (twohot_reference(x, d.bins) * torch.log_softmax(logits, -1)).sum(-1)
    lp = d.log_prob(x)
    assert lp.shape == (4, 6)
    torch.testing.assert_close(lp, ref)


def test_twohot_log_prob_is_log_of_weights_for_delta_logits():
    """With all mass on the two-hot encoding, log_prob is sum_k w_k log w_k (0 for a target on a bin)."""
    d0 = TwoHotDist(torch.zeros(5, dtype=torch.float64), **SMALL)
    target = symexp(torch.tensor(0.25, dtype=torch.float64))
    w = twohot_reference(target, d0.bins)
    d = TwoHotDist(torch.log(w.clamp_min(1e-300)), **SMALL)  # finite logits: 0 * log(0) would be nan
    expected = torch.tensor(0.75 * math.log(0.75) + 0.25 * math.log(0.25), dtype=torch.float64)
    torch.testing.assert_close(d.log_prob(target), expected)
    on_bin = symexp(torch.tensor(1.0, dtype=torch.float64))
    d = TwoHotDist(torch.log(twohot_reference(on_bin, d0.bins).clamp_min(1e-300)), **SMALL)
    torch.testing.assert_close(d.log_prob(on_bin), torch.tensor(0.0, dtype=torch.float64))


def test_twohot_mean_of_twohot_encoding_recovers_x():
    x = torch.cat(
        [
            torch.linspace(-1e4, 1e4, 2001, dtype=torch.float64),
            symexp(torch.linspace(-9.2, 9.2, 501, dtype=torch.float64)),
            torch.tensor([0.0, 1e-3, -1e-3, 0.5, -0.5], dtype=torch.float64),
        ]
    )
    bins = torch.linspace(-20, 20, 255, dtype=torch.float64)
    weights = twohot_reference(x, bins)
    d = TwoHotDist(torch.log(weights))  # -inf logits outside the two bins: softmax gives exactly w
    torch.testing.assert_close(d.probs, weights)
    torch.testing.assert_close(d.mean, x, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(d.mode, x, rtol=1e-9, atol=1e-9)
    # float32 too, with a looser tolerance
    d32 = TwoHotDist(torch.log(weights).float())
    torch.testing.assert_close(d32.mean, x.float(), rtol=2e-5, atol=1e-5)


def test_twohot_mean_uniform_logits_is_zero():
    # symmetric bins, uniform probs -> symexp(0) = 0
    assert abs(TwoHotDist(torch.zeros(255)).mean.item()) < 1e-4


def _grad_of_neg_log_prob(logits, target, **kw):
    logits = logits.clone().requires_grad_(True)
    loss = -TwoHotDist(logits, **kw).log_prob(target).sum()
    (g,) = torch.autograd.grad(loss, logits)
    return torch.softmax(logits.detach(), -1), g


def test_twohot_gradient_is_softmax_minus_twohot():
    logits = torch.randn(3, 7, 255, dtype=torch.float64)
    x = symexp(torch.empty(3, 7, dtype=torch.float64).uniform_(-19.0, 19.0))
    probs, g = _grad_of_neg_log_prob(logits, x)
    bins = torch.linspace(-20, 20, 255, dtype=torch.float64)
    torch.testing.assert_close(g, probs - twohot_reference(x, bins))


def test_twohot_no_gradient_to_target():
    logits = torch.randn(255, requires_grad=True)
    target = torch.tensor(3.0, requires_grad=True)
    TwoHotDist(logits).log_prob(target).backward()
    assert target.grad is None


def test_twohot_target_above_range_clamps_to_last_bin():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    log_p = torch.log_softmax(logits, -1)
    for y in [2.0, 2.5, 3.0, 30.0]:
        target = symexp(torch.tensor(y, dtype=torch.float64))
        torch.testing.assert_close(TwoHotDist(logits, **SMALL).log_prob(target), log_p[-1])
        probs, g = _grad_of_neg_log_prob(logits, target, **SMALL)
        torch.testing.assert_close(g, probs - F.one_hot(torch.tensor(4), 5).double())


def test_twohot_target_below_range_clamps_to_first_bin():
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    log_p = torch.log_softmax(logits, -1)
    for y in [-2.5, -3.0, -30.0]:
        target = symexp(torch.tensor(y, dtype=torch.float64))
        torch.testing.assert_close(TwoHotDist(logits, **SMALL).log_prob(target), log_p[0])
        probs, g = _grad_of_neg_log_prob(logits, target, **SMALL)
        torch.testing.assert_close(g, probs - F.one_hot(torch.tensor(0), 5).double())


def test_twohot_target_on_lowest_bin():
    # exactly on the lowest bin is within range and must be one-hot on bin 0 (not affected by the bug above)
    logits = torch.tensor([0.3, -1.0, 2.0, 0.5, -0.2], dtype=torch.float64)
    target = symexp(torch.tensor(-2.0, dtype=torch.float64))
    probs, g = _grad_of_neg_log_prob(logits, target, **SMALL)
    torch.testing.assert_close(g, probs - F.one_hot(torch.tensor(0), 5).double())


# -------------------------------------------------------------------------------------------- one-hot
def test_unimix_logits():
    logits = torch.tensor([[10.0, -10.0, 0.0, 0.0]])
    torch.testing.assert_close(unimix_logits(logits, 0.0), torch.log_softmax(logits, -1))
    probs = unimix_logits(logits, 0.2).exp()
    torch.testing.assert_close(probs, 0.8 * torch.softmax(logits, -1) + 0.05)
    torch.testing.assert_close(probs.sum(-1), torch.ones(1))


@pytest.mark.parametrize("unimix", [0.01, 0.1])
def test_onehot_unimix_min_prob(unimix):
    logits = torch.randn(64, 32, 16) * 30  # very peaked
    d = OneHotDist(logits, unimix)
    k = logits.shape[-1]
    assert d.probs.min().item() >= unimix / k * (1 - 1e-5)
    torch.testing.assert_close(d.probs.sum(-1), torch.ones(64, 32))
    # without unimix the same logits give (near-)zero probabilities
    assert OneHotDist(logits, 0.0).probs.min().item() < 1e-10


def test_onehot_rsample_is_onehot_with_straight_through_gradient():
    logits = torch.randn(8, 5, 7, requires_grad=True)
    d = OneHotDist(logits, 0.01)
    s = d.rsample()
    assert s.shape == (8, 5, 7)
    hard = s.detach()
    assert torch.all((hard - hard.round()).abs() < 1e-6)
    torch.testing.assert_close(hard.round().sum(-1), torch.ones(8, 5))
    # gradient flows through the sample: d(sum w * s)/d logits is the softmax-Jacobian of w (non-zero)
    w = torch.randn(8, 5, 7)
    (g,) = torch.autograd.grad((s * w).sum(), logits)
    assert g.abs().sum() > 0
    soft = torch.softmax(logits.detach(), -1)
    # straight-through: grad equals the gradient of sum(w * probs)
    expected = 0.99 * soft * (w - (w * soft).sum(-1, keepdim=True))
    torch.testing.assert_close(g, expected)
    # sample() carries no gradient
    assert not d.sample().requires_grad


def test_onehot_sample_frequencies_match_probs():
    logits = torch.tensor([1.0, 0.0, -1.0, 2.0])
    d = OneHotDist(logits.expand(40000, 4), 0.1)
    freq = d.sample().mean(0)
    torch.testing.assert_close(freq, d.probs[0], atol=0.01, rtol=0)


def test_onehot_mode():
    logits = torch.tensor([[0.1, 3.0, -1.0], [2.0, 0.0, 1.0]], requires_grad=True)
    m = OneHotDist(logits, 0.01).mode
    torch.testing.assert_close(m.detach(), torch.tensor([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]))
    (g,) = torch.autograd.grad((m * torch.tensor([1.0, 2.0, 3.0])).sum(), logits)
    assert g.abs().sum() > 0


@pytest.mark.parametrize("unimix", [0.0, 0.01, 0.3])
def test_onehot_entropy_and_log_prob_match_torch_categorical(unimix):
    logits = torch.randn(6, 4, 9) * 3
    d = OneHotDist(logits, unimix)
    mixed = (1 - unimix) * torch.softmax(logits, -1) + unimix / 9
    ref = torch.distributions.Categorical(probs=mixed)
    torch.testing.assert_close(d.entropy(), ref.entropy(), rtol=1e-5, atol=1e-5)
    idx = torch.randint(0, 9, (6, 4))
    torch.testing.assert_close(d.log_prob(F.one_hot(idx, 9).float()), ref.log_prob(idx), rtol=1e-5, atol=1e-5)


def test_onehot_entropy_bounds():
    uniform = OneHotDist(torch.zeros(10), 0.01)
    torch.testing.assert_close(uniform.entropy(), torch.tensor(math.log(10)))
    peaked = OneHotDist(torch.tensor([100.0] + [0.0] * 9), 0.0)
    assert peaked.entropy().item() < 1e-6


# ------------------------------------------------------------------------------------ truncated normal
def test_truncnormal_samples_within_bounds_and_straight_through():
    mean = torch.tensor([[0.0, 0.9, -0.9, 20.0, -20.0]]).repeat(2000, 1).requires_grad_(True)
    std = torch.full_like(mean, 1.0).requires_grad_(True)
    d = TruncNormalDist(mean, std)
    s = d.rsample()
    assert s.min().item() >= -1.0 and s.max().item() <= 1.0
    # the columns at +-20 are always clipped, the others sometimes
    assert (s[:, 3].detach() > 1 - 1e-5).all() and (s[:, 4].detach() < -1 + 1e-5).all()
    # straight-through: d s / d mean = 1 everywhere, even for clipped samples
    (g_mean, g_std) = torch.autograd.grad(s.sum(), [mean, std])
    torch.testing.assert_close(g_mean, torch.ones_like(mean))
    assert g_std[:, 3].abs().sum() > 0  # clipped column still gets a (noise) gradient to std
    assert not d.sample().requires_grad


def test_truncnormal_mode_is_clipped_mean():
    mean = torch.tensor([0.3, 2.0, -2.0], requires_grad=True)
    d = TruncNormalDist(mean, torch.ones(3))
    m = d.mode
    torch.testing.assert_close(m.detach(), torch.tensor([0.3, 1 - 1e-6, -1 + 1e-6]))
    (g,) = torch.autograd.grad(m.sum(), mean)
    torch.testing.assert_close(g, torch.ones(3))


def test_truncnormal_log_prob_entropy_match_normal():
    mean = torch.randn(4, 3, dtype=torch.float64)
    std = torch.rand(4, 3, dtype=torch.float64) + 0.1
    d = TruncNormalDist(mean, std)
    ref = torch.distributions.Normal(mean, std)
    v = torch.rand(4, 3, dtype=torch.float64) * 2 - 1
    torch.testing.assert_close(d.log_prob(v), ref.log_prob(v).sum(-1))
    torch.testing.assert_close(d.entropy(), ref.entropy().sum(-1))
    assert d.log_prob(v).shape == (4,)


# ------------------------------------------------------------------- truncated normal (DreamerV2's actor)
def _grid_density(d: TruncatedNormalDist, n: int = 200_001) -> tuple[torch.Tensor, torch.Tensor]:
    """Grid over [-1, 1] and the density of a one-dimensional ``d`` on it (from its log_prob)."""
    x = torch.linspace(-1, 1, n, dtype=torch.float64)
    return x, d.log_prob(x[:, None]).exp()


@pytest.mark.parametrize(("mean", "std"), [(0.0, 1.0), (0.9, 0.3), (-0.99, 0.1), (0.5, 2.0)])
def test_truncated_normal_density_entropy_and_samples(mean: float, std: float):
    m = torch.tensor([mean], dtype=torch.float64)
    s = torch.tensor([std], dtype=torch.float64)
    d = TruncatedNormalDist(m, s)
    x, p = _grid_density(d)
    dx = x[1] - x[0]
    torch.testing.assert_close(torch.trapezoid(p, dx=dx), torch.tensor(1.0, dtype=torch.float64), rtol=0, atol=1e-6)
    # the log-density is the normal's shifted by the log of the mass inside the bounds
    inner = torch.distributions.Normal(m, s)
    mass = inner.cdf(torch.tensor(1.0)) - inner.cdf(torch.tensor(-1.0))
    torch.testing.assert_close(d.log_prob(x[:5, None]), inner.log_prob(x[:5, None])[:, 0] - mass.log())
    ent = torch.trapezoid(-p * p.log(), dx=dx)
    torch.testing.assert_close(d.entropy(), ent, rtol=0, atol=1e-5)
    # samples follow the density: mean and spread of 200k draws
    torch.manual_seed(0)
    draws = TruncatedNormalDist(m.expand(200_000, 1), s.expand(200_000, 1)).rsample()[:, 0]
    assert draws.min() >= -1 and draws.max() <= 1
    true_mean = torch.trapezoid(x * p, dx=dx)
    true_std = torch.trapezoid((x - true_mean) ** 2 * p, dx=dx).sqrt()
    assert abs(draws.mean() - true_mean) < 4 * true_std / math.sqrt(200_000) + 1e-4
    assert abs(draws.std() - true_std) < 0.01 * true_std


def test_truncated_normal_reparameterised_gradient():
    """d E[sample] / d mean from the samples equals the derivative of the truncated normal's mean; unlike the
    clipped normal's straight-through 1, it fades when the mass piles up against a bound."""
    torch.manual_seed(0)
    n = 400_000
    for mean, std in ((0.2, 0.5), (0.95, 0.3)):
        m = torch.tensor([mean], dtype=torch.float64, requires_grad=True)
        s = torch.tensor([std], dtype=torch.float64)
        (g_samples,) = torch.autograd.grad(TruncatedNormalDist(m.expand(n, 1), s.expand(n, 1)).rsample().mean(), m)
        x, p = _grid_density(TruncatedNormalDist(m, s), 20_001)
        (g_exact,) = torch.autograd.grad(torch.trapezoid(x * p, x), m)
        torch.testing.assert_close(g_samples, g_exact, rtol=0.02, atol=0.01)
    assert g_exact.item() < 0.5  # mean 0.95, std 0.3: a push on the mean barely moves the samples
    # bounds and no gradient through sample()
    d = TruncatedNormalDist(torch.zeros(3), torch.ones(3))
    assert not d.sample().requires_grad
    torch.testing.assert_close(d.mode, torch.zeros(3))


# ------------------------------------------------------------------------------------- MSE, Bernoulli
def test_mse_dist_coef_and_dims():
    mode = torch.randn(2, 3, 4, 5)
    value = torch.randn(2, 3, 4, 5)
    sq = (mode - value) ** 2
    torch.testing.assert_close(MSEDist(mode).log_prob(value), -sq)
    torch.testing.assert_close(MSEDist(mode, dims=1).log_prob(value), -sq.sum(-1))
    torch.testing.assert_close(MSEDist(mode, dims=3, coef=0.5).log_prob(value), -0.5 * sq.sum((-3, -2, -1)))
    assert MSEDist(mode, dims=3).log_prob(value).shape == (2,)
    d = MSEDist(mode, dims=2)
    assert d.mean is mode and d.mode is mode
    # coef 0.5 is the unit-variance Gaussian log-density up to a constant
    ref = torch.distributions.Normal(mode, 1.0).log_prob(value).sum(-1)
    const = -0.5 * math.log(2 * math.pi) * 5
    torch.testing.assert_close(MSEDist(mode, dims=1, coef=0.5).log_prob(value) + const, ref)


def test_bernoulli_dist():
    logits = torch.randn(3, 7) * 4
    value = (torch.rand(3, 7) > 0.5).float()
    d = BernoulliDist(logits)
    bce = F.binary_cross_entropy_with_logits(logits, value, reduction="none")
    torch.testing.assert_close(d.log_prob(value), -bce)
    ref = torch.distributions.Bernoulli(logits=logits)
    torch.testing.assert_close(d.log_prob(value), ref.log_prob(value))
    torch.testing.assert_close(d.mean, torch.sigmoid(logits))
    torch.testing.assert_close(d.mode, (torch.sigmoid(logits) > 0.5).float())


def test_twohot_padded_logits_match_the_plain_bins():
    """Logits padded with ``-inf`` columns (``AlignedLinear(pad_logits=True)``) give the values and gradients of the
    ``K`` logits alone, also above the range (the padded classes are never picked as a bin)."""
    logits = torch.randn(4, 6, 255, dtype=torch.float64, requires_grad=True)
    padded = F.pad(logits, (0, 1), value=-math.inf)
    target = symexp(torch.empty(4, 6, dtype=torch.float64).uniform_(-25.0, 25.0))
    plain, wide = TwoHotDist(logits), TwoHotDist(padded, bins=255)
    torch.testing.assert_close(wide.mean, plain.mean)
    torch.testing.assert_close(wide.log_prob(target), plain.log_prob(target))
    (g_plain,) = torch.autograd.grad(plain.log_prob(target).sum() + plain.mean.sum(), logits)
    (g_wide,) = torch.autograd.grad(wide.log_prob(target).sum() + wide.mean.sum(), logits)
    assert torch.isfinite(g_wide).all()
    torch.testing.assert_close(g_wide, g_plain)


def test_twohot_log_softmax_is_shared_by_log_prob_calls():
    logits = torch.randn(3, 255)
    d = TwoHotDist(logits)
    a, b = d.log_prob(torch.tensor([1.0, 2.0, 3.0])), d.log_prob(torch.tensor([-1.0, 0.0, 50.0]))
    assert d.log_probs is d.__dict__["log_probs"]  # computed once and cached
    torch.testing.assert_close(a, TwoHotDist(logits).log_prob(torch.tensor([1.0, 2.0, 3.0])))
    torch.testing.assert_close(b, TwoHotDist(logits).log_prob(torch.tensor([-1.0, 0.0, 50.0])))


@pytest.mark.parametrize("bins", [1, 300])
def test_twohot_bins_outside_the_logits_width_is_an_error(bins):
    with pytest.raises(ValueError, match="bins"):
        TwoHotDist(torch.zeros(256), bins=bins)
