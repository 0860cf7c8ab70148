"""save/load restore every network, optimizer and harmonizer exactly; replay buffers round-trip; resume."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from sb3_worldmodels import DreamerHarmony, DreamerV2, DreamerV3
from tests.dummy_envs import DotEnv

TINY: dict[str, Any] = dict(
    learning_starts=32, batch_size=2, sequence_length=8, train_ratio=16, buffer_size=2_000, pretrain_updates=0,
    policy_kwargs=dict(model_size="tiny"), seed=0,
)


def _state_dicts(model: Any) -> dict[str, Any]:
    pol = model.policy
    return {
        "policy": pol.state_dict(),
        "wm_opt": pol.wm_optimizer.state_dict(),
        "actor_opt": pol.actor_optimizer.state_dict(),
        "critic_opt": pol.critic_optimizer.state_dict(),
    }


def _assert_equal(a: Any, b: Any, path: str = "") -> None:
    if isinstance(a, dict):
        assert set(a) == set(b), path
        for k in a:
            _assert_equal(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_equal(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, path


@pytest.mark.parametrize(
    "cls,kwargs,env_fn,policy",
    [
        (DreamerV3, {}, lambda: gym.make("Pendulum-v1"), "MlpPolicy"),
        (DreamerV2, {}, lambda: gym.make("CartPole-v1"), "MlpPolicy"),
        (DreamerHarmony, {}, lambda: DotEnv("image", size=16), "CnnPolicy"),
        (DreamerHarmony, {"base": "v2"}, lambda: DotEnv("dict", size=64), "MultiInputPolicy"),
    ],
)
def test_save_load_exact(tmp_path: Path, cls: Any, kwargs: dict, env_fn: Any, policy: str) -> None:
    env = env_fn()
    model = cls(policy, env, **TINY, **kwargs)
    model.learn(48)
    path = tmp_path / "agent.zip"
    model.save(path)
    loaded = cls.load(path, env=env_fn())
    _assert_equal(_state_dicts(model), _state_dicts(loaded))
    assert loaded.policy.cfg == model.policy.cfg
    assert (loaded.train_ratio, loaded.sequence_length, loaded._update_credit) == (
        model.train_ratio, model.sequence_length, model._update_credit,
    )
    if cls is DreamerHarmony:
        assert loaded.policy.world_model.harmonizer.coefficients() == model.policy.world_model.harmonizer.coefficients()
    obs, _ = env.reset(seed=3)
    state = None
    for t in range(5):
        a1, s1 = model.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
        a2, s2 = loaded.predict(obs, state=state, episode_start=np.array([t == 0]), deterministic=True)
        np.testing.assert_array_equal(a1, a2)
        for x, y in zip(s1, s2, strict=True):
            np.testing.assert_array_equal(x, y)
        state = s1
        obs, *_ = env.step(a1)
    # the next update gives the same numbers (optimizer moments restored)
    torch.manual_seed(0)
    batch = model.replay_buffer.sample_sequences(2, 8)
    torch.manual_seed(1)
    m1 = model.policy.train_step(batch, 5, 0.99)
    torch.manual_seed(1)
    m2 = loaded.policy.train_step(batch, 5, 0.99)
    assert float(m1["model_loss"]) == float(m2["model_loss"])
    _assert_equal(_state_dicts(model)["policy"], _state_dicts(loaded)["policy"])


def test_replay_buffer_round_trip_and_resume(tmp_path: Path) -> None:
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **TINY)
    model.learn(60)
    model.save(tmp_path / "agent.zip")
    model.save_replay_buffer(tmp_path / "replay.pkl")
    size = model.replay_buffer.size()
    n_updates, steps = model._n_updates, model.num_timesteps

    loaded = DreamerV3.load(tmp_path / "agent.zip", env=gym.make("Pendulum-v1"))
    loaded.load_replay_buffer(tmp_path / "replay.pkl")
    assert loaded.replay_buffer.size() == size
    np.testing.assert_array_equal(loaded.replay_buffer.observations, model.replay_buffer.observations)
    loaded.learn(20, reset_num_timesteps=False)
    assert loaded.num_timesteps == steps + 20
    assert loaded._n_updates == n_updates + 20  # the replay ratio carries on
    assert loaded.replay_buffer.size() >= size + 20  # appended, not duplicated or reset


def test_load_checkpoint_of_other_shape(tmp_path: Path) -> None:
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **TINY)
    model.save(tmp_path / "agent.zip")
    with pytest.raises(ValueError, match="[Oo]bservation spaces do not match|shape"):
        DreamerV3.load(tmp_path / "agent.zip", env=gym.make("MountainCarContinuous-v0"))


def test_save_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from stable_baselines3.common.base_class import BaseAlgorithm

    model = DreamerV3("MlpPolicy", "Pendulum-v1", **TINY)
    model.save(tmp_path / "agent")  # SB3 adds .zip
    model.save_replay_buffer(tmp_path / "replay")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip", "replay.pkl"]
    before = (tmp_path / "agent.zip").read_bytes()

    def broken_save(self: BaseAlgorithm, path: Any, *args: Any, **kwargs: Any) -> None:
        Path(path).write_bytes(b"half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(BaseAlgorithm, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        model.save(tmp_path / "agent.zip")
    assert (tmp_path / "agent.zip").read_bytes() == before  # the old checkpoint is intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["agent.zip", "replay.pkl"]  # no temp file left


def test_policy_save_load_keeps_config(tmp_path: Path) -> None:
    model = DreamerHarmony("MlpPolicy", "Pendulum-v1", **{**TINY, "policy_kwargs": dict(model_size="tiny", deter=48)})
    model.policy.save(tmp_path / "policy.pth")
    policy = type(model.policy).load(tmp_path / "policy.pth")
    assert policy.cfg == model.policy.cfg
    _assert_equal(policy.state_dict(), model.policy.state_dict())
