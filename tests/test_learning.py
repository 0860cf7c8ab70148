"""On a trivial task the world-model loss falls and the return rises to near optimal."""

from __future__ import annotations

import numpy as np
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor

from sb3_worldmodels import DreamerHarmony, DreamerV3
from tests.dummy_envs import DotEnv


def _random_return(episodes: int = 20) -> float:
    env = DotEnv("vector", size=8, length=20)
    env.action_space.seed(0)
    total = 0.0
    for ep in range(episodes):
        env.reset(seed=ep)
        done = False
        while not done:
            _, r, term, trunc, _ = env.step(env.action_space.sample())
            total += r
            done = term or trunc
    return total / episodes


def _wm_loss(model: DreamerV3, batch: object) -> float:
    wm = model.policy.world_model
    loss, _, _ = wm.loss(batch.observations, batch.prev_actions, batch.rewards, batch.is_first, batch.is_terminal)
    return float(loss.detach())


def test_dreamer_learns_dot_task() -> None:
    env = DotEnv("vector", size=8, length=20)
    fast = dict(model_size="tiny", actor_lr=1e-3, critic_lr=1e-3)
    for cls in (DreamerV3, DreamerHarmony):
        model = cls("MlpPolicy", env, learning_starts=200, batch_size=8, sequence_length=16, train_ratio=64,
                    buffer_size=5_000, learning_rate=1e-3, gamma=0.9, policy_kwargs=fast, seed=0)
        model.learn(200)
        batch = model.replay_buffer.sample_sequences(8, 16)
        loss_before = _wm_loss(model, batch)
        model.learn(700, reset_num_timesteps=False)
        loss_after = _wm_loss(model, batch)
        ret, _ = evaluate_policy(model, Monitor(DotEnv("vector", size=8, length=20)), n_eval_episodes=10)
        random_ret = _random_return()
        assert loss_after < 0.6 * loss_before, (cls.__name__, loss_before, loss_after)
        assert ret > random_ret + 6.0 and ret > 15.0, (cls.__name__, ret, random_ret)
        assert np.isfinite(ret)
