"""Replay for DrQ-v2: n-step transitions of stacked frames stored once each; batches mixed from buffers.

How frame stacking stays at one copy per frame
----------------------------------------------
The environment gives single frames and :class:`NStepFrameStackReplayBuffer` stores them as they come, in the
row layout of :class:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer` (one row per observation, uint8
for images, the terminal observation of an episode in its own row, a memory-mapped mode). The stack of the
last ``frame_stack`` frames is rebuilt when a batch is sampled, by gathering the ``frame_stack`` rows that end
at the sampled row; at the start of an episode the first frame is repeated, exactly as DrQ-v2's
``FrameStackWrapper`` (and the policy's own stacking when it acts) does. A stacked 64x64 RGB step therefore
costs 12,288 bytes of frames, not 3 x 2 x 12,288 for stacked ``obs`` and ``next_obs`` copies in SB3's
``ReplayBuffer``.

Why not SB3's ``NStepReplayBuffer``
-----------------------------------
SB3 2.9's :class:`~stable_baselines3.common.buffers.NStepReplayBuffer` computes the n-step return inside
``_get_samples`` from ``observations`` and ``next_observations`` arrays of whole observations and one shared
write position for all envs; stacked frames there would be stored six times, and a terminal observation has no
row of its own. So the n-step return is computed here over rows of the sequence buffer, with SB3's
conventions: the window stops at the end of an episode (termination or truncation) and at the newest stored
row, ``rewards`` is the discounted sum over the window, ``discounts`` is ``gamma ** k`` for a window of ``k``
steps and ``dones`` is 1 only for a termination, so the target is
``rewards + (1 - dones) * discounts * Q(next_observations)`` as in SB3's n-step SAC/TD3.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

from sb3_worldmodels.common.buffers import SequenceReplayBuffer

__all__ = ["NStepFrameStackReplayBuffer", "sample_mixed", "stacked_space"]

Samples = ReplayBufferSamples | DictReplayBufferSamples


def _stack_space(space: spaces.Box, frame_stack: int) -> spaces.Box:
    """The channels-first image ``space`` with ``frame_stack`` times as many channels."""
    low = np.concatenate([space.low] * frame_stack, axis=0)
    high = np.concatenate([space.high] * frame_stack, axis=0)
    return spaces.Box(low, high, dtype=space.dtype)  # type: ignore[arg-type]


def stacked_space(observation_space: spaces.Space, frame_stack: int) -> spaces.Space:
    """Observation space after stacking ``frame_stack`` frames on the channel axis of every image.

    Images must be channels-first (as SB3 stores them after ``VecTransposeImage``); vector entries of a
    ``Dict`` space are not stacked.

    :param observation_space: a channels-first uint8 image ``Box``, a vector ``Box`` or a flat ``Dict`` of
        them.
    :param frame_stack: number of frames per stack (>= 1).
    :return: the space of the stacked observations.
    """
    if frame_stack < 1:
        raise ValueError(f"frame_stack must be >= 1, got {frame_stack}.")
    if isinstance(observation_space, spaces.Dict):
        return spaces.Dict({key: stacked_space(sub, frame_stack) for key, sub in observation_space.items()})
    if isinstance(observation_space, spaces.Box) and is_image_space(observation_space, check_channels=False):
        return _stack_space(observation_space, frame_stack)
    return observation_space


class NStepFrameStackReplayBuffer(SequenceReplayBuffer):
    """Sequence replay buffer that samples n-step transitions of stacked frames (DrQ-v2's replay).

    Storage is that of :class:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer` (each observation once);
    :meth:`sample` returns SB3 ``ReplayBufferSamples`` (``DictReplayBufferSamples`` for Dict spaces) whose
    image observations are stacks of ``frame_stack`` frames along the channel axis (vector observations are
    not stacked), with n-step ``rewards``, ``discounts`` and ``dones`` (see the module docstring). SB3
    constructs it as ``replay_buffer_class`` with
    ``replay_buffer_kwargs=dict(n_steps=..., gamma=..., frame_stack=...)``.

    :param buffer_size: total rows over all envs (``buffer_size // n_envs`` per env).
    :param observation_space: single-frame observation space (images channels-first).
    :param action_space: action space.
    :param device: PyTorch device of the sampled tensors.
    :param n_envs: number of parallel environments.
    :param optimize_memory_usage: must be ``False`` (frames are stored once anyway).
    :param handle_timeout_termination: treat ``TimeLimit.truncated`` episode ends as truncations (bootstrap).
    :param memmap_dir: keep the observations in memory-mapped files in this directory.
    :param detect_discontinuity: see :class:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer`.
    :param n_steps: steps of the n-step return (1 gives SB3's one-step transitions).
    :param gamma: discount of the n-step return.
    :param frame_stack: frames per stacked image observation.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        memmap_dir: str | os.PathLike[str] | None = None,
        detect_discontinuity: bool = True,
        n_steps: int = 3,
        gamma: float = 0.99,
        frame_stack: int = 3,
    ) -> None:
        if n_steps < 1:
            raise ValueError(f"n_steps must be >= 1, got {n_steps}.")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}.")
        super().__init__(
            buffer_size, observation_space, action_space, device, n_envs, optimize_memory_usage,
            handle_timeout_termination, memmap_dir, detect_discontinuity,
        )
        self.n_steps = n_steps
        self.gamma = gamma
        self.frame_stack = frame_stack
        self.stacked_observation_space = stacked_space(observation_space, frame_stack)

    def _stack_rows(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """``(B, frame_stack)`` ring rows of the frames stacked at ``rows``, oldest first.

        Going back from each row, the stack stops at the first row of its episode and at the oldest stored row
        of its env, and repeats that frame for the missing ones (DrQ-v2's ``FrameStackWrapper`` at reset).
        """
        out = np.empty((len(rows), self.frame_stack), dtype=np.int64)
        oldest = self._oldest_row()[envs]
        cur = rows.copy()
        out[:, -1] = cur
        for j in range(2, self.frame_stack + 1):  # a loop over the stack, vectorised over the batch
            stop = self.is_first[cur, envs] | (cur == oldest)
            cur = np.where(stop, cur, (cur - 1) % self.buffer_size)
            out[:, -j] = cur
        return out

    def stacked_observations(self, rows: np.ndarray, envs: np.ndarray) -> dict[str, np.ndarray]:
        """Stacked observations at ring ``rows`` of ``envs`` (both ``(B,)``), as ``{key: (B, ...)}`` arrays.

        Image entries are ``(B, frame_stack * C, H, W)``; other entries are the observation at the row itself.
        """
        stack_rows = self._stack_rows(rows, envs)
        frames = self._gather_obs(stack_rows, np.broadcast_to(envs[:, None], stack_rows.shape))
        out = {}
        for key, arr in frames.items():  # arr: (B, frame_stack, *shape)
            if self._obs_is_image[key]:
                out[key] = arr.reshape(len(rows), -1, *arr.shape[3:])
            else:
                out[key] = arr[:, -1]
        return out

    def _n_step_windows(self, rows: np.ndarray, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rows ``t + 1 .. t + n`` after each start row and the mask of those inside its n-step window.

        A window ends at the last row of an episode (``is_last``: termination or truncation) and at the newest
        stored row of its env; it never reaches into the next episode.

        :return: ``(B, n_steps)`` ring rows and ``(B, n_steps)`` bool mask (True at least for the first
            column).
        """
        steps = np.arange(1, self.n_steps + 1)
        window = (rows[:, None] + steps[None]) % self.buffer_size
        env_col = envs[:, None]
        # rows of the env stored after the start row (>= 1 for every row the transition sampler draws)
        after = self._rows_per_env()[envs] - 1 - (rows - self._oldest_row()[envs]) % self.buffer_size
        stored = steps[None] <= after[:, None]
        ended_before = np.cumsum(self.is_last[window, env_col], axis=1) - self.is_last[window, env_col]
        new_episode = np.cumsum(self.is_first[window, env_col], axis=1) > 0
        return window, stored & (ended_before == 0) & ~new_episode

    def sample(self, batch_size: int, env: VecNormalize | None = None) -> Samples:  # type: ignore[override]
        """Sample ``batch_size`` n-step transitions of stacked observations.

        ``observations`` is the stack at row ``t``, ``actions`` the action taken there, ``rewards`` the
        discounted sum of the next ``k <= n_steps`` rewards, ``next_observations`` the stack at row ``t + k``,
        ``discounts`` ``gamma ** k`` and ``dones`` 1 where row ``t + k`` is a termination (not a truncation).

        :param batch_size: number of transitions.
        :param env: optional VecNormalize to normalise observations and rewards.
        :return: ``ReplayBufferSamples`` (``DictReplayBufferSamples`` for Dict spaces) on ``self.device``;
            images stay uint8; ``actions`` is ``(B, action_dim)``; ``rewards``, ``dones`` and ``discounts``
            are ``(B, 1)``.
        """
        rows, envs = self._sample_transition_indices(batch_size)
        window, mask = self._n_step_windows(rows, envs)
        k = mask.sum(axis=1)
        last = window[np.arange(batch_size), k - 1]
        step_rewards = self._normalize_reward(self.rewards[window, envs[:, None]], env)
        powers = self.gamma ** np.arange(self.n_steps, dtype=np.float64)
        returns = (step_rewards * powers[None] * mask).sum(axis=1, keepdims=True)

        obs = self._to_obs_output(self.stacked_observations(rows, envs), env, for_sequences=False)
        next_obs = self._to_obs_output(self.stacked_observations(last, envs), env, for_sequences=False)

        def t(x: np.ndarray) -> th.Tensor:
            return th.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

        actions = th.as_tensor(self.prev_actions[window[:, 0], envs], device=self.device)
        dones = t(self.is_terminal[last, envs].reshape(-1, 1))
        discounts = t((self.gamma ** k).reshape(-1, 1))
        cls = DictReplayBufferSamples if self._is_dict else ReplayBufferSamples
        return cls(obs, actions, next_obs, dones, t(returns), discounts)  # type: ignore[arg-type]


def _split_counts(ratios: Sequence[float], batch_size: int) -> np.ndarray:
    """Integer counts summing to ``batch_size`` in proportion to ``ratios`` (largest remainders round up)."""
    weights = np.asarray(ratios, dtype=np.float64)
    if weights.ndim != 1 or len(weights) == 0 or (weights < 0).any() or weights.sum() <= 0:
        raise ValueError(
            f"ratios must be non-negative numbers with a positive sum, one per buffer; got {ratios}."
        )
    exact = weights / weights.sum() * batch_size
    counts = np.floor(exact).astype(np.int64)
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[: batch_size - counts.sum()]] += 1
    return counts


def _cat(parts: list[Any]) -> Any:
    """Concatenate tensors, or dicts of tensors key by key, along the batch axis."""
    if isinstance(parts[0], dict):
        return {key: th.cat([p[key] for p in parts]) for key in parts[0]}
    return th.cat(parts)


def sample_mixed(
    buffers: Sequence[ReplayBuffer],
    ratios: Sequence[float],
    batch_size: int,
    env: VecNormalize | None = None,
    gamma: float | None = None,
) -> Samples:
    """One batch from several replay buffers in given proportions (e.g. real and imagined data for MBPO).

    ``sample_mixed([real, imagined], [0.5, 0.5], 256)`` draws 128 transitions from each buffer and
    concatenates them (real first). Counts follow the ratios, rounded so they sum to ``batch_size``; a buffer
    with ratio 0 is not sampled. Any SB3 ``ReplayBuffer`` works (e.g. :class:`NStepFrameStackReplayBuffer` for
    real data and an SB3 ``ReplayBuffer`` filled with imagined stacked observations), as long as their samples
    have the same shapes.

    :param buffers: the replay buffers.
    :param ratios: one non-negative weight per buffer (normalised to proportions).
    :param batch_size: size of the mixed batch.
    :param env: optional VecNormalize passed to every buffer's ``sample``.
    :param gamma: discount to fill ``discounts`` for buffers whose samples have none (one-step buffers) when
        other buffers give n-step ``discounts``; not needed otherwise.
    :return: ``ReplayBufferSamples`` (or ``DictReplayBufferSamples``) of ``batch_size`` transitions;
        ``discounts`` is ``None`` only if no buffer gives discounts.
    :raises ValueError: on mismatched lengths, bad ratios, or missing ``gamma`` when it is needed.
    """
    if len(buffers) != len(ratios):
        raise ValueError(f"Give one ratio per buffer: {len(buffers)} buffers, {len(ratios)} ratios.")
    counts = _split_counts(ratios, batch_size)
    parts = [buf.sample(int(n), env=env) for buf, n in zip(buffers, counts, strict=True) if n > 0]
    if len({type(p) for p in parts}) > 1:
        raise ValueError(
            "Cannot mix Dict and non-Dict observation samples; all buffers need the same kind of space."
        )
    with_discounts = [p.discounts is not None for p in parts]
    discounts = None
    if any(with_discounts):
        if not all(with_discounts) and gamma is None:
            raise ValueError(
                "Some buffers give n-step discounts and others none: pass gamma= so the one-step samples get "
                "discounts of gamma."
            )
        fill = 0.0 if gamma is None else float(gamma)  # used only where gamma was given (checked above)
        discounts = th.cat(
            [p.discounts if p.discounts is not None else th.full_like(p.rewards, fill) for p in parts]
        )
    cls = type(parts[0])
    return cls(
        _cat([p.observations for p in parts]),
        th.cat([p.actions for p in parts]),
        _cat([p.next_observations for p in parts]),
        th.cat([p.dones for p in parts]),
        th.cat([p.rewards for p in parts]),
        discounts,
    )
