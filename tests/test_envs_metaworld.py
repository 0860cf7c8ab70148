"""Tests for the Meta-World v3 gymnasium environments (the real simulator, rendered headless)."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("metaworld")

import sb3_worldmodels.envs  # noqa: E402, F401  (registers the ids)
from sb3_worldmodels.envs.metaworld import METAWORLD_TASKS, make_metaworld, metaworld_env_id  # noqa: E402
from tests.env_checks import assert_frame, assert_registration_idempotent, check_first_step  # noqa: E402

DRAWER = "sb3wm/metaworld-drawer-open-v0"


def _wood_fraction(frame: np.ndarray) -> float:
    """Fraction of pixels with the brown of Meta-World's wooden table top."""
    r, g, b = (frame[..., i].astype(np.int32) for i in range(3))
    return float(((r > g) & (g > b) & (r - b > 25) & (g > r // 2)).mean())


def _expert(task: str):  # noqa: ANN202
    from metaworld import policies

    name = "Sawyer" + "".join(part.capitalize() for part in task.split("-")) + "V3Policy"
    return getattr(policies, name)()


# --------------------------------------------------------------------------- registration


def test_task_tuple_matches_installed_metaworld() -> None:
    from metaworld.env_dict import MT50_V3

    assert tuple(name.removesuffix("-v3") for name in MT50_V3) == METAWORLD_TASKS
    assert len(METAWORLD_TASKS) == 50


def test_ids_registered_and_idempotent() -> None:
    for task in METAWORLD_TASKS:
        env_id = metaworld_env_id(task)
        assert env_id in gym.registry
        assert gym.registry[env_id].entry_point == "sb3_worldmodels.envs.metaworld:make_metaworld"
    assert metaworld_env_id("drawer-open-v3") == DRAWER
    assert_registration_idempotent()


# --------------------------------------------------------------------------- pixels, seeding, camera


def test_pixels_reset_step_render() -> None:
    _, info = check_first_step(DRAWER, gym.spaces.Box(-1.0, 1.0, (4,), np.float32))
    assert info["success"] is False and info["episode_success"] is False and info["is_success"] is False


def test_obs_types_and_size() -> None:
    env = make_metaworld("reach", obs_type="both", size=(48, 80), seed=0)
    obs, _ = env.reset()
    assert_frame(obs["image"], (48, 80, 3))
    assert obs["state"].shape == (39,) and obs["state"].dtype == np.float32
    assert env.observation_space.contains(obs)
    env.close()
    env = make_metaworld("reach", obs_type="state", render_mode=None, seed=0)
    obs, _ = env.reset()
    assert obs.shape == (39,) and env.render() is None
    assert np.abs(obs[-3:]).sum() > 0, "the goal is part of the state (goal-observable MT1 task)"
    env.close()


def test_same_seed_same_frames_different_seed_different_scene() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 4)).astype(np.float32)

    def rollout(seed: int) -> list[np.ndarray]:
        env = make_metaworld("drawer-open", seed=seed)
        frames = [env.reset()[0]]
        frames += [env.step(a)[0] for a in actions]
        frames.append(env.reset()[0])  # the second episode follows from the same seeded generator
        env.close()
        return frames

    a, b, c = rollout(1), rollout(1), rollout(2)
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(a[0], c[0]), "object/goal positions should depend on the seed"
    assert not np.array_equal(a[0], a[-1]), "each reset should draw new object/goal positions"


@pytest.mark.parametrize("camera", ["corner", "corner2", "corner4"])
def test_corner_frames_are_upright(camera: str) -> None:
    env = make_metaworld("drawer-open", camera=camera, size=64, seed=0)
    obs, _ = env.reset()
    # the wooden table top is in the lower half of an upright frame, the backdrop in the upper half
    top, bottom = _wood_fraction(obs[:32]), _wood_fraction(obs[32:])
    assert bottom > 0.2 and bottom > 4 * top, (camera, top, bottom)
    raw = env.unwrapped.mw_env.render()  # gymnasium's own frame: upside down for these cameras
    np.testing.assert_array_equal(obs, raw[::-1])
    env.close()


def test_shadows_option_changes_the_frame() -> None:
    frames = []
    for shadows in (False, True):
        env = make_metaworld("reach", shadows=shadows, seed=0)
        frames.append(env.reset()[0])
        env.close()
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 0.5


# --------------------------------------------------------------------------- success, bonus, episode limit


def test_success_flags_and_bonus() -> None:
    def rollout(success_bonus: float) -> tuple[list[float], list[dict]]:
        env = make_metaworld("reach", obs_type="state", render_mode=None, success_bonus=success_bonus,
                             max_episode_steps=80, seed=3)  # fmt: skip
        policy = _expert("reach")
        obs, _ = env.reset()
        rewards, infos = [], []
        for t in range(80):
            # the expert reaches the goal, then the hand is driven away from it
            action = policy.get_action(obs) if t < 60 else np.array([0.0, 0.0, 1.0, 0.0], np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            rewards.append(reward)
            infos.append(info)
            assert not terminated and truncated == (t == 79)
        env.close()
        return rewards, infos

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # metaworld's scripted policies warn about their gains
        plain, infos = rollout(0.0)
        bonus, infos_bonus = rollout(10.0)
    success = np.array([i["success"] for i in infos])
    episode_success = np.array([i["episode_success"] for i in infos])
    assert success.any() and not success[0], "the expert should solve reach within 60 steps"
    assert not success[-1], "driving the hand away should end the success"
    first = int(np.argmax(success))
    np.testing.assert_array_equal(episode_success, np.arange(80) >= first)  # any success so far
    assert all(i["is_success"] == i["episode_success"] for i in infos)
    assert [i["success"] for i in infos_bonus] == success.tolist()
    np.testing.assert_allclose(np.array(bonus) - np.array(plain), 10.0 * success)


def test_episode_limit_counts_agent_steps() -> None:
    env = make_metaworld("reach", obs_type="state", render_mode=None, action_repeat=2, max_episode_steps=5)
    for _ in range(2):  # the limit holds again after a reset
        env.reset(seed=0)
        flags = [env.step(env.action_space.sample())[2:4] for _ in range(5)]
        assert flags == [(False, False)] * 4 + [(False, True)]
        assert env.mw_env.curr_path_length == 10  # simulator steps = agent steps * action_repeat
    assert env.dt == pytest.approx(2 * env.mw_env.dt)
    env.close()


def _steps_until_truncated(env: gym.Env, limit: int) -> int:
    env.reset(seed=0)
    for t in range(1, limit + 1):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        if truncated:
            return t
    return -1


@pytest.mark.parametrize(("make_kwargs", "expected"), [
    ({}, 500),  # ContextWM's setting: the registered default
    ({"action_repeat": 2, "max_episode_steps": 100, "success_bonus": 10.0}, 100),  # iVideoGPT's
    ({"max_episode_steps": 600}, 600),  # longer than Meta-World's own 500-step horizon
])  # fmt: skip
def test_gym_make_episode_limit(make_kwargs: dict, expected: int) -> None:
    env = gym.make(DRAWER, obs_type="state", render_mode=None, **make_kwargs)
    assert env.spec.max_episode_steps == expected
    assert _steps_until_truncated(env, 700) == expected
    base = env.unwrapped
    assert base.action_repeat == make_kwargs.get("action_repeat", 1)
    assert base.success_bonus == make_kwargs.get("success_bonus", 0.0)
    env.close()


# --------------------------------------------------------------------------- checker, errors


def test_check_env() -> None:
    env = gym.make(DRAWER)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(env.unwrapped)
    env.close()


def test_bad_input_messages() -> None:
    with pytest.raises(ValueError, match="valid tasks: .*'drawer-open'"):
        make_metaworld("drawer-opne")
    with pytest.raises(ValueError, match="valid cameras: .*'corner2'"):
        make_metaworld("reach", camera="front")
    with pytest.raises(ValueError, match="obs_type must be one of"):
        make_metaworld("reach", obs_type="rgb")
    with pytest.raises(ValueError, match="action_repeat must be >= 1"):
        make_metaworld("reach", action_repeat=0)
