"""Crafter on the real simulator: the gymnasium adapter (spaces, seeding, termination vs truncation) and the
benchmark's achievement success rates and score."""

from __future__ import annotations

import math
import re
import textwrap
import warnings
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sb3_worldmodels  # noqa: F401  (registers the ids)
from sb3_worldmodels.envs.crafter import (
    CRAFTER_ACHIEVEMENTS,
    CRAFTER_ACTIONS,
    CRAFTER_ENV_ID,
    CrafterEnv,
    achievement_success_rates,
    crafter_score,
    episode_achievements,
)
from tests.env_checks import assert_frame

pytest.importorskip("crafter")

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide" / "environments" / "crafter.rst"


def _rollout(env: gym.Env, seed: int | None, actions: np.ndarray) -> tuple[list[np.ndarray], list[tuple]]:
    obs, _ = env.reset(seed=seed)
    frames, steps = [obs], []
    for a in actions:
        obs, reward, terminated, truncated, info = env.step(a)
        frames.append(obs)
        steps.append((reward, terminated, truncated, info["achievements"], tuple(info["player_pos"])))
    return frames, steps


# --------------------------------------------------------------------------- the environment


def test_constants_match_crafter() -> None:
    import crafter.constants

    assert CRAFTER_ACTIONS == tuple(crafter.constants.actions)
    assert CRAFTER_ACHIEVEMENTS == tuple(crafter.constants.achievements)
    assert len(CRAFTER_ACHIEVEMENTS) == 22


def test_make_spaces_and_frames() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the passive env checker must stay quiet
        env = gym.make(CRAFTER_ENV_ID)
        obs, info = env.reset(seed=0)
        assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        assert env.action_space == gym.spaces.Discrete(17)
        assert info == {}
        # a real textured frame, not a blank or flat one
        assert_frame(obs, (64, 64, 3), min_std=20.0)
        assert len(np.unique(obs.reshape(-1, 3), axis=0)) > 20
        assert env.render() is obs
        obs2, reward, terminated, truncated, info = env.step(env.action_space.sample())
        assert obs2.shape == (64, 64, 3) and obs2.dtype == np.uint8
        assert isinstance(reward, float) and terminated is False and truncated is False
        assert set(info["achievements"]) == set(CRAFTER_ACHIEVEMENTS)
        assert {"inventory", "discount", "semantic", "player_pos", "reward"} <= set(info)
    assert env.unwrapped.action_names[5] == "do"


def test_size_option_height_width() -> None:
    env = gym.make(CRAFTER_ENV_ID, size=(48, 80))
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == (48, 80, 3)
    assert_frame(obs, (48, 80, 3), min_std=20.0)


def test_same_seed_same_frames_and_trajectory() -> None:
    # 100 steps: past the creature balancing of steps 10, 20, ...; crafter alone diverges there (step 21 here)
    actions = np.random.default_rng(0).integers(0, 17, size=100)
    env_a, env_b = CrafterEnv(), CrafterEnv()
    frames_a, steps_a = _rollout(env_a, 7, actions)
    frames_b, steps_b = _rollout(env_b, 7, actions)
    assert all(np.array_equal(x, y) for x, y in zip(frames_a, frames_b, strict=True))
    assert steps_a == steps_b
    # the frames change along the way (the player and day light move)
    assert not np.array_equal(frames_a[0], frames_a[-1])
    # the same instance re-seeded gives the same world again ...
    first_again, _ = env_a.reset(seed=7)
    assert np.array_equal(first_again, frames_a[0])
    # ... and the unseeded episodes after a seeded reset are reproducible too, each in a new world
    next_a, _ = env_a.reset()
    next_b, _ = env_b.reset()
    assert np.array_equal(next_a, next_b) and not np.array_equal(next_a, frames_a[0])
    # another seed, another world
    other, _ = env_b.reset(seed=8)
    assert not np.array_equal(other, frames_a[0])


def test_constructor_seed_is_used_by_the_first_reset() -> None:
    first, _ = CrafterEnv(seed=5).reset()
    assert np.array_equal(first, CrafterEnv().reset(seed=5)[0])


def test_episode_length_truncates() -> None:
    env = gym.make(CRAFTER_ENV_ID, length=5)
    env.reset(seed=1)
    flags = [env.step(0)[2:4] for _ in range(5)]
    assert flags == [(False, False)] * 4 + [(False, True)]
    env.reset()
    assert env.step(0)[2:4] == (False, False)  # a new episode counts from 0 again


def test_death_terminates_and_reward_option() -> None:
    """A random policy dies within a few hundred steps: terminated there only; reward=False zeroes rewards."""
    env = CrafterEnv(reward=False)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    true_rewards = []
    for _ in range(2000):
        _, reward, terminated, truncated, info = env.step(int(rng.integers(17)))
        assert reward == 0.0 and truncated is False
        true_rewards.append(info["reward"])
        if terminated:
            break
        assert info["inventory"]["health"] > 0 and info["discount"] == 1.0
    assert terminated, "the random policy did not die within 2000 steps"
    assert info["inventory"]["health"] == 0 and info["discount"] == 0.0
    assert min(true_rewards) <= -0.1  # health was lost (crafter's -0.1 per point), though the reward said 0


def test_bad_input_errors() -> None:
    env = CrafterEnv()
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    env.reset(seed=0)
    for bad in (17, -1, 1.5):
        with pytest.raises(ValueError, match=r"Invalid Crafter action"):
            env.step(bad)
    with pytest.raises(ValueError, match="size"):
        CrafterEnv(size=0)
    with pytest.raises(ValueError, match="length"):
        CrafterEnv(length=0)
    with pytest.raises(ValueError, match="render_mode"):
        CrafterEnv(render_mode="human")


def test_gymnasium_check_env() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(gym.make(CRAFTER_ENV_ID).unwrapped)


# --------------------------------------------------------------------------- the metric


def test_success_rates_and_score_by_hand() -> None:
    zeros = dict.fromkeys(CRAFTER_ACHIEVEMENTS, 0)
    episodes = [
        {**zeros, "collect_wood": 2, "place_table": 1},  # crafter's counts
        {"collect_wood": 1},  # a partial dict: the others were not unlocked
        zeros,
        # a final info
        {"achievements": {"collect_wood": True, "wake_up": 1}, "episode": {"r": 2.0, "l": 10}},
    ]
    rates = achievement_success_rates(episodes)
    assert list(rates) == list(CRAFTER_ACHIEVEMENTS)
    assert rates["collect_wood"] == 75.0 and rates["place_table"] == 25.0 and rates["wake_up"] == 25.0
    assert sum(rates.values()) == 125.0
    # exp(mean(log(1 + s))) - 1 with s = 75, 25, 25 and nineteen zeros
    assert crafter_score(rates) == pytest.approx(math.exp((math.log(76) + 2 * math.log(26)) / 22) - 1)
    assert crafter_score(rates) == pytest.approx(0.637289, abs=1e-6)
    assert crafter_score(dict.fromkeys(CRAFTER_ACHIEVEMENTS, 100.0)) == pytest.approx(100.0)
    assert crafter_score(dict.fromkeys(CRAFTER_ACHIEVEMENTS, 0.0)) == 0.0


def test_metric_bad_input() -> None:
    with pytest.raises(ValueError, match="No episodes"):
        achievement_success_rates([])
    with pytest.raises(ValueError, match="unknown achievements.*collect_gold"):
        achievement_success_rates([{"collect_gold": 1}])
    with pytest.raises(ValueError, match="count >= 0"):
        achievement_success_rates([{"collect_wood": -1}])
    with pytest.raises(TypeError, match="one mapping per episode"):
        achievement_success_rates([["collect_wood"]])
    rates = dict.fromkeys(CRAFTER_ACHIEVEMENTS, 10.0)
    with pytest.raises(ValueError, match="missing.*wake_up"):
        crafter_score({k: v for k, v in rates.items() if k != "wake_up"})
    with pytest.raises(ValueError, match=r"\[0, 100\]"):
        crafter_score({**rates, "wake_up": 150.0})
    with pytest.raises(ValueError, match="Monitor"):
        episode_achievements([{"achievements": {}}])
    with pytest.raises(ValueError, match="not a Crafter env"):
        episode_achievements([{"episode": {"r": 0.0}}])


def test_metric_from_monitor_infos_of_a_real_run() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    vec_env = make_vec_env(CrafterEnv, n_envs=1, seed=0, env_kwargs={"length": 10})
    vec_env.reset()
    rng = np.random.default_rng(0)
    infos, finals = [], []
    while len(finals) < 3:
        _, _, dones, step_infos = vec_env.step(rng.integers(0, 17, size=1))
        infos += step_infos
        finals += [dict(info["achievements"]) for info, done in zip(step_infos, dones, strict=True) if done]
    episodes = episode_achievements(infos)
    assert episodes == finals and len(episodes) == 3
    rates = achievement_success_rates(episodes)
    for name in CRAFTER_ACHIEVEMENTS:
        assert rates[name] == pytest.approx(100.0 * sum(e[name] > 0 for e in finals) / 3)
    assert 0.0 <= crafter_score(rates) <= 100.0


def test_guide_example_runs() -> None:
    """The example on the Crafter page of the environments guide runs as written."""
    text = GUIDE.read_text(encoding="utf-8")
    blocks = re.findall(r"^\.\. code-block:: python\n\n((?:(?:   .*)?\n)+)", text, re.M)
    assert len(blocks) == 1
    namespace: dict = {}
    exec(compile(textwrap.dedent(blocks[0]), str(GUIDE), "exec"), namespace)  # noqa: S102
    assert 0.0 <= namespace["score"] <= 100.0 and len(namespace["rates"]) == 22
