"""Every Dreamer algorithm x policy x action space learns for a few updates on real and small envs."""

from __future__ import annotations

import math

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from stable_baselines3.common.env_util import make_vec_env

from sb3_worldmodels import DreamerHarmony, DreamerV2, DreamerV3
from tests.dummy_envs import DotEnv

TINY: dict[str, Any] = dict(
    learning_starts=32, batch_size=2, sequence_length=8, train_ratio=16, buffer_size=2_000, pretrain_updates=0,
    policy_kwargs=dict(model_size="tiny"), seed=0,
)

ALGOS = {
    "DreamerV3": (DreamerV3, {}),
    "DreamerV2": (DreamerV2, {}),
    "HarmonyV3": (DreamerHarmony, {}),
    "HarmonyV2": (DreamerHarmony, {"base": "v2"}),
}


def make_env(kind: str) -> gym.Env:
    """Envs per (policy, action) case: real simulators where they have the spaces, DotEnv otherwise."""
    if kind == "mlp-box":
        return gym.make("Pendulum-v1")
    if kind == "mlp-discrete":
        return gym.make("CartPole-v1")
    if kind == "cnn-box":
        return gym.make("sb3wm/dmc-cartpole-swingup-v0")
    if kind == "cnn-discrete":
        return DotEnv("image", size=64)
    if kind == "multi-box":
        return gym.make("sb3wm/dmc-cartpole-swingup-v0", obs_type="both")
    if kind == "multi-discrete":
        return DotEnv("dict", size=64)
    raise ValueError(kind)


POLICY = {"mlp": "MlpPolicy", "cnn": "CnnPolicy", "multi": "MultiInputPolicy"}


@pytest.mark.parametrize("algo", list(ALGOS))
@pytest.mark.parametrize("kind", ["mlp-box", "mlp-discrete", "cnn-box", "cnn-discrete", "multi-box", "multi-discrete"])
def test_learn(algo: str, kind: str) -> None:
    cls, extra = ALGOS[algo]
    env = make_env(kind)
    model = cls(POLICY[kind.split("-")[0]], env, **TINY, **extra)
    model.learn(48)
    assert model.num_timesteps == 48
    assert model._n_updates == 16  # train_ratio 16 / (2 x 8) = one update per env step after the prefill
    assert model.replay_buffer.size() >= 48
    obs, _ = env.reset(seed=1)
    action, state = model.predict(obs, deterministic=True)
    assert env.action_space.contains(action)
    action2, _ = model.predict(obs, state=state, episode_start=np.zeros(1, bool))
    assert env.action_space.contains(action2)
    if cls is DreamerHarmony:
        coefs = model.policy.world_model.harmonizer.coefficients()
        assert set(coefs) == {"obs", "reward", "dyn"}
        assert any(abs(c - 1.0) > 1e-6 for c in coefs.values()), "harmonizer scales did not train"
    env.close()


def test_versions_and_harmony_flags() -> None:
    env = gym.make("Pendulum-v1")
    assert DreamerV3("MlpPolicy", env, **TINY).policy.cfg.version == "v3"
    v2 = DreamerV2("MlpPolicy", env, **TINY)
    assert v2.policy.cfg.version == "v2" and v2.policy.world_model.harmonizer is None
    h2 = DreamerHarmony("MlpPolicy", env, base="v2", **TINY)
    assert h2.policy.cfg.version == "v2" and h2.policy.world_model.harmonizer is not None
    assert DreamerV3("MlpPolicy", env, **{**TINY, "gamma": None}).gamma == pytest.approx(0.997)
    assert v2.gamma == pytest.approx(0.99)


def test_spec_defaults() -> None:
    env = gym.make("Pendulum-v1")
    v3 = DreamerV3("MlpPolicy", env, buffer_size=100)
    cfg = v3.policy.cfg
    assert (v3.batch_size, v3.sequence_length, v3.train_ratio, v3.imagination_horizon) == (16, 64, 512, 15)
    assert (cfg.deter, cfg.units, cfg.cnn_depth, cfg.mlp_layers) == (512, 512, 32, 2)
    assert (cfg.kl_dyn, cfg.kl_rep, cfg.kl_free, cfg.unimix, cfg.bins) == (0.5, 0.1, 1.0, 0.01, 255)
    assert (cfg.model_lr, cfg.actor_lr, cfg.critic_lr) == (1e-4, 3e-5, 3e-5)
    v2 = DreamerV2("MlpPolicy", env, buffer_size=100)
    cfg = v2.policy.cfg
    assert (cfg.deter, cfg.hidden, cfg.units, cfg.mlp_layers, cfg.cnn_depth) == (1024, 1024, 400, 4, 48)
    assert (cfg.kl_balance, cfg.model_lr, cfg.actor_lr, cfg.act) == (0.8, 3e-4, 8e-5, "elu")
    assert (v2.batch_size, v2.sequence_length) == (16, 50)
    for size, deter in [("XS", 256), ("M", 1024), ("L", 2048), ("XL", 4096)]:
        from sb3_worldmodels.dreamer.config import make_config

        assert make_config("v3", size).deter == deter


def test_action_distribution_per_version() -> None:
    """Continuous actions: DreamerV2's truncated normal with std 2 sigmoid(x / 2) + 0.1 (initially ~1.1), DreamerV3's
    clipped normal with std in [0.1, 1]; an unknown ``action_dist`` names the two choices."""
    from sb3_worldmodels.common.distributions import TruncatedNormalDist, TruncNormalDist

    env = gym.make("Pendulum-v1")
    v3_init_std = 0.9 * torch.sigmoid(torch.tensor(2.0)).item() + 0.1
    for cls, dist_cls, init_std in ((DreamerV2, TruncatedNormalDist, 1.1), (DreamerV3, TruncNormalDist, v3_init_std)):
        model = cls("MlpPolicy", env, **TINY)
        ac = model.policy.behavior
        dist = ac.dist_from_raw(torch.zeros(3, 2))
        assert type(dist) is dist_cls
        torch.testing.assert_close(dist.std, torch.full((3, 1), init_std))
        assert ac.actor_dist(torch.zeros(3, model.policy.world_model.rssm.feat_dim)).rsample().abs().max() <= 1
    with pytest.raises(ValueError, match="'normal' .* or 'trunc_normal'"):
        DreamerV3("MlpPolicy", env, **{**TINY, "policy_kwargs": {**TINY["policy_kwargs"], "action_dist": "beta"}})


def test_dynamics_backprop_objective() -> None:
    """Under dynamics backprop DreamerV2 maximises the lambda-return (its reference), DreamerV3 the return minus the
    critic's value: with a constant critic c and a constant discount gamma the two actor losses differ by
    c * mean_t(gamma^t) over DreamerV2's H - 1 actor states."""
    model = DreamerV2("MlpPolicy", gym.make("Pendulum-v1"), **TINY)
    assert model.policy.cfg.backprop_baseline is False  # V2's default; V3's is True
    wm, ac = model.policy.world_model, model.policy.behavior
    c, gamma, horizon = 3.0, 0.9, 4
    with torch.no_grad():
        for net in (ac.critic, ac.slow_critic):
            net[-1].weight.zero_()
            net[-1].bias.fill_(c)
        wm.cont[-1].weight.zero_()
        wm.cont[-1].bias.fill_(math.log(gamma / (1 - gamma)))  # DreamerV2's head predicts the discount: gamma
    b, t = 3, 5
    torch.manual_seed(1)
    _, post, _ = wm.loss(torch.randn(b, t, 3), torch.rand(b, t, 1) * 2 - 1, torch.randn(b, t), torch.zeros(b, t),
                         torch.zeros(b, t), gamma)
    post = {k: v.detach() for k, v in post.items()}
    losses = {}
    for flag in (False, True):
        model.policy.cfg.backprop_baseline = flag
        torch.manual_seed(0)
        losses[flag] = ac.losses(wm, post, torch.zeros(b, t), horizon, gamma)[0].item()
    expected = c * sum(gamma**k for k in range(horizon - 1)) / (horizon - 1)
    assert losses[True] - losses[False] == pytest.approx(expected, rel=1e-4)


def test_n_envs_2() -> None:
    venv = make_vec_env("Pendulum-v1", n_envs=2, seed=0)
    model = DreamerV3("MlpPolicy", venv, **{**TINY, "learning_starts": 32})
    model.learn(64)
    assert model.num_timesteps == 64
    assert model._n_updates == 32  # (64 - 32) env steps x 16 / (2 x 8)
    assert model.replay_buffer.n_envs == 2


def test_progress_bar_and_tensorboard(tmp_path: Any) -> None:
    model = DreamerHarmony("MlpPolicy", "Pendulum-v1", tensorboard_log=str(tmp_path), verbose=1, **TINY)
    model.learn(300, progress_bar=True, log_interval=1)
    runs = list(tmp_path.glob("*/events.out.tfevents.*"))
    assert runs, "no tensorboard event file written"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(runs[0].parent))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ["world_model/obs_loss", "world_model/reward_loss", "world_model/kl", "world_model/harmony_coef_obs",
                "world_model/harmony_s_dyn", "behavior/actor_loss", "behavior/critic_loss", "behavior/return_scale",
                "behavior/imag_return", "train/updates_per_second"]:
        assert tag in tags, f"{tag} missing from {sorted(tags)}"


def test_openloop_video_logged(tmp_path: Any) -> None:
    model = DreamerV3("CnnPolicy", DotEnv("image", size=16), tensorboard_log=str(tmp_path), video_interval=4, **TINY)
    model.learn(60, log_interval=1)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(next(tmp_path.glob("*/events.out.tfevents.*")).parent))
    acc.Reload()
    assert "world_model/openloop" in acc.Tags()["tensors"] + acc.Tags()["images"]


def test_same_seed_same_losses() -> None:
    def first_losses() -> list[float]:
        torch.manual_seed(123)
        model = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY, "seed": 7})
        model.learn(40)
        batch = model.replay_buffer.sample_sequences(2, 8)
        return [float(model.policy.train_step(batch, 5, 0.99)[k]) for k in ("model_loss",)]

    assert first_losses() == first_losses()


def test_gaussian_stoch_and_action_pad() -> None:
    """The continuous (Gaussian) stochastic state and padded actions are supported options."""
    kwargs = {**TINY, "policy_kwargs": dict(model_size="tiny", classes=0, stoch=16, action_pad=50)}
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **kwargs)
    rssm = model.policy.world_model.rssm
    assert not rssm.discrete and rssm.stoch_flat == 16 and rssm.action_dim == 50
    model.learn(48)
    assert model._n_updates == 16
    obs = model.env.reset()  # VecEnv API
    action, state = model.predict(obs)
    assert state[1].shape == (1, 16) and state[2].shape == (1, 50)


def test_action_pad_discrete() -> None:
    kwargs = {**TINY, "policy_kwargs": dict(model_size="tiny", action_pad=50)}
    model = DreamerHarmony("MlpPolicy", "CartPole-v1", **kwargs)
    model.learn(48)
    assert model._n_updates == 16


@pytest.mark.parametrize("policy,env_fn", [("MlpPolicy", lambda: gym.make("Pendulum-v1")),
                                           ("CnnPolicy", lambda: DotEnv("image", size=16))])
def test_bf16_autocast(policy: str, env_fn: Any) -> None:
    """precision="bf16" trains under bf16 autocast with finite fp32 losses; a bad precision is refused."""
    model = DreamerHarmony(policy, env_fn(), **{**TINY, "policy_kwargs": dict(model_size="tiny", precision="bf16")})
    model.learn(48)
    batch = model.replay_buffer.sample_sequences(2, 8)
    metrics = model.policy.train_step(batch, 5, 0.99)
    assert all(np.isfinite(float(metrics[k])) for k in ("model_loss", "actor_loss", "critic_loss"))
    assert next(model.policy.parameters()).dtype == torch.float32  # weights stay fp32
    with pytest.raises(ValueError, match="precision"):
        DreamerV3(policy, env_fn(), **{**TINY, "policy_kwargs": dict(model_size="tiny", precision="fp16")})
