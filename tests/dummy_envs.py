"""Small deterministic environments for behaviour tests where no real simulator has the needed spaces."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class DotEnv(gym.Env):
    """A dot on a line, drawn in a small image; Discrete(3) actions move it left / stay / right.

    Reward ``pos / (size - 1)`` (1 in the right-most cell), episodes of ``length`` steps (truncated).

    :param obs: "image" (uint8 (size, size, 3)), "vector" (position one-hot), or "dict" (both).
    """

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, obs: str = "image", size: int = 16, length: int = 20, continuous: bool = False) -> None:
        self.obs_kind, self.size, self.length, self.continuous = obs, size, length, continuous
        image = spaces.Box(0, 255, (size, size, 3), np.uint8)
        vector = spaces.Box(0.0, 1.0, (size,), np.float32)
        self.observation_space = {"image": image, "vector": vector, "dict": spaces.Dict(image=image, vector=vector)}[obs]
        self.action_space = spaces.Box(-1, 1, (1,), np.float32) if continuous else spaces.Discrete(3)
        self.pos, self.t = 0, 0

    def _obs(self) -> Any:
        img = np.zeros((self.size, self.size, 3), np.uint8)
        img[:, self.pos] = 255
        vec = np.zeros(self.size, np.float32)
        vec[self.pos] = 1.0
        return {"image": img, "vector": vec, "dict": {"image": img, "vector": vec}}[self.obs_kind]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[Any, dict]:
        super().reset(seed=seed)
        self.pos, self.t = int(self.np_random.integers(0, self.size // 2)), 0
        return self._obs(), {}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict]:
        move = int(np.sign(float(np.asarray(action).reshape(-1)[0]))) if self.continuous else int(action) - 1
        self.pos = int(np.clip(self.pos + move, 0, self.size - 1))
        self.t += 1
        reward = self.pos / (self.size - 1)
        return self._obs(), reward, False, self.t >= self.length, {}

    def render(self) -> np.ndarray:
        img = self._obs()
        return img["image"] if isinstance(img, dict) else img
