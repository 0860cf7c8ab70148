"""Record episodes of any gymnasium env as npz files (see :mod:`sb3_worldmodels.data.npz`), for video pre-training."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm

from sb3_worldmodels.data.agents import load_agent
from sb3_worldmodels.data.clips import fit_frames
from sb3_worldmodels.data.npz import write_episode

__all__ = ["record_episodes"]


def _is_image(x: Any) -> bool:
    return isinstance(x, np.ndarray) and x.dtype == np.uint8 and x.ndim == 3 and 3 in (x.shape[0], x.shape[-1])


def _frame(obs: Any, env: gym.Env) -> np.ndarray:
    """The frame of one step: the image observation (``obs["image"]`` for dict observations), else ``render()``."""
    image = obs.get("image") if isinstance(obs, dict) else obs
    if not _is_image(image):
        image = env.render()
        if not _is_image(image):
            raise ValueError(f"{env.spec.id if env.spec else env} has no image observation and render() gives no "
                             "RGB frame; make it with render_mode='rgb_array'.")
    return image if image.shape[-1] == 3 else image.transpose(1, 2, 0)


def _action_row(action: Any) -> np.ndarray:
    """An action as a float32 row: Box flattened, Discrete as its index in a dimension of size 1."""
    return np.asarray(action, dtype=np.float32).reshape(-1)


def _action_dim(space: spaces.Space) -> int:
    if isinstance(space, spaces.Discrete):
        return 1
    if space.shape is None:
        raise ValueError(f"Cannot record actions of {space}; use a Box, Discrete, MultiDiscrete or MultiBinary space.")
    return int(np.prod(space.shape))


def _make_env(env: str | gym.Env, max_episode_steps: int | None, env_kwargs: dict[str, Any] | None) -> gym.Env:
    """The env to record: made from an id (rendering when its observations are not images) or wrapped as given."""
    if isinstance(env, gym.Env):
        if env_kwargs:
            raise ValueError("env_kwargs only apply to an env id; configure the env instance yourself.")
        return gym.wrappers.TimeLimit(env, max_episode_steps) if max_episode_steps else env
    import sb3_worldmodels  # noqa: F401  (registers the sb3wm/... ids)

    kwargs = dict(env_kwargs or {})
    if max_episode_steps:
        kwargs["max_episode_steps"] = max_episode_steps
    made = gym.make(env, **kwargs)
    space = made.observation_space
    image_space = space["image"] if isinstance(space, spaces.Dict) and "image" in space.spaces else space
    shape = image_space.shape or ()
    is_image = image_space.dtype == np.uint8 and len(shape) == 3 and 3 in (shape[0], shape[-1])
    if not is_image and made.render_mode != "rgb_array":
        made.close()
        made = gym.make(env, render_mode="rgb_array", **kwargs)
    return made


def record_episodes(
    env: str | gym.Env,
    episodes: int,
    policy: str | os.PathLike[str] | BaseAlgorithm = "random",
    out_dir: str | os.PathLike[str] = "episodes",
    seed: int = 0,
    progress_bar: bool = True,
    deterministic: bool = False,
    max_episode_steps: int | None = None,
    size: int | None = None,
    env_kwargs: dict[str, Any] | None = None,
    algo: str | type[BaseAlgorithm] | None = None,
) -> list[Path]:
    """Play ``episodes`` episodes and write each to ``out_dir/episode_{i:06d}.npz``.

    Episode ``i`` resets the env with ``seed + i`` (and seeds the random policy, or the global RNGs for an agent,
    the same way), so every file is reproducible on its own. Files are written atomically; those already present
    are kept and not played again, so re-running the same call after an interruption finishes the set. Frames are
    the image observations (``obs["image"]`` for dict observations) or, for envs without one, ``render()``.
    Recurrent agents (the Dreamer family) get their ``state`` and ``episode_start`` back at each step.

    :param env: a gymnasium id (``"sb3wm/dmc-cartpole-swingup-v0"``) or an env instance (not a VecEnv).
    :param episodes: how many episodes the folder should hold.
    :param policy: ``"random"`` (uniform actions), the path of an agent saved by SB3's ``save``, or an agent.
    :param out_dir: output folder (created).
    :param seed: seed of the first episode.
    :param progress_bar: show a tqdm bar (episodes, with the steps and return of the last one).
    :param deterministic: let an agent act deterministically (default: sample, for more varied videos).
    :param max_episode_steps: cut episodes at this many steps (a time limit: ``is_terminal`` stays False).
    :param size: resize frames to ``size x size`` (centre crop first); default: keep the env's frames.
    :param env_kwargs: keywords of ``gym.make`` when ``env`` is an id.
    :param algo: the agent's algorithm (class or name) when ``policy`` is a path it cannot be read from.
    :return: the paths of the ``episodes`` files.
    """
    from stable_baselines3.common.utils import check_for_correct_spaces
    from tqdm import tqdm

    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}.")
    if not isinstance(env, (str, gym.Env)):
        raise TypeError(f"env must be a gymnasium id or a gymnasium.Env (one env, not a VecEnv), got {type(env)}.")
    agent: BaseAlgorithm | None = None
    if isinstance(policy, BaseAlgorithm):
        agent = policy
    elif str(policy) != "random":
        agent = load_agent(policy, algo=algo)
    out = Path(out_dir)
    paths = [out / f"episode_{i:06d}.npz" for i in range(episodes)]
    made = _make_env(env, max_episode_steps, env_kwargs)
    try:
        if agent is not None:  # as SB3's load(env=...) checks, after its own wrapping (channel-first images)
            wrapped = BaseAlgorithm._wrap_env(made, monitor_wrapper=False)
            check_for_correct_spaces(wrapped, agent.observation_space, agent.action_space)
        action_dim = _action_dim(made.action_space)
        out.mkdir(parents=True, exist_ok=True)
        with tqdm(total=episodes, unit="episode", disable=not progress_bar, desc=f"recording to {out}") as bar:
            for i, path in enumerate(paths):
                if not path.exists():
                    steps, total = _record_one(made, agent, seed + i, path, action_dim, deterministic, size)
                    bar.set_postfix(steps=steps, ret=f"{total:.1f}")
                bar.update()
    finally:
        if isinstance(env, str):  # close only what was made here (a TimeLimit around a given env would close it)
            made.close()
    return paths


def _record_one(env: gym.Env, agent: BaseAlgorithm | None, seed: int, path: Path, action_dim: int,
                deterministic: bool, size: int | None) -> tuple[int, float]:
    """Play one episode from ``reset(seed=seed)`` and write it to ``path``; returns its steps and return."""
    from stable_baselines3.common.utils import set_random_seed

    obs, _ = env.reset(seed=seed)
    env.action_space.seed(seed)
    if agent is not None:
        set_random_seed(seed)
    episode: dict[str, list[Any]] = {"image": [_frame(obs, env)], "action": [np.zeros(action_dim, np.float32)],
                                     "reward": [0.0], "is_first": [True], "is_terminal": [False]}
    state, start = None, True
    while True:
        if agent is None:
            action = env.action_space.sample()
        else:
            action, state = agent.predict(obs, state=state, episode_start=np.array([start]),  # type: ignore[arg-type]
                                          deterministic=deterministic)
        start = False
        obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in (("image", _frame(obs, env)), ("action", _action_row(action)), ("reward", float(reward)),
                           ("is_first", False), ("is_terminal", bool(terminated))):
            episode[key].append(value)
        if terminated or truncated:
            break
    arrays = {k: np.asarray(v) for k, v in episode.items()}
    if size is not None:
        arrays["image"] = fit_frames(arrays["image"], size)
    write_episode(path, arrays)
    return len(arrays["image"]) - 1, float(arrays["reward"].sum())
