"""MineDojo (Minecraft) tasks as gymnasium environments, in HarmonyDream's setting.

``sb3wm/minedojo-hunt-cow-v0`` is HarmonyDream's Minecraft task (MineDojo's ``Combat`` task against a cow,
with MineCLIP's dense reward), ``sb3wm/minedojo-v0`` any other MineDojo task (``task=...``). MineDojo
needs Java 8 and downloads Minecraft on its first run, so it is imported lazily and
:func:`check_minedojo_available` says exactly what is missing.

The parts that need no simulator are plain functions, tested without it: the action tables
(:func:`harmony_to_minedojo`, :func:`discrete_to_minedojo`), the frame conversion (:func:`rgb_to_image`)
and the dense reward (:class:`HuntDenseReward`). :class:`MineDojoEnv` puts them around any object with
MineDojo's old-gym API (``reset() -> obs``, ``step(a) -> (obs, reward, done, info)``).

Action space of MineDojo (``minedojo/sim/wrappers/ar_nn/nn_action_space_wrapper.py``):
``MultiDiscrete([3, 3, 4, 25, 25, 8, 244, 36])`` = forward/back, left/right, jump/sneak/sprint, camera
pitch and yaw in 15-degree bins (bin 12 = no turn), functional action (0 noop, 1 use, 2 drop, 3 attack,
4 craft, 5 equip, 6 place, 7 destroy), craft argument, inventory-slot argument. HarmonyDream
(``wmlib-torch/wmlib/envs/minecraft.py`` of thuml/HarmonyDream, after the STG-Transformer code) reduces
it to ``MultiDiscrete([3, 3, 4, 5, 3])``: the three movement sub-actions unchanged, one camera
sub-action (noop, pitch -15, pitch +15, yaw -15, yaw +15) and noop/use/attack; crafting, equipping,
placing and their arguments are dropped.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from sb3_worldmodels.envs.base import check_action_repeat, check_render_mode, register_ids, size_pair

__all__ = [
    "ACTION_TYPES",
    "DISCRETE_ACTIONS",
    "HARMONY_ACTION_NVEC",
    "MINEDOJO_ACTION_NVEC",
    "MINEDOJO_NOOP",
    "HuntDenseReward",
    "MineDojoEnv",
    "check_minedojo_available",
    "discrete_to_minedojo",
    "harmony_to_minedojo",
    "hunt_cow_cleanup",
    "make_minedojo",
    "missing_minedojo_requirements",
    "register",
    "rgb_to_image",
]

#: MineDojo's action space (``nvec`` of its ``MultiDiscrete``) and its no-op vector.
MINEDOJO_ACTION_NVEC: tuple[int, ...] = (3, 3, 4, 25, 25, 8, 244, 36)
MINEDOJO_NOOP: tuple[int, ...] = (0, 0, 0, 12, 12, 0, 0, 0)
#: HarmonyDream's reduced action space: movement (3), strafe (3), jump/sneak/sprint (4), camera (5),
#: functional (3).
HARMONY_ACTION_NVEC: tuple[int, ...] = (3, 3, 4, 5, 3)
# HarmonyDream's camera sub-action -> MineDojo (pitch bin, yaw bin); bin b turns by 15 * (b - 12) degrees.
_CAMERA_BINS: tuple[tuple[int, int], ...] = ((12, 12), (11, 12), (13, 12), (12, 11), (12, 13))
# HarmonyDream's functional sub-action -> MineDojo functional action: noop, use, attack.
_FUNCTIONAL: tuple[int, ...] = (0, 1, 3)

#: ``action_type="discrete"``: one sub-action of HarmonyDream's space at a time, plus the two combinations a
#: hunter needs (jump onto a block while walking, hit while chasing). Name -> HarmonyDream vector.
DISCRETE_ACTIONS: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("noop", (0, 0, 0, 0, 0)),
    ("forward", (1, 0, 0, 0, 0)),
    ("back", (2, 0, 0, 0, 0)),
    ("left", (0, 1, 0, 0, 0)),
    ("right", (0, 2, 0, 0, 0)),
    ("jump", (0, 0, 1, 0, 0)),
    ("sneak", (0, 0, 2, 0, 0)),
    ("sprint", (0, 0, 3, 0, 0)),
    ("pitch-15", (0, 0, 0, 1, 0)),
    ("pitch+15", (0, 0, 0, 2, 0)),
    ("yaw-15", (0, 0, 0, 3, 0)),
    ("yaw+15", (0, 0, 0, 4, 0)),
    ("use", (0, 0, 0, 0, 1)),
    ("attack", (0, 0, 0, 0, 2)),
    ("forward+jump", (1, 0, 1, 0, 0)),
    ("forward+attack", (1, 0, 0, 0, 2)),
)
ACTION_TYPES: tuple[str, ...] = ("discrete", "multi_discrete")

_TASK_ALIASES = {"hunt-cow": "hunt_cow", "hunt_cow": "hunt_cow"}
_PIP_STEP = (
    'the minedojo package, whose gym==0.21 dependency only builds with old packaging tools and which needs '
    'numpy<2: pip install "pip<24.1" "setuptools==65.5.0" "wheel<0.40" && pip install "numpy<2" minedojo'
)
_JAVA_STEP = (
    "JDK 8 (MineDojo's Minecraft runs on Java 8 only): sudo apt install openjdk-8-jdk (Ubuntu; add "
    "ppa:openjdk-r/ppa where the release lacks it) or conda install -c conda-forge openjdk=8; then `java "
    "-version` must report 1.8 (set JAVA_HOME and PATH to that JDK)"
)
_AFTER_INSTALL = (
    "Then: the first minedojo.make() downloads Gradle and Minecraft's assets (internet access needed once); "
    "without a display install Xvfb (sudo apt install xvfb) and set MINEDOJO_HEADLESS=1. "
    "See the MineDojo page of the environments guide."
)


def _as_int_vector(action: Any, nvec: Sequence[int], what: str) -> np.ndarray:
    """``action`` as an int64 vector inside ``MultiDiscrete(nvec)``, or a ValueError naming the space."""
    vec = np.asarray(action)
    valid = vec.shape == (len(nvec),) and np.issubdtype(vec.dtype, np.integer)
    if not valid or np.any(vec < 0) or np.any(vec >= nvec):
        raise ValueError(
            f"Invalid {what} action {action!r}: expected {len(nvec)} ints, each in [0, n) for n in {nvec}"
        )
    return vec.astype(np.int64)


def harmony_to_minedojo(action: Sequence[int] | np.ndarray) -> np.ndarray:
    """Map an action of HarmonyDream's ``MultiDiscrete([3, 3, 4, 5, 3])`` to MineDojo's 8-vector.

    Movement, strafe and jump/sneak/sprint pass through; the camera sub-action (noop, pitch -15,
    pitch +15, yaw -15, yaw +15 degrees) sets MineDojo's pitch or yaw bin (11 or 13, 12 = no turn);
    the functional sub-action (noop, use, attack) becomes MineDojo's 0, 1 or 3. Craft and slot
    arguments stay 0.

    Args:
        action: Five ints inside :data:`HARMONY_ACTION_NVEC`.

    Returns:
        An int64 array inside :data:`MINEDOJO_ACTION_NVEC`.

    Raises:
        ValueError: An action outside HarmonyDream's space.
    """
    vec = _as_int_vector(action, HARMONY_ACTION_NVEC, "HarmonyDream (MultiDiscrete([3, 3, 4, 5, 3]))")
    out = np.array(MINEDOJO_NOOP, dtype=np.int64)
    out[:3] = vec[:3]
    out[3], out[4] = _CAMERA_BINS[vec[3]]
    out[5] = _FUNCTIONAL[vec[4]]
    return out


def discrete_to_minedojo(index: int | np.integer) -> np.ndarray:
    """Map an index of :data:`DISCRETE_ACTIONS` to MineDojo's 8-vector (through :func:`harmony_to_minedojo`).

    Raises:
        ValueError: An index outside ``[0, len(DISCRETE_ACTIONS))``.
    """
    n = len(DISCRETE_ACTIONS)
    if not isinstance(index, (int, np.integer)) or isinstance(index, bool) or not 0 <= index < n:
        raise ValueError(f"Invalid discrete MineDojo action {index!r}: expected an int in [0, {n})")
    return harmony_to_minedojo(DISCRETE_ACTIONS[int(index)][1])


def rgb_to_image(rgb: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """MineDojo's ``obs["rgb"]`` (uint8 ``(3, H, W)``) -> uint8 ``(height, width, 3)``.

    Frames already at ``size`` are only transposed; others are resized with OpenCV's bilinear
    interpolation, as HarmonyDream does.

    Raises:
        ValueError: Not a uint8 ``(3, H, W)`` array.
        ImportError: A resize is needed and OpenCV is missing.
    """
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[0] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"MineDojo's 'rgb' observation must be uint8 (3, H, W), got {rgb.dtype} {rgb.shape}")
    image = np.ascontiguousarray(rgb.transpose(1, 2, 0))
    height, width = size
    if image.shape[:2] == (height, width):
        return image
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(
            'Resizing MineDojo frames needs OpenCV: pip install "sb3-worldmodels[video]" (or render at the '
            "observation size: sim_size=None)"
        ) from exc
    return cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)


class HuntDenseReward:
    """MineCLIP's dense reward for hunting an animal, as HarmonyDream's hunt-cow task uses it.

    Per step: ``attack_reward`` for a hit (the weapon in slot 0 loses exactly one durability point),
    plus ``nav_reward_scale`` times the decrease of the closest distance to the animal seen by the
    lidar so far in this approach (never negative; the closest distance is forgotten after a hit,
    as the animal flees), minus ``step_penalty``, plus the task's own reward.

    Args:
        entity: Animal name as MineDojo's lidar reports it (``obs["rays"]["entity_name"]``).
        attack_reward: Reward per hit.
        nav_reward_scale: Scale of the approach reward (per block).
        step_penalty: Non-negative cost per step.
    """

    def __init__(
        self,
        entity: str = "cow",
        attack_reward: float = 5.0,
        nav_reward_scale: float = 1.0,
        step_penalty: float = 0.0,
    ) -> None:
        if step_penalty < 0:
            raise ValueError(f"step_penalty must be >= 0 (it is subtracted), got {step_penalty}")
        self.entity = entity
        self.attack_reward = float(attack_reward)
        self.nav_reward_scale = float(nav_reward_scale)
        self.step_penalty = float(step_penalty)
        self._durability = 0.0
        self._closest = np.inf
        self._last_distance = 0.0

    def _distance_in_sight(self, obs: dict[str, Any]) -> float | None:
        """Distance to the nearest ray that hits ``entity``, or ``None`` when no ray does."""
        try:
            names, distances = obs["rays"]["entity_name"], obs["rays"]["entity_distance"]
        except (KeyError, TypeError) as exc:
            raise KeyError(
                "The dense reward needs MineDojo's lidar observation: make the task with use_lidar=True"
            ) from exc
        hits = np.asarray(names) == self.entity
        return float(np.min(np.asarray(distances, dtype=np.float64)[hits])) if hits.any() else None

    def reset(self, obs: dict[str, Any]) -> None:
        """Start an episode from its first observation."""
        self._closest = np.inf
        distance = self._distance_in_sight(obs)
        if distance is not None:
            self._closest = distance
        self._last_distance = 0.0 if distance is None else distance
        self._durability = float(obs["inventory"]["cur_durability"][0])

    def __call__(self, obs: dict[str, Any], task_reward: float) -> float:
        """Reward of the step that produced ``obs``, given the task's own reward."""
        durability = float(obs["inventory"]["cur_durability"][0])
        hit = self._durability - durability == 1.0  # dying drops the weapon: durability -> 0, not a hit
        self._durability = durability
        nav = 0.0
        distance = self._distance_in_sight(obs)
        if distance is not None:
            self._closest = min(distance, self._closest)
            nav = max(0.0, self._last_distance - self._closest)
            self._last_distance = self._closest
        if hit:
            self._closest = np.inf
        return hit * self.attack_reward + nav * self.nav_reward_scale - self.step_penalty + float(task_reward)


class MineDojoEnv(gym.Env[np.ndarray, Any]):
    """Gymnasium view of a MineDojo task: uint8 ``(H, W, 3)`` frames and HarmonyDream's reduced actions.

    * Actions: ``"discrete"`` is ``Discrete(16)`` over :data:`DISCRETE_ACTIONS`; ``"multi_discrete"`` is
      HarmonyDream's ``MultiDiscrete([3, 3, 4, 5, 3])`` (for algorithms that take MultiDiscrete actions).
    * MineDojo's ``done`` (task solved, or the agent died) gives ``terminated=True``; the episode
      length is a time limit and gives ``truncated=True``.
    * ``info`` is MineDojo's, with ``"success"`` (the task's ``is_successful`` when the info has none).
    * MineDojo's world seed is fixed when the simulator starts: the simulator starts at the first
      :meth:`reset`, and a later ``reset(seed=...)`` with another seed restarts it (slow). Minecraft
      itself is not deterministic: the seed picks the world, not the trajectory.

    Args:
        make_sim: ``make_sim(world_seed)`` returns a MineDojo env (old gym API; ``obs["rgb"]`` is
            ``(3, H, W)`` uint8).
        size: Observation ``(height, width)``.
        action_type: One of :data:`ACTION_TYPES`.
        action_repeat: Simulator steps per agent step; rewards are summed.
        max_episode_steps: Agent steps per episode (``None``: only MineDojo's ``done`` ends one).
        dense_reward: Optional :class:`HuntDenseReward` added to the task reward.
        before_reset: Called with the unwrapped simulator before every reset but the first on it (clean-up
            for MineDojo's fast resets, e.g. :func:`hunt_cow_cleanup`).
        seed: World seed of the first reset when ``reset`` is called without one.
        render_mode: ``"rgb_array"`` or ``None``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}

    def __init__(
        self,
        make_sim: Callable[[int], Any],
        size: tuple[int, int] = (64, 64),
        action_type: str = "discrete",
        action_repeat: int = 1,
        max_episode_steps: int | None = 500,
        dense_reward: HuntDenseReward | None = None,
        before_reset: Callable[[Any], None] | None = None,
        seed: int | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        if action_type not in ACTION_TYPES:
            raise ValueError(f"action_type must be one of {ACTION_TYPES}, got {action_type!r}")
        check_action_repeat(action_repeat)
        if max_episode_steps is not None and max_episode_steps < 1:
            raise ValueError(f"max_episode_steps must be >= 1 or None, got {max_episode_steps}")
        check_render_mode(render_mode)
        self.make_sim = make_sim
        self.height, self.width = size_pair(size)
        self.action_type = action_type
        self.action_repeat = action_repeat
        self.max_episode_steps = max_episode_steps
        self.dense_reward = dense_reward
        self.before_reset = before_reset
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (self.height, self.width, 3), np.uint8)
        self.action_space: spaces.Space = (
            spaces.Discrete(len(DISCRETE_ACTIONS))
            if action_type == "discrete"
            else spaces.MultiDiscrete(HARMONY_ACTION_NVEC)
        )
        self._first_seed = seed
        self.sim: Any = None
        self.world_seed: int | None = None
        self._resets_on_sim = 0
        self._elapsed = 0
        self._frame: np.ndarray | None = None

    def to_minedojo(self, action: Any) -> np.ndarray:
        """MineDojo's 8-vector for an action of this env's :attr:`action_space`."""
        if self.action_type == "discrete":
            return discrete_to_minedojo(action)
        return harmony_to_minedojo(action)

    def _observation(self, obs: dict[str, Any]) -> np.ndarray:
        self._frame = rgb_to_image(obs["rgb"], (self.height, self.width))
        return self._frame

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; a ``seed`` other than the running world's restarts the simulator with it."""
        if seed is None:
            seed = self._first_seed  # the constructor's seed, used once
        self._first_seed = None
        super().reset(seed=seed)
        if self.sim is None or (seed is not None and seed != self.world_seed):
            self.close()
            self.world_seed = int(seed) if seed is not None else int(self.np_random.integers(2**31 - 1))
            self.sim = self.make_sim(self.world_seed)
        elif self._resets_on_sim > 0 and self.before_reset is not None:
            self.before_reset(getattr(self.sim, "unwrapped", self.sim))
        obs = self.sim.reset()
        self._resets_on_sim += 1
        self._elapsed = 0
        if self.dense_reward is not None:
            self.dense_reward.reset(obs)
        return self._observation(obs), {"world_seed": self.world_seed}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Apply ``action`` for ``action_repeat`` simulator steps and sum the rewards."""
        if self.sim is None:
            raise RuntimeError("Call reset() before step()")
        minedojo_action = self.to_minedojo(action)
        total, done = 0.0, False
        for _ in range(self.action_repeat):
            obs, reward, done, info = self.sim.step(minedojo_action)
            reward = 0.0 if reward is None else float(reward)
            total += self.dense_reward(obs, reward) if self.dense_reward is not None else reward
            if done:
                break
        self._elapsed += 1
        terminated = bool(done)
        limit = self.max_episode_steps
        truncated = not terminated and limit is not None and self._elapsed >= limit
        info = dict(info)
        if "success" not in info:
            info["success"] = bool(getattr(self.sim, "is_successful", False))
        return self._observation(obs), total, terminated, truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Return the current frame ``(H, W, 3)`` (``None`` when ``render_mode`` is ``None``)."""
        return None if self.render_mode is None else self._frame

    def close(self) -> None:
        """Stop the simulator (Minecraft), if it runs."""
        if self.sim is not None:
            self.sim.close()
            self.sim = None
            self._resets_on_sim = 0


def _java_version(java: str) -> str | None:
    """The version ``java -version`` reports (e.g. ``"1.8.0_392"``), or ``None`` when it cannot be read."""
    try:
        result = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r'version "([^"]+)"', result.stderr + result.stdout)
    return match.group(1) if match else None


def missing_minedojo_requirements(minedojo_importable: bool, java_version: str | None) -> list[str]:
    """What to install for MineDojo, given what is there (``java_version=None``: no ``java`` found)."""
    missing = []
    if java_version is None or not java_version.startswith("1.8"):
        found = "no java on PATH" if java_version is None else f"found Java {java_version}"
        missing.append(f"{_JAVA_STEP} ({found})")
    if not minedojo_importable:
        missing.append(_PIP_STEP)
    return missing


def check_minedojo_available() -> None:
    """Raise an error that lists what to install when MineDojo cannot run here.

    Raises:
        ImportError: ``minedojo`` is not importable (the message also names JDK 8 when it is missing).
        RuntimeError: ``minedojo`` imports but no JDK 8 is found.
    """
    import_error: ImportError | None = None
    try:
        importlib.import_module("minedojo")
    except ImportError as exc:
        import_error = exc
    java = shutil.which("java")
    if java is None and os.environ.get("JAVA_HOME"):
        candidate = os.path.join(os.environ["JAVA_HOME"], "bin", "java")
        java = candidate if os.access(candidate, os.X_OK) else None
    java_version = None if java is None else _java_version(java)
    missing = missing_minedojo_requirements(import_error is None, java_version)
    if not missing:
        return
    steps = "\n".join(f"  {i}. {step}" for i, step in enumerate(missing, 1))
    message = f"MineDojo environments cannot run here. Install:\n{steps}\n{_AFTER_INSTALL}"
    if import_error is not None:
        raise ImportError(message) from import_error
    raise RuntimeError(message)


def hunt_cow_cleanup(sim: Any) -> None:
    """Hunt-cow's clean-up before a fast reset: remove every mob and dropped item, clear the inventory
    (the reset gives the sword back), set noon and clear weather (as HarmonyDream does).

    Args:
        sim: The unwrapped MineDojo simulator (``MineDojoSim``).
    """
    for command in ("/kill @e[type=!player]", "/clear", "/kill @e[type=item]"):
        sim.execute_cmd(command)
    sim.set_time(6000)
    sim.set_weather("clear")


def _hunt_cow_make_kwargs(
    image_size: tuple[int, int], world_seed: int, success_reward: float
) -> dict[str, Any]:
    """``minedojo.make`` arguments of HarmonyDream's hunt-cow (from MineCLIP's animal-zoo task)."""
    from minedojo.sim.inventory import InventoryItem

    spawn = int(10 / np.sqrt(2))  # mobs spawn within 10 blocks
    return dict(
        task_id="Combat",
        target_names=["cow"],
        target_quantities=1,
        reward_weights={"cow": success_reward},
        initial_inventory=[InventoryItem(slot=0, name="diamond_sword", variant=None, quantity=1)],
        initial_mobs=["cow", "pig", "sheep"],
        initial_mob_spawn_range_low=(-spawn, 1, -spawn),
        initial_mob_spawn_range_high=(spawn, 1, spawn),
        image_size=image_size,
        world_seed=world_seed,
        seed=world_seed,
        specified_biome="sunflower_plains",
        fast_reset=True,
        fast_reset_random_teleport_range=None,
        use_voxel=True,
        use_lidar=True,
        lidar_rays=[
            (np.deg2rad(pitch), np.deg2rad(yaw), 9999)
            for pitch in np.linspace(0, 30, 3)
            for yaw in np.linspace(-60, 60, 9)
        ],
    )


def make_minedojo(
    task: str = "hunt-cow",
    size: int | tuple[int, int] = 64,
    sim_size: int | tuple[int, int] | None = None,
    action_type: str = "discrete",
    action_repeat: int = 1,
    max_episode_steps: int | None = 500,
    seed: int | None = None,
    success_reward: float = 200.0,
    dense_reward: bool = True,
    headless: bool | None = None,
    render_mode: str | None = "rgb_array",
    **task_kwargs: Any,
) -> MineDojoEnv:
    """Create a MineDojo task as a gymnasium environment (needs MineDojo, JDK 8 and, once, internet).

    Args:
        task: ``"hunt-cow"`` (HarmonyDream's task: ``Combat`` against a cow with a diamond sword among
            cows, pigs and sheep in a sunflower plain, success reward 200, MineCLIP's dense reward with
            attack reward 5 and approach scale 1, 500-step episodes) or any MineDojo task id (e.g.
            ``"harvest_milk"``), made with ``minedojo.make(task_id=task, ...)`` and its own reward.
        size: Observation size, ``int`` or ``(height, width)``; HarmonyDream uses 64.
        sim_size: Size MineDojo renders at (default ``size``); other sizes are resized to ``size``.
        action_type: ``"discrete"`` (:data:`DISCRETE_ACTIONS`) or ``"multi_discrete"`` (HarmonyDream's
            ``MultiDiscrete([3, 3, 4, 5, 3])``).
        action_repeat: Simulator steps per agent step (HarmonyDream: 1).
        max_episode_steps: Episode length in agent steps (a time limit: ``truncated=True``).
        seed: World seed of the first reset without a seed.
        success_reward: Hunt-cow's reward for killing the cow.
        dense_reward: Hunt-cow only: add MineCLIP's dense reward (:class:`HuntDenseReward`).
        headless: Render without a display (sets ``MINEDOJO_HEADLESS=1``); default: when ``DISPLAY`` is unset.
        render_mode: ``"rgb_array"`` or ``None``.
        **task_kwargs: Extra ``minedojo.make`` arguments (override the task's own).

    Raises:
        ImportError: ``minedojo`` is missing (the message says what to install).
        RuntimeError: JDK 8 is missing.
    """
    height, width = size_pair(size)
    sim_h, sim_w = (height, width) if sim_size is None else size_pair(sim_size, "sim_size")
    check_minedojo_available()
    if headless if headless is not None else not os.environ.get("DISPLAY"):
        os.environ["MINEDOJO_HEADLESS"] = "1"
    import minedojo

    hunt_cow = _TASK_ALIASES.get(task) == "hunt_cow"

    def make_sim(world_seed: int) -> Any:
        if hunt_cow:
            kwargs = _hunt_cow_make_kwargs((sim_h, sim_w), world_seed, success_reward)
        else:
            kwargs = dict(task_id=task, image_size=(sim_h, sim_w), world_seed=world_seed, seed=world_seed)
        return minedojo.make(**{**kwargs, **task_kwargs})

    return MineDojoEnv(
        make_sim,
        size=(height, width),
        action_type=action_type,
        action_repeat=action_repeat,
        max_episode_steps=max_episode_steps,
        dense_reward=HuntDenseReward("cow") if hunt_cow and dense_reward else None,
        before_reset=hunt_cow_cleanup if hunt_cow else None,
        seed=seed,
        render_mode=render_mode,
    )


def register() -> None:
    """Register ``sb3wm/minedojo-hunt-cow-v0`` and ``sb3wm/minedojo-v0`` (``task=...``), once."""
    register_ids(  # no TimeLimit: the env truncates itself at max_episode_steps
        [("sb3wm/minedojo-hunt-cow-v0", {"task": "hunt-cow"}), ("sb3wm/minedojo-v0", {})],
        "sb3_worldmodels.envs.minedojo:make_minedojo",
    )
