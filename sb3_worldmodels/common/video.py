"""Video IO and the open-loop video callback (real frames | world-model predictions | error)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Video

from sb3_worldmodels.common.io import atomic_path

__all__ = ["write_video", "openloop_frames", "log_video", "OpenLoopVideoCallback"]


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: int = 10) -> Path:
    """Write uint8 frames (T, H, W, 3) to ``path`` (.mp4 via imageio-ffmpeg, or .gif), atomically.

    The file is written to a temporary name in the same folder and renamed, so a reader never sees a
    half-written video.
    """
    import imageio.v2 as imageio

    path = Path(path)
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    with atomic_path(path) as tmp:
        if path.suffix == ".gif":
            imageio.mimsave(tmp, list(frames), duration=1000 / fps, loop=0)
        else:
            # macro_block_size=1 keeps small frames at their size
            imageio.mimsave(tmp, list(frames), fps=fps, macro_block_size=1, codec="libx264", quality=8)
    return path


@torch.no_grad()
def openloop_frames(world_model: Any, batch: Any, n: int = 4, context: int = 5) -> np.ndarray:
    """Open-loop prediction frames for ``n`` replayed sequences, stacked vertically.

    :param world_model: a model with ``openloop(observations, prev_actions, is_first, context)``.
    :param batch: a ``SequenceSamples`` batch.
    :return: uint8 (T, n * H, 3 * W, 3): real | predicted | error, one row per sequence.
    """
    n = min(n, batch.prev_actions.shape[0])
    obs = batch.observations
    obs = {k: v[:n] for k, v in obs.items()} if isinstance(obs, dict) else obs[:n]
    video = world_model.openloop(obs, batch.prev_actions[:n], batch.is_first[:n], context=context)
    grid = torch.cat(list(video), dim=-2)  # (T, C, n*H, 3W)
    return grid.permute(0, 2, 3, 1).cpu().numpy()


def log_video(logger: Any, key: str, frames: np.ndarray, fps: int = 10) -> None:
    """Record uint8 (T, H, W, 3) frames as a video in SB3's logger (tensorboard only)."""
    clip = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).unsqueeze(0)
    logger.record(key, Video(clip, fps=fps), exclude=("stdout", "log", "json", "csv"))


class OpenLoopVideoCallback(BaseCallback):
    """Every ``every`` env steps, log an open-loop prediction video and optionally save it to ``save_dir``.

    Works with any algorithm whose ``policy.world_model`` has ``openloop`` and whose replay buffer has
    ``sample_sequences`` (the Dreamer family).

    :param every: env steps between videos.
    :param length: sequence length of the clip.
    :param context: observed frames before imagination starts.
    :param save_dir: folder for ``openloop_<step>.mp4`` files (None: tensorboard only).
    """

    def __init__(self, every: int = 10_000, length: int = 32, context: int = 5, save_dir: str | None = None,
                 verbose: int = 0) -> None:
        super().__init__(verbose)
        self.every, self.length, self.context, self.save_dir = every, length, context, save_dir

    def _on_step(self) -> bool:
        if self.num_timesteps % self.every == 0 and self.model.replay_buffer is not None:
            self.record()
        return True

    def record(self) -> np.ndarray | None:
        """Make one video now; returns its frames, or None when the buffer is too short."""
        buffer = self.model.replay_buffer
        try:
            batch = buffer.sample_sequences(4, self.length)
        except ValueError:
            return None
        frames = openloop_frames(self.model.policy.world_model, batch, context=self.context)
        log_video(self.logger, "world_model/openloop", frames)
        if self.save_dir is not None:
            write_video(Path(self.save_dir) / f"openloop_{self.num_timesteps}.mp4", frames)
        return frames
