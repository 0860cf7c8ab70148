"""Actor-critic learning in imagination: the shared actor/critic graph gives each network its own gradient only."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sb3_worldmodels.bench import synthetic_batch
from sb3_worldmodels.dreamer.behavior import frozen
from sb3_worldmodels.dreamer.policies import DreamerPolicy

HORIZON, GAMMA, SEED = 5, 0.99, 123


def _policy(version: str, action_space: spaces.Space) -> tuple[DreamerPolicy, dict, torch.Tensor]:
    torch.manual_seed(0)
    policy = DreamerPolicy(spaces.Box(-np.inf, np.inf, (3,), np.float32), action_space, lambda _: 1e-4,
                           version=version, model_size="tiny")
    batch = synthetic_batch("vector", 2, 6)
    actions = batch.prev_actions
    if isinstance(action_space, spaces.Discrete):  # buffer actions of a Discrete space are indices
        actions = (actions > 0).float()
    _, post, _ = policy.world_model.loss(batch.observations, actions, batch.rewards, batch.is_first,
                                         batch.is_terminal)
    return policy, {k: v.detach() for k, v in post.items()}, batch.is_terminal


def _grads(module: torch.nn.Module) -> list[torch.Tensor | None]:
    grads = [None if p.grad is None else p.grad.clone() for p in module.parameters()]
    module.zero_grad(set_to_none=True)
    return grads


@pytest.mark.parametrize(
    ("version", "action_space"),
    [("v3", spaces.Box(-1, 1, (1,), np.float32)), ("v2", spaces.Box(-1, 1, (1,), np.float32)),
     ("v3", spaces.Discrete(2))],
    ids=["v3-box-backprop", "v2-box-slow-target", "v3-discrete-reinforce"],
)
def test_actor_and_critic_gradients_match_separate_graphs(version: str, action_space: spaces.Space,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The update's ``backward(inputs=...)`` on the shared graph equals the two separate computations: the actor
    loss with the critic frozen, and the critic loss on detached imagined features."""
    policy, post, is_terminal = _policy(version, action_space)
    ac, wm = policy.behavior, policy.world_model
    retnorm = copy.deepcopy(ac.retnorm.state_dict())

    def losses() -> tuple[torch.Tensor, torch.Tensor]:
        ac.retnorm.load_state_dict(retnorm)  # the return normaliser moves on every call
        torch.manual_seed(SEED)
        actor_loss, critic_loss, _ = ac.losses(wm, post, is_terminal, HORIZON, GAMMA)
        return actor_loss, critic_loss

    # as the update does it
    actor_loss, critic_loss = losses()
    actor_loss.backward(inputs=list(ac.actor.parameters()), retain_graph=True)
    critic_loss.backward(inputs=list(ac.critic.parameters()))
    shared_actor, shared_critic = _grads(ac.actor), _grads(ac.critic)
    assert all(g is None for g in _grads(wm)), "the world model must get no gradient from the behaviour losses"

    # reference 1: the actor loss with the critic frozen, plain backward
    with frozen(ac.critic):
        actor_loss, _ = losses()
        actor_loss.backward()
    ref_actor = _grads(ac.actor)
    assert all(g is None for g in _grads(ac.critic)) and all(g is None for g in _grads(wm))

    # reference 2: the critic loss on detached imagined features, plain backward
    imagine = ac.imagine
    monkeypatch.setattr(ac, "imagine", lambda *a, **k: tuple(x.detach() for x in imagine(*a, **k)))
    _, critic_loss = losses()
    critic_loss.backward()
    ref_critic = _grads(ac.critic)
    assert all(g is None or not g.any() for g in _grads(ac.actor))

    for got, want in [(shared_actor, ref_actor), (shared_critic, ref_critic)]:
        assert any(g is not None and g.abs().sum() > 0 for g in want)
        for g, w in zip(got, want, strict=True):
            assert (g is None) == (w is None)
            if g is not None:
                torch.testing.assert_close(g, w)


def test_slow_target_with_regulariser_runs_the_slow_critic_once() -> None:
    """With ``critic_target="slow"`` and ``slow_critic_reg > 0`` the slow critic's values serve both the returns
    and the regulariser's target: one forward, and the regulariser does change the critic loss."""
    policy, post, is_terminal = _policy("v2", spaces.Box(-1, 1, (1,), np.float32))
    ac, wm = policy.behavior, policy.world_model
    assert ac.cfg.critic_target == "slow"
    retnorm = copy.deepcopy(ac.retnorm.state_dict())
    calls: list[int] = []
    ac.slow_critic.register_forward_hook(lambda *_: calls.append(1))
    with torch.no_grad():  # a slow critic that differs from the critic, so the regulariser is not zero
        for p in ac.slow_critic.parameters():
            p.add_(0.1 * torch.randn_like(p))

    def critic_loss(reg: float) -> torch.Tensor:
        ac.cfg.slow_critic_reg = reg
        ac.retnorm.load_state_dict(retnorm)
        torch.manual_seed(SEED)
        return ac.losses(wm, post, is_terminal, HORIZON, GAMMA)[1].detach()

    plain = critic_loss(0.0)
    calls.clear()
    regularised = critic_loss(1.0)
    assert len(calls) == 1
    assert regularised > plain
