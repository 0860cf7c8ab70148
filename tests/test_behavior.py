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
                                         batch.is_terminal, GAMMA)
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


def test_value_loss_is_the_target_nll_plus_the_regulariser_and_detaches_its_targets() -> None:
    """``value_loss`` is ``-log p(target) - reg * log p(slow)`` per state, and only the distribution gets a gradient."""
    policy, post, _ = _policy("v3", spaces.Box(-1, 1, (1,), np.float32))
    ac = policy.behavior
    feat = policy.world_model.rssm.feat(post)
    target = torch.randn(feat.shape[:-1], requires_grad=True)
    slow = torch.randn(feat.shape[:-1], requires_grad=True)
    dist = ac.value(feat)
    ac.cfg.slow_critic_reg = 0.5
    loss = ac.value_loss(dist, target, slow)
    assert loss.shape == target.shape
    torch.testing.assert_close(loss, -dist.log_prob(target) - 0.5 * dist.log_prob(slow))
    torch.testing.assert_close(ac.value_loss(dist, target), -dist.log_prob(target))
    ac.cfg.slow_critic_reg = 0.0
    torch.testing.assert_close(ac.value_loss(dist, target, slow), -dist.log_prob(target))
    ac.cfg.slow_critic_reg = 0.5
    ac.value_loss(dist, target, slow).sum().backward()
    assert target.grad is None and slow.grad is None
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in ac.critic.parameters())


def _replay_returns_by_hand(r: list[float], boot: list[float], term: list[float], last: list[float],
                            gamma: float, lam: float) -> list[float]:
    """DreamerV3's replay lambda-return written as a plain loop over one window (its reference formulation):
    ``cont = lam (1 - last)``, ``R_t = r_{t+1} + gamma (1 - term_{t+1}) ((1 - cont) boot_{t+1} + cont R_{t+1})``."""
    rets = [boot[-1]]
    for t in reversed(range(len(r) - 1)):
        live, cont = gamma * (1 - term[t + 1]), lam * (1 - last[t + 1])
        rets.append(r[t + 1] + live * ((1 - cont) * boot[t + 1] + cont * rets[-1]))
    return rets[::-1][:-1]


def test_replay_value_loss_targets_and_episode_ends() -> None:
    """The replay value loss regresses the critic, on the replayed states, towards lambda-returns over the
    replayed rewards bootstrapped from the imagined returns; it never runs across an episode end and leaves out
    the episode's last state."""
    policy, post, is_terminal = _policy("v3", spaces.Box(-1, 1, (1,), np.float32))
    ac, wm = policy.behavior, policy.world_model
    feat = wm.rssm.feat(post).detach()
    b, t = feat.shape[:2]
    g = torch.Generator().manual_seed(4)
    rewards, boot = torch.rand(b, t, generator=g), 10 * torch.rand(b, t, generator=g)
    term, last = torch.zeros(b, t), torch.zeros(b, t)
    last[0, 2] = 1.0  # window 0: an episode ends at row 2 (truncated), the next begins at row 3
    term[1, 3] = last[1, 3] = 1.0  # window 1: terminates at row 3

    with torch.no_grad():  # a critic that is not uniform (zero-initialised, its loss ignores the target)
        for p in ac.critic.parameters():
            p.add_(0.1 * torch.randn_like(p))
    value_dist = type(ac.value(feat))
    log_prob = value_dist.log_prob

    def replay(rew: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        targets: list[torch.Tensor] = []
        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(value_dist, "log_prob", lambda self, x: (targets.append(x), log_prob(self, x))[1])
            loss, mean_ret = ac.replay_value_loss(feat, rew, term, last, boot, GAMMA)
        return loss, mean_ret, targets[0]

    loss, mean_ret, ret = replay(rewards)
    assert ret.shape == (b, t - 1)
    for i in range(b):
        want = _replay_returns_by_hand(rewards[i].tolist(), boot[i].tolist(), term[i].tolist(), last[i].tolist(),
                                       GAMMA, ac.cfg.lam)
        torch.testing.assert_close(ret[i], torch.tensor(want))
    torch.testing.assert_close(ret[0, 1], rewards[0, 2] + GAMMA * boot[0, 2])  # full bootstrap at the end
    torch.testing.assert_close(ret[1, 2], rewards[1, 3])  # no bootstrap past a termination
    torch.testing.assert_close(mean_ret, ret.mean())
    # the next episode's rewards move its own returns and the loss, never the returns before the episode end
    rewards2 = rewards.clone()
    rewards2[0, 3:] += 100.0
    loss2, _, ret2 = replay(rewards2)
    torch.testing.assert_close(ret2[0, :2], ret[0, :2])
    assert (ret2[0, 2:] > ret[0, 2:] + 50).all() and not torch.allclose(loss2, loss)
    with torch.no_grad():
        dist = ac.value(feat[:, :-1])
        per_state = -dist.log_prob(ret) - ac.cfg.slow_critic_reg * dist.log_prob(
            ac.value(feat[:, :-1], slow=True).mean)
    weight = 1.0 - last[:, :-1]
    torch.testing.assert_close(loss, (weight * per_state).sum() / weight.sum())


def test_critic_replay_scale_adds_the_replay_loss_to_the_critic_only() -> None:
    """``critic_replay_scale > 0`` adds ``scale * replay_value_loss`` to the critic loss (the actor loss and the
    world model are untouched) and needs the replayed rewards; a full update runs with it."""
    policy, post, is_terminal = _policy("v3", spaces.Box(-1, 1, (1,), np.float32))
    ac, wm = policy.behavior, policy.world_model
    retnorm = copy.deepcopy(ac.retnorm.state_dict())
    batch = synthetic_batch("vector", 2, 6)

    def run(scale: float) -> tuple[torch.Tensor, torch.Tensor, dict]:
        ac.cfg.critic_replay_scale = scale
        ac.retnorm.load_state_dict(retnorm)
        torch.manual_seed(SEED)
        a, c, m = ac.losses(wm, post, is_terminal, HORIZON, GAMMA, batch.rewards, batch.is_last)
        return a.detach(), c.detach(), m

    actor0, critic0, metrics0 = run(0.0)
    assert "replay_value_loss" not in metrics0
    actor1, critic1, metrics1 = run(0.3)
    torch.testing.assert_close(actor1, actor0)
    torch.testing.assert_close(critic1, critic0 + 0.3 * metrics1["replay_value_loss"])
    assert metrics1["replay_value_loss"] > 0
    with pytest.raises(ValueError, match="replayed rewards"):
        ac.losses(wm, post, is_terminal, HORIZON, GAMMA)

    before = [p.detach().clone() for p in ac.critic.parameters()]
    metrics = policy.train_step(batch, HORIZON, GAMMA)
    assert "replay_value_loss" in metrics
    assert any(not torch.equal(p, q) for p, q in zip(before, ac.critic.parameters(), strict=True))
