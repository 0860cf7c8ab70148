"""Pieces the environment suites share: argument checks, frame sizes, lazy imports, id registration and
:class:`PixelStateEnv`, the base of the MuJoCo suites (DMC, distracted DMC, Meta-World).

Everything here is cheap to import: no simulator is imported until an env is made.
"""

from __future__ import annotations

import abc
import importlib
from collections.abc import Iterable
from types import ModuleType
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

__all__ = [
    "ENV_FAMILIES",
    "OBS_TYPES",
    "PixelStateEnv",
    "check_action_repeat",
    "check_obs_type",
    "check_render_mode",
    "disable_shadows",
    "env_family",
    "import_or_hint",
    "register_ids",
    "size_pair",
]

#: id prefix -> family of the environments registered here (the key of the algorithms' per-family presets)
ENV_FAMILIES: dict[str, str] = {
    "sb3wm/dmc-": "dmc",
    "sb3wm/dmcr-": "dmcr",
    "sb3wm/metaworld-": "metaworld",
    "sb3wm/atari100k-": "atari",
    "sb3wm/crafter": "crafter",
    "sb3wm/minedojo": "minedojo",
}


def env_family(env: Any) -> str | None:
    """The family (``"dmc"``, ``"dmcr"``, ``"metaworld"``, ...) of an env id, a gymnasium env or a VecEnv (its first
    env), from its registered id; ``None`` for anything else (an unregistered env, another suite)."""
    env_id = env if isinstance(env, str) else None
    if env_id is None:
        spec = None
        try:
            if hasattr(env, "get_attr"):  # a VecEnv
                spec = env.get_attr("spec", [0])[0]
            else:
                spec = getattr(env, "spec", None)
        except Exception:  # noqa: BLE001 - an env without a spec has no family
            spec = None
        env_id = getattr(spec, "id", None)
    if not env_id:
        return None
    return next((family for prefix, family in ENV_FAMILIES.items() if env_id.startswith(prefix)), None)


#: Observation types of :class:`PixelStateEnv`: rendered frames, the simulator's state vector, or both.
OBS_TYPES: tuple[str, ...] = ("pixels", "state", "both")


def check_obs_type(obs_type: str) -> None:
    """Raise a ValueError that lists :data:`OBS_TYPES` when ``obs_type`` is not one of them."""
    if obs_type not in OBS_TYPES:
        raise ValueError(f"obs_type must be one of {OBS_TYPES}, got {obs_type!r}")


def check_render_mode(render_mode: str | None) -> None:
    """Raise a ValueError unless ``render_mode`` is ``"rgb_array"`` or ``None`` (the only modes offered)."""
    if render_mode not in (None, "rgb_array"):
        raise ValueError(f"render_mode must be 'rgb_array' or None, got {render_mode!r}")


def check_action_repeat(action_repeat: int) -> None:
    """Raise a ValueError unless ``action_repeat`` is at least 1."""
    if action_repeat < 1:
        raise ValueError(f"action_repeat must be >= 1, got {action_repeat}")


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def size_pair(size: int | tuple[int, int], name: str = "size") -> tuple[int, int]:
    """A size given as an ``int`` (square) or a pair, as a pair of positive Python ints.

    Frame sizes are ``(height, width)``; other pairs (e.g. Crafter's ``area``) keep their own order.

    Args:
        size: A positive int, or a sequence of two positive ints.
        name: The argument's name, for the error message.

    Returns:
        ``(size, size)`` for an int, else the pair as ints.

    Raises:
        ValueError: Anything else (zero or negative values, floats, more or fewer than two values).
    """
    if _is_int(size):
        pair: tuple[Any, ...] = (size, size)
    else:
        try:
            pair = tuple(size)  # type: ignore[arg-type]
        except TypeError:
            pair = ()
    if len(pair) != 2 or not all(_is_int(v) and v > 0 for v in pair):
        raise ValueError(f"{name} must be a positive int or a pair of positive ints, got {size!r}")
    return int(pair[0]), int(pair[1])


def import_or_hint(module: str, hint: str) -> ModuleType:
    """Import ``module`` (dotted), or raise an ImportError whose message is ``hint`` (what to install)."""
    try:
        # the top package first, as `from a import b` does: a blocked `a` fails even when `a.b` is cached
        importlib.import_module(module.partition(".")[0])
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(hint) from exc


def register_ids(
    entries: Iterable[tuple[str, dict[str, Any]]], entry_point: str, max_episode_steps: int | None = None
) -> None:
    """Register gymnasium ids that are not registered yet (re-running is a silent no-op).

    Args:
        entries: ``(env_id, kwargs)`` pairs; ``kwargs`` are the defaults that ``gym.make`` passes to
            the entry point.
        entry_point: ``"module:callable"``; the module is imported only when an env is made.
        max_episode_steps: The ``TimeLimit`` that ``gym.make`` adds, or ``None`` when the env truncates
            itself.
    """
    for env_id, kwargs in entries:
        if env_id not in gym.registry:
            gym.register(
                id=env_id, entry_point=entry_point, kwargs=kwargs, max_episode_steps=max_episode_steps
            )


def disable_shadows(model: Any) -> None:
    """Turn off a MuJoCo model's shadow map and multisampling: much faster small frames.

    Must run before the first render (the renderer's buffers are sized then).

    Args:
        model: ``mujoco.MjModel`` or dm_control's wrapper of it.
    """
    model.vis.quality.shadowsize = 0
    model.vis.quality.offsamples = 0


class PixelStateEnv(gym.Env[Any, np.ndarray], abc.ABC):
    """Base of the envs that render frames from a simulator that also has a state vector.

    Observations are rendered frames (``"pixels"``: uint8 ``(H, W, 3)``), the float32 state
    (``"state"``) or ``Dict(image=..., state=...)`` (``"both"``). At most one frame is rendered per
    agent step: :meth:`_observation` drops the cached frame and :meth:`render` reuses the new one.

    Subclasses call ``super().__init__`` first, then set their ``action_space``, and implement
    :meth:`_state` (the simulator's observation -> float32 vector); they may override :meth:`_draw`.
    """

    def __init__(
        self,
        sim: Any,
        obs_type: str,
        size: int | tuple[int, int],
        action_repeat: int,
        render_mode: str | None,
        state_shape: tuple[int, ...],
    ) -> None:
        """Check the shared arguments and build the observation space.

        Args:
            sim: The wrapped simulator env: ``sim.render()`` returns an RGB frame, ``sim.dt`` is the
                simulated time of one of its steps and ``sim.close()`` frees it.
            obs_type: One of :data:`OBS_TYPES`.
            size: Rendered frame ``(height, width)``, or an ``int`` for square frames.
            action_repeat: Simulator steps per agent step (>= 1).
            render_mode: ``"rgb_array"`` or ``None``.
            state_shape: Shape of the state vector of ``"state"`` / ``"both"`` observations.
        """
        check_obs_type(obs_type)
        check_render_mode(render_mode)
        check_action_repeat(action_repeat)
        self._sim = sim
        self.obs_type = obs_type
        self.height, self.width = size_pair(size)
        self.action_repeat = action_repeat
        self.render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": round(1.0 / self.dt)}
        state_space = spaces.Box(-np.inf, np.inf, state_shape, np.float32)
        image_space = spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
        self.observation_space = {
            "pixels": image_space,
            "state": state_space,
            "both": spaces.Dict({"image": image_space, "state": state_space}),
        }[obs_type]
        self._frame: np.ndarray | None = None
        self._closed = False

    @property
    def dt(self) -> float:
        """Seconds of simulated time per agent step."""
        return float(self._sim.dt) * self.action_repeat

    @abc.abstractmethod
    def _state(self, sim_obs: Any) -> np.ndarray:
        """The float32 state vector of the simulator's observation ``sim_obs`` (each suite defines it)."""

    def _draw(self) -> np.ndarray:
        """A new RGB frame of the simulator."""
        return self._sim.render()

    def _render_frame(self) -> np.ndarray:
        if self._frame is None:
            self._frame = np.ascontiguousarray(self._draw(), dtype=np.uint8)
        return self._frame

    def _observation(self, sim_obs: Any) -> Any:
        """The observation for ``obs_type``, after a simulator step that returned ``sim_obs``."""
        self._frame = None
        if self.obs_type == "pixels":
            return self._render_frame()
        state = self._state(sim_obs)
        if self.obs_type == "state":
            return state
        return {"image": self._render_frame(), "state": state}

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Return the current RGB frame ``(H, W, 3)`` (``None`` when ``render_mode`` is ``None``)."""
        return None if self.render_mode is None else self._render_frame()

    def close(self) -> None:
        """Free the simulator and its rendering context (safe to call twice)."""
        if not self._closed:
            self._closed = True
            self._sim.close()
