"""What every sampling-based visual planner shares: the predictor interface, costs, and the MPC loop.

A :class:`Planner` searches over action sequences of ``horizon`` steps, scoring each candidate by what a video
predictor imagines from the recent frames: the distance of the predicted frames to a goal image (in pixels or in
the space of a feature function), the predicted rewards, or any cost function. Subclasses (CEM, MPPI) only say how
the candidates are drawn and refit (:meth:`Planner._optimize`). Through :meth:`Planner.predict` a planner acts like
an SB3 policy, so ``evaluate_policy(planner, env)`` runs model-predictive control: plan, take the first action,
re-plan from the next frame, starting each plan from the previous one shifted by a step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

__all__ = ["Planner", "VideoPredictor"]

CostFn = Callable[[Tensor, "Tensor | None"], Tensor]


@runtime_checkable
class VideoPredictor(Protocol):
    """The interface planners need (the VP2 benchmark's): imagine the frames that follow an action sequence.

    ``predict(context_frames, actions)`` takes uint8 frames ``(B, Tc, C, H, W)`` (the most recent last) and actions
    ``(B, T, A)`` taken after the last context frame, scaled to ``[-1, 1]`` like SB3's replay buffers store Box
    actions, and returns the ``T`` predicted uint8 frames ``(B, T, C, H, W)``, or ``(frames, rewards)`` with the
    predicted rewards ``(B, T)`` of reaching each frame. It may take ``context_actions`` ``(B, Tc - 1, A)``, the
    actions between the context frames.
    """

    def predict(self, context_frames: Tensor, actions: Tensor) -> Tensor | tuple[Tensor, Tensor]:
        """Predicted frames (and rewards) after ``actions``."""
        ...


@dataclass
class _History:
    """One environment's recent frames and actions, and the plan to warm-start from."""

    frames: list[Tensor] = field(default_factory=list)
    actions: list[Tensor] = field(default_factory=list)
    plan: Tensor | None = None


class Planner(ABC):
    """Model-predictive control over action sequences of a :class:`VideoPredictor`.

    :param model: the predictor (e.g. ``DreamerV3(...).policy.world_model``).
    :param action_space: the environment's Box action space; plans are searched in ``[-1, 1]`` and mapped to its
        bounds when acting.
    :param horizon: planned steps.
    :param population: candidate sequences scored per iteration.
    :param iterations: refits of the sampling distribution per plan.
    :param context: frames of history given to the predictor (repeating the first frame of an episode while
        fewer have been seen).
    :param goal: uint8 ``(C, H, W)`` goal image (also :meth:`set_goal`); without one the cost is the negative
        predicted return, which needs a predictor that returns rewards.
    :param goal_frames: ``"last"`` scores the last predicted frame against the goal, ``"all"`` the mean over the
        horizon.
    :param feature_fn: maps float images ``(N, C, H, W)`` in ``[0, 1]`` to features ``(N, D)``; the goal distance
        is then the squared distance of features instead of pixels.
    :param cost_fn: ``cost_fn(frames, rewards) -> (N,)`` replaces the built-in costs (frames uint8
        ``(N, T, C, H, W)``, rewards ``(N, T)`` or ``None``); lower is better.
    :param gamma: discount of the predicted rewards in the reward cost.
    :param chunk: candidates per ``predict`` call (memory bound); default all at once.
    :param seed: seed of the sampling noise.
    """

    def __init__(
        self,
        model: VideoPredictor,
        action_space: spaces.Space,
        horizon: int = 10,
        population: int = 100,
        iterations: int = 3,
        context: int = 1,
        goal: np.ndarray | Tensor | None = None,
        goal_frames: str = "last",
        feature_fn: Callable[[Tensor], Tensor] | None = None,
        cost_fn: CostFn | None = None,
        gamma: float = 1.0,
        chunk: int | None = None,
        seed: int | None = None,
    ) -> None:
        if not isinstance(action_space, spaces.Box):
            raise ValueError(
                f"Sampling planners search continuous action sequences; got {action_space!r}. Use an env with a Box "
                "action space (for a Discrete one, plan with a continuous relaxation of your own)."
            )
        if not callable(getattr(model, "predict", None)):
            raise ValueError(
                f"{type(model).__name__} has no predict(context_frames, actions); give a video predictor such as "
                "model.policy.world_model of a Dreamer, APV or ContextDreamer agent."
            )
        for name, value in (("horizon", horizon), ("population", population), ("iterations", iterations),
                            ("context", context)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        if goal_frames not in ("last", "all"):
            raise ValueError(f"goal_frames must be 'last' or 'all', got {goal_frames!r}.")
        self.model, self.action_space = model, action_space
        self.horizon, self.population, self.iterations, self.context = horizon, population, iterations, context
        self.goal_frames, self.feature_fn, self.cost_fn, self.gamma = goal_frames, feature_fn, cost_fn, gamma
        self.chunk = chunk or population
        self.action_dim = int(np.prod(action_space.shape))
        params = getattr(model, "parameters", None)
        first = next(iter(params()), None) if callable(params) else None
        self.device = first.device if first is not None else torch.device("cpu")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed) if seed is not None else int(torch.randint(2**31, (1,))))
        self.goal: Tensor | None = None
        self._goal_features: Tensor | None = None
        if goal is not None:
            self.set_goal(goal)

    # ---------------------------------------------------------------------------------------- goal and cost
    def set_goal(self, goal: np.ndarray | Tensor | None) -> None:
        """Set (or clear with ``None``) the uint8 ``(C, H, W)`` goal image; channels-last images are transposed."""
        if goal is None:
            self.goal, self._goal_features = None, None
            return
        image = _channels_first(torch.as_tensor(np.asarray(goal)))
        if image.dim() != 3 or image.dtype != torch.uint8:
            raise ValueError(
                f"The goal must be one uint8 image (C, H, W) or (H, W, C), got shape {tuple(image.shape)} and dtype "
                f"{image.dtype}; convert a float image with (img * 255).astype(np.uint8)."
            )
        self.goal = image.to(self.device)
        self._goal_features = None
        if self.feature_fn is not None:
            with torch.no_grad():
                self._goal_features = self.feature_fn(self.goal[None].float() / 255.0)

    def cost(self, frames: Tensor, rewards: Tensor | None) -> Tensor:
        """Cost ``(N,)`` of predicted uint8 frames ``(N, T, C, H, W)`` and rewards ``(N, T)`` (lower is better)."""
        if self.cost_fn is not None:
            return self.cost_fn(frames, rewards)
        if self.goal is not None:
            if frames.shape[-3:] != self.goal.shape:
                raise ValueError(
                    f"The goal image has shape {tuple(self.goal.shape)} but the predictor makes frames of shape "
                    f"{tuple(frames.shape[-3:])}; give a goal at the observation's size."
                )
            scored = frames[:, -1:] if self.goal_frames == "last" else frames
            n, t = scored.shape[:2]
            images = scored.reshape(n * t, *scored.shape[2:]).float() / 255.0
            if self.feature_fn is not None:
                assert self._goal_features is not None
                dist = (self.feature_fn(images) - self._goal_features).pow(2).flatten(1).sum(1)
            else:
                dist = (images - self.goal.float() / 255.0).pow(2).flatten(1).mean(1)
            return dist.reshape(n, t).mean(1)
        if rewards is None:
            raise ValueError(
                "Without a goal image the planner maximises predicted rewards, but the predictor returned none; "
                "set a goal (planner.set_goal(image)) or pass cost_fn."
            )
        discounts = self.gamma ** torch.arange(rewards.shape[1], device=rewards.device, dtype=rewards.dtype)
        return -(rewards * discounts).sum(1)

    @torch.no_grad()
    def evaluate(self, context_frames: Tensor, candidates: Tensor, context_actions: Tensor | None = None) -> Tensor:
        """Cost ``(N,)`` of candidate sequences ``(N, T, A)`` from one context ``(Tc, C, H, W)``."""
        costs = []
        for part in candidates.split(self.chunk):
            n = part.shape[0]
            kwargs: dict[str, Any] = {}
            if context_actions is not None and context_actions.shape[0] > 0:
                kwargs["context_actions"] = context_actions[None].expand(n, -1, -1)
            out = self.model.predict(context_frames[None].expand(n, *context_frames.shape), part, **kwargs)
            frames, rewards = out if isinstance(out, tuple) else (out, None)
            costs.append(self.cost(frames, rewards))
        return torch.cat(costs)

    # ---------------------------------------------------------------------------------------- planning
    @abstractmethod
    def _optimize(self, evaluate: Callable[[Tensor], Tensor], mean: Tensor) -> Tensor:
        """Search from the initial ``mean`` plan ``(T, A)`` with ``evaluate(candidates (N, T, A)) -> (N,)``;
        return the plan ``(T, A)`` in ``[-1, 1]``."""

    def sample_noise(self, *shape: int) -> Tensor:
        """Standard normal noise from the planner's generator."""
        return torch.randn(*shape, generator=self.generator, device=self.device)

    def plan(
        self, context_frames: np.ndarray | Tensor, context_actions: np.ndarray | Tensor | None = None,
        init: Tensor | None = None,
    ) -> Tensor:
        """The best action sequence ``(horizon, A)`` in ``[-1, 1]`` from uint8 frames ``(Tc, C, H, W)``.

        :param context_actions: ``(Tc - 1, A)`` actions (in ``[-1, 1]``) between the context frames.
        :param init: initial mean plan (default zeros).
        """
        frames = torch.as_tensor(np.asarray(context_frames) if not isinstance(context_frames, Tensor)
                                 else context_frames).to(self.device)
        if frames.dim() != 4 or frames.dtype != torch.uint8:
            raise ValueError(
                f"context_frames must be uint8 (Tc, C, H, W), got shape {tuple(frames.shape)} and dtype "
                f"{frames.dtype}."
            )
        acts = None if context_actions is None else torch.as_tensor(np.asarray(context_actions), dtype=torch.float32,
                                                                    device=self.device)
        mean = torch.zeros(self.horizon, self.action_dim, device=self.device) if init is None else init.to(self.device)
        return self._optimize(lambda c: self.evaluate(frames, c, acts), mean).clamp(-1.0, 1.0)

    # ---------------------------------------------------------------------------------------- acting (SB3)
    def predict(
        self,
        observation: np.ndarray,
        state: list[_History] | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, list[_History]]:
        """SB3's ``predict``: plan from each env's recent frames and return the first actions of the plans.

        ``observation`` is a uint8 image or a batch of them (one per env; channels first or last). The returned
        state holds each env's history and warm-start plan: pass it back on the next call, with
        ``episode_start`` flags, as ``evaluate_policy`` does. ``deterministic`` is accepted for the interface
        (the search is random either way).
        """
        obs = torch.as_tensor(np.asarray(observation))
        batched = obs.dim() == 4
        obs = _channels_first(obs if batched else obs[None])
        n = obs.shape[0]
        if state is None or len(state) != n:
            state = [_History() for _ in range(n)]
        actions = []
        for i in range(n):
            hist = state[i]
            if episode_start is not None and bool(np.asarray(episode_start).reshape(-1)[i]):
                hist = state[i] = _History()
            hist.frames = (hist.frames + [obs[i].to(self.device)])[-self.context:]
            hist.actions = hist.actions[len(hist.actions) - (len(hist.frames) - 1):]  # those between the frames
            # an episode's first frames: repeat the first frame, with zero actions between the copies
            frames = [hist.frames[0]] * (self.context - len(hist.frames)) + hist.frames
            pad = [torch.zeros(self.action_dim, device=self.device)] * (self.context - len(hist.frames))
            acts = pad + hist.actions
            plan = self.plan(torch.stack(frames), torch.stack(acts) if acts else None, init=hist.plan)
            hist.actions.append(plan[0])
            hist.plan = torch.cat([plan[1:], torch.zeros_like(plan[:1])])  # warm start: shifted by one step
            actions.append(plan[0])
        scaled = torch.stack(actions).cpu().numpy()
        low, high = self.action_space.low, self.action_space.high
        env_actions = (low + (scaled + 1.0) * 0.5 * (high - low)).astype(self.action_space.dtype)
        env_actions = env_actions.reshape(n, *self.action_space.shape)
        return (env_actions if batched else env_actions[0]), state


def _channels_first(images: Tensor) -> Tensor:
    """``(..., H, W, C)`` images with 1, 3 or 4 channels to ``(..., C, H, W)``; channels-first ones pass."""
    if images.dim() >= 3 and images.shape[-1] in (1, 3, 4) and images.shape[-3] not in (1, 3, 4):
        return images.movedim(-1, -3).contiguous()
    return images
