"""Meta-World v3 manipulation tasks for gymnasium, as the ContextWM and iVideoGPT papers set them up.

``make_metaworld("drawer-open")`` builds the Farama ``metaworld`` 3.x task through its public ``MT1``
benchmark (goal observable) and wraps it in :class:`MetaWorldEnv`, which renders 64x64 frames from the
``corner`` camera, repeats actions, truncates episodes and reports success. As in APV, ContextWM and
iVideoGPT, every reset draws fresh object and goal positions; here they come from the env's own seeded
random generator, so the same seed gives the same episodes. ``metaworld`` is imported lazily.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_worldmodels.envs.base import (
    PixelStateEnv,
    check_obs_type,
    disable_shadows,
    import_or_hint,
    register_ids,
    size_pair,
)
from sb3_worldmodels.envs.rendering import configure_mujoco_gl

if TYPE_CHECKING:
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

__all__ = ["METAWORLD_TASKS", "MetaWorldEnv", "make_metaworld", "metaworld_env_id", "register"]

configure_mujoco_gl()

_INSTALL_HINT = 'metaworld is required for Meta-World environments: pip install "sb3-worldmodels[metaworld]"'

#: The 50 MT50 tasks of metaworld 3.1.1 (``metaworld.env_dict.MT50_V3`` without the ``-v3`` suffix), in
#: that order; hardcoded to keep imports fast (``tests/test_envs_metaworld.py`` checks it).
METAWORLD_TASKS: tuple[str, ...] = (
    "assembly", "basketball", "bin-picking", "box-close", "button-press-topdown",
    "button-press-topdown-wall", "button-press", "button-press-wall", "coffee-button", "coffee-pull",
    "coffee-push", "dial-turn", "disassemble", "door-close", "door-lock", "door-open", "door-unlock",
    "hand-insert", "drawer-close", "drawer-open", "faucet-open", "faucet-close", "hammer",
    "handle-press-side", "handle-press", "handle-pull-side", "handle-pull", "lever-pull",
    "pick-place-wall", "pick-out-of-hole", "pick-place", "plate-slide", "plate-slide-side",
    "plate-slide-back", "plate-slide-back-side", "peg-insert-side", "peg-unplug-side", "soccer",
    "stick-push", "stick-pull", "push", "push-wall", "push-back", "reach", "reach-wall", "shelf-place",
    "sweep-into", "sweep", "window-open", "window-close",
)  # fmt: skip

#: Cameras that Meta-World defines upside down (made for mujoco-py, whose frames came out bottom row
#: first); gymnasium's renderer flips rows, so their frames are flipped back.
UPSIDE_DOWN_CAMERAS: tuple[str, ...] = ("corner", "corner2", "corner3", "corner4")


class MetaWorldEnv(PixelStateEnv):
    """Gymnasium view of one Meta-World task with pixel observations, action repeat and success flags.

    Each :meth:`step` applies the action ``action_repeat`` times and sums the rewards.
    ``info["success"]`` says whether the task was solved at any of those simulator steps; when it was,
    ``success_bonus`` is added once to the reward. ``info["episode_success"]`` (also written as
    ``info["is_success"]``, which SB3's ``EvalCallback`` averages into ``eval/success_rate``) says whether
    the task was solved at any step of the episode so far. Episodes never terminate; they are truncated
    after ``max_episode_steps`` agent steps (``max_episode_steps * action_repeat`` simulator steps), or
    never when it is ``None`` (then a gymnasium ``TimeLimit`` outside sets the length, as ``gym.make``
    does). One frame is rendered per agent step and :meth:`render` reuses it.
    """

    def __init__(
        self,
        env: SawyerXYZEnv,
        obs_type: str = "pixels",
        size: tuple[int, int] = (64, 64),
        action_repeat: int = 1,
        max_episode_steps: int | None = 500,
        success_bonus: float = 0.0,
        shadows: bool = False,
        render_mode: str | None = "rgb_array",
    ) -> None:
        """Wrap ``env``, a Meta-World env created with ``render_mode="rgb_array"`` and its task set.

        Args:
            env: The Meta-World ``SawyerXYZEnv``; its renderer's camera and frame size are used.
            obs_type: One of ``"pixels"``, ``"state"``, ``"both"``.
            size: Rendered frame ``(height, width)``, as ``env`` was created with.
            action_repeat: Simulator steps per agent step (>= 1).
            max_episode_steps: Agent steps per episode (>= 1), or ``None`` for no limit of its own.
            success_bonus: Added to the reward of every agent step in which the task is solved.
            shadows: Keep Meta-World's shadow map and multisampling (about 8x slower at 64x64).
            render_mode: ``"rgb_array"`` or ``None``.
        """
        super().__init__(env, obs_type, size, action_repeat, render_mode, env.observation_space.shape)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1, got {max_episode_steps}")
        self.mw_env = env
        self.max_episode_steps = max_episode_steps
        self.success_bonus = float(success_bonus)
        # Meta-World raises if stepped past its own horizon: make it the same as ours, in simulator steps.
        env.max_path_length = sys.maxsize if max_episode_steps is None else max_episode_steps * action_repeat
        if not shadows:
            # Meta-World's 4096 shadow map + 4x multisampling: ~8x slower 64x64 frames.
            disable_shadows(env.model)
        camera_id = env.mujoco_renderer.camera_id
        self.camera = env.model.camera(camera_id).name
        self._flip = self.camera in UPSIDE_DOWN_CAMERAS
        self.action_space = spaces.Box(-1.0, 1.0, env.action_space.shape, np.float32)
        self._steps = 0
        self._episode_success = False

    def _state(self, sim_obs: np.ndarray) -> np.ndarray:
        return np.asarray(sim_obs, dtype=np.float32)

    def _draw(self) -> np.ndarray:
        frame = self.mw_env.render()
        return frame[::-1] if self._flip else frame

    def _info(self, info: dict[str, Any], success: bool) -> dict[str, Any]:
        self._episode_success = self._episode_success or success
        return {**info, "success": success, "episode_success": self._episode_success,
                "is_success": self._episode_success}  # fmt: skip

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Start an episode with new object and goal positions; ``seed`` re-seeds their generator."""
        super().reset(seed=seed)
        if seed is not None:
            self.mw_env.seed(seed)
        state, info = self.mw_env.reset()
        self._steps = 0
        self._episode_success = False
        return self._observation(state), self._info(info, False)

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for ``action_repeat`` simulator steps; sum the rewards, add the success bonus."""
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        total, success = 0.0, False
        for _ in range(self.action_repeat):
            state, reward, _, _, info = self.mw_env.step(action)
            total += float(reward)
            success = success or bool(info["success"])
        if success:
            total += self.success_bonus
        self._steps += 1
        truncated = self.max_episode_steps is not None and self._steps >= self.max_episode_steps
        return self._observation(state), total, False, truncated, self._info(info, success)


def _import_metaworld() -> Any:
    """Import ``metaworld`` after configuring the GL backend, with a helpful error."""
    configure_mujoco_gl()
    return import_or_hint("metaworld", _INSTALL_HINT)


def make_metaworld(
    task: str,
    obs_type: str = "pixels",
    size: int | tuple[int, int] = 64,
    camera: str = "corner",
    action_repeat: int = 1,
    max_episode_steps: int | None = 500,
    success_bonus: float = 0.0,
    shadows: bool = False,
    seed: int | None = None,
    render_mode: str | None = "rgb_array",
) -> gym.Env:
    """Create a Meta-World v3 task as a gymnasium environment.

    Args:
        task: MT50 task name without version, e.g. ``"drawer-open"`` (``"drawer-open-v3"`` also works).
        obs_type: ``"pixels"`` (uint8 ``(H, W, 3)``), ``"state"`` (the 39-dim float32 Meta-World state,
            goal included) or ``"both"`` (``Dict(image=..., state=...)``).
        size: Frame size, ``int`` for square or ``(height, width)``.
        camera: Meta-World camera: ``"corner"`` (default, the papers'), ``"corner2"``, ``"corner3"``,
            ``"corner4"``, ``"topview"``, ``"behindGripper"`` or ``"gripperPOV"``.
        action_repeat: Simulator steps per agent step (1 in ContextWM's setting, 2 in iVideoGPT's).
        max_episode_steps: Episode length in agent steps (500 in ContextWM's setting, 100 in iVideoGPT's);
            ``None``: no limit of its own (the registered ids use this and let ``gym.make`` add a
            ``TimeLimit`` of 500 agent steps, changed with ``gym.make(id, max_episode_steps=...)``).
        success_bonus: Reward added at every agent step in which the task is solved (10 in iVideoGPT's).
        shadows: Render with Meta-World's shadows and multisampling (slower; off by default).
        seed: Seed of the generator of object and goal positions (``reset(seed=...)`` re-seeds it).
        render_mode: ``"rgb_array"`` (default) or ``None``.

    Returns:
        A :class:`MetaWorldEnv`.

    Raises:
        ValueError: Unknown task or camera (the message lists valid ones), or bad ``obs_type``.
        ImportError: metaworld is not installed.
    """
    check_obs_type(obs_type)
    height, width = size_pair(size)
    name = task.removesuffix("-v3")
    if name not in METAWORLD_TASKS:
        raise ValueError(f"Unknown Meta-World task {task!r}; valid tasks: {list(METAWORLD_TASKS)}")
    metaworld = _import_metaworld()
    # MT1's seed only picks the goal it hands to set_task; it is re-drawn at every reset below.
    benchmark = metaworld.MT1(f"{name}-v3", seed=0)
    env = benchmark.train_classes[f"{name}-v3"](
        render_mode="rgb_array", camera_name=camera, width=width, height=height
    )
    if env.mujoco_renderer.camera_id < 0:
        names = [env.model.camera(i).name for i in range(env.model.ncam)]
        env.close()
        raise ValueError(f"Unknown Meta-World camera {camera!r}; valid cameras: {names}")
    env.set_task(benchmark.train_tasks[0])
    # Fresh object/goal positions at every reset, drawn from the env's seeded np_random (as APV, ContextWM
    # and iVideoGPT do with `_freeze_rand_vec = False`, but reproducible).
    env._freeze_rand_vec = False
    env.seeded_rand_vec = True
    if seed is not None:
        env.seed(seed)
    return MetaWorldEnv(
        env, obs_type, (height, width), action_repeat, max_episode_steps, success_bonus, shadows,
        render_mode,
    )  # fmt: skip


def metaworld_env_id(task: str) -> str:
    """Gymnasium id of a Meta-World task: ``"drawer-open"`` -> ``"sb3wm/metaworld-drawer-open-v0"``."""
    return f"sb3wm/metaworld-{task.removesuffix('-v3')}-v0"


def register() -> None:
    """Register ``sb3wm/metaworld-{task}-v0`` for every MT50 task (re-running is a no-op)."""
    register_ids(
        # gym.make consumes `max_episode_steps` itself (TimeLimit, in agent steps): the env keeps none
        ((metaworld_env_id(task), {"task": task, "max_episode_steps": None}) for task in METAWORLD_TASKS),
        "sb3_worldmodels.envs.metaworld:make_metaworld",
        max_episode_steps=500,
    )
