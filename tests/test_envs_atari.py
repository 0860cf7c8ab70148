"""Tests for the Atari100k environments (real ALE emulator, bundled ROMs) and the human-normalised scores."""

from __future__ import annotations

import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

pytest.importorskip("ale_py")
cv2 = pytest.importorskip("cv2")

import sb3_worldmodels.envs  # noqa: E402, F401  (registers the ids)
from sb3_worldmodels.envs.atari import (  # noqa: E402
    ATARI100K_GAMES,
    atari100k_env_id,
    make_atari100k,
    normalize_game_name,
)
from sb3_worldmodels.envs.scores import (  # noqa: E402
    ATARI100K_SCORES,
    aggregate_human_normalized,
    human_normalized_score,
)
from tests.env_checks import assert_frame, check_first_step  # noqa: E402

PONG = "sb3wm/atari100k-pong-v0"


def _resize(screen: np.ndarray, size: int = 64) -> np.ndarray:
    return cv2.resize(screen, (size, size), interpolation=cv2.INTER_AREA)


# --------------------------------------------------------------------------- ids


def test_games_and_ids() -> None:
    import ale_py.roms

    assert len(ATARI100K_GAMES) == 26 and set(ATARI100K_GAMES) <= set(ale_py.roms.get_all_rom_ids())
    for game in ATARI100K_GAMES:
        env_id = atari100k_env_id(game)
        assert env_id in gym.registry and gym.registry[env_id].kwargs == {"game": game}
    for spelling in ("ms_pacman", "ms-pacman", "MsPacman", "ALE/MsPacman-v5", "sb3wm/atari100k-ms-pacman-v0"):
        assert normalize_game_name(spelling) == "ms_pacman"
        assert atari100k_env_id(spelling) == "sb3wm/atari100k-ms-pacman-v0"
    assert atari100k_env_id("UpNDown") == "sb3wm/atari100k-up-n-down-v0"
    assert atari100k_env_id("kung_fu_master") == "sb3wm/atari100k-kung-fu-master-v0"
    with pytest.raises(ValueError, match="valid games: .*'ms_pacman'"):
        make_atari100k("tetris")


# --------------------------------------------------------------------------- frames, seeding


def test_reset_step_render() -> None:
    check_first_step(PONG, gym.spaces.Discrete(6))  # Pong's minimal action set, not the full 18


def test_grayscale_and_size_options() -> None:
    env = gym.make("sb3wm/atari100k-ms-pacman-v0", grayscale=True, size=(48, 80))
    obs, _ = env.reset(seed=0)
    assert env.observation_space == gym.spaces.Box(0, 255, (48, 80, 1), np.uint8)
    assert_frame(obs, (48, 80, 1), min_std=5.0)
    assert env.render().shape == (48, 80, 3)
    env.close()


def test_same_seed_same_frames() -> None:
    actions = np.random.default_rng(0).integers(0, 9, 20)

    def rollout(seed: int) -> tuple[list[np.ndarray], int]:
        env = make_atari100k("ms_pacman", seed=seed)
        obs, info = env.reset(seed=seed)
        frames = [obs] + [env.step(int(a))[0] for a in actions]
        env.close()
        return frames, info["episode_frame_number"]

    (a, noops_a), (b, noops_b) = rollout(3), rollout(3)
    assert noops_a == noops_b
    for fa, fb in zip(a, b):
        np.testing.assert_array_equal(fa, fb)


# --------------------------------------------------------------------------- protocol


def test_protocol_settings() -> None:
    env = gym.make(PONG)
    env.reset(seed=0)
    ale = env.unwrapped.ale
    assert ale.getFloat("repeat_action_probability") == 0.0  # no sticky actions
    assert ale.getInt("max_num_frames_per_episode") == 108_000  # 30 minutes = 27k agent steps
    assert ale.getInt("frame_skip") == 1  # the wrapper does the skipping (and the max-pooling)
    _, info = env.reset(seed=0)
    start = info["episode_frame_number"]
    for k in range(1, 4):
        _, _, _, _, info = env.step(0)
        assert info["episode_frame_number"] == start + 4 * k  # action repeat 4
    env.close()


def test_noop_starts() -> None:
    env = make_atari100k("pong")
    starts = {env.reset(seed=s)[1]["episode_frame_number"] for s in range(8)}
    assert starts <= set(range(1, 31)) and len(starts) >= 3  # 1..30 random no-ops
    env.close()
    env = make_atari100k("pong", noop_max=0)
    assert env.reset(seed=0)[1]["episode_frame_number"] == 0
    env.close()


def test_max_pool_over_last_two_frames() -> None:
    env = make_atari100k("ms_pacman")  # flickering sprites: pooling changes most frames
    env.reset(seed=0)
    base = env.unwrapped
    rng = np.random.default_rng(0)
    pooled_differs = 0
    for _ in range(20):
        action = int(rng.integers(env.action_space.n))
        state = base.ale.cloneState()
        screens = []
        for _ in range(4):
            base.ale.act(base._action_set[action])
            screens.append(base.ale.getScreenRGB())
        base.ale.restoreState(state)
        obs = env.step(action)[0]
        expected = _resize(np.maximum(screens[2], screens[3]))
        np.testing.assert_array_equal(obs, expected)
        pooled_differs += not np.array_equal(expected, _resize(screens[3]))
    assert pooled_differs > 0
    env.close()


def test_episode_cap_truncates_with_the_final_frame() -> None:
    env = make_atari100k("pong", max_frames=200)
    env.reset(seed=0)  # 22 no-ops with this seed: the cap falls inside an action repeat
    for _ in range(100):
        obs, _, terminated, truncated, info = env.step(0)
        if terminated or truncated:
            break
    assert truncated and not terminated and info["episode_frame_number"] == 200
    # gymnasium's AtariPreprocessing alone would return the previous step's pooled frame here
    np.testing.assert_array_equal(obs, _resize(env.unwrapped.ale.getScreenRGB()))
    env.close()


def test_terminal_on_life_loss_option() -> None:
    env = make_atari100k("breakout", terminal_on_life_loss=True)
    _, info = env.reset(seed=0)
    lives = info["lives"]
    env.action_space.seed(0)
    for _ in range(2000):
        _, _, terminated, truncated, info = env.step(env.action_space.sample())
        if terminated or truncated:
            break
    assert terminated and info["lives"] == lives - 1 and not env.unwrapped.ale.game_over()
    env.close()
    assert make_atari100k("breakout").terminal_on_life_loss is False  # off by default


def test_check_env() -> None:
    env = gym.make(PONG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        # the preprocessing is a gymnasium wrapper around ale-py's env: check the wrapper itself
        warnings.filterwarnings("ignore", message=".*is different from the unwrapped version")
        check_env(env)
    env.close()


# --------------------------------------------------------------------------- human-normalised scores


def test_score_table() -> None:
    assert set(ATARI100K_SCORES) == set(ATARI100K_GAMES)
    assert all(human > random for random, human in ATARI100K_SCORES.values())
    assert ATARI100K_SCORES["pong"] == (-20.7, 14.6) and ATARI100K_SCORES["up_n_down"] == (533.4, 11693.2)


def test_human_normalized_score_hand_computed() -> None:
    assert human_normalized_score("pong", 14.6) == pytest.approx(1.0)
    assert human_normalized_score("pong", -20.7) == pytest.approx(0.0)
    assert human_normalized_score("pong", -3.05) == pytest.approx(0.5)  # (-3.05 + 20.7) / 35.3
    assert human_normalized_score("Breakout", 59.3) == pytest.approx(2.0)  # (59.3 - 1.7) / 28.8
    assert human_normalized_score("sb3wm/atari100k-ms-pacman-v0", 307.3) == pytest.approx(0.0)
    assert human_normalized_score("alien", 3677.75) == pytest.approx(0.5)  # (3677.75 - 227.8) / 6899.9
    with pytest.raises(ValueError, match="valid games: .*'pong'"):
        human_normalized_score("tetris", 1.0)


def test_aggregate_mean_and_median() -> None:
    result = aggregate_human_normalized({"pong": -3.05, "breakout": 59.3, "MsPacman": 307.3, "alien": 227.8})
    assert result.per_game == pytest.approx({"pong": 0.5, "breakout": 2.0, "ms_pacman": 0.0, "alien": 0.0})
    assert result.mean == pytest.approx(0.625)  # (0.5 + 2 + 0 + 0) / 4
    assert result.median == pytest.approx(0.25)  # middle of 0, 0, 0.5, 2
    with pytest.raises(ValueError, match="given twice"):
        aggregate_human_normalized({"ms_pacman": 1.0, "MsPacman": 2.0})
    with pytest.raises(ValueError, match="scores is empty"):
        aggregate_human_normalized({})
