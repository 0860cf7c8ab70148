"""Tests for :mod:`sb3_worldmodels.common.returns`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sb3_worldmodels.common.returns import ReturnNormalizer, lambda_returns


def recursive_lambda_return(r: list[float], v: list[float], d: list[float], lam: float, t: int) -> float:
    """R_t = r_{t+1} + d_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H (plain Python recursion)."""
    horizon = len(r) - 1
    if t == horizon:
        return v[horizon]
    return r[t + 1] + d[t + 1] * ((1 - lam) * v[t + 1] + lam * recursive_lambda_return(r, v, d, lam, t + 1))


def n_step_return(r: list[float], v: list[float], d: list[float], t: int, n: int) -> float:
    """G_t^(n) = sum_{i=1..n} (prod_{j<i} d_{t+j}) r_{t+i} + (prod_{j<=n} d_{t+j}) v_{t+n}."""
    total, disc = 0.0, 1.0
    for i in range(1, n + 1):
        total += disc * r[t + i]
        disc *= d[t + i]
    return total + disc * v[t + n]


def mixture_lambda_return(r, v, d, lam, t):
    """lambda-return as the truncated geometric mixture of n-step returns (independent formulation)."""
    horizon = len(r) - 1
    m = horizon - t
    out = sum((1 - lam) * lam ** (n - 1) * n_step_return(r, v, d, t, n) for n in range(1, m))
    return out + lam ** (m - 1) * n_step_return(r, v, d, t, m)


def test_hand_computed_three_steps():
    # H = 3: states 0..3; index 0 of rewards/discounts is never used.
    r = torch.tensor([[99.0, 1.0, 2.0, 3.0]], dtype=torch.float64)
    v = torch.tensor([[99.0, 20.0, 30.0, 40.0]], dtype=torch.float64)
    d = torch.tensor([[99.0, 0.9, 0.8, 0.5]], dtype=torch.float64)
    # R_2 = 3 + 0.5 * 40 = 23
    # R_1 = 2 + 0.8 * (0.5 * 30 + 0.5 * 23) = 23.2
    # R_0 = 1 + 0.9 * (0.5 * 20 + 0.5 * 23.2) = 20.44
    out = lambda_returns(r, v, d, lam=0.5)
    assert out.shape == (1, 3)
    torch.testing.assert_close(out, torch.tensor([[20.44, 23.2, 23.0]], dtype=torch.float64))


def test_first_entries_are_ignored():
    r, v, d = torch.randn(3, 6), torch.randn(3, 6), torch.rand(3, 6)
    out = lambda_returns(r, v, d, 0.95)
    r2, v2, d2 = r.clone(), v.clone(), d.clone()
    r2[:, 0], v2[:, 0], d2[:, 0] = 1e3, -1e3, 0.0
    torch.testing.assert_close(lambda_returns(r2, v2, d2, 0.95), out)


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.95, 1.0])
def test_random_inputs_match_brute_force(lam):
    g = torch.Generator().manual_seed(1)
    n, horizon = 4, 7
    r = torch.randn(n, horizon + 1, generator=g, dtype=torch.float64)
    v = torch.randn(n, horizon + 1, generator=g, dtype=torch.float64) * 5
    d = 0.99 * (torch.rand(n, horizon + 1, generator=g, dtype=torch.float64) > 0.2).double()
    out = lambda_returns(r, v, d, lam)
    assert out.shape == (n, horizon)
    rows = [(r[i].tolist(), v[i].tolist(), d[i].tolist()) for i in range(n)]
    f64 = torch.float64
    rec = [[recursive_lambda_return(*x, lam, t) for t in range(horizon)] for x in rows]
    rec = torch.tensor(rec, dtype=f64)
    mix = torch.tensor([[mixture_lambda_return(*x, lam, t) for t in range(horizon)] for x in rows], dtype=f64)
    torch.testing.assert_close(rec, mix)  # the two references agree with each other
    torch.testing.assert_close(out, rec)


def test_lambda_one_is_bootstrapped_monte_carlo():
    g = torch.Generator().manual_seed(2)
    n, horizon, gamma = 3, 5, 0.9
    r = torch.randn(n, horizon + 1, generator=g, dtype=torch.float64)
    v = torch.randn(n, horizon + 1, generator=g, dtype=torch.float64)
    d = torch.full((n, horizon + 1), gamma, dtype=torch.float64)
    out = lambda_returns(r, v, d, lam=1.0)
    for t in range(horizon):
        k = torch.arange(1, horizon - t + 1, dtype=torch.float64)
        mc = (gamma ** (k - 1) * r[:, t + 1 :]).sum(1) + gamma ** (horizon - t) * v[:, horizon]
        torch.testing.assert_close(out[:, t], mc)
    # the intermediate values do not matter at all with lam = 1
    v2 = v.clone()
    v2[:, :-1] = 1e6
    torch.testing.assert_close(lambda_returns(r, v2, d, lam=1.0), out)


def test_lambda_zero_is_one_step_td():
    r, v, d = torch.randn(5, 9), torch.randn(5, 9), torch.rand(5, 9)
    torch.testing.assert_close(lambda_returns(r, v, d, lam=0.0), r[:, 1:] + d[:, 1:] * v[:, 1:])


def test_termination_cuts_bootstrap():
    # a zero discount at step 2 means nothing after step 2 reaches R_0 or R_1
    r = torch.tensor([[0.0, 1.0, 1.0, 100.0, 100.0]])
    v = torch.tensor([[0.0, 0.0, 0.0, 100.0, 100.0]])
    d = torch.tensor([[1.0, 1.0, 0.0, 1.0, 1.0]])
    out = lambda_returns(r, v, d, 0.9)
    # R_1 = r_2 + 0 = 1;  R_0 = r_1 + d_1 (0.1 v_1 + 0.9 R_1) = 1 + 0.9 = 1.9
    torch.testing.assert_close(out[:, :2], torch.tensor([[1.9, 1.0]]))


def test_per_state_lambda_tensor():
    """A tensor ``lam`` equal everywhere gives the float's returns; ``lam[:, k] = 0`` makes R_{k-1} bootstrap fully
    from v_k, so nothing after state k reaches the returns before it (an episode end in a replayed window)."""
    g = torch.Generator().manual_seed(3)
    r, v = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    d = torch.full((2, 8), 0.99)
    torch.testing.assert_close(lambda_returns(r, v, d, torch.full((2, 8), 0.9)), lambda_returns(r, v, d, 0.9))
    lam = torch.full((2, 8), 0.9)
    lam[:, 4] = 0.0
    out = lambda_returns(r, v, d, lam)
    torch.testing.assert_close(out[:, 3], r[:, 4] + 0.99 * v[:, 4])
    r2, v2 = r.clone(), v.clone()
    r2[:, 5:], v2[:, 5:] = 1e3, -1e3
    torch.testing.assert_close(lambda_returns(r2, v2, d, lam)[:, :4], out[:, :4])
    with pytest.raises(ValueError, match="same"):
        lambda_returns(r, v, d, torch.full((2, 7), 0.9))


def test_gradients_flow_to_inputs():
    r = torch.randn(2, 4, requires_grad=True)
    v = torch.randn(2, 4, requires_grad=True)
    lambda_returns(r, v, torch.full((2, 4), 0.9), 0.5).sum().backward()
    assert r.grad[:, 1:].abs().min() > 0 and v.grad[:, 1:].abs().min() > 0
    assert torch.count_nonzero(r.grad[:, 0]) == 0 and torch.count_nonzero(v.grad[:, 0]) == 0


@pytest.mark.parametrize(
    "shapes",
    [((2, 5), (2, 4), (2, 5)), ((2, 5), (2, 5), (3, 5)), ((2, 5, 1), (2, 5), (2, 5))],
)
def test_shape_mismatch_raises(shapes):
    r, v, d = (torch.zeros(s) for s in shapes)
    with pytest.raises(ValueError, match="same"):
        lambda_returns(r, v, d, 0.95)


# -------------------------------------------------------------------------------------- normalizer
def test_return_normalizer_ema_closed_form():
    g = torch.Generator().manual_seed(3)
    batch = torch.randn(16, 15, generator=g) * 40 + 7
    q05, q95 = np.quantile(batch.numpy().astype(np.float64), [0.05, 0.95])
    norm = ReturnNormalizer()
    assert norm.low.item() == 0.0 and norm.high.item() == 0.0
    for n in range(1, 51):
        norm.update(batch)
        if n in (1, 2, 10, 50):
            frac = 1 - 0.99**n
            assert norm.low.item() == pytest.approx(frac * q05, rel=1e-4, abs=1e-5)
            assert norm.high.item() == pytest.approx(frac * q95, rel=1e-4, abs=1e-5)
            assert norm.scale.item() == pytest.approx(max(1.0, frac * (q95 - q05)), rel=1e-4)
    assert norm.scale.item() > 1.0


def test_return_normalizer_other_settings():
    batch = torch.arange(101, dtype=torch.float32)  # quantile q of 0..100 is 100 q
    norm = ReturnNormalizer(decay=0.5, low=0.1, high=0.8)
    for _ in range(3):
        norm.update(batch)
    assert norm.low.item() == pytest.approx(0.875 * 10.0)
    assert norm.high.item() == pytest.approx(0.875 * 80.0)
    assert norm.scale.item() == pytest.approx(0.875 * 70.0)


def test_return_normalizer_scale_floor():
    norm = ReturnNormalizer()
    assert norm.scale.item() == 1.0  # before any update
    small = [torch.zeros(10), torch.full((10,), 5.0), torch.linspace(-0.3, 0.3, 100), torch.randn(50) * 0.01]
    for batch in small:
        norm.update(batch)
        assert norm.scale.item() >= 1.0
    assert norm.scale.item() == 1.0
    # a custom floor
    assert ReturnNormalizer(max_scale_floor=0.25).scale.item() == 0.25


def test_return_normalizer_is_a_buffer_state_and_ignores_grad():
    norm = ReturnNormalizer()
    x = torch.randn(32, requires_grad=True)
    norm.update(x * 100)
    assert not norm.low.requires_grad and not norm.high.requires_grad
    assert set(norm.state_dict()) == {"low", "high"}
    fresh = ReturnNormalizer()
    fresh.load_state_dict(norm.state_dict())
    assert fresh.scale.item() == pytest.approx(norm.scale.item())
    # multi-dimensional returns are flattened
    norm2 = ReturnNormalizer()
    norm2.update((x * 100).detach().reshape(4, 8))
    assert norm2.high.item() == pytest.approx(norm.high.item())


def test_return_normalizer_quantiles_not_in_state_dict() -> None:
    """The percentile levels are a buffer built once (no copy per update) that checkpoints do not carry."""
    norm = ReturnNormalizer(low=0.05, high=0.95)
    assert set(norm.state_dict()) == {"low", "high"}
    norm.update(torch.arange(101.0))
    np.testing.assert_allclose([norm.low.item(), norm.high.item()], [0.01 * 5.0, 0.01 * 95.0], rtol=1e-6)


@pytest.mark.parametrize(("every", "fraction"), [(1, 0.25), (3, 1.0), (2, 0.5)])
def test_slow_critic_schedule(every: int, fraction: float) -> None:
    """EMA (``every`` 1): the slow critic moves ``fraction`` of the way to the critic on every update. Copies (``every``
    > 1, DreamerV2's reference ``update_slow_target``): a whole copy on the first update, then ``fraction`` on updates
    1 + every, 1 + 2 every, ..., and nothing otherwise."""
    from gymnasium import spaces

    from sb3_worldmodels.dreamer.behavior import ActorCritic
    from sb3_worldmodels.dreamer.config import make_config

    cfg = make_config("v3", model_size="tiny", slow_critic_every=every, slow_critic_fraction=fraction)
    ac = ActorCritic(16, spaces.Box(-1, 1, (1,), np.float32), cfg)
    for step in range(1, 7):
        with torch.no_grad():
            for p in ac.critic.parameters():
                p.add_(1.0)
        before = [p.clone() for p in ac.slow_critic.parameters()]
        ac.update_slow_critic()
        for old, slow, fast in zip(before, ac.slow_critic.parameters(), ac.critic.parameters(), strict=True):
            if every == 1:
                expected = old * (1 - fraction) + fraction * fast
            elif step == 1:
                expected = fast
            else:
                expected = old * (1 - fraction) + fraction * fast if (step - 1) % every == 0 else old
            torch.testing.assert_close(slow, expected)
    assert int(ac.updates) == 6
