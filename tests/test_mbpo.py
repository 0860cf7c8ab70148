"""MBPO with iVideoGPT: the schedule of world-model updates and imagination, mixed batches, the data path, save/load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.save_util import save_to_pkl

from sb3_worldmodels import MBPO, IVideoGPT
from sb3_worldmodels.cli import predict_video
from sb3_worldmodels.common.buffers import SequenceReplayBuffer
from sb3_worldmodels.data import load_agent
from sb3_worldmodels.ivideogpt import make_tokenizer_config, make_transformer_config
from sb3_worldmodels.mbpo import add_imagined, fill_episode_starts, imagine, sample_segments
from tests.dummy_envs import DotEnv

TINY = dict(tokenizer="tiny", transformer="tiny")


def small_mbpo(env: Any = None, **kwargs: Any) -> MBPO:
    settings = dict(world_model=TINY, learning_starts=60, batch_size=16, model_batch_size=4, segment_length=6,
                    model_warmup_updates=5, rollout_every=20, rollout_batch=4, rollout_horizon=3,
                    imagined_buffer_size=100, buffer_size=1_000, seed=0, policy_kwargs=dict(hidden_dim=32))
    settings.update(kwargs)
    return MBPO("CnnPolicy", env or DotEnv("image", size=16, continuous=True, length=30), **settings)


def test_learn_follows_the_spec_schedule() -> None:
    model = small_mbpo()
    model.learn(120)
    # warm-up at the first update (step 61): 5 transformer updates and a tokenizer update every 20 / 5 = 4 of them,
    # then one transformer update per 5 env steps and one tokenizer update per 20
    assert model._model_updates == 5 + (120 - 61) // 5
    assert model._tokenizer_updates == 2 + (120 - 61) // 20
    assert model.imagined_buffer.size() == 3 * 3  # rounds at steps 61, 81 and 101, 3 steps each, 4 rollouts a row
    assert model._n_updates == 2 * (120 - 60)  # 2 agent updates per env step
    done = model._model_updates
    model.learn(80)  # a second run restarts the step count: the schedule follows it, without a second warm-up
    assert model._model_updates == done + (80 - 61) // 5
    batch = model.sample_batch(16)
    assert batch.observations.shape == (16, 9, 16, 16) and batch.observations.dtype == torch.uint8
    # the first half is real (n-step discounts, at most gamma^1), the second imagined (one-step: gamma)
    torch.testing.assert_close(batch.discounts[8:], torch.full((8, 1), model.gamma))
    assert bool((batch.discounts[:8] <= model.gamma).all())


def test_real_ratio_one_trains_on_real_data_only() -> None:
    model = small_mbpo(real_ratio=1.0)
    model.learn(70)
    batch = model.sample_batch(16)
    assert bool((batch.discounts < model.gamma - 1e-6).any()) or model.n_steps == 1  # n-step discounts only
    with pytest.raises(ValueError, match="real_ratio"):
        small_mbpo(real_ratio=1.5)


def test_sample_segments_stay_within_one_episode() -> None:
    space = spaces.Box(0, 255, (1, 2, 2), np.uint8)
    buffer = SequenceReplayBuffer(200, space, spaces.Box(-1, 1, (1,), np.float32), n_envs=1)
    for t in range(150):
        done = (t + 1) % 7 == 0  # episodes of 7 steps: frames 0..7 (7 the last observation)
        frame, following = (np.full((1, 1, 2, 2), v, np.uint8) for v in (t % 7, t % 7 + 1))
        buffer.add(frame, following, np.zeros((1, 1), np.float32), np.zeros(1), np.array([done]),
                   [{"TimeLimit.truncated": done}])
    batch = sample_segments(buffer, 32, 5)
    assert batch.observations.shape[:2] == (32, 5)
    assert not bool(batch.is_first[:, 1:].any())
    steps = batch.observations[:, :, 0, 0, 0].long()
    assert bool((steps[:, 1:] - steps[:, :-1] == 1).all())  # consecutive frames of one episode
    with pytest.raises(ValueError, match="segment_length"):
        sample_segments(buffer, 4, 12)


def test_fill_episode_starts_repeats_the_first_frame_of_the_episode() -> None:
    frames = torch.arange(8).reshape(2, 4, 1, 1, 1).float()
    is_first = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]])
    out = fill_episode_starts(frames, is_first)
    assert out[0, :, 0, 0, 0].tolist() == [2, 2, 2, 3] and out[1, :, 0, 0, 0].tolist() == [4, 5, 6, 7]


def test_imagined_transitions_stack_real_and_imagined_frames() -> None:
    history = torch.arange(3).reshape(1, 3, 1, 1, 1).expand(2, 3, 1, 2, 2).to(torch.uint8)  # frames 0, 1, 2
    seen = []

    def rollout(context: torch.Tensor, policy: Any, horizon: int) -> tuple[torch.Tensor, ...]:
        assert context[0, :, 0, 0, 0].tolist() == [1, 2]  # the last 2 real frames are the model's context
        frames = context
        for k in range(horizon):
            policy(frames)
            frames = torch.cat([frames, torch.full_like(frames[:, :1], 10 + k)], 1)
        return frames[:, 2:], torch.zeros(2, horizon, 1), torch.ones(2, horizon)

    def act(stacked: torch.Tensor) -> torch.Tensor:
        seen.append(stacked[0, :, 0, 0].tolist())
        return torch.zeros(stacked.shape[0], 1)

    obs, actions, rewards, next_obs = imagine(rollout, history, act, context_frames=2, frame_stack=3, horizon=2)
    assert seen == [[0, 1, 2], [1, 2, 10]]  # the policy sees the stack including the older real frame
    assert obs[0, :, :, 0, 0].tolist() == [[0, 1, 2], [1, 2, 10]]
    assert next_obs[0, :, :, 0, 0].tolist() == [[1, 2, 10], [2, 10, 11]]
    buffer = ReplayBuffer(10, spaces.Box(0, 255, (3, 2, 2), np.uint8), spaces.Box(-1, 1, (1,), np.float32), n_envs=2)
    add_imagined(buffer, obs, actions, rewards, next_obs)
    assert buffer.size() == 2 and bool((buffer.sample(4).rewards == 1).all())
    with pytest.raises(ValueError, match="rollouts"):
        add_imagined(ReplayBuffer(10, buffer.observation_space, buffer.action_space, n_envs=3), obs, actions,
                     rewards, next_obs)


def test_save_load_restores_world_model_and_optimizers(tmp_path: Path) -> None:
    env = DotEnv("image", size=16, continuous=True, length=30)
    model = small_mbpo(env)
    model.learn(80)
    model.save(tmp_path / "mbpo.zip")
    loaded = MBPO.load(tmp_path / "mbpo.zip", env=env)
    for key, value in model.world_model.state_dict().items():
        assert torch.equal(value, loaded.world_model.state_dict()[key]), key
    for name in ("wm_optimizer", "tokenizer_optimizer"):
        a, b = getattr(model, name).state_dict()["state"], getattr(loaded, name).state_dict()["state"]
        assert a.keys() == b.keys() and all(torch.equal(a[k]["exp_avg"], b[k]["exp_avg"]) for k in a)
    assert (loaded._model_updates, loaded._warmed_up) == (model._model_updates, True)
    loaded.load_replay_buffer(_save_buffer(model, tmp_path))
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded._model_updates == model._model_updates + 4  # continues the schedule, no second warm-up


def test_replay_save_load_keeps_the_imagined_buffer(tmp_path: Path) -> None:
    """A resumed MBPO run samples from the same real and imagined data; a plain replay pickle loads as the real one."""
    env = DotEnv("image", size=16, continuous=True, length=30)
    model = small_mbpo(env)
    model.learn(100)
    assert model.imagined_buffer.size() > 0
    loaded = small_mbpo(env)
    loaded.load_replay_buffer(_save_buffer(model, tmp_path))
    for name in ("replay_buffer", "imagined_buffer"):
        a, b = getattr(model, name), getattr(loaded, name)
        assert (a.pos, a.full) == (b.pos, b.full), name
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.rewards, b.rewards)
    plain = small_mbpo(env)
    save_to_pkl(tmp_path / "real.pkl", model.replay_buffer)
    plain.load_replay_buffer(tmp_path / "real.pkl")
    assert plain.replay_buffer.size() == model.replay_buffer.size() and plain.imagined_buffer.size() == 0
    save_to_pkl(tmp_path / "other.pkl", {"real": [1, 2]})
    with pytest.raises(TypeError, match="save_replay_buffer"):
        plain.load_replay_buffer(tmp_path / "other.pkl")
    with pytest.warns(UserWarning, match="rollouts of 4"):
        small_mbpo(env, rollout_batch=2).load_replay_buffer(tmp_path / "replay.pkl")


def _save_buffer(model: MBPO, tmp_path: Path) -> Path:
    model.save_replay_buffer(tmp_path / "replay.pkl")
    return tmp_path / "replay.pkl"


def test_world_model_sources_and_errors(tmp_path: Path) -> None:
    env = DotEnv("image", size=16, continuous=True, length=30)
    action_free = IVideoGPT("tiny", "tiny")
    action_free.save_pretrained(tmp_path / "ivg")
    model = small_mbpo(env, world_model=str(tmp_path / "ivg"))
    assert model.world_model.action_dim == 1 and model.freeze_codebooks  # a pre-trained tokenizer keeps its codes
    frozen = {id(p) for group in model.tokenizer_optimizer.param_groups for p in group["params"]}
    assert id(model.world_model.tokenizer.context_quant.codebook.weight) not in frozen
    with pytest.raises(ValueError, match="action_dim=1"):
        small_mbpo(env, world_model=IVideoGPT("tiny", "tiny", action_dim=3))
    with pytest.raises(ValueError, match="size=16"):
        small_mbpo(DotEnv("image", size=32, continuous=True), world_model=TINY)
    with pytest.raises(TypeError, match="world_model"):
        small_mbpo(env, world_model=42)
    with pytest.raises(ValueError, match="CnnPolicy"):
        MBPO("MlpPolicy", "Pendulum-v1")


def test_mbpo_on_dmc_pixels(tmp_path: Path) -> None:
    world_model = dict(tokenizer=make_tokenizer_config("tiny", image_size=64, patch=4),
                       transformer=make_transformer_config("tiny", max_tokens=1024))
    model = small_mbpo("sb3wm/dmc-cartpole-swingup-v0", world_model=world_model, rollout_batch=2,
                       model_warmup_updates=2)
    model.learn(80)
    assert model._model_updates >= 2 and model.imagined_buffer.size() > 0
    frames, rewards = model.world_model.predict(
        model.replay_buffer.sample_sequences(1, 2).observations, torch.zeros(1, 2, 1)  # type: ignore[arg-type]
    )
    assert frames.shape == (1, 2, 3, 64, 64) and torch.isfinite(rewards).all()
    # the agent file loads without naming the algorithm (DrQv2 shares the policy class) and sb3wm predict runs
    model.save(tmp_path / "mbpo.zip")
    record = predict_video(tmp_path / "mbpo.zip", "sb3wm/dmc-cartpole-swingup-v0", tmp_path / "pred.gif", context=2,
                           horizon=3)
    assert len(record["psnr_per_frame"]) == 3
    assert isinstance(load_agent(tmp_path / "mbpo.zip"), MBPO)
