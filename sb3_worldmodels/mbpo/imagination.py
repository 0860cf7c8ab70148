"""MBPO's data path: clean segments of real replay for the world model, start states and imagined transitions.

The real replay buffer (:class:`~sb3_worldmodels.drqv2.buffers.NStepFrameStackReplayBuffer`, each frame stored once)
serves three readers: DrQ-v2 samples n-step transitions from it, the world model trains on segments of consecutive
frames of one episode, and imagination starts from its recent frames. Imagined transitions, built here from the
frames a world model decodes, go to a separate SB3 ``ReplayBuffer`` of stacked frames.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from stable_baselines3.common.buffers import ReplayBuffer
from torch import Tensor

from sb3_worldmodels.common.buffers import SequenceReplayBuffer, SequenceSamples

__all__ = ["add_imagined", "fill_episode_starts", "imagine", "sample_segments"]


def sample_segments(buffer: SequenceReplayBuffer, batch_size: int, length: int, attempts: int = 20) -> SequenceSamples:
    """``batch_size`` windows of ``length`` consecutive frames, each within one episode (no reset inside).

    Windows are drawn as :meth:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer.sample_sequences` draws them,
    and those that cross an episode start are drawn again.

    :raises ValueError: when ``attempts`` rounds of draws did not give enough clean windows (episodes shorter than
        ``length``).
    """
    kept: list[SequenceSamples] = []
    have = 0
    for _ in range(attempts):
        batch = buffer.sample_sequences(2 * batch_size, length)
        clean = ~batch.is_first[:, 1:].bool().any(1)
        if clean.any():
            kept.append(SequenceSamples(*(x[clean] for x in batch)))  # type: ignore[arg-type]
            have += int(clean.sum())
        if have >= batch_size:
            return SequenceSamples(*(torch.cat(parts)[:batch_size] for parts in zip(*kept)))  # type: ignore[arg-type]
    raise ValueError(
        f"Could not draw {batch_size} segments of {length} frames within single episodes from the replay buffer "
        f"({have} found in {attempts} rounds): the episodes are too short for segment_length={length}. Lower "
        "segment_length or collect longer episodes."
    )


def fill_episode_starts(frames: Tensor, is_first: Tensor) -> Tensor:
    """Replace the frames before an episode start inside each window by the episode's first frame.

    That is how frame stacks begin an episode (the first frame repeated), so the last frames of a window that
    crosses a reset stack as the policy saw them. ``frames`` (B, L, ...) and ``is_first`` (B, L); the first row of a
    window counts as an episode start only if it is one (rows before it are not in the window anyway).
    """
    out = frames.clone()
    for t in range(1, frames.shape[1]):
        reset = is_first[:, t].bool()
        if reset.any():
            out[reset, :t] = out[reset, t : t + 1]
    return out


def imagine(
    rollout: Callable[..., tuple[Tensor, Tensor, Tensor]],
    history: Tensor,
    act: Callable[[Tensor], Tensor],
    context_frames: int,
    frame_stack: int,
    horizon: int,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Imagine ``horizon`` steps from real ``history`` frames (B, L, C, H, W), the policy acting on imagined frames.

    :param rollout: the world model's ``rollout(context_frames, policy, horizon)``.
    :param act: maps stacked observations (B, frame_stack * C, H, W) to actions (B, A) in [-1, 1].
    :return: stacked observations (B, horizon, S * C, H, W), actions (B, horizon, A), rewards (B, horizon) and the
        stacked next observations (B, horizon, S * C, H, W), all uint8 / float32 tensors.
    """
    lead = history.shape[1] - context_frames  # real frames before the model's context

    def stacked(frames: Tensor) -> Tensor:
        last = frames[:, -frame_stack:]
        if last.shape[1] < frame_stack:  # not enough history: repeat the oldest frame, as at an episode start
            last = torch.cat([last[:, :1].expand(-1, frame_stack - last.shape[1], -1, -1, -1), last], 1)
        return last.flatten(1, 2)

    def policy(frames: Tensor) -> Tensor:
        return act(stacked(torch.cat([history[:, :lead], frames], 1)))

    imagined, actions, rewards = rollout(history[:, lead:], policy, horizon)
    everything = torch.cat([history, imagined], 1)
    base = history.shape[1]
    obs = torch.stack([stacked(everything[:, : base + k]) for k in range(horizon)], 1)
    next_obs = torch.stack([stacked(everything[:, : base + k + 1]) for k in range(horizon)], 1)
    return obs, actions, rewards, next_obs


def add_imagined(buffer: ReplayBuffer, obs: Tensor, actions: Tensor, rewards: Tensor, next_obs: Tensor) -> None:
    """Store imagined transitions (B, H, ...) in an SB3 ``ReplayBuffer`` built with ``n_envs=B``, one step of all B
    rollouts per ``add`` (never terminal: the model predicts no episode ends)."""
    b, h = actions.shape[:2]
    if buffer.n_envs != b:
        raise ValueError(f"The imagined buffer was built for {buffer.n_envs} rollouts at a time, got {b}.")
    done = np.zeros(b, dtype=np.float32)
    infos = [{} for _ in range(b)]
    for k in range(h):
        buffer.add(obs[:, k].cpu().numpy(), next_obs[:, k].cpu().numpy(), actions[:, k].cpu().numpy(),
                   rewards[:, k].cpu().numpy(), done, infos)
