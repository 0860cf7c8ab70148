"""DrQv2 on real DMC pixels: networks, schedules, gradients, frame stacks and the SB3 contract."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.utils import LinearSchedule
from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

import sb3_worldmodels  # noqa: F401  (registers the sb3wm ids)
from sb3_worldmodels import DrQv2
from sb3_worldmodels.drqv2 import DrQv2Policy, linear_schedule, sample_mixed

ENV_ID = "sb3wm/dmc-cartpole-swingup-v0"
SHORT = dict(time_limit=0.2)  # 10 agent steps per episode (action repeat 2)
SMALL: dict[str, Any] = dict(
    learning_starts=20, batch_size=8, buffer_size=2_000, seed=0,
    policy_kwargs=dict(hidden_dim=32, feature_dim=16),
)


def short_env() -> gym.Env:
    return Monitor(gym.make(ENV_ID, **SHORT))


# ------------------------------------------------------------------------------------------------ networks
@pytest.mark.parametrize("size,repr_dim", [(84, 32 * 35 * 35), (64, 32 * 25 * 25)])
def test_networks_have_the_spec_shapes(size: int, repr_dim: int) -> None:
    policy = DrQv2Policy(spaces.Box(0, 255, (3, size, size), np.uint8), spaces.Box(-1, 1, (2,), np.float32),
                         lambda _: 1e-4)
    assert policy.stacked_observation_space.shape == (9, size, size)
    convs = [m for m in policy.encoder.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [(9, 32, 2)] + [(32, 32, 1)] * 3
    assert policy.encoder.repr_dim == repr_dim
    for net in (policy.actor, policy.critic):
        linear, norm, _ = net.trunk
        assert (linear.in_features, linear.out_features, norm.normalized_shape) == (repr_dim, 50, (50,))
    hidden = [m.out_features for m in policy.actor.policy if isinstance(m, torch.nn.Linear)]
    assert hidden == [1024, 1024, 2] and len(policy.critic.q_nets) == 2
    obs = torch.randint(0, 256, (5, 9, size, size), dtype=torch.uint8)
    features = policy.encoder(obs)
    assert features.shape == (5, repr_dim)
    actions = policy.actor(features)
    assert actions.shape == (5, 2) and actions.abs().max() <= 1
    assert policy.critic(features, actions).shape == (5, 2)
    for opt in (policy.actor_optimizer, policy.critic_optimizer):
        assert opt.param_groups[0]["lr"] == 1e-4
    critic_params = {id(p) for p in policy.critic_optimizer.param_groups[0]["params"]}
    assert critic_params == {id(p) for p in [*policy.encoder.parameters(), *policy.critic.parameters()]}


def test_channels_last_and_bf16_options() -> None:
    space, actions = spaces.Box(0, 255, (3, 64, 64), np.uint8), spaces.Box(-1, 1, (1,), np.float32)
    torch.manual_seed(0)
    fast = DrQv2Policy(space, actions, lambda _: 1e-4)  # channels-last convs, the default
    torch.manual_seed(0)
    plain = DrQv2Policy(space, actions, lambda _: 1e-4, channels_last=False)
    conv = fast.encoder.convs["obs"][0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    obs = torch.randint(0, 256, (4, 9, 64, 64), dtype=torch.uint8)
    torch.testing.assert_close(fast.encoder(obs), plain.encoder(obs), rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="precision"):
        DrQv2Policy(space, actions, lambda _: 1e-4, precision="fp16")
    with pytest.raises(ValueError, match="at least 15 pixels"):
        DrQv2Policy(spaces.Box(0, 255, (3, 12, 12), np.uint8), actions, lambda _: 1e-4)
    bf16 = {**SMALL, "policy_kwargs": dict(precision="bf16")}
    model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **bf16)
    model.learn(25)
    metrics = model.train_on_batch(model.sample_batch(8))
    assert all(np.isfinite(float(v)) for v in metrics.values())
    assert all(p.dtype == torch.float32 for p in model.policy.parameters())


def test_std_schedule_values() -> None:
    schedule = linear_schedule(1.0, 0.1, 100)
    assert [schedule.value(s) for s in (0, 50, 100, 10_000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])
    model = DrQv2("CnnPolicy", ENV_ID, **SMALL)
    assert model.std_schedule.value(250_000) == pytest.approx(0.55)  # default linear(1.0, 0.1, 500k steps)
    model.std_schedule = schedule
    model.num_timesteps = 25
    assert model.current_std() == pytest.approx(0.775)
    model.std_schedule = 0.2
    assert model.current_std() == 0.2
    model.std_schedule = LinearSchedule(1.0, 0.5, 1.0)  # an SB3 schedule of the remaining progress
    model._current_progress_remaining = 0.5
    assert model.current_std() == pytest.approx(0.75)
    with pytest.raises(ValueError, match="duration"):
        linear_schedule(1.0, 0.1, 0)


def test_encoder_is_trained_by_the_critic_only() -> None:
    model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **SMALL)
    model.learn(30)
    calls: dict[str, list[str]] = {"encoder": [], "actor": [], "critic": []}
    stage = ["critic"]

    def hook(net: str) -> Any:
        return lambda grad: calls[net].append(stage[0])

    policy = model.policy
    handles = [p.register_hook(hook(net)) for net in calls for p in getattr(policy, net).parameters()]
    critic_step = policy.critic_optimizer.step

    def mark_actor_stage(*args: Any, **kwargs: Any) -> Any:
        stage[0] = "actor"  # everything after the critic step belongs to the actor update
        return critic_step(*args, **kwargs)

    policy.critic_optimizer.step = mark_actor_stage  # type: ignore[method-assign]
    target_before = [p.clone() for p in policy.critic_target.parameters()]
    encoder_before = [p.clone() for p in policy.encoder.parameters()]
    model.train_on_batch(model.sample_batch(8))
    for h in handles:
        h.remove()
    n_enc, n_actor, n_critic = (len(list(getattr(policy, k).parameters())) for k in calls)
    assert calls["encoder"] == ["critic"] * n_enc  # one gradient per encoder tensor, from the critic loss
    assert calls["critic"] == ["critic"] * n_critic  # no critic weight gradients in the actor's backward
    assert calls["actor"] == ["actor"] * n_actor
    assert all(not p.requires_grad for p in policy.critic_target.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(target_before, policy.critic_target.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, policy.encoder.parameters()))


# ------------------------------------------------------------------------------------------------ frame
# stacks
class RecordStacks(BaseCallback):
    """Records the stack the agent acted on and the done flags of every step."""

    def __init__(self) -> None:
        super().__init__()
        self.stacks: list[np.ndarray] = []
        self.dones: list[bool] = []

    def _on_step(self) -> bool:
        self.stacks.append(self.model._rollout_state[0].copy())
        self.dones.append(bool(self.locals["dones"][0]))
        return True


def test_replay_stacks_equal_the_stacks_the_agent_acted_on() -> None:
    model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **{**SMALL, "learning_starts": 12})
    recorder = RecordStacks()
    model.learn(25, callback=recorder)  # episodes of 10 steps: two resets, random then policy actions
    buffer, row = model.replay_buffer, 0
    assert recorder.stacks[0].shape == (9, 64, 64)
    for stack, done in zip(recorder.stacks, recorder.dones):
        stored = buffer.stacked_observations(np.array([row]), np.array([0]))["observation"][0]
        np.testing.assert_array_equal(stored, stack)
        row += 2 if done else 1  # a finished episode also stores its terminal frame
    first = recorder.stacks[10]  # the first step of the second episode repeats its frame
    np.testing.assert_array_equal(first[:3], first[6:])


# ------------------------------------------------------------------------------------------------ SB3
# contract
def test_learn_on_dmc_pixels_logs_and_acts() -> None:
    model = DrQv2("CnnPolicy", ENV_ID, learning_starts=150, batch_size=32, buffer_size=5_000, seed=0)
    settings = (model.n_steps, model.gamma, model.tau, model.frame_stack, model.std_clip, model.batch_size)
    assert settings == (3, 0.99, 0.01, 3, 0.3, 32)
    model.learn(250)
    assert model.num_timesteps == 250 and model._n_updates == 50  # one update every 2 steps after 150
    model.train(gradient_steps=1, batch_size=32)
    logged = model.logger.name_to_value
    for key in ("critic_loss", "actor_loss", "q1", "q2", "target_q", "batch_reward", "exploration_std"):
        assert np.isfinite(logged[f"train/{key}"]), key
    assert logged["train/exploration_std"] == pytest.approx(1.0 - 0.9 * 250 / 500_000)
    obs, _ = gym.make(ENV_ID).reset(seed=1)
    action, state = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and state.shape == (1, 9, 64, 64)


def test_multi_input_policy_on_image_and_state() -> None:
    env = gym.make(ENV_ID, obs_type="both", **SHORT)
    model = DrQv2("MultiInputPolicy", env, **SMALL)
    assert model.policy.encoder.repr_dim == 32 * 25 * 25 + 5 and model.policy.image_keys == ["image"]
    model.learn(30)
    batch = model.replay_buffer.sample(4)
    assert batch.observations["image"].shape == (4, 9, 64, 64) and batch.observations["state"].shape == (4, 5)
    obs, _ = env.reset(seed=0)
    _, state = model.predict(obs)
    assert set(state) == {"image"}


def test_save_load_exact_and_resume(tmp_path: Path) -> None:
    model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **SMALL)
    model.learn(40)
    model.save(tmp_path / "agent")
    model.save_replay_buffer(tmp_path / "replay")
    loaded = DrQv2.load(tmp_path / "agent.zip", env=gym.make(ENV_ID, **SHORT))
    pol, lpol = model.policy, loaded.policy
    for a, b in zip(pol.state_dict().values(), lpol.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for opt in ("actor_optimizer", "critic_optimizer"):
        sa, sb = getattr(pol, opt).state_dict()["state"], getattr(lpol, opt).state_dict()["state"]
        assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    assert loaded.std_schedule.value(7) == model.std_schedule.value(7) and loaded.num_timesteps == 40
    env = gym.make(ENV_ID, **SHORT)
    obs, _ = env.reset(seed=3)
    state_a = state_b = None
    for t in range(4):
        start = np.array([t == 0])
        a1, state_a = model.predict(obs, state=state_a, episode_start=start, deterministic=True)
        a2, state_b = loaded.predict(obs, state=state_b, episode_start=start, deterministic=True)
        np.testing.assert_array_equal(a1, a2)
        np.testing.assert_array_equal(state_a, state_b)
        obs, *_ = env.step(a1)
    # the same batch gives the same update (optimizer moments restored)
    loaded.load_replay_buffer(tmp_path / "replay.pkl")
    torch.manual_seed(5)
    batch = loaded.sample_batch(8)
    torch.manual_seed(6)
    out_a = model.train_on_batch(batch)
    torch.manual_seed(6)
    out_b = loaded.train_on_batch(batch)
    assert {k: float(v) for k, v in out_a.items()} == {k: float(v) for k, v in out_b.items()}
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == 60 and loaded.replay_buffer.size() > model.replay_buffer.size()


def test_callbacks_tensorboard_and_evaluate_policy(tmp_path: Path) -> None:
    model = DrQv2("CnnPolicy", short_env(), tensorboard_log=str(tmp_path / "tb"), **SMALL)
    eval_env = VecTransposeImage(DummyVecEnv([short_env]))  # wrapped like the training env
    eval_cb = EvalCallback(eval_env, eval_freq=15, n_eval_episodes=2, log_path=str(tmp_path), verbose=0)
    checkpoints = CheckpointCallback(15, str(tmp_path), name_prefix="drq")
    model.learn(30, callback=[eval_cb, checkpoints], log_interval=1, progress_bar=True)
    assert eval_cb.evaluations_timesteps == [15, 30]
    assert sorted(p.name for p in tmp_path.glob("drq_*.zip")) == ["drq_15_steps.zip", "drq_30_steps.zip"]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = next((tmp_path / "tb").glob("DrQv2_*"))
    acc = EventAccumulator(str(run))
    acc.Reload()
    for tag in ("critic_loss", "actor_loss", "q1", "exploration_std"):
        assert f"train/{tag}" in acc.Tags()["scalars"], tag
    assert "eval/mean_reward" in acc.Tags()["scalars"]
    # a plain env gives channels-last frames: predict transposes them like SB3's policies do
    rewards, lengths = evaluate_policy(model, short_env(), n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [10, 10] and all(np.isfinite(rewards))


def test_two_envs() -> None:
    env = make_vec_env(ENV_ID, n_envs=2, env_kwargs=SHORT, seed=0)
    model = DrQv2("CnnPolicy", env, gradient_steps=2, **SMALL)
    model.learn(60)
    assert model.num_timesteps == 60 and model._rollout_state.shape == (2, 9, 64, 64)
    # 2 updates after every 2 vec-steps (4 env steps) once past learning_starts=20
    assert model._n_updates == 2 * len(range(24, 61, 4))
    assert (model.replay_buffer._rows_per_env() >= 30).all()


def test_mixed_real_and_imagined_batch_trains() -> None:
    model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **SMALL)
    model.learn(25)
    real = model.replay_buffer
    imagined = ReplayBuffer(100, real.stacked_observation_space, model.action_space, device="cpu")
    source = real.sample(16)
    for i in range(16):
        imagined.add(source.observations[i:i + 1].numpy(), source.next_observations[i:i + 1].numpy(),
                     source.actions[i:i + 1].numpy(), np.zeros(1), np.zeros(1), [{}])
    batch = sample_mixed([real, imagined], [0.5, 0.5], 8, gamma=model.gamma)
    assert batch.observations.shape == (8, 9, 64, 64)
    assert torch.equal(batch.discounts[4:], torch.full((4, 1), 0.99))
    before = [p.clone() for p in model.policy.actor.parameters()]
    metrics = model.train_on_batch(batch)
    assert np.isfinite(float(metrics["critic_loss"]))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.policy.actor.parameters()))


def test_same_seed_same_updates() -> None:
    weights = []
    for _ in range(2):
        model = DrQv2("CnnPolicy", gym.make(ENV_ID, **SHORT), **{**SMALL, "seed": 3})
        model.learn(30)  # random prefill, then 5 updates
        weights.append([p.detach().clone() for p in model.policy.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))


def test_bad_spaces_raise_errors_naming_the_fix() -> None:
    with pytest.raises(ValueError, match="Box"):
        DrQv2("MlpPolicy", "CartPole-v1")
    with pytest.raises(ValueError, match="MlpPolicy"):
        DrQv2("CnnPolicy", "Pendulum-v1")
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        DrQv2("CnnPolicy", gym.make(ENV_ID, obs_type="both"))
    with pytest.raises(ValueError, match="policy_kwargs"):
        DrQv2("CnnPolicy", ENV_ID, frame_stack=3, policy_kwargs=dict(frame_stack=2))
    model = DrQv2("MlpPolicy", "Pendulum-v1", **SMALL)  # states: DDPG with n-step returns, no stacking
    assert model.predict(np.zeros(3, np.float32))[1] is None
