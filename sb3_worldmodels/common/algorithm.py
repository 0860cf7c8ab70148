"""What our off-policy algorithms add to SB3's ``OffPolicyAlgorithm``: atomic saves and episode-start tracking."""

from __future__ import annotations

import io
import pathlib
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_worldmodels.common.io import atomic_path

__all__ = ["AtomicSaveMixin", "write_atomically"]


def write_atomically(
    write: Callable[..., None], path: str | pathlib.Path | io.BufferedIOBase, suffix: str, *args: Any
) -> None:
    """Call ``write(path, *args)`` so that a file ``path`` (``suffix`` added when it has none) appears in one rename.

    Streams are written as they are.
    """
    if isinstance(path, io.BufferedIOBase):
        write(path, *args)
        return
    target = pathlib.Path(path)
    target = target if target.suffix else target.with_suffix(suffix)
    with atomic_path(target, suffix=suffix) as tmp:
        write(tmp, *args)


class AtomicSaveMixin:
    """Mixin placed before ``OffPolicyAlgorithm``: atomic ``save`` / ``save_replay_buffer``, and
    ``_last_episode_starts`` (which envs start a new episode at the next step) kept for recurrent acting."""

    def save(
        self,
        path: str | pathlib.Path | io.BufferedIOBase,
        exclude: Iterable[str] | None = None,
        include: Iterable[str] | None = None,
    ) -> None:
        """SB3's ``save`` (zip with every network and optimizer), written atomically for file paths."""
        write_atomically(super().save, path, ".zip", exclude, include)  # type: ignore[misc]

    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """SB3's ``save_replay_buffer``, written atomically for file paths."""
        write_atomically(super().save_replay_buffer, path, ".pkl")  # type: ignore[misc]

    def _store_transition(
        self,
        replay_buffer: ReplayBuffer,
        buffer_action: np.ndarray,
        new_obs: np.ndarray | dict[str, np.ndarray],
        reward: np.ndarray,
        dones: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        super()._store_transition(replay_buffer, buffer_action, new_obs, reward, dones, infos)  # type: ignore[misc]
        self._last_episode_starts = np.asarray(dones, dtype=bool)
