"""Tests for the distracted DMC environments (``sb3wm/dmcr-*``) and their procedural textures."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest

from sb3_worldmodels.envs import DMC_TASKS, make_dmc  # picks the headless GL backend before dm_control loads
from sb3_worldmodels.envs.dmcr import FACTORS, DistractedDMCEnv, dmcr_env_id, make_dmcr, parse_vary
from sb3_worldmodels.envs.textures import (
    TEXTURE_PATTERNS,
    cube_directions,
    pattern,
    plane_texture,
    skybox_texture,
)
from tests.env_checks import assert_frame, check_first_step

pytest.importorskip("dm_control")
pytest.importorskip("shimmy")

CARTPOLE = "sb3wm/dmcr-cartpole-swingup-v0"
ACTIONS = np.random.default_rng(0).uniform(-1, 1, (12, 1)).astype(np.float32)


def _physics(env: gym.Env):  # noqa: ANN202
    return env.unwrapped.shimmy_env.physics


def _rollout(
    env: gym.Env, seed: int, actions: np.ndarray = ACTIONS
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Frames and physics states (``physics.get_state()``) of an episode start under fixed actions."""
    obs, _ = env.reset(seed=seed)
    frames, states = [obs], [_physics(env).get_state().copy()]
    for action in actions:
        obs, *_ = env.step(action)
        frames.append(obs)
        states.append(_physics(env).get_state().copy())
    return frames, states


def _reset(env: gym.Env, seed: int) -> np.ndarray:
    return env.reset(seed=seed)[0].astype(np.int16)


def _differ(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute pixel difference."""
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- registration, spaces, frames


def test_ids_registered() -> None:
    assert dmcr_env_id("ball_in_cup", "catch") == "sb3wm/dmcr-ball-in-cup-catch-v0"
    for domain, task in DMC_TASKS:
        spec = gym.registry[dmcr_env_id(domain, task)]
        assert spec.entry_point == "sb3_worldmodels.envs.dmcr:make_dmcr"
        assert spec.kwargs == {"domain": domain, "task": task}


def test_make_shapes_and_frames() -> None:
    env, _ = check_first_step(CARTPOLE, gym.spaces.Box(-1.0, 1.0, (1,), np.float32))
    assert isinstance(env.unwrapped, DistractedDMCEnv) and env.unwrapped.vary == FACTORS

    both = make_dmcr("walker", "walk", obs_type="both", size=(48, 80))
    obs, _ = both.reset(seed=0)
    assert_frame(obs["image"], (48, 80, 3))
    assert obs["state"].shape == (24,) and obs["state"].dtype == np.float32
    both.close()

    state = make_dmcr("cartpole", "swingup", obs_type="state", render_mode=None)  # nothing to draw: no GL
    obs, _ = state.reset(seed=0)
    assert obs.shape == (5,) and state.render() is None and _physics(state)._contexts is None
    state.close()


def test_check_env() -> None:
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env = gym.make("sb3wm/dmcr-finger-spin-v0", background_video=np.full((4, 8, 8, 3), 200, np.uint8))
        check_env(env.unwrapped)
    env.close()


# --------------------------------------------------------------------------- seeding and dynamics


def test_seeded_reproducible_and_seeds_look_different() -> None:
    a, b = make_dmcr("cartpole", "swingup"), make_dmcr("cartpole", "swingup")
    frames_a, _ = _rollout(a, seed=1)
    frames_b, _ = _rollout(b, seed=1)
    for fa, fb in zip(frames_a, frames_b):  # textures, colours, camera, moving distractors: all the same
        np.testing.assert_array_equal(fa, fb)
    np.testing.assert_array_equal(a.reset(seed=1)[0], frames_a[0])  # re-seeding replays the looks
    # unseeded resets draw new looks, reproducibly
    unseeded_a = [a.reset()[0] for _ in range(2)]
    unseeded_b = [b.reset()[0] for _ in range(2)]
    for fa, fb in zip(unseeded_a, unseeded_b):
        np.testing.assert_array_equal(fa, fb)
    assert _differ(unseeded_a[0], unseeded_a[1]) > 10.0
    assert _differ(frames_a[0], a.reset(seed=2)[0]) > 10.0
    a.close()
    b.close()


def test_visual_seed_changes_looks_not_dynamics_state() -> None:
    env = make_dmcr("cheetah", "run")
    plain = make_dmc("cheetah", "run")
    plain.reset(seed=0)
    frames, states = [], []
    for visual_seed in (1, 2, 3):
        obs, _ = env.reset(seed=0, options={"visual_seed": visual_seed})
        frames.append(obs)
        states.append(_physics(env).get_state().copy())
    for state in states:
        np.testing.assert_array_equal(state, _physics(plain).get_state())
    assert _differ(frames[0], frames[1]) > 10.0 and _differ(frames[1], frames[2]) > 10.0
    env.reset(seed=5, options={"visual_seed": 1})
    assert not np.array_equal(_physics(env).get_state(), states[0])  # seed still sets the task's start
    env.close()
    plain.close()


def test_randomisation_leaves_dynamics_unchanged() -> None:
    distracted = make_dmcr("cartpole", "swingup", background_video=np.zeros((3, 4, 4, 3), np.uint8))
    plain = make_dmc("cartpole", "swingup")
    frames_d, states_d = _rollout(distracted, seed=3)
    frames_p, states_p = _rollout(plain, seed=3)
    for sd, sp in zip(states_d, states_p):
        np.testing.assert_array_equal(sd, sp)
    assert all(_differ(fd, fp) > 10.0 for fd, fp in zip(frames_d, frames_p))
    distracted.close()
    plain.close()


# --------------------------------------------------------------------------- factors


def test_vary_empty_renders_plain_dmc() -> None:
    env = make_dmcr("cartpole", "swingup", vary=())
    plain = make_dmc("cartpole", "swingup")
    frames, _ = _rollout(env, seed=4, actions=ACTIONS[:3])
    frames_plain, _ = _rollout(plain, seed=4, actions=ACTIONS[:3])
    for fe, fp in zip(frames, frames_plain):
        np.testing.assert_array_equal(fe, fp)
    env.close()
    plain.close()


@pytest.mark.parametrize("factor", FACTORS)
def test_each_factor_alone_changes_the_image(factor: str) -> None:
    env = make_dmcr("cartpole", "swingup", vary=factor)
    plain = make_dmcr("cartpole", "swingup", vary=())
    assert env.vary == (factor,)
    # share of the pixels that changed visibly (reflections and highlights are the subtlest factor)
    changed = [np.mean(np.abs(_reset(env, s) - _reset(plain, s)).max(-1) > 8) for s in (0, 1)]
    assert min(changed) > 0.005, changed
    env.close()
    plain.close()


def test_factor_draws_do_not_depend_on_the_others() -> None:
    alone = make_dmcr("cartpole", "swingup", vary=["camera", "floor"])
    everything = make_dmcr("cartpole", "swingup")
    alone.reset(seed=7)
    everything.reset(seed=7)
    m_alone, m_all = _physics(alone).model, _physics(everything).model
    np.testing.assert_array_equal(m_alone.cam_pos, m_all.cam_pos)
    np.testing.assert_array_equal(m_alone.cam_quat, m_all.cam_quat)
    assert not np.array_equal(m_alone.cam_pos, alone.unwrapped._model.original["cam_pos"])  # it did move

    def texture(model, tex: int) -> np.ndarray:  # noqa: ANN001
        adr = int(model.tex_adr[tex])
        return model.tex_data[adr : adr + int(model.tex_width[tex] * model.tex_height[tex] * 3)]

    floor, sky = int(m_alone.mat_texid[0, 1]), int(np.flatnonzero(m_alone.tex_type == 2)[0])  # "grid", skybox
    np.testing.assert_array_equal(texture(m_alone, floor), texture(m_all, floor))
    assert not np.array_equal(texture(m_alone, sky), texture(m_all, sky))  # only ``everything`` varies the sky
    alone.close()
    everything.close()


def test_vary_validation() -> None:
    assert parse_vary("all") == FACTORS
    assert parse_vary(["distractors", "floor"]) == ("floor", "distractors")  # canonical order
    assert parse_vary(()) == ()
    with pytest.raises(ValueError, match="valid factors: .*'floor'.*'distractors'"):
        make_dmcr("cartpole", "swingup", vary=("floor", "sky"))
    with pytest.raises(TypeError, match="vary must be"):
        parse_vary(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="free camera"):
        make_dmcr("cartpole", "swingup", camera_id=-1)


def test_distractors_move_over_time() -> None:
    env = make_dmcr("walker", "walk", vary="distractors")
    plain = make_dmcr("walker", "walk", vary=())
    actions = np.zeros((20, 6), np.float32)
    frames_d, states_d = _rollout(env, seed=0, actions=actions)
    frames_p, states_p = _rollout(plain, seed=0, actions=actions)
    np.testing.assert_array_equal(states_d[-1], states_p[-1])  # the shapes do not touch the physics
    masks = [np.any(fd != fp, axis=-1) for fd, fp in zip(frames_d, frames_p)]
    assert all(mask.sum() > 10 for mask in masks)  # shapes are visible all along
    assert (masks[0] ^ masks[-1]).sum() > 20  # and they moved
    env.close()
    plain.close()


# --------------------------------------------------------------------------- background video


def _color_video(n: int = 6, height: int = 20, width: int = 30) -> tuple[np.ndarray, np.ndarray]:
    colors = np.random.default_rng(0).integers(0, 256, (n, 3), dtype=np.uint8)
    return np.broadcast_to(colors[:, None, None], (n, height, width, 3)).copy(), colors


def _video_index(frame: np.ndarray, plain: np.ndarray, colors: np.ndarray) -> int:
    """Index of the video colour pasted into ``frame``; every other pixel must be the plain frame's."""
    pasted = np.any(frame != plain, axis=-1)
    assert pasted.mean() > 0.2, "the background should cover a good part of cartpole's view"
    (index,) = np.flatnonzero(np.all(colors == frame[pasted][0], axis=1))
    assert np.all(frame[pasted] == colors[index])
    return int(index)


def test_background_video_from_array() -> None:
    video, colors = _color_video()
    env = make_dmcr("cartpole", "swingup", vary=(), background_video=video)
    plain = make_dmc("cartpole", "swingup")
    frames, _ = _rollout(env, seed=0, actions=ACTIONS[:8])
    frames_p, _ = _rollout(plain, seed=0, actions=ACTIONS[:8])
    indices = [_video_index(f, p, colors) for f, p in zip(frames, frames_p)]
    np.testing.assert_array_equal(np.diff(indices) % len(colors), 1)  # one frame per step, looping
    env.close()
    plain.close()


def test_background_video_from_dataset_of_clips() -> None:
    video, colors = _color_video(n=6)
    dataset = [{"image": video[:3]}, {"image": video[3:], "action": np.zeros((3, 1))}]  # reader protocol
    env = make_dmcr("cartpole", "swingup", vary=(), background_video=dataset)
    plain = make_dmc("cartpole", "swingup")
    frames, _ = _rollout(env, seed=0, actions=ACTIONS[:7])
    frames_p, _ = _rollout(plain, seed=0, actions=ACTIONS[:7])
    indices = [_video_index(f, p, colors) for f, p in zip(frames, frames_p)]
    assert indices[0] in (0, 3)  # a clip starts at its first frame
    clips = [indices[i : i + 3] for i in range(0, 6, 3)]
    assert all(clip in ([0, 1, 2], [3, 4, 5]) for clip in clips), indices
    env.close()
    plain.close()


def test_background_video_bad_input() -> None:
    with pytest.raises(ValueError, match="uint8 array"):
        make_dmcr("cartpole", "swingup", background_video=np.zeros((3, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="uint8 array"):
        make_dmcr("cartpole", "swingup", background_video=np.zeros((3, 3, 8, 8), np.uint8))
    with pytest.raises(TypeError, match="background_video must be"):
        make_dmcr("cartpole", "swingup", background_video=object())
    with pytest.raises(ValueError, match="empty"):
        make_dmcr("cartpole", "swingup", background_video=[])
    env = make_dmcr("cartpole", "swingup", background_video=[{"frames": np.zeros((2, 8, 8, 3), np.uint8)}])
    with pytest.raises(TypeError, match="'image' key"):
        env.reset(seed=0)
    env.close()


# --------------------------------------------------------------------------- textures


def test_skybox_layout_matches_mujoco() -> None:
    """A skybox coloured by view direction shows, in any direction, the colour of that direction."""
    import mujoco
    from dm_control.mujoco import wrapper

    env = make_dmcr("cartpole", "swingup", vary=())
    env.reset(seed=0)
    physics = _physics(env)
    model = physics.model
    sky = int(np.flatnonzero(model.tex_type == 2)[0])
    size = int(model.tex_width[sky])
    coded = np.rint((cube_directions(size) + 1.0) * 127.5).astype(np.uint8)
    model.tex_data[model.tex_adr[sky] : model.tex_adr[sky] + coded.size] = coded.ravel()
    with physics.contexts.gl.make_current() as ctx:
        ctx.call(mujoco.mjr_uploadTexture, model.ptr, physics.contexts.mujoco.ptr, sky)
    model.vis.headlight.ambient[:] = 1.0
    model.vis.headlight.diffuse[:] = 0.0
    model.vis.headlight.specular[:] = 0.0
    model.light_active[:] = 0
    hide_geoms = wrapper.MjvOption()
    hide_geoms.geomgroup[:] = 0
    for direction in ((1, 1, 1), (1, -1, 0.3), (-1, 1, -0.5), (-0.2, -1, 0.9), (0.1, 0.3, -1)):
        view = np.asarray(direction, float) / np.linalg.norm(direction)
        up = np.array([0.0, 0.0, 1.0]) if abs(view[2]) < 0.95 else np.array([1.0, 0.0, 0.0])
        y = up - up.dot(view) * view
        y /= np.linalg.norm(y)
        cam = np.stack([np.cross(y, -view), y, -view], axis=1)  # columns: camera x, y, z (looks along -z)
        mujoco.mju_mat2Quat(model.cam_quat[0], cam.ravel())
        physics.forward()
        center = physics.render(33, 33, camera_id=0, scene_option=hide_geoms)[16, 16].astype(float)
        np.testing.assert_allclose(center, (view + 1.0) * 127.5, atol=3.0)
    env.close()


@pytest.mark.parametrize("kind", TEXTURE_PATTERNS)
def test_textures_seeded_tileable_and_varied(kind: str) -> None:
    for seed in range(3):
        tex = plane_texture(np.random.default_rng(seed), 40, 50, kind).astype(np.int16)
        np.testing.assert_array_equal(tex, plane_texture(np.random.default_rng(seed), 40, 50, kind))
        assert tex.shape == (40, 50, 3) and tex.std() > 5.0
        # tileable: the step across the wrap-around is no larger than the steps inside the texture
        inner_x = np.abs(np.diff(tex, axis=1)).sum(-1).max(axis=1)
        inner_y = np.abs(np.diff(tex, axis=0)).sum(-1).max(axis=0)
        assert np.all(np.abs(tex[:, 0] - tex[:, -1]).sum(-1) <= inner_x + 3)
        assert np.all(np.abs(tex[0] - tex[-1]).sum(-1) <= inner_y + 3)
    sky = skybox_texture(np.random.default_rng(0), 60, kind, resolution=21)
    assert sky.shape == (360, 60, 3) and sky.dtype == np.uint8
    with pytest.raises(ValueError, match="valid patterns"):
        pattern(np.random.default_rng(0), np.zeros((1, 3)), "plaid")
