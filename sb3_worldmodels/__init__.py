"""sb3-worldmodels: world-model reinforcement learning as Stable-Baselines3 algorithms."""

from sb3_worldmodels import envs as _envs  # noqa: F401  (registers the gymnasium ids)

__version__ = "0.1.0"
