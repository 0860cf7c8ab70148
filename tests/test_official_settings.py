"""The official code's settings: presets per env family, the updates after the prefill, end-prioritised replay,
and the weight initialisation of each Dreamer generation."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import nn

from sb3_worldmodels import APV, DreamerV2, DreamerV3
from sb3_worldmodels.common.init import TRUNC_STD
from sb3_worldmodels.contextwm.config import make_contextwm_config
from sb3_worldmodels.dreamer.config import make_config
from sb3_worldmodels.dreamer.policies import DreamerPolicy

TINY = dict(learning_starts=32, batch_size=2, sequence_length=8, train_ratio=16, buffer_size=2_000, seed=0)


# ------------------------------------------------------------------------------------------------ presets
@pytest.mark.parametrize(("env_id", "preset"), [
    ("sb3wm/dmc-cartpole-swingup-v0", "dmc"), ("sb3wm/dmcr-walker-walk-v0", "dmcr"),
    ("sb3wm/metaworld-plate-slide-v0", "metaworld"), ("Pendulum-v1", "default"),
    ("sb3wm/atari100k-pong-v0", "default"),
])
def test_the_env_family_chooses_the_dreamerv2_preset(env_id: str, preset: str) -> None:
    assert DreamerV2._env_preset(env_id, "v2") == preset
    assert DreamerV3._env_preset(env_id, "v3") == "default"  # DreamerV3: one configuration for every domain


def test_dreamerv2_presets_follow_the_official_sections() -> None:
    dmc = make_config("v2", preset="dmc")  # dmc_vision: rssm 200, free nats 1, no discount head
    assert (dmc.deter, dmc.hidden, dmc.kl_free, dmc.cont_head) == (200, 200, 1.0, False)
    assert make_config("v2", "tiny", preset="dmc").deter == 64  # the sizes apply at the spec size only
    mw = make_config("v2", preset="metaworld")
    assert (mw.deter, mw.kl_free, mw.cont_head) == (1024, 0.0, False)
    assert make_config("v2").cont_head and make_config("v2").deter == 1024
    assert make_config("v2", preset="dmc", kl_free=0.5).kl_free == 0.5  # explicit settings win
    with pytest.raises(ValueError, match="Unknown preset 'atari'.*choose one of"):
        make_config("v2", preset="atari")
    apv_dmc = make_contextwm_config("v2", preset="dmc")
    assert (apv_dmc.intrinsic_scale, apv_dmc.concat_embed, apv_dmc.warmup_updates, apv_dmc.kl_free) == (
        0.1, True, 0, 1.0)
    apv_mw = make_contextwm_config("v2", preset="metaworld")
    assert (apv_mw.intrinsic_scale, apv_mw.concat_embed, apv_mw.warmup_updates, apv_mw.kl_free) == (
        1.0, False, 100, 0.0)
    assert apv_mw.context_augment == "erasing" and make_contextwm_config("v2", preset="pretrain").kl_free == 0.0


def test_dreamerv2_on_dmc_takes_the_dmc_preset_and_its_algorithm_defaults() -> None:
    model = DreamerV2("CnnPolicy", "sb3wm/dmc-cartpole-swingup-v0", buffer_size=1_000,
                      policy_kwargs=dict(model_size="tiny"))
    cfg = model.policy.cfg
    assert cfg.preset == "dmc" and not cfg.cont_head and model.policy.world_model.cont is None
    assert (model.batch_size, model.sequence_length, model.train_ratio, model.learning_starts) == (16, 50, 160, 1000)
    assert model.pretrain_updates == 100 and model.replay_buffer.prioritize_ends is False
    mw = DreamerV2._algorithm_presets("v2", "metaworld")
    assert (mw["batch_size"], mw["train_ratio"], mw["learning_starts"], mw["prioritize_ends"]) == (
        50, 500.0, 5000, True)


def test_apv_preset_and_explicit_arguments() -> None:
    model = APV("CnnPolicy", "sb3wm/dmc-cartpole-swingup-v0", buffer_size=1_000, batch_size=4, pretrain_updates=0,
                policy_kwargs=dict(model_size="tiny", preset="metaworld"))
    assert model.policy.cfg.preset == "metaworld" and model.policy.cfg.intrinsic_scale == 1.0
    assert model.batch_size == 4 and model.learning_starts == 5000 and model.pretrain_updates == 0
    assert model.replay_buffer.prioritize_ends is True


def test_pretrain_updates_run_once_right_after_the_prefill() -> None:
    model = DreamerV2("MlpPolicy", "Pendulum-v1", pretrain_updates=5, policy_kwargs=dict(model_size="tiny"), **TINY)
    model.learn(48)  # 32 prefill steps, then 16 steps x 16 / (2 x 8) = 16 updates, plus the 5 after the prefill
    assert model._n_updates == 16 + 5
    model.learn(16, reset_num_timesteps=False)
    assert model._n_updates == 16 + 5 + 16


# ------------------------------------------------------------------------------------------------ replay
def test_prioritize_ends_moves_windows_onto_the_episode_end() -> None:
    from sb3_worldmodels.common.buffers import SequenceReplayBuffer

    length, window = 20, 5
    counts = {}
    for prioritize in (False, True):
        buf = SequenceReplayBuffer(500, spaces.Box(-1, 1, (1,), np.float32), spaces.Box(-1, 1, (1,), np.float32),
                                   "cpu", prioritize_ends=prioritize)
        for _ in range(10):
            for t in range(length):
                last = t == length - 1
                buf.add(np.full((1, 1), t, np.float32), np.full((1, 1), t + 1, np.float32), np.zeros((1, 1)),
                        np.zeros(1), np.array([last]), [{"TimeLimit.truncated": last}])
        np.random.seed(0)
        batch = buf.sample_sequences(4000, window)
        start = batch.observations[:, 0, 0].long()
        counts[prioritize] = np.bincount(start.numpy(), minlength=length + 1) / len(start)
        crossing = batch.is_first[:, 1:].sum(1) > 0
        assert bool(crossing.any()) != prioritize  # windows no longer run into the next episode
    rows = length + 1  # an episode's rows: its observations and the final one
    last_start = rows - window
    assert counts[False][last_start] == pytest.approx(1 / rows, abs=0.02)
    assert counts[True][last_start] == pytest.approx(window / rows, abs=0.03)  # the official: (T + 1) / (L + 1)
    assert counts[True][last_start + 1:].sum() == 0


# ------------------------------------------------------------------------------------------------ init
def _linears(module: nn.Module) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d))]


def _fan_avg(weight: torch.Tensor) -> float:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return (fan_in + fan_out) / 2


def _policy(version: str) -> DreamerPolicy:
    torch.manual_seed(0)
    return DreamerPolicy(spaces.Box(0, 255, (3, 64, 64), np.uint8), spaces.Box(-1, 1, (6,), np.float32),
                         lambda _: 1e-4, version=version, model_size="S" if version == "v3" else "default",
                         **({} if version == "v3" else {"preset": "dmc"}))


def test_dreamerv2_init_is_xavier_uniform_with_zero_biases_but_the_gru() -> None:
    """wmlib's ``Module.get`` (Xavier-uniform, zero bias) everywhere but the GRU's linear layer (PyTorch's default)."""
    policy = _policy("v2")
    gru, out = policy.world_model.rssm.gru.linear, policy.behavior.actor[-1]
    for layer in _linears(policy):
        if layer is gru or layer is out:
            continue
        fan = _fan_avg(layer.weight)
        bound = math.sqrt(3 / fan)
        assert layer.weight.abs().max() <= bound + 1e-6
        if layer.weight.numel() > 2000:
            assert layer.weight.std().item() == pytest.approx(math.sqrt(1 / fan), rel=0.1)
        if layer.bias is not None:
            assert not layer.bias.any()
    assert gru.bias.any() and gru.weight.abs().max() <= 1 / math.sqrt(gru.in_features) + 1e-6  # PyTorch's default
    # the actor's mean and std rows have the scale of the official two layers (fan-out = action dim each)
    assert out.weight.abs().max() <= math.sqrt(6 / (out.in_features + out.out_features // 2)) + 1e-6
    assert out.weight.abs().max() > math.sqrt(6 / (out.in_features + out.out_features))


def test_dreamerv3_init_is_truncated_normal_fan_average_with_zero_heads() -> None:
    """danijar/dreamerv3's ``Initializer('normal', fan='avg')``: std sqrt(1 / fan_avg) after truncation at 2 std."""
    policy = _policy("v3")
    zero = [policy.world_model.reward[-1], policy.behavior.critic[-1], policy.behavior.slow_critic[-1]]
    for layer in _linears(policy):
        if layer is policy.behavior.actor[-1]:  # two official layers (mean, std): each half at its own scale
            continue
        if layer.bias is not None:
            assert not layer.bias.any()
        if any(layer is z for z in zero):
            assert not layer.weight.any()
            continue
        std = math.sqrt(1 / _fan_avg(layer.weight))
        assert layer.weight.abs().max() <= 2 * std / TRUNC_STD * (1 + 1e-5)
        if layer.weight.numel() > 2000:
            assert layer.weight.std().item() == pytest.approx(std, rel=0.1)


def test_vector_env_family_is_read_from_the_spec() -> None:
    from stable_baselines3.common.env_util import make_vec_env

    from sb3_worldmodels.envs.base import env_family

    assert env_family(gym.make("Pendulum-v1")) is None
    assert env_family(make_vec_env("Pendulum-v1", 1)) is None
    assert env_family("sb3wm/dmc-walker-walk-v0") == "dmc"
