"""SB3 callbacks, evaluate_policy and EvalCallback through the recurrent predict."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.callbacks import BaseCallback, CheckpointCallback, EvalCallback
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv

from sb3_worldmodels import DreamerHarmony, DreamerV3
from tests.dummy_envs import DotEnv

TINY: dict[str, Any] = dict(
    learning_starts=32, batch_size=2, sequence_length=8, train_ratio=16, buffer_size=2_000, pretrain_updates=0,
    policy_kwargs=dict(model_size="tiny"), seed=0,
)


class StateSpy:
    """Wraps ``predict`` to record the states and episode starts evaluate_policy passes in."""

    def __init__(self, model: Any) -> None:
        self.model, self.calls = model, []
        self._predict = model.predict

    def __call__(self, obs: Any, state: Any = None, episode_start: Any = None, deterministic: bool = False) -> Any:
        self.calls.append((state is None, None if episode_start is None else episode_start.copy()))
        return self._predict(obs, state=state, episode_start=episode_start, deterministic=deterministic)


def test_evaluate_policy_carries_state() -> None:
    model = DreamerV3("CnnPolicy", DotEnv("image", size=16, length=6), **TINY)
    model.learn(40)
    spy = StateSpy(model)
    model.predict = spy  # type: ignore[method-assign]
    env = DummyVecEnv([lambda: Monitor(DotEnv("image", size=16, length=6))])
    rewards, lengths = evaluate_policy(model, env, n_eval_episodes=2, return_episode_rewards=True)
    assert lengths == [6, 6]
    assert spy.calls[0][0] is True  # first call starts without a state
    assert all(not none for none, _ in spy.calls[1:])  # then the state is passed back every step
    starts = [bool(s[0]) for _, s in spy.calls]
    assert starts[0] and starts[6] and not any(starts[1:6])  # the state is reset at the episode start


def test_eval_and_checkpoint_callbacks(tmp_path: Path) -> None:
    eval_env = DummyVecEnv([lambda: Monitor(gym.make("Pendulum-v1"))])
    eval_cb = EvalCallback(eval_env, eval_freq=30, n_eval_episodes=1, best_model_save_path=str(tmp_path / "best"),
                           log_path=str(tmp_path / "eval"))
    ckpt_cb = CheckpointCallback(save_freq=30, save_path=str(tmp_path / "ckpt"), name_prefix="dreamer",
                                 save_replay_buffer=True)
    model = DreamerHarmony("MlpPolicy", "Pendulum-v1", **TINY)
    model.learn(60, callback=[eval_cb, ckpt_cb])
    assert len(eval_cb.evaluations_results) == 2
    assert np.isfinite(eval_cb.last_mean_reward)
    assert (tmp_path / "best" / "best_model.zip").exists()
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == [
        "dreamer_30_steps.zip", "dreamer_60_steps.zip", "dreamer_replay_buffer_30_steps.pkl",
        "dreamer_replay_buffer_60_steps.pkl",
    ]
    DreamerHarmony.load(tmp_path / "ckpt" / "dreamer_60_steps.zip")


class StopAt(BaseCallback):
    """Stops training after ``n`` env steps."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n

    def _on_step(self) -> bool:
        return self.num_timesteps < self.n


def test_callback_can_stop_training() -> None:
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **TINY)
    model.learn(200, callback=StopAt(50))
    assert model.num_timesteps == 50
