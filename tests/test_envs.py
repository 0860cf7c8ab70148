"""Tests for the DMC gymnasium environments and the MuJoCo GL backend selection."""

from __future__ import annotations

import os
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest

from sb3_worldmodels.envs import DMC_TASKS, configure_mujoco_gl, make_dmc, rendering
from tests.env_checks import assert_frame, assert_registration_idempotent, check_first_step

pytest.importorskip("dm_control")
pytest.importorskip("shimmy")

CARTPOLE = "sb3wm/dmc-cartpole-swingup-v0"


def _rollout(env: gym.Env, actions: np.ndarray, seed: int) -> tuple[list[np.ndarray], list[float]]:
    obs, _ = env.reset(seed=seed)
    frames, rewards = [obs], []
    for a in actions:
        obs, r, *_ = env.step(a)
        frames.append(obs)
        rewards.append(r)
    return frames, rewards


# --------------------------------------------------------------------------- registration


def test_task_list_matches_dm_control() -> None:
    from dm_control import suite

    assert tuple(DMC_TASKS) == tuple(suite.ALL_TASKS)


def test_ids_registered_and_idempotent() -> None:
    for env_id in (CARTPOLE, "sb3wm/dmc-ball-in-cup-catch-v0", "sb3wm/dmc-walker-walk-v0",
                   "sb3wm/dmc-point-mass-easy-v0", "sb3wm/dmc-humanoid-CMU-run-v0"):
        assert env_id in gym.registry
        assert gym.registry[env_id].entry_point == "sb3_worldmodels.envs.dmc:make_dmc"
    assert_registration_idempotent()


# --------------------------------------------------------------------------- pixels


def test_pixels_make_and_frames() -> None:
    check_first_step(CARTPOLE, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))


def test_seeding_reproducible() -> None:
    actions = np.random.default_rng(0).uniform(-1, 1, (5, 1)).astype(np.float32)
    a, b, c = (gym.make(CARTPOLE, seed=s) for s in (1, 1, 2))
    frames_a, _ = _rollout(a, actions, seed=1)
    frames_b, _ = _rollout(b, actions, seed=1)
    frames_c, _ = _rollout(c, actions, seed=2)
    for fa, fb in zip(frames_a, frames_b):
        np.testing.assert_array_equal(fa, fb)
    assert not np.array_equal(frames_a[0], frames_c[0])
    # re-seeding the same env replays the episode start
    np.testing.assert_array_equal(a.reset(seed=1)[0], frames_a[0])
    # different seeds give different initial states
    s1, s2 = (make_dmc("cartpole", "swingup", obs_type="state").reset(seed=s)[0] for s in (3, 4))
    assert not np.allclose(s1, s2)
    for env in (a, b, c):
        env.close()


def test_action_repeat_sums_rewards() -> None:
    actions = np.random.default_rng(1).uniform(-1, 1, (6, 1)).astype(np.float32)
    env1 = make_dmc("cartpole", "swingup", obs_type="state", action_repeat=1, render_mode=None)
    env2 = make_dmc("cartpole", "swingup", obs_type="state", action_repeat=2, render_mode=None)
    states1, rewards1 = _rollout(env1, np.repeat(actions, 2, axis=0), seed=5)
    states2, rewards2 = _rollout(env2, actions, seed=5)
    np.testing.assert_allclose(rewards2, np.add.reduceat(rewards1, np.arange(0, 12, 2)), rtol=1e-6)
    np.testing.assert_allclose(states2[-1], states1[-1], rtol=1e-6)
    assert env2.unwrapped.dt == pytest.approx(2 * env1.unwrapped.dt)


def test_truncation_at_dmc_time_limit() -> None:
    env = gym.make(CARTPOLE, obs_type="state")  # action_repeat 2: 1000 physics steps = 500 agent steps
    env.reset(seed=0)
    action = np.zeros(1, np.float32)
    for t in range(1, 501):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated == (t == 500)
    env.close()


# --------------------------------------------------------------------------- spaces / options


def test_state_and_both_spaces() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the passive env checker must stay quiet
        env = gym.make(CARTPOLE, obs_type="state")
        obs, _ = env.reset(seed=0)
        env.step(env.action_space.sample())
    # cartpole: position (3) + velocity (2)
    assert env.observation_space == gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)
    assert obs.dtype == np.float32 and obs in env.observation_space

    env = gym.make("sb3wm/dmc-walker-walk-v0", obs_type="both", size=32)
    space = env.observation_space
    assert isinstance(space, gym.spaces.Dict) and set(space.spaces) == {"image", "state"}
    assert space["image"].shape == (32, 32, 3) and space["state"].shape == (24,)  # 14 + 1 + 9
    obs, _ = env.reset(seed=0)
    assert obs in space
    obs, *_ = env.step(env.action_space.sample())
    assert obs in space
    assert_frame(obs["image"], (32, 32, 3))


def test_rectangular_size_and_camera() -> None:
    env = gym.make(CARTPOLE, size=(48, 80), camera_id=1)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.shape == obs.shape == (48, 80, 3)
    assert env.unwrapped.camera_id == 1
    quadruped = make_dmc("quadruped", "walk", size=32)  # also covers the numpy>=2.4 np.in1d shim
    assert quadruped.camera_id == 2
    obs, _ = quadruped.reset(seed=0)
    assert_frame(obs, (32, 32, 3))
    # quadruped's control range is partly [-1, 1.1]: the agent still acts in [-1, 1], rescaled
    assert quadruped.action_space == gym.spaces.Box(-1.0, 1.0, (12,), np.float32)
    quadruped.step(np.ones(12, np.float32))
    physics = quadruped.shimmy_env.physics
    np.testing.assert_allclose(physics.data.ctrl, physics.model.actuator_ctrlrange[:, 1])
    quadruped.close()


def test_shadows_option() -> None:
    """Default frames skip dm_control's shadow map and multisampling; ``shadows=True`` keeps them."""
    plain, shaded = make_dmc("cartpole", "swingup"), gym.make(CARTPOLE, shadows=True).unwrapped
    assert plain.shimmy_env.physics.model.vis.quality.shadowsize == 0
    quality = shaded.shimmy_env.physics.model.vis.quality
    assert quality.shadowsize > 0 and quality.offsamples > 0
    frames = [env.reset(seed=0)[0] for env in (plain, shaded)]
    assert_frame(frames[1], (64, 64, 3))
    assert np.abs(frames[0].astype(int) - frames[1].astype(int)).mean() > 0.5  # same state, other rendering
    plain.close()
    shaded.close()


@pytest.mark.parametrize("obs_type", ["pixels", "state"])
def test_gymnasium_env_checker(obs_type: str) -> None:
    from gymnasium.utils.env_checker import check_env

    env = gym.make(CARTPOLE, obs_type=obs_type, size=32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # DMC proprio observations are unbounded: the state Box is honestly (-inf, inf)
        warnings.filterwarnings("ignore", message=".*Box observation space (minimum|maximum) value is")
        check_env(env.unwrapped, skip_render_check=True)
    env.close()


# --------------------------------------------------------------------------- errors


def test_errors() -> None:
    with pytest.raises(ValueError, match="valid domains: .*cartpole"):
        make_dmc("cartpol", "swingup")
    with pytest.raises(ValueError, match="valid tasks: .*swingup"):
        make_dmc("cartpole", "run")
    with pytest.raises(ValueError, match="pixels.*state.*both"):
        make_dmc("cartpole", "swingup", obs_type="rgb")


def test_missing_dm_control_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dm_control", None)  # makes `import dm_control` fail
    with pytest.raises(ImportError, match=r'pip install "sb3-worldmodels\[dmc\]"'):
        make_dmc("cartpole", "swingup")


# --------------------------------------------------------------------------- GL backend


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="EGL/OSMesa selection is Linux-only")
def test_configure_mujoco_gl(monkeypatch: pytest.MonkeyPatch) -> None:
    environ = {"MUJOCO_GL": "osmesa"}
    assert configure_mujoco_gl(environ) == "osmesa"  # user choice kept
    assert environ == {"MUJOCO_GL": "osmesa", "PYOPENGL_PLATFORM": "osmesa"}

    environ = {"MUJOCO_GL": "glfw", "DISPLAY": ":0"}
    assert configure_mujoco_gl(environ) == "glfw" and "PYOPENGL_PLATFORM" not in environ

    monkeypatch.setattr(rendering, "egl_available", lambda: True)
    environ = {}
    assert configure_mujoco_gl(environ) == "egl"  # headless -> egl
    assert environ == {"MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}

    monkeypatch.setattr(rendering, "egl_available", lambda: False)
    environ = {}
    assert configure_mujoco_gl(environ) == "osmesa"  # no EGL library -> osmesa

    environ = {"WAYLAND_DISPLAY": "wayland-0"}
    assert configure_mujoco_gl(environ) is None and "MUJOCO_GL" not in environ  # display: mujoco default

    # the real process: the backend was fixed before dm_control rendered anything, calling again is harmless
    make_dmc("cartpole", "swingup", size=16).reset(seed=0)
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    assert configure_mujoco_gl() is None  # PyOpenGL already imported: nothing changes
    assert "MUJOCO_GL" not in os.environ
