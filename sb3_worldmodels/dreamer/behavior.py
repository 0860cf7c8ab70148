"""Actor-critic learned in imagination (DreamerV2 / DreamerV3 behaviour learning)."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from gymnasium import spaces
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import (
    MSEDist,
    OneHotDist,
    TruncatedNormalDist,
    TruncNormalDist,
    TwoHotDist,
)
from sb3_worldmodels.common.init import dreamer_init, mark_split_output
from sb3_worldmodels.common.nets import MLP, ScalarHead
from sb3_worldmodels.common.returns import ReturnNormalizer, lambda_returns
from sb3_worldmodels.common.rssm import State
from sb3_worldmodels.dreamer.config import DreamerConfig
from sb3_worldmodels.dreamer.world_model import WorldModel

__all__ = ["ActorCritic", "frozen"]


def _shift(x: Tensor) -> Tensor:
    """``x`` moved one step later along axis 1 (``out[:, t + 1] = x[:, t]``; ``out[:, 0]`` is never read)."""
    return torch.cat([torch.zeros_like(x[:, :1]), x[:, :-1]], 1)


@contextmanager
def frozen(module: nn.Module) -> Iterator[None]:
    """Temporarily stop gradients from accumulating in ``module``'s parameters."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags, strict=True):
            p.requires_grad_(flag)


class ActorCritic(nn.Module):
    """Actor and critic on world-model features, with a slow critic and the return normaliser.

    :param feat_dim: size of the world-model features.
    :param action_space: Box (actions in [-1, 1]) or Discrete.
    :param cfg: Dreamer configuration.
    """

    def __init__(self, feat_dim: int, action_space: spaces.Space, cfg: DreamerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        for grad in (cfg.actor_grad_cont, cfg.actor_grad_disc):
            if grad not in ("backprop", "reinforce"):
                raise ValueError(f"actor gradient {grad!r} must be 'backprop' or 'reinforce'.")
        if cfg.action_dist not in ("normal", "trunc_normal"):
            raise ValueError(
                f"action_dist {cfg.action_dist!r} must be 'normal' (DreamerV3) or 'trunc_normal' (DreamerV2)."
            )
        self.discrete = isinstance(action_space, spaces.Discrete)
        self.action_dim = int(action_space.n) if self.discrete else int(action_space.shape[0])
        out = self.action_dim if self.discrete else 2 * self.action_dim
        self.actor = MLP(feat_dim, out, cfg.actor_layers, cfg.units, cfg.act, cfg.norm)
        if not self.discrete:  # the official actors have two output layers, mean and standard deviation
            mark_split_output(self.actor[-1], 2)
        self.critic = ScalarHead(feat_dim, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm, cfg.critic_head == "twohot",
                                 cfg.bins)
        dreamer_init([self.actor, self.critic], cfg.version)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.retnorm = ReturnNormalizer()
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))

    # ------------------------------------------------------------------------------------- dists
    def actor_dist(self, feat: Tensor) -> OneHotDist | TruncNormalDist:
        """Action distribution: one-hot with unimix (Discrete); for a Box, a normal with tanh mean, clipped
        (``action_dist="normal"``, DreamerV3) or truncated (``"trunc_normal"``, DreamerV2) to [-1, 1]."""
        return self.dist_from_raw(self.actor(feat))

    def dist_from_raw(self, out: Tensor) -> OneHotDist | TruncNormalDist:
        """Action distribution from the actor network's raw output."""
        if self.discrete:
            return OneHotDist(out, self.cfg.unimix)
        mean, std = out.chunk(2, -1)
        lo, hi = self.cfg.actor_min_std, self.cfg.actor_max_std
        if self.cfg.action_dist == "trunc_normal":  # DreamerV2's parametrisation: std in [lo, lo + 2]
            return TruncatedNormalDist(torch.tanh(mean), 2 * torch.sigmoid(std / 2) + lo)
        return TruncNormalDist(torch.tanh(mean), (hi - lo) * torch.sigmoid(std + 2.0) + lo)

    def _value_from(self, out: Tensor) -> TwoHotDist | MSEDist:
        """Value distribution from a critic's raw output."""
        return self.critic.dist(out)

    def value(self, feat: Tensor, slow: bool = False) -> TwoHotDist | MSEDist:
        """Critic (or slow critic) value distribution."""
        return self._value_from((self.slow_critic if slow else self.critic)(feat))

    # ------------------------------------------------------------------------------------- losses
    def imagine(self, wm: WorldModel, start: State, horizon: int) -> tuple[Tensor, Tensor, Tensor]:
        """Imagine ``horizon`` steps from every start state.

        :return: features (N, H+1, F), actions (N, H+1, A) and the actor's raw outputs (N, H+1, ...) that
            sampled them (with gradients to the actor under dynamics backprop, without under REINFORCE).
        """
        start = {k: v.reshape(-1, *v.shape[2:]).detach() for k, v in start.items()}
        raw: list[Tensor] = []

        def policy(state: State) -> Tensor:
            raw.append(self.actor(wm.rssm.feat(state).detach()))
            return wm.pad_action(self.dist_from_raw(raw[-1]).rsample())

        # REINFORCE needs no gradient through the imagined trajectory: skip building that graph
        with frozen(wm), torch.set_grad_enabled(self.backprop):
            states, actions = wm.rssm.imagine(policy, start, horizon)
        return wm.rssm.feat(states), actions, torch.stack(raw, 1)

    @property
    def backprop(self) -> bool:
        """Whether the actor learns by dynamics backpropagation (else REINFORCE) for this action space."""
        return (self.cfg.actor_grad_disc if self.discrete else self.cfg.actor_grad_cont) == "backprop"

    def losses(
        self, wm: WorldModel, start: State, is_terminal: Tensor, horizon: int, gamma: float,
        rewards: Tensor | None = None, is_last: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, dict[str, Any]]:
        """Actor and critic losses from imagined rollouts starting at every posterior state.

        :param wm: the world model (its parameters receive no gradient here).
        :param start: posterior states (B, T, ...).
        :param is_terminal: (B, T) terminal flags of the start states (their continue is taken from data).
        :param rewards: (B, T) replayed rewards and ``is_last`` (B, T) episode-end flags of the same windows:
            needed when ``critic_replay_scale > 0`` (see :meth:`replay_value_loss`), unused otherwise.
        :return: actor loss, critic loss, metrics. The two losses share one graph: back-propagate each into its
            own network's parameters only, ``actor_loss.backward(inputs=actor_params, retain_graph=True)`` then
            ``critic_loss.backward(inputs=critic_params)`` (the actor loss also depends on the critic, the critic
            loss on the imagined states).
        """
        cfg = self.cfg
        feat, actions, raw = self.imagine(wm, start, horizon)
        # Every head runs on all H+1 steps (slicing the (N, H+1, F) features instead would copy them for each head
        # and zero-fill their gradient).
        with frozen(wm), torch.set_grad_enabled(feat.requires_grad):
            reward = wm.reward_dist(feat).mean  # the reward of arriving in each state (the start's included)
            cont = None if wm.cont is None else wm.cont_dist(feat).mean
        if cont is None:  # no continue head (DreamerV2 on DMC / Meta-World): every imagined state continues
            discount = torch.full_like(reward, gamma)
        else:  # the start state's continue comes from data
            first = gamma * (1.0 - is_terminal.reshape(-1, 1).to(cont.dtype))
            # a DreamerV2 head predicts the discount itself (cont_is_discount), a DreamerV3 head the continue flag
            discount = torch.cat([first, cont[:, 1:] * (1.0 if cfg.cont_is_discount else gamma)], 1)
        # One critic forward serves the returns (the actor's gradient flows through them into the imagined
        # states) and the critic's own loss: the caller back-propagates the actor loss into the actor's
        # parameters only and the critic loss into the critic's only (``backward(inputs=...)``).
        critic_out = self.critic(feat)
        slow_value = self.value(feat, slow=True).mean if cfg.critic_target == "slow" else None
        value_for_returns = self._value_from(critic_out).mean if slow_value is None else slow_value
        if cfg.version == "v2":
            # DreamerV2's reference (thuml/HarmonyDream wmlib/agents/actor_critic.py, target / actor_loss /
            # critic_loss): R_t = r_t + d_t ((1 - lam) v_{t+1} + lam R_{t+1}) reads the reward and continue
            # predicted *in* state t, the weight of state t is prod_{i<t} d_i, and the actor learns in states
            # 0..H-2 towards R_{t+1}, the return of the state its action leads to.
            ret = lambda_returns(_shift(reward), value_for_returns, _shift(discount), cfg.lam)  # (N, H)
            weight = torch.cumprod(torch.cat([torch.ones_like(discount[:, :1]), discount[:, :-1]], 1), 1).detach()
            n_actor, actor_ret = horizon - 1, ret[:, 1:]
        else:
            # R_t = r_{t+1} + d_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}); weight: probability of being alive in state t
            ret = lambda_returns(reward, value_for_returns, discount, cfg.lam)  # (N, H)
            weight = (torch.cumprod(discount, 1) / gamma).detach()
            n_actor, actor_ret = horizon, ret
        base = value_for_returns[:, :n_actor]

        # actor: under backprop the imagination's own action distributions carry the actor's gradient
        policy = self.dist_from_raw(raw) if self.backprop else self.actor_dist(feat.detach())
        if cfg.return_norm:
            self.retnorm.update(ret)
            scale = self.retnorm.scale
        else:
            scale = torch.ones((), device=ret.device)
        adv = (actor_ret - base) / scale
        if self.backprop:  # V3 keeps the baseline (and its gradient through the imagined states); V2 does not
            objective = adv if cfg.backprop_baseline else actor_ret / scale
        else:
            logp = policy.log_prob(actions[..., : self.action_dim].detach())[:, :n_actor]
            objective = logp * adv.detach()
        entropy = policy.entropy()[:, :n_actor]
        actor_loss = -(weight[:, :n_actor] * (objective + cfg.actor_entropy * entropy)).mean()

        # critic
        if cfg.slow_critic_reg > 0 and slow_value is None:  # else the slow critic already ran for the returns
            with torch.no_grad():
                slow_value = self.value(feat, slow=True).mean
        slow_target = None if slow_value is None else slow_value[:, :-1]
        critic_ret = ret
        if cfg.critic_target_entropy and self.backprop:  # see DreamerConfig.critic_target_entropy
            critic_ret = torch.cat([ret[:, :1], ret[:, 1:] + cfg.actor_entropy * entropy[:, : horizon - 1]], 1)
        critic_loss = self.value_loss(self._value_from(critic_out[:, :-1]), critic_ret, slow_target)
        critic_loss = (weight[:, :-1] * critic_loss).mean()
        metrics: dict[str, Any] = {}
        if cfg.critic_replay_scale > 0:
            if rewards is None or is_last is None:
                raise ValueError("critic_replay_scale > 0 needs the replayed rewards and is_last in losses().")
            boot = ret[:, 0].detach().reshape(rewards.shape)
            start_feat = feat[:, 0].detach().reshape(*rewards.shape, -1)  # the imagination's first state is the start
            replay_loss, metrics["replay_return"] = self.replay_value_loss(
                start_feat, rewards, is_terminal, is_last, boot, gamma
            )
            metrics["replay_value_loss"] = replay_loss.detach()
            critic_loss = critic_loss + cfg.critic_replay_scale * replay_loss

        metrics.update({
            "actor_loss": actor_loss.detach(),
            "critic_loss": critic_loss.detach(),
            "imag_return": ret.detach().mean(),
            "imag_reward": reward[:, 1:].detach().mean(),
            "value": base.detach().mean(),
            "actor_entropy": entropy.detach().mean(),
            "return_scale": scale.detach(),
        })
        return actor_loss, critic_loss, metrics

    def replay_value_loss(
        self, feat: Tensor, rewards: Tensor, is_terminal: Tensor, is_last: Tensor, boot: Tensor, gamma: float
    ) -> tuple[Tensor, Tensor]:
        """DreamerV3's replay value loss: the critic on the replayed posterior features, towards lambda-returns
        over the replayed rewards that bootstrap from the imagined lambda-return of each replayed state.

        Along a window of T replayed states, ``R_t = r_{t+1} + gamma (1 - term_{t+1}) ((1 - lam) boot_{t+1}
        + lam R_{t+1})``, ``R_{T-1} = boot_{T-1}``, and the return bootstraps fully from ``boot`` at the last
        state of an episode (``lam`` is 0 there), so it never runs across an episode boundary. The last state
        of an episode is not a training state (the next row is another episode's first). Real rewards carry the
        value over the window's 64 steps per update, where imagination carries it over its 15; the slow-critic
        regulariser applies as in imagination.

        :param feat: (B, T, F) posterior features, detached.
        :param boot: (B, T) imagined lambda-return from each state (``R_0`` of its rollout), detached.
        :return: the loss (mean over the training states) and the mean replay return, detached.
        """
        cfg = self.cfg
        rewards, is_terminal, is_last = rewards.to(feat.dtype), is_terminal.to(feat.dtype), is_last.to(feat.dtype)
        ret = lambda_returns(rewards, boot, gamma * (1.0 - is_terminal), cfg.lam * (1.0 - is_last))  # (B, T-1)
        slow_target = None
        if cfg.slow_critic_reg > 0:
            with torch.no_grad():
                slow_target = self.value(feat[:, :-1], slow=True).mean
        loss = self.value_loss(self.value(feat[:, :-1]), ret, slow_target)
        weight = 1.0 - is_last[:, :-1]
        return (weight * loss).sum() / weight.sum().clamp(min=1.0), ret.detach().mean()

    def value_loss(self, dist: TwoHotDist | MSEDist, target: Tensor, slow_target: Tensor | None = None) -> Tensor:
        """Per-state critic loss: ``-log p(target) - slow_critic_reg * log p(slow_target)``.

        :param dist: the critic's value distribution on the training states.
        :param target: the return the critic regresses (detached here).
        :param slow_target: the slow critic's value on the same states (detached here); ``None`` or a
            ``slow_critic_reg`` of 0 leaves the regulariser out.
        :return: the unreduced loss, shaped as ``target``.
        """
        loss = -dist.log_prob(target.detach())
        if slow_target is not None and self.cfg.slow_critic_reg > 0:
            loss = loss - self.cfg.slow_critic_reg * dist.log_prob(slow_target.detach())
        return loss

    @torch.no_grad()
    def update_slow_critic(self) -> None:
        """EMA (V3: 2% per update) or a copy every ``slow_critic_every`` updates (V2).

        With ``slow_critic_every > 1`` the copy follows DreamerV2's reference (thuml/HarmonyDream
        ``wmlib/agents/actor_critic.py`` ``update_slow_target``): on the first update (a whole copy, whatever
        ``slow_critic_fraction``) and then on every ``slow_critic_every``-th after it, i.e. after critic steps
        1, 1 + every, 1 + 2 every, ...

        Everything happens in place on the device, without reading the update counter back to the host, so the
        update can be captured in a CUDA graph: the mixing weight is a tensor that is 0 on the updates that are
        not due (``slow * 1 + 0 * fast`` leaves the slow critic bit-for-bit unchanged).
        """
        mix = self.cfg.slow_critic_fraction
        slow_params = list(self.slow_critic.parameters())
        fast_params = list(self.critic.parameters())
        if self.cfg.slow_critic_every == 1:
            self.updates += 1
            for slow, fast in zip(slow_params, fast_params, strict=True):
                slow.mul_(1 - mix).add_(mix * fast)
            return
        due = torch.remainder(self.updates, self.cfg.slow_critic_every) == 0
        gain = torch.where(due, torch.where(self.updates == 0, 1.0, mix), 0.0)
        self.updates += 1
        for slow, fast in zip(slow_params, fast_params, strict=True):
            slow.mul_(1 - gain).add_(gain * fast)
