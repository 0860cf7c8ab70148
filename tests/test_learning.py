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
    loss, _, _ = wm.loss(batch.observations, batch.prev_actions, batch.rewards, batch.is_first, batch.is_terminal,
                         model.gamma)
    return float(loss.detach())


def _dot_run(cls: type, seed: int) -> tuple[float, float, float]:
    """World-model loss on a fixed batch before and after 700 more steps, and the final return."""
    fast = dict(model_size="tiny", actor_lr=1e-3, critic_lr=1e-3)
    model = cls("MlpPolicy", DotEnv("vector", size=8, length=20), learning_starts=200, batch_size=8,
                sequence_length=16, train_ratio=64, buffer_size=5_000, learning_rate=1e-3, gamma=0.9,
                policy_kwargs=fast, seed=seed)
    model.learn(200)
    batch = model.replay_buffer.sample_sequences(8, 16)
    loss_before = _wm_loss(model, batch)
    model.learn(700, reset_num_timesteps=False)
    loss_after = _wm_loss(model, batch)
    ret, _ = evaluate_policy(model, Monitor(DotEnv("vector", size=8, length=20)), n_eval_episodes=10)
    return loss_before, loss_after, float(ret)


def test_dreamer_learns_dot_task() -> None:
    """Each agent learns the task with one of two seeds: at this budget a run now and then settles on a poor policy
    (DreamerHarmony: 1 of 13 seeded runs), which says nothing about the agent; two failing seeds do."""
    random_ret = _random_return()
    for cls in (DreamerV3, DreamerHarmony):
        runs = []
        for seed in (0, 1):
            loss_before, loss_after, ret = _dot_run(cls, seed)
            assert loss_after < 0.6 * loss_before, (cls.__name__, seed, loss_before, loss_after)
            assert np.isfinite(ret)
            runs.append(ret)
            if ret > random_ret + 6.0 and ret > 15.0:
                break
        else:
            raise AssertionError(f"{cls.__name__} did not learn with either seed: returns {runs}, random {random_ret}")
