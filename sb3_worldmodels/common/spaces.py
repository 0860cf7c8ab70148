"""Which observation spaces SB3's policy aliases take, checked the same way by every algorithm."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gymnasium import spaces

__all__ = ["POLICY_ALIASES", "check_policy_alias"]

POLICY_ALIASES: tuple[str, ...] = ("CnnPolicy", "MlpPolicy", "MultiInputPolicy")


def check_policy_alias(
    alias: str, observation_space: spaces.Space, split: Callable[[spaces.Space], tuple[Any, Any]]
) -> None:
    """Raise a ``ValueError`` naming the right alias when ``observation_space`` does not suit ``alias``.

    ``"CnnPolicy"``: a single image Box; ``"MlpPolicy"``: a single vector Box; ``"MultiInputPolicy"``: a Dict.

    :param alias: one of :data:`POLICY_ALIASES`.
    :param observation_space: the space to check.
    :param split: the algorithm's own space check, returning its (images, vectors) and raising for spaces the
        algorithm cannot take at all.
    """
    if alias == "MultiInputPolicy":
        if not isinstance(observation_space, spaces.Dict):
            raise ValueError(
                f"MultiInputPolicy needs a Dict observation space, got {observation_space!r}; use 'CnnPolicy' for "
                "an image Box or 'MlpPolicy' for a vector Box."
            )
        split(observation_space)
        return
    if alias not in POLICY_ALIASES:
        raise ValueError(f"Unknown policy alias {alias!r}; use one of {POLICY_ALIASES}.")
    images, _ = split(observation_space)
    kind = "image" if alias == "CnnPolicy" else "vector"
    if isinstance(observation_space, spaces.Dict):
        raise ValueError(f"{alias} takes a single {kind} Box; for a Dict observation space use 'MultiInputPolicy'.")
    if alias == "CnnPolicy" and not images:
        raise ValueError(
            f"CnnPolicy needs uint8 image observations, got {observation_space!r}; use 'MlpPolicy' for vectors."
        )
    if alias == "MlpPolicy" and images:
        raise ValueError(f"MlpPolicy cannot take image observations {observation_space!r}; use 'CnnPolicy' for images.")
