"""Recurrent state-space model (RSSM) of Dreamer.

State: deterministic ``deter`` (LayerNorm GRU) and stochastic ``stoch``, either ``stoch`` categorical
variables of ``classes`` classes each (DreamerV2/V3, straight-through) or a ``stoch``-dimensional Gaussian
(``classes=0``, PlaNet/DreamerV1 style). ``observe`` filters a sequence of embeddings, ``imagine`` rolls the
prior forward under a policy. ``action_dim=0`` gives an action-free RSSM (used by APV pre-training).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import OneHotDist, at_least_fp32, normal_like, unimix_logits
from sb3_worldmodels.common.nets import get_act

__all__ = ["GRUCell", "RSSM", "State"]

State = dict[str, Tensor]


class GRUCell(nn.Module):
    """LayerNorm GRU of Dreamer: one linear layer over [x, h], LayerNorm (eps 1e-3), update-gate bias ``update_bias``.

    The LayerNorm is there in every Dreamer generation, also where the rest of the network has no norm (DreamerV2:
    thuml/HarmonyDream ``wmlib/nets/dynamics/rssm.py:44`` builds its cell with ``norm=True`` whatever the config).
    ``bias``: the linear layer's bias (DreamerV2's cell has one, DreamerV3's LayerNorm-everywhere network does not).
    """

    def __init__(self, in_dim: int, size: int, bias: bool = False, update_bias: float = -1.0) -> None:
        super().__init__()
        self.size = size
        self.update_bias = update_bias
        self.linear = nn.Linear(in_dim + size, 3 * size, bias=bias)
        self.norm = nn.LayerNorm(3 * size, eps=1e-3)

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        """One step: returns the new hidden state."""
        parts = self.norm(self.linear(torch.cat([x, h], -1)))
        reset, cand, update = parts.split(self.size, -1)
        reset = torch.sigmoid(reset)
        cand = torch.tanh(reset * cand)
        update = torch.sigmoid(update + self.update_bias)
        return update * cand + (1 - update) * h

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args: object, **kwargs: object) -> None:
        if f"{prefix}linear.weight" in state_dict and f"{prefix}norm.weight" not in state_dict:
            raise ValueError(
                f"{prefix.rstrip('.')}: this checkpoint's GRU has no LayerNorm. It was saved by sb3-worldmodels 0.1.0 "
                "or earlier, whose DreamerV2-family RSSM (DreamerV2, DreamerHarmony(base='v2'), APV, ContextDreamer) "
                "left the LayerNorm out, unlike the official code; the LayerNorm changes what the network computes, so "
                "these weights cannot be converted. Train (or pre-train) the model again with this version."
            )
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)  # type: ignore[arg-type]


class RSSM(nn.Module):
    """Recurrent state-space model.

    :param embed_dim: size of the observation embedding fed to the posterior.
    :param action_dim: size of the (padded) action vector; 0 for an action-free model.
    :param deter: GRU size.
    :param hidden: width of the hidden layers around the GRU.
    :param stoch: number of categorical variables (or Gaussian dims when ``classes == 0``).
    :param classes: classes per categorical variable; 0 selects a Gaussian stochastic state.
    :param unimix: uniform mixing of the categorical latents (0.01 in V3, 0 in V2).
    :param act: activation name.
    :param norm: LayerNorm in the hidden layers (the GRU always has one; without ``norm`` its linear layer has a
        bias, as DreamerV2's).
    :param learned_initial: learn the initial deterministic state (V3) instead of zeros (V2).
    :param min_std: minimum std of the Gaussian stochastic state.
    """

    def __init__(
        self,
        embed_dim: int,
        action_dim: int,
        deter: int = 512,
        hidden: int = 512,
        stoch: int = 32,
        classes: int = 32,
        unimix: float = 0.01,
        act: str = "silu",
        norm: bool = True,
        learned_initial: bool = True,
        min_std: float = 0.1,
    ) -> None:
        super().__init__()
        self.embed_dim, self.action_dim = embed_dim, action_dim
        self.deter_size, self.hidden, self.stoch, self.classes = deter, hidden, stoch, classes
        self.unimix, self.min_std = unimix, min_std
        self.discrete = classes > 0
        self.stoch_flat = stoch * classes if self.discrete else stoch
        self.feat_dim = deter + self.stoch_flat
        stats = stoch * classes if self.discrete else 2 * stoch

        def block(i: int) -> nn.Sequential:
            mods: list[nn.Module] = [nn.Linear(i, hidden, bias=not norm)]
            if norm:
                mods.append(nn.LayerNorm(hidden, eps=1e-3))
            mods.append(get_act(act)())
            return nn.Sequential(*mods)

        self.img_in = block(self.stoch_flat + action_dim)
        self.gru = GRUCell(hidden, deter, bias=not norm)
        self.img_out = nn.Sequential(block(deter), nn.Linear(hidden, stats))
        self.obs_out = nn.Sequential(block(deter + embed_dim), nn.Linear(hidden, stats))
        self.initial_deter = nn.Parameter(torch.zeros(deter), requires_grad=learned_initial)
        self.learned_initial = learned_initial

    # ----------------------------------------------------------------------------------------------
    def _stats(self, raw: Tensor) -> State:
        if self.discrete:
            logits = raw.reshape(*raw.shape[:-1], self.stoch, self.classes)
            return {"logits": logits}
        mean, std = raw.chunk(2, -1)
        return {"mean": mean, "std": F.softplus(std) + self.min_std}

    def _sample(self, stats: State, sample: bool = True) -> Tensor:
        if self.discrete:
            dist = OneHotDist(stats["logits"], self.unimix)
            z = dist.rsample() if sample else dist.mode
            return z.reshape(*z.shape[:-2], self.stoch_flat)
        if sample:
            return stats["mean"] + stats["std"] * normal_like(stats["std"])
        return stats["mean"]

    def initial(self, batch: int) -> State:
        """Initial state for ``batch`` sequences (learned ``tanh`` deter and its prior mode in V3)."""
        dev = self.initial_deter.device
        if self.learned_initial:
            deter = torch.tanh(self.initial_deter).expand(batch, -1)
            stats = self._stats(self.img_out(deter))
            stoch = self._sample(stats, sample=False)
        else:
            deter = torch.zeros(batch, self.deter_size, device=dev)
            stoch = torch.zeros(batch, self.stoch_flat, device=dev)
            stats = self._stats(torch.zeros(batch, self.img_out[-1].out_features, device=dev))
        return {"deter": deter, "stoch": stoch, **stats}

    def feat(self, state: State) -> Tensor:
        """Model features [deter, stoch] used by every head."""
        return torch.cat([state["deter"], state["stoch"]], -1)

    def _reset(
        self, state: State, action: Tensor | None, is_first: Tensor, init: State | None = None
    ) -> tuple[State, Tensor | None]:
        """Where ``is_first``, the state becomes ``init`` (default :meth:`initial`) and the action zero.

        On an accelerator this never reads ``is_first`` back to the host (a sync per step would stall the
        kernel queue of every update); on the CPU, where reading it is free, a step with no episode start
        returns at once.
        """
        first = is_first.bool()
        if not _may_reset(first):
            return state, action
        if init is None:
            init = self.initial(first.shape[0])
        new = {k: torch.where(first.reshape(-1, *([1] * (v.dim() - 1))), init[k], v) for k, v in state.items()}
        if action is not None:
            action = torch.where(first[:, None], torch.zeros_like(action), action)
        return new, action

    def _deter_step(self, state: State, action: Tensor | None) -> Tensor:
        """Deterministic transition: [stoch, action] -> Linear -> norm -> act -> GRU -> the next ``deter``."""
        x = state["stoch"] if action is None or self.action_dim == 0 else torch.cat([state["stoch"], action], -1)
        return self.gru(self.img_in(x), state["deter"])

    def _prior(self, deter: Tensor) -> State:
        """Prior statistics of the stochastic state given ``deter`` (any leading shape)."""
        return self._stats(self.img_out(deter))

    def _posterior(self, deter: Tensor, embed: Tensor, sample: bool = True) -> State:
        """Posterior state given ``deter`` and the observation embedding."""
        stats = self._stats(self.obs_out(torch.cat([deter, embed], -1)))
        return {"deter": deter, "stoch": self._sample(stats, sample), **stats}

    def img_step(self, state: State, action: Tensor | None) -> State:
        """Prior step: [stoch, action] -> GRU -> deter -> prior over the next stoch, sampled."""
        deter = self._deter_step(state, action)
        stats = self._prior(deter)
        return {"deter": deter, "stoch": self._sample(stats), **stats}

    def obs_step(
        self,
        state: State,
        action: Tensor | None,
        embed: Tensor,
        is_first: Tensor,
        sample: bool = True,
        init: State | None = None,
    ) -> tuple[State, State]:
        """Posterior step: resets where ``is_first``, takes a prior step, then conditions on ``embed``.

        ``sample=False`` takes the posterior's mode (deterministic acting); ``init`` is the state a reset
        takes (default :meth:`initial`, which :meth:`observe` computes once per sequence).
        :return: the posterior and the (sampled) prior of this step.
        """
        state, action = self._reset(state, action, is_first, init)
        prior = self.img_step(state, action)
        return self._posterior(prior["deter"], embed, sample), prior

    def _filter_step(
        self, state: State, action: Tensor | None, embed: Tensor, is_first: Tensor, init: State | None
    ) -> State:
        """One step of :meth:`observe`: reset where ``is_first``, deterministic transition, sampled posterior.

        The prior head is left out: :meth:`observe` applies it to all steps at once after the loop.
        """
        state, action = self._reset(state, action, is_first, init)
        return self._posterior(self._deter_step(state, action), embed)

    def observe(
        self, embed: Tensor, actions: Tensor | None, is_first: Tensor, state: State | None = None
    ) -> tuple[State, State]:
        """Filter a sequence.

        :param embed: (B, T, E) embeddings.
        :param actions: (B, T, A) previous actions (action that led to step t), or ``None`` (action-free).
        :param is_first: (B, T) episode-start flags (state and action are reset there).
        :param state: state before the first step, default the initial state.
        :return: posteriors (``deter``, sampled ``stoch`` and the statistics) and priors (``deter`` and the
            statistics: ``logits``, or ``mean``/``std``; no sample, which nothing here needs), each a dict of
            (B, T, ...) tensors.
        """
        b, t = embed.shape[:2]
        # the initial state depends on the parameters only: computed once, for the start and every reset
        # (on the CPU only when needed: reading is_first there costs no sync)
        if state is None:
            state = init = self.initial(b)
        else:
            init = self.initial(b) if _may_reset(is_first) else None
        posts = []
        for i in range(t):
            act = None if actions is None else actions[:, i]
            state = self._filter_step(state, act, embed[:, i], is_first[:, i], init)
            posts.append(state)
        post = _stack(posts)
        # the prior only feeds the KL terms: one batched head over all T steps instead of T small ones in the loop
        return post, {"deter": post["deter"], **self._prior(post["deter"])}

    def imagine(
        self, policy: Callable[[State], Tensor], start: State, horizon: int
    ) -> tuple[State, Tensor]:
        """Roll the prior ``horizon`` steps from ``start`` (a dict of (N, ...) tensors).

        :param policy: maps a state to an action (N, A); called before every step.
        :return: the states (N, horizon + 1, ...) including the start, and the actions (N, horizon + 1, A)
            where action t is taken in state t.
        """
        state = {k: v for k, v in start.items()}
        states, actions = [state], []
        for _ in range(horizon):
            action = policy(state)
            actions.append(action)
            state = self.img_step(state, action)
            states.append(state)
        actions.append(policy(state))
        return _stack(states), torch.stack(actions, 1)

    def kl(self, post: State, prior: State) -> tuple[Tensor, Tensor]:
        """Per-step KL terms ``(dyn, rep)`` = (KL[sg(post) || prior], KL[post || sg(prior)]), shape (B, T)."""
        post = {k: at_least_fp32(v) for k, v in post.items()}  # fp32 even under bf16 autocast
        prior = {k: at_least_fp32(v) for k, v in prior.items()}
        if self.discrete:
            lp_post = unimix_logits(post["logits"], self.unimix)
            lp_prior = unimix_logits(prior["logits"], self.unimix)
            p_post = lp_post.exp()
            dyn = (p_post.detach() * (lp_post.detach() - lp_prior)).sum((-2, -1))
            rep = (p_post * (lp_post - lp_prior.detach())).sum((-2, -1))
            return dyn, rep

        def gauss_kl(m1: Tensor, s1: Tensor, m2: Tensor, s2: Tensor) -> Tensor:
            return (torch.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5).sum(-1)

        dyn = gauss_kl(post["mean"].detach(), post["std"].detach(), prior["mean"], prior["std"])
        rep = gauss_kl(post["mean"], post["std"], prior["mean"].detach(), prior["std"].detach())
        return dyn, rep


def _may_reset(is_first: Tensor) -> bool:
    """Whether ``is_first`` may hold an episode start: read on the CPU, where that is free; always ``True`` on an
    accelerator, where reading it would be a host sync."""
    return is_first.device.type != "cpu" or bool(is_first.any())


def _stack(states: list[State]) -> State:
    return {k: torch.stack([s[k] for s in states], 1) for k in states[0]}
