"""APV and ContextDreamer: SB3 contract (learn, predict with state, save/load exact, VecEnv), context isolation,
encoder warm-up and the intrinsic reward in the world-model loss."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_worldmodels import APV, ContextDreamer
from sb3_worldmodels.contextwm.world_model import StackedWorldModel
from tests.dummy_envs import DotEnv
from tests.test_save_load import _assert_equal, _state_dicts

TINY: dict[str, Any] = dict(
    learning_starts=32, batch_size=2, sequence_length=8, train_ratio=16, buffer_size=2_000, pretrain_updates=0,
    seed=0,
    policy_kwargs=dict(model_size="tiny", warmup_updates=3),
)
CARTPOLE = "sb3wm/dmc-cartpole-swingup-v0"


def _dot() -> gym.Env:
    return DotEnv("image", size=64, length=16)


@pytest.mark.parametrize("cls", [APV, ContextDreamer])
def test_learn_on_dmc_and_evaluate(cls: Any) -> None:
    env = gym.make(CARTPOLE, time_limit=0.5)  # 25 agent steps per episode
    model = cls("CnnPolicy", env, **TINY)
    model.learn(64)
    assert model._n_updates > 0
    assert isinstance(model.policy.world_model, StackedWorldModel)
    assert (model.policy.world_model.context_encoder is not None) == (cls is ContextDreamer)
    mean, _ = evaluate_policy(model, Monitor(gym.make(CARTPOLE, time_limit=0.5)), n_eval_episodes=1)
    assert np.isfinite(mean)


@pytest.mark.parametrize("cls", [APV, ContextDreamer])
def test_save_load_exact(tmp_path: Path, cls: Any) -> None:
    model = cls("CnnPolicy", _dot(), harmony=cls is ContextDreamer, **TINY)
    model.learn(48)
    model.save(tmp_path / "agent.zip")
    loaded = cls.load(tmp_path / "agent.zip", env=_dot())
    _assert_equal(_state_dicts(model), _state_dicts(loaded))
    assert loaded.policy.cfg == model.policy.cfg
    bonus = model.policy.world_model.bonus
    assert bonus is not None and int(bonus.count) > 0  # the bonus queue is part of the saved state
    env = _dot()
    obs, _ = env.reset(seed=1)
    state = None
    for t in range(4):
        a1, s1 = model.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
        a2, s2 = loaded.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
        np.testing.assert_array_equal(a1, a2)
        assert len(s1) == 5  # (af_deter, af_stoch, deter, stoch, prev_action)
        for x, y in zip(s1, s2, strict=True):
            np.testing.assert_array_equal(x, y)
        state = s1
        obs, *_ = env.step(a1)


def test_n_envs_2_and_replay_round_trip(tmp_path: Path) -> None:
    venv = make_vec_env(_dot, n_envs=2, seed=0)
    model = ContextDreamer("CnnPolicy", venv, **TINY)
    model.learn(48)
    model.save_replay_buffer(tmp_path / "replay.pkl")
    other = ContextDreamer("CnnPolicy", make_vec_env(_dot, n_envs=2, seed=0), **TINY)
    other.load_replay_buffer(tmp_path / "replay.pkl")
    assert other.replay_buffer.size() == model.replay_buffer.size()


def test_context_never_reaches_the_rssm() -> None:
    model = ContextDreamer("CnnPolicy", _dot(), **TINY)
    model.learn(40)
    wm = model.policy.world_model
    batch = model.replay_buffer.sample_sequences(2, 8)
    wm.train()
    x = wm.preprocess(batch.observations)[wm.image_key]
    _, _, post, _ = wm.observe(wm.encoder(x), wm.model_actions(batch.prev_actions), batch.is_first)
    feat_loss = wm.rssm.feat(post).pow(2).sum()
    wm.zero_grad(set_to_none=True)
    feat_loss.backward()
    assert all(p.grad is None for p in wm.context_encoder.parameters())
    # ... while the full loss trains the context encoder through the decoder
    wm.zero_grad(set_to_none=True)
    loss, _, _ = wm.loss(batch.observations, batch.prev_actions, batch.rewards, batch.is_first, batch.is_terminal,
                         model.gamma)
    loss.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in wm.context_encoder.parameters())


def test_encoder_warmup_then_training() -> None:
    model = APV("CnnPolicy", _dot(), **TINY)
    model.learn(32)  # fills the buffer, no update yet
    pol = model.policy
    enc0 = [p.detach().clone() for p in pol.world_model.encoder.parameters()]
    rssm0 = [p.detach().clone() for p in pol.world_model.rssm.parameters()]
    for _ in range(3):  # warmup_updates=3
        metrics = pol.train_step(model.replay_buffer.sample_sequences(2, 8), 5, 0.99)
        assert metrics["pretrained_lr"] == 0.0
    assert all(torch.equal(a, b) for a, b in zip(enc0, pol.world_model.encoder.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(rssm0, pol.world_model.rssm.parameters(), strict=True))
    metrics = pol.train_step(model.replay_buffer.sample_sequences(2, 8), 5, 0.99)
    assert metrics["pretrained_lr"] == pol.cfg.model_lr
    assert not all(torch.equal(a, b) for a, b in zip(enc0, pol.world_model.encoder.parameters(), strict=True))


def test_intrinsic_reward_enters_the_reward_target() -> None:
    model = APV("CnnPolicy", _dot(), **TINY)
    model.learn(40)
    wm = model.policy.world_model
    batch = model.replay_buffer.sample_sequences(2, 8)
    _, _, metrics = wm.loss(batch.observations, batch.prev_actions, batch.rewards, batch.is_first, batch.is_terminal,
                            model.gamma)
    assert float(metrics["intrinsic_reward"]) > 0
    off = APV("CnnPolicy", _dot(), **{**TINY, "policy_kwargs": dict(model_size="tiny", intrinsic_scale=0.0)})
    assert off.policy.world_model.bonus is None


def test_bad_spaces_and_options() -> None:
    with pytest.raises(ValueError, match="CnnPolicy"):
        APV("CnnPolicy", DotEnv("dict", size=64))
    with pytest.raises(ValueError, match="use 'CnnPolicy'"):
        APV("MlpPolicy", "Pendulum-v1")
    with pytest.raises(ValueError, match="context_mode"):
        ContextDreamer("CnnPolicy", _dot(), policy_kwargs=dict(model_size="tiny", context_mode="middle"))
    with pytest.raises(TypeError, match="Unknown Dreamer policy_kwargs"):
        ContextDreamer("CnnPolicy", _dot(), policy_kwargs=dict(model_size="tiny", contxt=True))


@pytest.mark.parametrize("kind,source", [("contextwm", "dmc"), ("apv", "mp4")])
def test_pretrain_then_finetune_round_trip(tmp_path: Path, kind: str, source: str) -> None:
    """Pre-train on recorded simulator clips / real mp4 footage, then fine-tune from the checkpoint: the pre-trained
    modules arrive exactly (sizes read from the checkpoint) and stay frozen during the warm-up."""
    from sb3_worldmodels.contextwm.checkpoint import load_video_model
    from sb3_worldmodels.data import NpzEpisodeDataset, VideoFileDataset, record_episodes, sample_videos
    from sb3_worldmodels.pretrain import pretrain

    if source == "dmc":
        files = record_episodes("sb3wm/dmc-walker-walk-v0", 1, out_dir=tmp_path / "videos", progress_bar=False,
                                env_kwargs=dict(time_limit=0.6))
        data: Any = NpzEpisodeDataset(files, clip_length=8)
    else:
        pytest.importorskip("av")
        data = VideoFileDataset([p for p in sample_videos() if "carphone" in p.name], clip_length=8)
    ckpt = tmp_path / "ckpt"
    pretrain(kind, data, steps=2, out=ckpt, batch_size=2, sequence_length=8, model_size="tiny", progress_bar=False,
             log_interval=1, video_interval=0)
    video_model = load_video_model(ckpt)

    cls = ContextDreamer if kind == "contextwm" else APV
    # no updates right after the prefill: the few updates of this run stay inside the 100-update warm-up
    agent = cls("CnnPolicy", gym.make(CARTPOLE, time_limit=0.5), pretrained=str(ckpt), learning_starts=32,
                batch_size=2, sequence_length=8, train_ratio=16, seed=0, pretrain_updates=0,
                policy_kwargs=dict(warmup_updates=100))
    assert agent.policy.cfg.model_size == "tiny"
    wm = agent.policy.world_model
    names = ["encoder", "af_rssm", "decoder"] + (["context_encoder"] if kind == "contextwm" else [])
    for name in names:
        _assert_equal(getattr(video_model, name).state_dict(), getattr(wm, name).state_dict(), name)
    agent.learn(48)
    assert agent._n_updates > 0
    for name in ("encoder", "af_rssm"):  # lr 0 during the warm-up: still the pre-trained weights
        for key, value in getattr(video_model, name).state_dict().items():
            if value.is_floating_point() and "running" not in key and "num_batches" not in key:
                assert torch.equal(value, getattr(wm, name).state_dict()[key]), f"{name}.{key}"
    # the reloaded agent does not read the checkpoint again
    agent.save(tmp_path / "agent.zip")
    (ckpt / "model.safetensors").unlink()
    cls.load(tmp_path / "agent.zip", env=gym.make(CARTPOLE, time_limit=0.5))


@pytest.mark.parametrize("cls", [ContextDreamer, APV])
def test_fine_tuning_from_an_official_checkpoint(tmp_path: Path, cls: Any) -> None:
    """``pretrained=`` takes the files of the official pre-training (thuml/ContextWM) on a real env: the sizes are
    read from the tensor shapes, the pre-trained modules hold exactly the official weights (whose outputs
    ``tests/test_conformance_contextwm_pretrain.py`` checks), and the agent learns. ContextDreamer reads the
    checkpoint written by the official ``APV_Pretrain.save_model`` (the fixture ``contextwm_official/``); APV the
    APV fixture's official state dict saved as a ``variables.pt``."""
    from sb3_worldmodels.contextwm.checkpoint import load_video_model
    from tests.conformance.common import FIXTURES, load_fixture

    if cls is ContextDreamer:
        path = FIXTURES / "contextwm_official"
    else:
        arrays, _ = load_fixture("apv_pretrain")
        path = tmp_path / "variables.pt"
        torch.save({k[len("weights/"):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("weights/")},
                   path)
    reference = load_video_model(path)
    agent = cls("CnnPolicy", gym.make(CARTPOLE, time_limit=0.5), pretrained=str(path), learning_starts=32,
                batch_size=2, sequence_length=8, train_ratio=16, seed=0,
                policy_kwargs=dict(model_size="tiny", warmup_updates=100, deter=16))  # deter agrees: no conflict
    wm = agent.policy.world_model
    assert (wm.af_rssm.deter_size, wm.af_rssm.stoch, wm.af_rssm.classes, wm.encoder.depths) == (16, 4, 4, (2, 4, 8))
    assert (wm.context_encoder is not None) == (cls is ContextDreamer)
    for name in ("encoder", "af_rssm", "decoder", "context_encoder"):
        if getattr(reference, name) is not None:
            _assert_equal(getattr(reference, name).state_dict(), getattr(wm, name).state_dict(), name)
    agent.learn(36)
    assert agent._n_updates > 0
