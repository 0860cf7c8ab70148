"""Crafter (Hafner, 2021) as a gymnasium environment, and the benchmark's achievement metrics.

``sb3wm/crafter-v0`` wraps ``crafter.Env`` (crafter 1.8 keeps the old gym API: a 4-tuple ``step``, its own
spaces, ``reset()`` without a seed) in :class:`CrafterEnv`, a real :class:`gymnasium.Env`. The benchmark
scores an agent by the percentage of episodes in which each of the 22 achievements is unlocked
(:func:`achievement_success_rates`) and by their geometric mean, the Crafter score (:func:`crafter_score`).
crafter itself is imported only when an env is made.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from sb3_worldmodels.envs.base import check_render_mode, import_or_hint, register_ids, size_pair

__all__ = [
    "CRAFTER_ACHIEVEMENTS",
    "CRAFTER_ACTIONS",
    "CRAFTER_ENV_ID",
    "CrafterEnv",
    "achievement_success_rates",
    "crafter_score",
    "episode_achievements",
    "register",
]

CRAFTER_ENV_ID = "sb3wm/crafter-v0"
_INSTALL_HINT = 'crafter is required for the Crafter environment: pip install "sb3-worldmodels[crafter]"'

#: ``crafter.constants.actions`` of crafter 1.8.3, hardcoded to keep imports fast (the tests compare them).
CRAFTER_ACTIONS: tuple[str, ...] = (
    "noop", "move_left", "move_right", "move_up", "move_down", "do", "sleep",
    "place_stone", "place_table", "place_furnace", "place_plant",
    "make_wood_pickaxe", "make_stone_pickaxe", "make_iron_pickaxe",
    "make_wood_sword", "make_stone_sword", "make_iron_sword",
)  # fmt: skip

#: ``crafter.constants.achievements`` of crafter 1.8.3: the 22 achievements the Crafter score averages over.
CRAFTER_ACHIEVEMENTS: tuple[str, ...] = (
    "collect_coal", "collect_diamond", "collect_drink", "collect_iron", "collect_sapling",
    "collect_stone", "collect_wood", "defeat_skeleton", "defeat_zombie", "eat_cow", "eat_plant",
    "make_iron_pickaxe", "make_iron_sword", "make_stone_pickaxe", "make_stone_sword",
    "make_wood_pickaxe", "make_wood_sword", "place_furnace", "place_plant", "place_stone",
    "place_table", "wake_up",
)  # fmt: skip


class _InsertionOrderedSet(dict):
    """The two set operations crafter's ``World`` uses on a chunk's objects, iterated in insertion order."""

    def add(self, obj: Any) -> None:
        self[obj] = None

    def remove(self, obj: Any) -> None:
        del self[obj]


def _order_chunks(world: Any) -> None:
    """Make the objects of each chunk of a crafter ``World`` iterate in insertion order after every reset.

    crafter keeps them in ``set``s, which iterate in the order of the objects' ``id()``, and despawns the
    creature at a random index of that order: the same seed then gives other worlds from one env instance
    (or process) to the next. Insertion order depends on the seed and the actions alone.
    """
    reset = world.reset

    def ordered_reset(seed: int | None = None) -> None:
        reset(seed)
        world._chunks = collections.defaultdict(_InsertionOrderedSet)

    world.reset = ordered_reset
    world._chunks = collections.defaultdict(_InsertionOrderedSet)


class CrafterEnv(gym.Env[np.ndarray, np.int64]):
    """Gymnasium view of ``crafter.Env``: uint8 ``(H, W, 3)`` frames and ``Discrete(17)`` actions.

    * ``reset(seed=s)`` re-seeds the world: the same seed gives the same world, frames and, under the same
      actions, the same trajectory. The world of every episode is drawn from the env's ``np_random``, so
      the episodes after a seeded reset are reproducible too. (crafter alone is not: it picks creatures to
      despawn in an order that depends on memory addresses; the adapter makes that order deterministic.)
    * Death ends an episode with ``terminated=True``; Crafter's episode length (10000 steps) is a time
      limit and ends it with ``truncated=True``.
    * ``info`` is crafter's: ``"achievements"`` counts how often each of the 22 achievements was
      unlocked in this episode (``> 0`` means unlocked), plus ``"inventory"``, ``"discount"``
      (0 at death), ``"semantic"``, ``"player_pos"`` and ``"reward"`` (the reward even when
      ``reward=False``).

    Args:
        size: Frame size, an ``int`` for square frames or ``(height, width)``.
        reward: Crafter's reward (+1 per achievement unlocked for the first time in the episode,
            +-0.1 per health point gained or lost); ``False`` gives reward 0 (``info["reward"]`` keeps it).
        length: Episode length in steps (a time limit, ``truncated=True``); ``None`` for no limit.
        area: World size in cells.
        view: Cells seen around the player, ``(width, height)`` as crafter takes it.
        seed: Seed of the first reset when ``reset`` is called without one.
        render_mode: ``"rgb_array"`` (:meth:`render` returns the current frame) or ``None``.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        size: int | tuple[int, int] = 64,
        reward: bool = True,
        length: int | None = 10000,
        area: int | tuple[int, int] = 64,
        view: int | tuple[int, int] = 9,
        seed: int | None = None,
        render_mode: str | None = "rgb_array",
    ) -> None:
        check_render_mode(render_mode)
        if length is not None and (not isinstance(length, (int, np.integer)) or length < 1):
            raise ValueError(f"length must be a positive int (steps per episode) or None, got {length!r}")
        height, width = size_pair(size)
        crafter = import_or_hint("crafter", _INSTALL_HINT)
        # crafter takes the frame size as (width, height): its canvas is transposed on the way out.
        self._env = crafter.Env(
            area=size_pair(area, "area"), view=size_pair(view, "view"), size=(width, height),
            reward=bool(reward), length=length, seed=0,
        )
        _order_chunks(self._env._world)
        self.height, self.width = height, width
        self.render_mode = render_mode
        self.observation_space = spaces.Box(0, 255, (height, width, 3), np.uint8)
        self.action_space = spaces.Discrete(len(CRAFTER_ACTIONS))
        if seed is not None:  # seeds np_random, from which the first reset draws its world
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._frame: np.ndarray | None = None

    @property
    def action_names(self) -> tuple[str, ...]:
        """Name of each action index (:data:`CRAFTER_ACTIONS`)."""
        return CRAFTER_ACTIONS

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start a new episode in a new world; ``seed`` makes the world and what follows reproducible."""
        super().reset(seed=seed)
        # crafter.Env.reset() counts episodes and seeds its world with hash((env._seed, env._episode)), its
        # only way to take a seed: the world of every episode is set there from a draw of np_random.
        self._env._seed, self._env._episode = int(self.np_random.integers(2**31 - 1)), 0
        self._frame = self._env.reset()
        return self._frame, {}

    def step(self, action: int | np.integer) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Take one action; death terminates, the episode length truncates."""
        if not self.action_space.contains(action):
            raise ValueError(
                f"Invalid Crafter action {action!r}: expected an int in [0, {self.action_space.n}) "
                f"(one of {CRAFTER_ACTIONS})"
            )
        if self._frame is None:
            raise RuntimeError("Call reset() before step()")
        self._frame, reward, done, info = self._env.step(int(action))
        info["player_pos"] = np.array(info["player_pos"])  # crafter hands out the player's own array
        terminated = info["discount"] == 0.0  # crafter's discount is 0 exactly when the player died
        truncated = bool(done) and not terminated
        return self._frame, float(reward), bool(terminated), truncated, info

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Return the current frame ``(H, W, 3)`` (``None`` when ``render_mode`` is ``None``)."""
        return None if self.render_mode is None else self._frame


def _unlocked(episode: Mapping[str, Any], index: int) -> set[str]:
    """Names of the achievements unlocked in one episode's achievements mapping (or its final info)."""
    if not isinstance(episode, Mapping):
        raise TypeError(
            f"Episode {index} is a {type(episode).__name__}: pass one mapping per episode, either "
            "{achievement: count} or the episode's final info (which holds it under 'achievements')"
        )
    achievements = episode.get("achievements", episode)
    if not isinstance(achievements, Mapping):
        kind = type(achievements).__name__
        raise TypeError(f"Episode {index}: info['achievements'] must be a mapping, got {kind}")
    unknown = sorted(set(achievements) - set(CRAFTER_ACHIEVEMENTS))
    if unknown:
        raise ValueError(
            f"Episode {index}: unknown achievements {unknown}; valid names: {CRAFTER_ACHIEVEMENTS}. "
            "Pass Crafter's info['achievements'] (or the final info of each episode)."
        )
    unlocked = set()
    for name, count in achievements.items():
        if isinstance(count, (bool, np.bool_)):
            count = int(count)
        if not isinstance(count, (int, float, np.integer, np.floating)) or not count >= 0:
            raise ValueError(f"Episode {index}: {name!r} must be a count >= 0 or a bool, got {count!r}")
        if count > 0:
            unlocked.add(name)
    return unlocked


def achievement_success_rates(episodes: Iterable[Mapping[str, Any]]) -> dict[str, float]:
    """Percentage of episodes in which each of the 22 Crafter achievements was unlocked.

    Args:
        episodes: One mapping per episode: its achievements ``{name: count}`` (counts or bools; a missing
            name counts as not unlocked) or its final ``info`` (Crafter's infos hold the episode's
            counts under ``"achievements"``). :func:`episode_achievements` extracts them from the step
            infos of a run.

    Returns:
        ``{achievement: percent in [0, 100]}`` for all of :data:`CRAFTER_ACHIEVEMENTS`, in that order.

    Raises:
        ValueError: No episodes, an unknown achievement name, or a negative count.
        TypeError: An episode that is not a mapping.
    """
    counts = dict.fromkeys(CRAFTER_ACHIEVEMENTS, 0)
    n_episodes = 0
    for index, episode in enumerate(episodes):
        for name in _unlocked(episode, index):
            counts[name] += 1
        n_episodes += 1
    if n_episodes == 0:
        raise ValueError("No episodes given: the success rates need at least one finished episode")
    return {name: 100.0 * count / n_episodes for name, count in counts.items()}


def crafter_score(success_rates: Mapping[str, float]) -> float:
    """The Crafter score: ``exp(mean_i log(1 + s_i)) - 1`` over the 22 success rates ``s_i`` in percent.

    A geometric mean (offset by 1) that rewards unlocking rare achievements; 0 when nothing is ever
    unlocked, 100 when everything always is.

    Args:
        success_rates: ``{achievement: percent}`` for all 22 achievements, as returned by
            :func:`achievement_success_rates`.

    Returns:
        The score, in ``[0, 100]``.

    Raises:
        ValueError: Missing or unknown achievements, or rates outside ``[0, 100]``.
    """
    missing = [name for name in CRAFTER_ACHIEVEMENTS if name not in success_rates]
    unknown = sorted(set(success_rates) - set(CRAFTER_ACHIEVEMENTS))
    if missing or unknown:
        raise ValueError(
            f"crafter_score needs a success rate for each of the 22 achievements (missing: {missing}, "
            f"unknown: {unknown}); compute them with achievement_success_rates(episodes)"
        )
    rates = np.array([float(success_rates[name]) for name in CRAFTER_ACHIEVEMENTS])
    if not np.all((rates >= 0.0) & (rates <= 100.0)):
        got = dict(zip(CRAFTER_ACHIEVEMENTS, rates.tolist()))
        raise ValueError(f"Success rates are percentages in [0, 100], got {got}")
    return float(np.exp(np.mean(np.log1p(rates))) - 1.0)


def episode_achievements(infos: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The achievements of every finished episode in a stream of step infos.

    SB3's ``Monitor`` (added by ``make_vec_env``) marks the last step of an episode with
    ``info["episode"]``; the achievements of those steps are returned, one dict per episode, ready for
    :func:`achievement_success_rates`.

    Args:
        infos: Step infos in any order, e.g. every ``infos`` list of a ``VecEnv`` concatenated.

    Raises:
        ValueError: No info marks an episode end, or an episode end without ``"achievements"``.
    """
    episodes = []
    for index, info in enumerate(infos):
        if isinstance(info, Mapping) and "episode" in info:
            if "achievements" not in info:
                raise ValueError(f"Info {index} ends an episode but has no 'achievements': not a Crafter env")
            episodes.append(dict(info["achievements"]))
    if not episodes:
        raise ValueError(
            "No info marks the end of an episode (info['episode']): wrap the env in "
            "stable_baselines3.common.monitor.Monitor (make_vec_env does), or pass each episode's final info "
            "to achievement_success_rates directly"
        )
    return episodes


def register() -> None:
    """Register ``sb3wm/crafter-v0`` (re-running is a no-op)."""
    register_ids(  # no TimeLimit: the env truncates itself at Crafter's episode length
        [(CRAFTER_ENV_ID, {})], "sb3_worldmodels.envs.crafter:CrafterEnv"
    )
