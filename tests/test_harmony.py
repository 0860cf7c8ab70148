"""Tests for :class:`sb3_worldmodels.common.harmony.Harmonizer` (HarmonyDream loss balancing)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from sb3_worldmodels.common.harmony import Harmonizer


def test_initial_state():
    h = Harmonizer(["obs", "reward", "dyn"])
    assert h.names == ["obs", "reward", "dyn"]
    assert h.coefficients() == {"obs": 1.0, "reward": 1.0, "dyn": 1.0}
    assert h.log_sigmas() == {"obs": 0.0, "reward": 0.0, "dyn": 0.0}
    params = list(h.parameters())
    assert len(params) == 1 and params[0].shape == (3,) and params[0].requires_grad


def test_forward_matches_formula_for_hand_set_s():
    h = Harmonizer(["obs", "reward", "dyn"])
    s = [0.5, -1.2, 2.0]
    with torch.no_grad():
        h.log_sigma.copy_(torch.tensor(s))
    losses = {"dyn": torch.tensor(0.3), "obs": torch.tensor(12.0), "reward": torch.tensor(0.02)}
    expected = sum(losses[n].item() * math.exp(-si) + math.log(1 + math.exp(si)) for n, si in zip(h.names, s))
    total = h(losses)
    assert total.shape == ()
    assert total.item() == pytest.approx(expected, rel=1e-6)
    expected_coef = {"obs": math.exp(-0.5), "reward": math.exp(1.2), "dyn": math.exp(-2.0)}
    assert h.coefficients() == pytest.approx(expected_coef)
    assert h.log_sigmas() == pytest.approx(dict(zip(h.names, s)))


def test_forward_at_init_and_gradients():
    h = Harmonizer(["a", "b"])
    la = torch.tensor(3.0, requires_grad=True)
    lb = torch.tensor([0.5], requires_grad=True)  # shape (1,) is accepted as a scalar
    total = h({"a": la, "b": lb})
    assert total.item() == pytest.approx(3.5 + 2 * math.log(2.0))
    total.backward()
    # d total / d L_i = e^{-s_i}; d total / d s_i = -L_i e^{-s_i} + sigmoid(s_i)
    assert la.grad.item() == pytest.approx(1.0) and lb.grad.item() == pytest.approx(1.0)
    torch.testing.assert_close(h.log_sigma.grad, torch.tensor([-3.0 + 0.5, -0.5 + 0.5]))


def test_forward_double_precision_losses():
    h = Harmonizer(["a"])
    out = h({"a": torch.tensor(2.0, dtype=torch.float64)})
    assert out.dtype == torch.float64
    assert out.item() == pytest.approx(2.0 + math.log(2.0))


@pytest.mark.parametrize("loss", [0.01, 0.5, 1.0, 100.0])
def test_optimal_coefficient_closed_form(loss):
    c = Harmonizer.optimal_coefficient(loss)
    # stationarity of f(s) = L e^{-s} + log(1 + e^s) at c = e^{-s}:  L c = 1 / (1 + c)
    assert loss * c == pytest.approx(1 / (1 + c), rel=1e-9)
    assert c == pytest.approx(2 / (loss + math.sqrt(loss * loss + 4 * loss)), rel=1e-12)
    # and it is a minimum: f is larger on either side
    s = -math.log(c)

    def f(x):
        return loss * math.exp(-x) + math.log1p(math.exp(x))

    assert f(s) < f(s - 1e-2) and f(s) < f(s + 1e-2)


def test_optimal_coefficient_known_values():
    assert Harmonizer.optimal_coefficient(0.5) == pytest.approx(1.0)  # L = 1/2 keeps the coefficient at 1
    assert Harmonizer.optimal_coefficient(2.0) == pytest.approx(2 / (2 + math.sqrt(12)))
    # large losses are scaled down roughly as 1/L, small ones up roughly as 1/sqrt(L)
    assert Harmonizer.optimal_coefficient(1e4) == pytest.approx(1e-4, rel=1e-3)
    assert Harmonizer.optimal_coefficient(1e-6) == pytest.approx(1e3, rel=1e-2)


def test_gradient_descent_converges_to_optimum():
    losses = {"small": 0.01, "one": 1.0, "big": 100.0}
    h = Harmonizer(losses)
    # plain full-batch gradient descent: f is convex in s with curvature <= ~1 near every optimum here
    opt = torch.optim.SGD(h.parameters(), lr=0.5)
    fixed = {k: torch.tensor(v) for k, v in losses.items()}
    for _ in range(500):
        opt.zero_grad()
        h(fixed).backward()
        opt.step()
    for name, c in h.coefficients().items():
        assert c == pytest.approx(Harmonizer.optimal_coefficient(losses[name]), rel=1e-3), name
    # the gradient with respect to s vanishes at the optimum
    opt.zero_grad()
    h(fixed).backward()
    assert h.log_sigma.grad.abs().max().item() < 1e-4


def test_loss_gradient_is_scaled_by_coefficient():
    # the harmonizer scales gradients of the losses by e^{-s}
    h = Harmonizer(["x"])
    with torch.no_grad():
        h.log_sigma.fill_(math.log(4.0))
    w = torch.tensor(2.0, requires_grad=True)
    h({"x": w**2}).backward()
    assert w.grad.item() == pytest.approx(2 * 2.0 / 4.0)


# --------------------------------------------------------------------------------------------- errors
def test_missing_key_raises():
    h = Harmonizer(["obs", "reward"])
    with pytest.raises(KeyError, match="missing \\['reward'\\]"):
        h({"obs": torch.tensor(1.0)})


def test_extra_key_raises():
    h = Harmonizer(["obs", "reward"])
    with pytest.raises(KeyError, match="unexpected \\['cont'\\]"):
        h({"obs": torch.tensor(1.0), "reward": torch.tensor(1.0), "cont": torch.tensor(1.0)})


def test_empty_names_raise():
    with pytest.raises(ValueError, match="at least one"):
        Harmonizer([])


def test_duplicate_names_raise():
    with pytest.raises(ValueError, match="unique"):
        Harmonizer(["obs", "dyn", "obs"])


def test_names_from_generator_and_state_dict_round_trip():
    h = Harmonizer(n for n in ["a", "b"])
    with torch.no_grad():
        h.log_sigma.copy_(torch.tensor([0.3, -0.7]))
    h2 = Harmonizer(["a", "b"])
    h2.load_state_dict(h.state_dict())
    assert h2.log_sigmas() == pytest.approx({"a": 0.3, "b": -0.7})


# ------------------------------------------------------------------------------------- stand-alone use
def test_standalone_two_loss_regression():
    """A two-output linear model trained with its harmonizer in one Adam optimizer: the output with the
    larger (irreducible) loss ends with the smaller coefficient, and both sit near the closed form."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(512, 4, generator=g)
    w_true = torch.randn(4, 2, generator=g)
    noise_std = torch.tensor([6.0, 0.1])  # irreducible MSE ~36 for "big", ~0.01 for "small"
    y = x @ w_true + torch.randn(512, 2, generator=g) * noise_std

    model = nn.Linear(4, 2)
    harmonizer = Harmonizer(["big", "small"])
    opt = torch.optim.Adam([*model.parameters(), *harmonizer.parameters()], lr=0.05)
    for _ in range(400):
        pred = model(x)
        losses = {"big": ((pred[:, 0] - y[:, 0]) ** 2).mean(), "small": ((pred[:, 1] - y[:, 1]) ** 2).mean()}
        total = harmonizer(losses)
        opt.zero_grad()
        total.backward()
        opt.step()

    coef = harmonizer.coefficients()
    assert coef["big"] < 1.0 < coef["small"]
    assert harmonizer.log_sigmas()["big"] > 0 > harmonizer.log_sigmas()["small"]
    for name in ["big", "small"]:
        assert coef[name] == pytest.approx(Harmonizer.optimal_coefficient(losses[name].item()), rel=0.1)
    # the model itself still learned (the small-noise output is fit closely)
    assert losses["small"].item() < 0.05
