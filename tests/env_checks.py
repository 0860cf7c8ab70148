"""Checks shared by the environment tests (``tests/test_envs*.py``), run on the real simulators."""

from __future__ import annotations

import importlib
import warnings
from typing import Any

import gymnasium as gym
import numpy as np

import sb3_worldmodels.envs as envs


def assert_frame(frame: Any, shape: tuple[int, ...], min_std: float = 10.0) -> None:
    """``frame`` is a uint8 array of ``shape`` with visible content (pixel std above ``min_std``)."""
    assert isinstance(frame, np.ndarray) and frame.dtype == np.uint8, type(frame)
    assert frame.shape == shape, frame.shape
    assert frame.std() > min_std, "frame looks blank"


def check_first_step(
    env_id: str, action_space: gym.Space, shape: tuple[int, ...] = (64, 64, 3), **make_kwargs: Any
) -> tuple[gym.Env, dict[str, Any]]:
    """Make ``env_id``, reset it (seed 0), take one random step and render, with every warning an error (the
    passive env checker that ``gym.make`` adds must stay quiet), then close it.

    Checks the uint8 ``Box(0, 255, shape)`` observation space, the given ``action_space``, a non-blank
    observation, a float reward without the episode ending, and that ``render()`` returns the observation.

    Returns:
        The closed env (for checks of its attributes) and the step's info.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make(env_id, **make_kwargs)
        env.reset(seed=0)
        obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
        frame = env.render()
    assert env.observation_space == gym.spaces.Box(0, 255, shape, np.uint8)
    assert env.action_space == action_space
    assert_frame(obs, shape)
    assert isinstance(reward, float) and not terminated and not truncated
    assert_frame(frame, shape)
    np.testing.assert_array_equal(frame, obs)
    env.close()
    return env, info


def assert_registration_idempotent() -> None:
    """Re-running every suite's registration (re-importing ``sb3_worldmodels.envs``) is a silent no-op."""
    ids = set(gym.registry)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # gymnasium warns when an id is registered again
        importlib.reload(envs)
    assert set(gym.registry) == ids
