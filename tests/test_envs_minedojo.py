"""MineDojo adapter: the install error (MineDojo and JDK 8 are missing here), the action tables, the frame
conversion, the dense reward and the gymnasium adapter around a MineDojo-shaped simulator.

MineDojo cannot run on these machines (it needs JDK 8 and downloads Minecraft on its first run), so the
adapter test drives :class:`MineDojoEnv` with ``_FakeMineDojo`` below: a minimal stand-in that returns
observations shaped as MineDojo's (``rgb`` (3, H, W) uint8, ``inventory``, lidar ``rays``) and records what
it is sent. Everything else here is the real code on real numbers.
"""

from __future__ import annotations

import importlib.util
import itertools
import shutil
import warnings
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import sb3_worldmodels  # noqa: F401  (registers the ids)
from sb3_worldmodels.envs.minedojo import (
    DISCRETE_ACTIONS,
    HARMONY_ACTION_NVEC,
    MINEDOJO_ACTION_NVEC,
    HuntDenseReward,
    MineDojoEnv,
    _java_version,
    discrete_to_minedojo,
    harmony_to_minedojo,
    hunt_cow_cleanup,
    make_minedojo,
    missing_minedojo_requirements,
    rgb_to_image,
)

MINEDOJO_MISSING = importlib.util.find_spec("minedojo") is None


# --------------------------------------------------------------------------- install error


@pytest.mark.skipif(not MINEDOJO_MISSING, reason="minedojo is installed here")
@pytest.mark.parametrize("make", [make_minedojo, lambda: gym.make("sb3wm/minedojo-hunt-cow-v0")])
def test_missing_minedojo_says_what_to_install(make: Any) -> None:
    with pytest.raises(ImportError) as info:
        make()
    message = str(info.value)
    needs = ('pip install "pip<24.1" "setuptools==65.5.0" "wheel<0.40"', '"numpy<2" minedojo', "gym==0.21",
             "JDK 8", "openjdk-8-jdk", "openjdk=8", "MINEDOJO_HEADLESS=1", "xvfb", "Gradle", "internet")
    for needed in needs:
        assert needed in message, needed
    # the JDK step is there exactly when this machine lacks Java 8
    java = shutil.which("java")
    version = None if java is None else _java_version(java)
    assert ("JDK 8 (" in message) == (version is None or not version.startswith("1.8"))


def test_missing_requirements_logic() -> None:
    assert missing_minedojo_requirements(True, "1.8.0_392") == []
    (java_17,) = missing_minedojo_requirements(True, "17.0.2")
    assert "JDK 8" in java_17 and "found Java 17.0.2" in java_17
    (no_java,) = missing_minedojo_requirements(True, None)
    assert "no java on PATH" in no_java
    (pip_only,) = missing_minedojo_requirements(False, "1.8.0_392")
    assert "pip install" in pip_only and "JDK" not in pip_only
    assert len(missing_minedojo_requirements(False, None)) == 2


@pytest.mark.skipif(shutil.which("java") is None, reason="no java here")
def test_java_version_is_read() -> None:
    version = _java_version(shutil.which("java"))
    assert version is not None and version[0].isdigit()


# --------------------------------------------------------------------------- actions


def test_discrete_table() -> None:
    expected = {
        "noop": [0, 0, 0, 12, 12, 0, 0, 0],
        "forward": [1, 0, 0, 12, 12, 0, 0, 0],
        "back": [2, 0, 0, 12, 12, 0, 0, 0],
        "left": [0, 1, 0, 12, 12, 0, 0, 0],
        "right": [0, 2, 0, 12, 12, 0, 0, 0],
        "jump": [0, 0, 1, 12, 12, 0, 0, 0],
        "sneak": [0, 0, 2, 12, 12, 0, 0, 0],
        "sprint": [0, 0, 3, 12, 12, 0, 0, 0],
        "pitch-15": [0, 0, 0, 11, 12, 0, 0, 0],
        "pitch+15": [0, 0, 0, 13, 12, 0, 0, 0],
        "yaw-15": [0, 0, 0, 12, 11, 0, 0, 0],
        "yaw+15": [0, 0, 0, 12, 13, 0, 0, 0],
        "use": [0, 0, 0, 12, 12, 1, 0, 0],
        "attack": [0, 0, 0, 12, 12, 3, 0, 0],
        "forward+jump": [1, 0, 1, 12, 12, 0, 0, 0],
        "forward+attack": [1, 0, 0, 12, 12, 3, 0, 0],
    }
    assert [name for name, _ in DISCRETE_ACTIONS] == list(expected)
    for index, vector in enumerate(expected.values()):
        out = discrete_to_minedojo(index)
        assert out.dtype == np.int64 and out.tolist() == vector
    assert discrete_to_minedojo(np.int64(13)).tolist() == expected["attack"]


def test_harmony_mapping() -> None:
    assert harmony_to_minedojo([1, 2, 3, 4, 2]).tolist() == [1, 2, 3, 12, 13, 3, 0, 0]
    assert harmony_to_minedojo(np.array([2, 1, 1, 1, 1])).tolist() == [2, 1, 1, 11, 12, 1, 0, 0]
    # all 540 actions of HarmonyDream's space map to distinct valid MineDojo actions
    every_action = itertools.product(*(range(n) for n in HARMONY_ACTION_NVEC))
    outs = {tuple(harmony_to_minedojo(a)) for a in every_action}
    assert len(outs) == 540
    out = np.array(sorted(outs))
    assert (out >= 0).all() and (out < MINEDOJO_ACTION_NVEC).all()
    degrees = 15 * (out[:, 3:5] - 12)  # MineDojo's camera bins are 15 degrees apart, bin 12 = no turn
    assert set(degrees.ravel()) == {-15, 0, 15} and not ((degrees[:, 0] != 0) & (degrees[:, 1] != 0)).any()
    assert set(out[:, 5]) == {0, 1, 3} and (out[:, 6:] == 0).all()  # noop/use/attack; no craft or slot


@pytest.mark.parametrize("bad", [[3, 0, 0, 0, 0], [0, 0, 0, 5, 0], [0, 0, 0, 0], [-1, 0, 0, 0, 0], [0.0] * 5])
def test_harmony_mapping_rejects_bad_actions(bad: list) -> None:
    with pytest.raises(ValueError, match=r"MultiDiscrete\(\[3, 3, 4, 5, 3\]\)"):
        harmony_to_minedojo(bad)


@pytest.mark.parametrize("bad", [16, -1, 1.0, True])
def test_discrete_mapping_rejects_bad_actions(bad: Any) -> None:
    with pytest.raises(ValueError, match=r"\[0, 16\)"):
        discrete_to_minedojo(bad)


# --------------------------------------------------------------------------- observations


def test_rgb_to_image() -> None:
    rgb = np.arange(3 * 2 * 4, dtype=np.uint8).reshape(3, 2, 4)
    image = rgb_to_image(rgb, (2, 4))
    assert image.shape == (2, 4, 3) and image.flags.c_contiguous
    assert image[1, 2].tolist() == [6, 14, 22]  # image[i, j, c] == rgb[c, i, j]
    # resized: left half black, right half 200, a 128 -> 64 downscale keeps both halves
    big = np.zeros((3, 128, 128), np.uint8)
    big[:, :, 64:] = 200
    small = rgb_to_image(big, (64, 64))
    assert small.shape == (64, 64, 3) and small.dtype == np.uint8
    assert (small[:, :31] == 0).all() and (small[:, 33:] == 200).all()
    with pytest.raises(ValueError, match=r"uint8 \(3, H, W\)"):
        rgb_to_image(np.zeros((64, 64, 3), np.uint8), (64, 64))
    with pytest.raises(ValueError, match=r"uint8 \(3, H, W\)"):
        rgb_to_image(np.zeros((3, 64, 64), np.float32), (64, 64))


# --------------------------------------------------------------------------- dense reward


def _obs(durability: float, rays: list[tuple[str, float]]) -> dict[str, Any]:
    names = np.array([n for n, _ in rays] or ["null"])
    distances = np.array([d for _, d in rays] or [999.0])
    return {"inventory": {"cur_durability": np.array([durability, 0.0])},
            "rays": {"entity_name": names, "entity_distance": distances}}


def test_hunt_dense_reward_by_hand() -> None:
    reward = HuntDenseReward("cow", attack_reward=5, nav_reward_scale=1, step_penalty=0)
    reward.reset(_obs(1561, [("pig", 3.0), ("cow", 9.0), ("cow", 12.0)]))  # closest cow 9
    steps = [
        (_obs(1561, [("cow", 7.0)]), 0.0, 2.0),  # 2 blocks closer
        (_obs(1561, [("cow", 8.0)]), 0.0, 0.0),  # farther: no penalty, closest stays 7
        (_obs(1561, []), 0.0, 0.0),  # out of sight
        (_obs(1560, [("cow", 6.0)]), 0.0, 6.0),  # 1 closer + a hit (durability -1) worth 5
        (_obs(1560, [("cow", 9.0)]), 0.0, 0.0),  # after a hit the closest distance starts again: 9
        (_obs(1560, [("cow", 4.0)]), 200.0, 205.0),  # 5 closer + the task's success reward
        (_obs(0, []), 0.0, 0.0),  # death: the sword is gone (durability -> 0), not a hit
    ]
    assert [reward(obs, task) for obs, task, _ in steps] == [r for _, _, r in steps]
    penalised = HuntDenseReward("cow", step_penalty=0.5)
    penalised.reset(_obs(100, []))
    assert penalised(_obs(100, []), 0.0) == -0.5
    with pytest.raises(ValueError, match="step_penalty"):
        HuntDenseReward(step_penalty=-1)
    with pytest.raises(KeyError, match="use_lidar=True"):
        penalised(_obs(100, []) | {"rays": {}}, 0.0)


# --------------------------------------------------------------------------- the adapter


class _FakeMineDojo:
    """Stand-in for a MineDojo task env (the real one cannot run here): MineDojo-shaped observations,
    old-gym ``step``, and a record of the actions and commands it received."""

    def __init__(self, world_seed: int, size: tuple[int, int], done_at: int | None = None,
                 rewards: tuple[float | None, ...] = (None, 1.0)) -> None:
        self.world_seed, self.size, self.done_at, self.rewards = world_seed, size, done_at, rewards
        self.actions: list[list[int]] = []
        self.commands: list[str] = []
        self.closed = False
        self.is_successful = False
        self._t = 0

    @property
    def unwrapped(self) -> _FakeMineDojo:
        return self

    def _obs(self) -> dict[str, Any]:
        rgb = np.zeros((3, *self.size), np.uint8)
        rgb[0] = self.world_seed % 256
        rgb[1, :, : self._t % self.size[1]] = 255
        rgb[2] = np.arange(self.size[1], dtype=np.uint8)[None, :]
        return {"rgb": rgb, **_obs(1561 - self._t, [("cow", 10.0 - self._t)])}

    def reset(self) -> dict[str, Any]:
        self._t = 0
        return self._obs()

    def step(self, action: np.ndarray) -> tuple[dict[str, Any], float | None, bool, dict[str, Any]]:
        assert isinstance(action, np.ndarray) and action.shape == (8,)
        self.actions.append(action.tolist())
        self._t += 1
        done = self.done_at is not None and self._t >= self.done_at
        self.is_successful = done
        return self._obs(), self.rewards[self._t % len(self.rewards)], done, {"t": self._t}

    def execute_cmd(self, command: str) -> None:
        self.commands.append(command)

    def set_time(self, time: int) -> None:
        self.commands.append(f"time {time}")

    def set_weather(self, weather: str) -> None:
        self.commands.append(f"weather {weather}")

    def close(self) -> None:
        self.closed = True


def _env(**kwargs: Any) -> tuple[MineDojoEnv, list[_FakeMineDojo]]:
    sims: list[_FakeMineDojo] = []
    sim_size = kwargs.pop("sim_size", (64, 64))
    fake_kwargs = {k: kwargs.pop(k) for k in ("done_at", "rewards") if k in kwargs}

    def make_sim(world_seed: int) -> _FakeMineDojo:
        sims.append(_FakeMineDojo(world_seed, sim_size, **fake_kwargs))
        return sims[-1]

    return MineDojoEnv(make_sim, **kwargs), sims


def test_adapter_spaces_reset_and_actions() -> None:
    env, sims = _env()
    assert env.observation_space == gym.spaces.Box(0, 255, (64, 64, 3), np.uint8)
    assert env.action_space == gym.spaces.Discrete(16) and sims == []  # Minecraft starts at the first reset
    obs, info = env.reset(seed=3)
    assert info == {"world_seed": 3} and sims[0].world_seed == 3
    assert obs.shape == (64, 64, 3) and obs.dtype == np.uint8
    assert (obs[..., 0] == 3).all() and obs[5, 40, 2] == 40  # channel c of the frame is rgb[c]
    obs, reward, terminated, truncated, info = env.step(13)  # attack
    assert sims[0].actions == [[0, 0, 0, 12, 12, 3, 0, 0]]
    assert reward == 1.0 and info["t"] == 1 and info["success"] is False  # the task's reward alone
    multi, sims_m = _env(action_type="multi_discrete", dense_reward=HuntDenseReward("cow"))
    assert multi.action_space == gym.spaces.MultiDiscrete([3, 3, 4, 5, 3])
    multi.reset(seed=0)
    _, reward, *_ = multi.step(np.array([1, 0, 1, 4, 2]))
    assert sims_m[0].actions == [[1, 0, 1, 12, 13, 3, 0, 0]]
    assert reward == 1.0 + 1.0 + 5.0  # task reward 1, one block closer, one hit (durability 1561 -> 1560)
    with pytest.raises(ValueError, match="Invalid discrete MineDojo action"):
        env.step(16)
    with pytest.raises(ValueError, match="action_type"):
        _env(action_type="continuous")


def test_adapter_terminated_truncated_and_repeat() -> None:
    env, sims = _env(max_episode_steps=3)
    env.reset(seed=0)
    assert [env.step(0)[2:4] for _ in range(3)] == [(False, False), (False, False), (False, True)]
    env, sims = _env(done_at=2, max_episode_steps=3)
    env.reset(seed=0)
    assert env.step(0)[2:4] == (False, False)
    _, _, terminated, truncated, info = env.step(0)
    assert (terminated, truncated, info["success"]) == (True, False, True)
    # action repeat: the same action twice, rewards summed (None counts as 0), stops at MineDojo's done
    env, sims = _env(action_repeat=2, rewards=(2.0, None, 0.5), done_at=3)
    env.reset(seed=0)
    _, reward, terminated, *_ = env.step(1)
    assert reward == 0.0 + 0.5 and not terminated and sims[0].actions == [[1, 0, 0, 12, 12, 0, 0, 0]] * 2
    _, reward, terminated, *_ = env.step(2)
    assert reward == 2.0 and terminated and len(sims[0].actions) == 3


def test_adapter_fast_reset_and_reseed() -> None:
    env, sims = _env(before_reset=hunt_cow_cleanup, seed=11)
    env.reset()  # the constructor's seed
    assert sims[0].world_seed == 11 and sims[0].commands == []  # no clean-up before the very first reset
    env.step(0)
    env.reset()  # same world: MineDojo's fast reset, after hunt-cow's clean-up
    assert len(sims) == 1 and sims[0].commands == [
        "/kill @e[type=!player]", "/clear", "/kill @e[type=item]", "time 6000", "weather clear"]
    env.reset(seed=11)  # the running world's seed: still a fast reset
    assert len(sims) == 1
    env.reset(seed=12)  # another world: Minecraft restarts with it
    assert sims[0].closed and sims[1].world_seed == 12 and sims[1].commands == []
    env.close()
    assert sims[1].closed and env.sim is None


def test_adapter_resizes_and_passes_check_env() -> None:
    env, _ = _env(sim_size=(128, 128), size=(64, 64))
    obs, _ = env.reset(seed=1)
    assert obs.shape == (64, 64, 3) and (obs[..., 0] == 1).all()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(_env()[0], skip_render_check=True)  # no spec: render modes cannot be re-made


def test_ids_registered() -> None:
    for env_id in ("sb3wm/minedojo-hunt-cow-v0", "sb3wm/minedojo-v0"):
        assert gym.registry[env_id].entry_point == "sb3_worldmodels.envs.minedojo:make_minedojo"
    assert gym.registry["sb3wm/minedojo-hunt-cow-v0"].kwargs == {"task": "hunt-cow"}
