"""The helpers the environment suites share (``sb3_worldmodels.envs.base``), and their use in each suite."""

from __future__ import annotations

import sys
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from sb3_worldmodels.envs.atari import make_atari100k
from sb3_worldmodels.envs.base import OBS_TYPES, check_render_mode, import_or_hint, register_ids, size_pair
from sb3_worldmodels.envs.crafter import CrafterEnv
from sb3_worldmodels.envs.dmc import make_dmc
from sb3_worldmodels.envs.dmcr import make_dmcr
from sb3_worldmodels.envs.metaworld import make_metaworld
from sb3_worldmodels.envs.minedojo import make_minedojo

BAD_SIZES = (0, -3, 64.0, (64,), (64, 64, 3), (64, 0), (48.0, 64), "64", True, None)


def test_size_pair() -> None:
    assert size_pair(64) == (64, 64)
    assert size_pair((48, 80)) == (48, 80)
    pair = size_pair([np.int64(48), np.int32(80)])
    assert pair == (48, 80) and all(type(v) is int for v in pair)
    for bad in BAD_SIZES:
        with pytest.raises(ValueError, match=r"^size must be a positive int or a pair of positive ints, got"):
            size_pair(bad)
    with pytest.raises(ValueError, match="^view must be"):
        size_pair(0, "view")


# Each suite's maker, with a bad size; every one fails with the same message, before loading its simulator.
MAKERS: dict[str, Callable[[Any], Any]] = {
    "dmc": lambda size: make_dmc("cartpole", "swingup", size=size),
    "dmcr": lambda size: make_dmcr("cartpole", "swingup", size=size),
    "metaworld": lambda size: make_metaworld("reach", size=size),
    "atari": lambda size: make_atari100k("pong", size=size),
    "crafter": lambda size: CrafterEnv(size=size),
    "minedojo": lambda size: make_minedojo(size=size),
}


@pytest.mark.parametrize("suite", sorted(MAKERS))
def test_every_suite_rejects_bad_sizes(suite: str) -> None:
    for bad in (0, (64, -1), 64.5):
        with pytest.raises(ValueError, match=r"^size must be a positive int or a pair of positive ints"):
            MAKERS[suite](bad)


def test_argument_checks() -> None:
    assert OBS_TYPES == ("pixels", "state", "both")
    check_render_mode(None)
    check_render_mode("rgb_array")
    with pytest.raises(ValueError, match="render_mode must be 'rgb_array' or None, got 'human'"):
        check_render_mode("human")
    with pytest.raises(ValueError, match="sim_size must be"):
        make_minedojo(sim_size=(0, 64))


def test_import_or_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    assert import_or_hint("numpy.linalg", "unused") is np.linalg
    with pytest.raises(ImportError, match=r"^pip install the-missing-one$"):
        import_or_hint("sb3_worldmodels_no_such_module", "pip install the-missing-one")
    monkeypatch.setitem(sys.modules, "numpy", None)  # blocked package: its cached submodules are missing too
    with pytest.raises(ImportError, match=r"^pip install numpy$"):
        import_or_hint("numpy.linalg", "pip install numpy")


def test_register_ids_once() -> None:
    entries = [("sb3wm-test/first-v0", {"size": 8}), ("sb3wm-test/second-v0", {})]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # gymnasium warns when an id is registered again
            for _ in range(2):
                register_ids(entries, "sb3_worldmodels.envs.crafter:CrafterEnv", max_episode_steps=7)
        first, second = gym.registry["sb3wm-test/first-v0"], gym.registry["sb3wm-test/second-v0"]
        assert first.entry_point == second.entry_point == "sb3_worldmodels.envs.crafter:CrafterEnv"
        assert first.kwargs == {"size": 8} and second.kwargs == {} and first.max_episode_steps == 7
        env = gym.make("sb3wm-test/first-v0")  # the entry point is imported and called only now
        assert env.observation_space.shape == (8, 8, 3)
        env.close()
    finally:
        for env_id, _ in entries:
            gym.registry.pop(env_id, None)
