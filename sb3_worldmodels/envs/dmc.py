"""DeepMind Control Suite environments for gymnasium (pixels, proprio state, or both).

``make_dmc("cartpole", "swingup")`` loads ``dm_control.suite`` through shimmy's
``DmControlCompatibilityV0`` and wraps it in :class:`DMCEnv`, which adds action repeat,
rendered-pixel observations and float32 spaces. dm_control is imported lazily, after
:func:`~sb3_worldmodels.envs.rendering.configure_mujoco_gl` picked a headless GL backend.
"""

from __future__ import annotations

import types
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_worldmodels.envs.base import (
    OBS_TYPES,
    PixelStateEnv,
    check_obs_type,
    disable_shadows,
    import_or_hint,
    size_pair,
)
from sb3_worldmodels.envs.rendering import configure_mujoco_gl

if TYPE_CHECKING:
    from shimmy import DmControlCompatibilityV0

__all__ = ["DMCEnv", "OBS_TYPES", "make_dmc"]

configure_mujoco_gl()

_INSTALL_HINT = 'dm_control is required for DMC environments: pip install "sb3-worldmodels[dmc]"'


class DMCEnv(PixelStateEnv):
    """Gymnasium view of a shimmy-wrapped dm_control suite task.

    Observations are rendered frames (``"pixels"``: uint8 ``(H, W, 3)``), the flattened
    proprio observations (``"state"``: float32 vector, keys in the task's spec order) or a
    ``Dict(image=..., state=...)`` (``"both"``). Actions are in ``[-1, 1]``, rescaled to the
    task's control range (identity for most tasks). Each :meth:`step` repeats the action
    ``action_repeat`` times, sums the rewards and stops early at the end of the episode;
    DMC's time limit surfaces as ``truncated=True``. At most one frame is rendered per agent
    step, and :meth:`render` reuses it.
    """

    def __init__(
        self,
        env: DmControlCompatibilityV0,
        obs_type: str = "pixels",
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 2,
        camera_id: int = 0,
        render_mode: str | None = "rgb_array",
        shadows: bool = False,
    ) -> None:
        """Wrap ``env`` (a shimmy env created with ``render_mode="rgb_array"``).

        Args:
            env: shimmy ``DmControlCompatibilityV0`` around a dm_control suite environment.
            obs_type: One of ``"pixels"``, ``"state"``, ``"both"``.
            size: Rendered frame ``(height, width)``.
            action_repeat: Physics control steps per agent step (>= 1).
            camera_id: MuJoCo camera used for observations and :meth:`render`.
            render_mode: ``"rgb_array"`` or ``None``.
            shadows: Keep dm_control's shadow map and multisampling, as DrQ-v2 and DreamerV3 rendered
                (about 4.5x slower small frames on a CPU renderer).
        """
        self.state_keys: tuple[str, ...] = tuple(env.observation_space.spaces)
        state_dim = sum(int(np.prod(env.observation_space[k].shape)) for k in self.state_keys)
        super().__init__(env, obs_type, size, action_repeat, render_mode, (state_dim,))
        self.shimmy_env = env
        self.camera_id = camera_id

        physics = env.physics
        if not shadows:
            # No shadows / multisampling: ~4.5x faster small renders.
            disable_shadows(physics.model)
        # The offscreen buffer (default 640x480) is allocated on first render: make frames fit.
        glob = physics.model.vis.global_
        glob.offwidth, glob.offheight = max(glob.offwidth, self.width), max(glob.offheight, self.height)
        env.render_kwargs = {"height": self.height, "width": self.width, "camera_id": camera_id}

        # Agent actions live in [-1, 1] and are mapped affinely onto DMC's bounds (as DrQ-v2 does;
        # e.g. quadruped's [-1, 1.1] ranges). Unbounded dims (+-mjMAXVAL, lqr) pass through unscaled.
        low, high = env.action_space.low.astype(np.float64), env.action_space.high.astype(np.float64)
        bounded = (high - low) < 1e6
        self._act_center = np.where(bounded, (high + low) / 2, 0.0)
        self._act_scale = np.where(bounded, (high - low) / 2, 1.0)
        self.action_space = spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)

    def _state(self, sim_obs: dict[str, Any]) -> np.ndarray:
        return np.concatenate([np.asarray(sim_obs[k], dtype=np.float32).ravel() for k in self.state_keys])

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start a new episode; ``seed`` re-seeds dm_control's task RNG."""
        super().reset(seed=seed)
        dm_obs, info = self.shimmy_env.reset(seed=seed, options=options)
        return self._observation(dm_obs), info

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for ``action_repeat`` control steps and sum the rewards."""
        action = self._act_center + self._act_scale * np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        total = 0.0
        for _ in range(self.action_repeat):
            dm_obs, reward, terminated, truncated, info = self.shimmy_env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return self._observation(dm_obs), total, bool(terminated), bool(truncated), info


class _NumpyWithIn1d(types.ModuleType):
    """numpy plus the ``in1d`` alias that numpy 2.4 removed (used by dm-control 1.0.28's quadruped)."""

    in1d = staticmethod(np.isin)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _import_suite() -> Any:
    """Import ``dm_control.suite`` after configuring the GL backend, with a helpful error."""
    configure_mujoco_gl()
    suite = import_or_hint("dm_control.suite", _INSTALL_HINT)
    quadruped = getattr(suite, "quadruped", None)
    if quadruped is not None and not hasattr(quadruped.np, "in1d"):
        quadruped.np = _NumpyWithIn1d("numpy")  # scoped to that module; numpy itself is untouched
    return suite


def make_dmc(
    domain: str,
    task: str,
    obs_type: str = "pixels",
    size: int | tuple[int, int] = 64,
    action_repeat: int = 2,
    camera_id: int | None = None,
    seed: int | None = None,
    render_mode: str | None = "rgb_array",
    shadows: bool = False,
    **task_kwargs: Any,
) -> gym.Env:
    """Create a DeepMind Control Suite task as a gymnasium environment.

    Args:
        domain: Suite domain, e.g. ``"cartpole"``, ``"ball_in_cup"``.
        task: Task of that domain, e.g. ``"swingup"``.
        obs_type: ``"pixels"`` (uint8 ``(H, W, 3)``), ``"state"`` (float32 vector) or
            ``"both"`` (``Dict(image=..., state=...)``).
        size: Frame size, ``int`` for square or ``(height, width)``.
        action_repeat: Control steps per agent step; rewards are summed. DMC's 1000-step
            limit becomes ``1000 // action_repeat`` agent steps.
        camera_id: Camera for frames; default 2 for quadruped, else 0 (as DreamerV3/DrQ-v2).
        seed: Seed of dm_control's task RNG (``reset(seed=...)`` re-seeds it too).
        render_mode: ``"rgb_array"`` (default) or ``None``.
        shadows: Render with dm_control's shadows and multisampling, as the papers' pixel results
            were (off by default: about 4.5x faster 64x64 frames on a CPU renderer, the cart's shadow
            and the rail's anti-aliasing gone).
        **task_kwargs: Extra suite task kwargs, e.g. ``time_limit=10``.

    Returns:
        A :class:`DMCEnv`.

    Raises:
        ValueError: Unknown domain/task (the message lists valid ones) or bad ``obs_type``.
        ImportError: dm_control / shimmy are not installed.
    """
    check_obs_type(obs_type)
    height, width = size_pair(size)
    suite = _import_suite()
    if domain not in suite.TASKS_BY_DOMAIN:
        raise ValueError(f"Unknown DMC domain {domain!r}; valid domains: {sorted(suite.TASKS_BY_DOMAIN)}")
    tasks = list(suite.TASKS_BY_DOMAIN[domain])
    if task not in tasks:
        raise ValueError(f"Unknown task {task!r} for DMC domain {domain!r}; valid tasks: {tasks}")
    shimmy = import_or_hint("shimmy", _INSTALL_HINT)
    if camera_id is None:
        camera_id = 2 if domain == "quadruped" else 0
    dm_env = suite.load(domain, task, task_kwargs={"random": seed, **task_kwargs})
    env = shimmy.DmControlCompatibilityV0(dm_env, render_mode="rgb_array")
    return DMCEnv(env, obs_type, (height, width), action_repeat, camera_id, render_mode, shadows)
