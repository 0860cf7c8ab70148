"""Bad input gets a clear error naming the fix."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sb3_worldmodels import DreamerV2, DreamerV3
from tests.dummy_envs import DotEnv

TINY: dict[str, Any] = dict(learning_starts=32, batch_size=2, sequence_length=8, buffer_size=500,
                            pretrain_updates=0,
                            policy_kwargs=dict(model_size="tiny"))


class TupleEnv(gym.Env):
    """An env with a Tuple observation space (unsupported)."""

    observation_space = spaces.Tuple((spaces.Box(-1, 1, (2,)), spaces.Discrete(2)))
    action_space = spaces.Box(-1, 1, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        return self.observation_space.sample(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        return self.observation_space.sample(), 0.0, False, False, {}


class MultiBinaryActionEnv(DotEnv):
    """DotEnv with an unsupported action space."""

    def __init__(self) -> None:
        super().__init__("vector")
        self.action_space = spaces.MultiBinary(2)


def test_tuple_observation_space() -> None:
    with pytest.raises(ValueError, match="Flatten"):
        DreamerV3("MlpPolicy", TupleEnv(), **TINY)


def test_unsupported_action_space() -> None:
    with pytest.raises(AssertionError, match="MultiBinary"):
        DreamerV3("MlpPolicy", MultiBinaryActionEnv(), **TINY)


def test_images_under_mlp_policy() -> None:
    with pytest.raises(ValueError, match="CnnPolicy"):
        DreamerV3("MlpPolicy", DotEnv("image", size=16), **TINY)


def test_vectors_under_cnn_policy() -> None:
    with pytest.raises(ValueError, match="MlpPolicy"):
        DreamerV3("CnnPolicy", "Pendulum-v1", **TINY)


def test_dict_needs_multi_input() -> None:
    with pytest.raises(ValueError, match="MultiInputPolicy"):
        DreamerV3("CnnPolicy", DotEnv("dict", size=16), **TINY)
    with pytest.raises(ValueError, match="Dict"):
        DreamerV3("MultiInputPolicy", "Pendulum-v1", **TINY)


def test_image_size_the_encoder_cannot_take() -> None:
    with pytest.raises(ValueError, match="ResizeObservation"):
        DreamerV3("CnnPolicy", DotEnv("image", size=20), **TINY)
    with pytest.raises(ValueError, match="64x64"):
        DreamerV2("CnnPolicy", DotEnv("image", size=32), **TINY)


def test_unknown_model_size_and_kwargs() -> None:
    with pytest.raises(ValueError, match="model_size"):
        DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY, "policy_kwargs": dict(model_size="XXL")})
    with pytest.raises(TypeError, match="Unknown Dreamer policy_kwargs"):
        DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY, "policy_kwargs": dict(detr=3)})


def test_learning_starts_below_sequence_length() -> None:
    model = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY, "learning_starts": 4})
    with pytest.raises(ValueError, match="learning_starts"):
        model.learn(20)


def test_checkpoint_of_another_model_size(tmp_path: Any) -> None:
    small = DreamerV3("MlpPolicy", "Pendulum-v1", **TINY)
    small.save(tmp_path / "small.zip")
    other = DreamerV3("MlpPolicy", "Pendulum-v1", **{**TINY, "policy_kwargs": dict(model_size="XS")})
    with pytest.raises((ValueError, RuntimeError), match="size mismatch|shape"):
        other.set_parameters(str(tmp_path / "small.zip"))


def test_policy_alias_check_is_shared_and_names_the_alias() -> None:
    """Dreamer and DrQv2 check their aliases with one function; each mismatch names the alias to use."""
    from sb3_worldmodels.common.spaces import check_policy_alias
    from sb3_worldmodels.dreamer.world_model import split_spaces

    image = spaces.Box(0, 255, (3, 16, 16), np.uint8)
    vector = spaces.Box(-1, 1, (4,), np.float32)
    both = spaces.Dict(image=image, vector=vector)
    check_policy_alias("CnnPolicy", image, split_spaces)
    check_policy_alias("MlpPolicy", vector, split_spaces)
    check_policy_alias("MultiInputPolicy", both, split_spaces)
    with pytest.raises(ValueError, match="use 'MlpPolicy' for vectors"):
        check_policy_alias("CnnPolicy", vector, split_spaces)
    with pytest.raises(ValueError, match="use 'CnnPolicy' for images"):
        check_policy_alias("MlpPolicy", image, split_spaces)
    with pytest.raises(ValueError, match="single vector Box; for a Dict observation space use 'MultiInputPolicy'"):
        check_policy_alias("MlpPolicy", both, split_spaces)
    with pytest.raises(ValueError, match="needs a Dict observation space"):
        check_policy_alias("MultiInputPolicy", image, split_spaces)
    with pytest.raises(ValueError, match="Unknown policy alias 'SomePolicy'"):
        check_policy_alias("SomePolicy", image, split_spaces)
