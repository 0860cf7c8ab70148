"""The episode recorder and ``sb3wm collect-videos`` on real DMC cartpole-swingup (short episodes)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from stable_baselines3 import PPO

from sb3_worldmodels import DreamerV3
from sb3_worldmodels.cli import main
from sb3_worldmodels.data import EPISODE_KEYS, NpzEpisodeDataset, load_agent, record_episodes

pytest.importorskip("dm_control")

CARTPOLE = "sb3wm/dmc-cartpole-swingup-v0"
STEPS = 12


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as npz:
        return {k: npz[k] for k in npz.files}


def test_random_episodes_replay_exactly(tmp_path: Path) -> None:
    paths = record_episodes(CARTPOLE, 2, out_dir=tmp_path, seed=5, max_episode_steps=STEPS, progress_bar=False)
    assert [p.name for p in paths] == ["episode_000000.npz", "episode_000001.npz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [p.name for p in paths]  # nothing else (no temp files)
    episode = _load(paths[1])
    assert tuple(episode) == EPISODE_KEYS
    assert episode["image"].shape == (STEPS + 1, 64, 64, 3) and episode["image"].dtype == np.uint8
    assert episode["action"].shape == (STEPS + 1, 1) and episode["action"].dtype == np.float32
    assert episode["is_first"].tolist() == [True] + [False] * STEPS
    assert not episode["is_terminal"].any()  # a time limit is not a termination
    assert not episode["action"][0].any() and episode["reward"][0] == 0
    assert np.abs(episode["action"][1:]).max() <= 1 and len(np.unique(episode["action"][1:])) == STEPS
    assert episode["image"].std() > 5  # real renders, not blank frames
    # the file is the env's own trajectory: replaying its actions from the same seed gives its frames and rewards
    env = gym.make(CARTPOLE)
    obs, _ = env.reset(seed=6)  # episode 1 of seed 5
    np.testing.assert_array_equal(obs, episode["image"][0])
    for t in range(1, STEPS + 1):
        obs, reward, *_ = env.step(episode["action"][t])
        np.testing.assert_array_equal(obs, episode["image"][t])
        assert reward == pytest.approx(episode["reward"][t], rel=1e-6)
    env.close()
    assert not np.array_equal(_load(paths[0])["image"], episode["image"])  # different seeds, different episodes
    dataset = NpzEpisodeDataset(tmp_path, clip_length=STEPS + 1)
    assert len(dataset) == 2 and dataset.keys == EPISODE_KEYS


def test_rerun_is_reproducible_and_resumes(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first = record_episodes(CARTPOLE, 2, out_dir=tmp_path / "a", max_episode_steps=5)
    assert "recording to" in capsys.readouterr().err  # the progress bar
    again = record_episodes(CARTPOLE, 2, out_dir=tmp_path / "b", max_episode_steps=5, progress_bar=False)
    for a, b in zip(first, again):
        for key, value in _load(a).items():
            np.testing.assert_array_equal(value, _load(b)[key])
    kept = first[0].stat().st_mtime_ns
    first[1].unlink()
    record_episodes(CARTPOLE, 3, out_dir=tmp_path / "a", max_episode_steps=5, progress_bar=False)
    assert first[0].stat().st_mtime_ns == kept  # present episodes are not played again
    np.testing.assert_array_equal(_load(first[1])["action"], _load(again[1])["action"])  # the same episode 1
    assert (tmp_path / "a" / "episode_000002.npz").exists()


def test_recurrent_agent_from_zip_gets_its_state_back(tmp_path: Path) -> None:
    env = gym.make(CARTPOLE)
    agent = DreamerV3("CnnPolicy", env, buffer_size=100, learning_starts=8, batch_size=2, sequence_length=4,
                      policy_kwargs=dict(model_size="tiny"), seed=0, device="cpu")
    agent.save(tmp_path / "agent.zip")
    loaded = load_agent(tmp_path / "agent.zip")
    assert isinstance(loaded, DreamerV3)
    (path,) = record_episodes(CARTPOLE, 1, tmp_path / "agent.zip", tmp_path / "out", seed=2, deterministic=True,
                              max_episode_steps=STEPS, progress_bar=False)
    recorded = _load(path)
    # the same agent, stepped by hand with its latent state carried from step to step
    obs, _ = env.reset(seed=2)
    state, actions = None, []
    for t in range(STEPS):
        action, state = loaded.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
        actions.append(action)
        obs, *_ = env.step(action)
    np.testing.assert_allclose(recorded["action"][1:], np.array(actions).reshape(STEPS, -1), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(recorded["image"][-1], obs)
    # without the state the actions differ: the test above would notice a recorder that drops it
    stateless = [loaded.predict(recorded["image"][t], deterministic=True)[0] for t in range(STEPS)]
    assert not np.allclose(np.array(stateless).reshape(STEPS, -1), recorded["action"][1:], atol=1e-6)
    env.close()


def test_state_agent_records_rendered_frames(tmp_path: Path) -> None:
    env = gym.make(CARTPOLE, obs_type="state")
    PPO("MlpPolicy", env, n_steps=16, batch_size=16, seed=0, device="cpu").save(tmp_path / "ppo.zip")
    (path,) = record_episodes(CARTPOLE, 1, str(tmp_path / "ppo.zip"), tmp_path / "out", max_episode_steps=4,
                              env_kwargs={"obs_type": "state"}, size=32, progress_bar=False)
    episode = _load(path)
    assert episode["image"].shape == (5, 32, 32, 3) and episode["image"].std() > 5  # from render(), resized
    with pytest.raises(ValueError, match="Observation spaces do not match"):  # a state agent on a pixel env
        record_episodes(CARTPOLE, 1, tmp_path / "ppo.zip", tmp_path / "bad", progress_bar=False)
    assert isinstance(load_agent(tmp_path / "ppo.zip", algo="PPO"), PPO)
    with pytest.raises(ValueError, match="Unknown algorithm 'Nope'"):
        load_agent(tmp_path / "ppo.zip", algo="Nope")
    (tmp_path / "junk.zip").write_bytes(b"junk")
    with pytest.raises(ValueError, match="not an agent saved by SB3"):
        load_agent(tmp_path / "junk.zip")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        record_episodes(CARTPOLE, 1, tmp_path / "missing.zip", tmp_path / "bad", progress_bar=False)
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        record_episodes(CARTPOLE, 0, out_dir=tmp_path / "bad")


def test_cli_collect_videos(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    main(["collect-videos", "--env", CARTPOLE, "--episodes", "2", "--policy", "random", "--out", str(tmp_path),
          "--max-episode-steps", "6", "--seed", "1", "--env-kwargs", '{"size": 48}'])
    out = capsys.readouterr().out
    assert json.loads(out[out.rindex("{"):]) == {"env": CARTPOLE, "episodes": 2, "out": str(tmp_path)}
    episode = _load(tmp_path / "episode_000001.npz")
    assert episode["image"].shape == (7, 48, 48, 3)


def test_env_instance_is_recorded_and_left_open(tmp_path: Path) -> None:
    from stable_baselines3.common.vec_env import DummyVecEnv

    env = gym.make(CARTPOLE, obs_type="both")  # dict observations: the frames are obs["image"]
    (path,) = record_episodes(env, 1, out_dir=tmp_path, max_episode_steps=3, seed=4, progress_bar=False)
    episode = _load(path)
    obs, _ = env.reset(seed=4)  # still usable: the recorder closes only the envs it made
    np.testing.assert_array_equal(episode["image"][0], obs["image"])
    assert len(episode["image"]) == 4
    env.close()
    with pytest.raises(TypeError, match="not a VecEnv"):
        record_episodes(DummyVecEnv([lambda: gym.make(CARTPOLE)]), 1, out_dir=tmp_path / "vec")
    with pytest.raises(ValueError, match="env_kwargs only apply to an env id"):
        record_episodes(gym.make(CARTPOLE), 1, out_dir=tmp_path / "x", env_kwargs={"size": 32})
