"""Atari100k games for gymnasium with the protocol of the DreamerV3, HarmonyDream, SPR and IRIS papers.

``make_atari100k("pong")`` creates ale-py's ``AtariEnv`` (ROMs bundled with ale-py) without frame skip,
sticky actions or the full action set, capped at 108,000 emulator frames, and preprocesses it with
gymnasium's :class:`~gymnasium.wrappers.AtariPreprocessing` (up to 30 no-op starts, action repeat 4 with a
max over the last two frames, 64x64 RGB frames) through :class:`Atari100kEnv`. ale-py is imported lazily.
"""

from __future__ import annotations

from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing

from sb3_worldmodels.envs.base import check_render_mode, import_or_hint, register_ids, size_pair

__all__ = ["ATARI100K_GAMES", "Atari100kEnv", "atari100k_env_id", "make_atari100k", "normalize_game_name",
           "register"]  # fmt: skip

_INSTALL_HINT = 'ale-py is required for Atari environments: pip install "sb3-worldmodels[atari]"'

#: The 26 games of the Atari100k benchmark (Kaiser et al., 2020), as ale-py ROM ids.
ATARI100K_GAMES: tuple[str, ...] = (
    "alien", "amidar", "assault", "asterix", "bank_heist", "battle_zone", "boxing", "breakout",
    "chopper_command", "crazy_climber", "demon_attack", "freeway", "frostbite", "gopher", "hero",
    "jamesbond", "kangaroo", "krull", "kung_fu_master", "ms_pacman", "pong", "private_eye", "qbert",
    "road_runner", "seaquest", "up_n_down",
)  # fmt: skip


def normalize_game_name(game: str) -> str:
    """ROM id of an Atari100k game from any common spelling.

    Args:
        game: ``"ms_pacman"``, ``"ms-pacman"``, ``"MsPacman"``, or an id: ``"sb3wm/atari100k-ms-pacman-v0"``,
            ``"ALE/MsPacman-v5"``.

    Returns:
        The ale-py ROM id, e.g. ``"ms_pacman"``.

    Raises:
        ValueError: The game is not one of the 26 Atari100k games (the message lists them).
    """
    name = game
    for prefix in ("sb3wm/atari100k-", "ALE/"):
        if name.startswith(prefix):
            name = name.removeprefix(prefix).rsplit("-v", 1)[0]
    key = name.replace("-", "").replace("_", "").lower()
    by_key = {g.replace("_", ""): g for g in ATARI100K_GAMES}
    if key not in by_key:
        raise ValueError(f"Unknown Atari100k game {game!r}; valid games: {list(ATARI100K_GAMES)}")
    return by_key[key]


class Atari100kEnv(AtariPreprocessing):
    """gymnasium's ``AtariPreprocessing`` that ends episodes on their real last frame.

    * When the episode ends inside the frame skip (game over, life loss with ``terminal_on_life_loss``,
      or the frame cap), ``AtariPreprocessing`` returns a stale pooled frame from the previous step; here
      the last observation is the screen the episode really ended on.
    * Grayscale observations keep a channel axis ``(size, size, 1)``, as CNN policies expect.

    ``render()`` returns the current observation as an RGB ``(size, size, 3)`` frame (what the agent
    sees), or ``None`` when ``render_mode`` is ``None``.
    """

    def __init__(
        self,
        env: gym.Env,
        noop_max: int = 30,
        frame_skip: int = 4,
        screen_size: int | tuple[int, int] = 64,
        terminal_on_life_loss: bool = False,
        grayscale_obs: bool = False,
        render_mode: str | None = "rgb_array",
    ) -> None:
        """Wrap ``env``, an ale-py ``AtariEnv`` created with ``frameskip=1``.

        Args:
            env: The Atari environment (RGB observations, no frame skip of its own).
            noop_max: At most this many no-op actions at reset (a uniform number from 1 to ``noop_max``).
            frame_skip: Emulator frames per agent step; the observation is the max of the last two.
            screen_size: Frame size, ``int`` for square or ``(height, width)``.
            terminal_on_life_loss: End the episode (``terminated=True``) when a life is lost.
            grayscale_obs: Grayscale ``(H, W, 1)`` observations instead of RGB ``(H, W, 3)``.
            render_mode: ``"rgb_array"`` or ``None``.
        """
        check_render_mode(render_mode)
        # AtariPreprocessing's screen_size is (width, height) for cv2.resize; ours is (height, width).
        height, width = size_pair(screen_size, "screen_size")
        super().__init__(
            env, noop_max=noop_max, frame_skip=frame_skip, screen_size=(width, height),
            terminal_on_life_loss=terminal_on_life_loss, grayscale_obs=grayscale_obs,
            grayscale_newaxis=True,
        )  # fmt: skip
        self._render_mode = render_mode
        self.metadata = {"render_modes": ["rgb_array"], "render_fps": round(60 / frame_skip)}
        self._obs: np.ndarray | None = None

    @property
    def render_mode(self) -> str | None:  # type: ignore[override]
        """``"rgb_array"`` or ``None``."""
        return self._render_mode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset the game (``seed`` seeds ALE and the number of no-ops) and take the no-op start."""
        self._obs, info = super().reset(seed=seed, options=options)
        return self._obs, info

    def step(self, action: int) -> tuple[np.ndarray, SupportsFloat, bool, bool, dict[str, Any]]:
        """Repeat ``action`` for ``frame_skip`` frames, sum the rewards, max-pool the last two frames."""
        obs, reward, terminated, truncated, info = super().step(action)
        if terminated or truncated:  # the loop above stopped before reading the final screen
            self._read_screen(self.obs_buffer[0])
            self.obs_buffer[1].fill(0)
            obs = self._get_obs()
        self._obs = obs
        return obs, reward, terminated, truncated, info

    def _read_screen(self, out: np.ndarray) -> None:
        if self.grayscale_obs:
            self.ale.getScreenGrayscale(out)
        else:
            self.ale.getScreenRGB(out)

    def render(self) -> np.ndarray | None:  # type: ignore[override]
        """Return the current observation as an RGB frame (``None`` when ``render_mode`` is ``None``)."""
        if self._render_mode is None or self._obs is None:
            return None
        return np.repeat(self._obs, 3, axis=-1) if self.grayscale_obs else self._obs


def make_atari100k(
    game: str,
    size: int | tuple[int, int] = 64,
    grayscale: bool = False,
    frame_skip: int = 4,
    noop_max: int = 30,
    terminal_on_life_loss: bool = False,
    max_frames: int = 108_000,
    repeat_action_probability: float = 0.0,
    full_action_space: bool = False,
    seed: int | None = None,
    render_mode: str | None = "rgb_array",
) -> gym.Env:
    """Create an Atari100k game with the papers' protocol as a gymnasium environment.

    Args:
        game: One of the 26 Atari100k games, e.g. ``"pong"``, ``"ms_pacman"`` or ``"ms-pacman"``.
        size: Frame size, ``int`` for square or ``(height, width)``.
        grayscale: Grayscale ``(H, W, 1)`` frames instead of RGB ``(H, W, 3)``.
        frame_skip: Emulator frames per agent step (action repeat); observations max-pool the last two.
        noop_max: At most this many no-op actions at reset (0 turns no-op starts off).
        terminal_on_life_loss: End episodes when a life is lost (off in DreamerV3's protocol).
        max_frames: Episode cap in emulator frames (108,000 = 30 minutes = 27,000 agent steps);
            reaching it gives ``truncated=True``.
        repeat_action_probability: Sticky-action probability (0: deterministic, as in Atari100k).
        full_action_space: Use all 18 actions instead of the game's minimal set.
        seed: Seed of the emulator and the no-op starts (``reset(seed=...)`` re-seeds them).
        render_mode: ``"rgb_array"`` (default) or ``None``.

    Returns:
        An :class:`Atari100kEnv`.

    Raises:
        ValueError: Unknown game (the message lists the valid ones).
        ImportError: ale-py or OpenCV is not installed.
    """
    rom = normalize_game_name(game)
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    size = size_pair(size)
    ale = import_or_hint("ale_py.env", _INSTALL_HINT)
    # AtariPreprocessing resizes with OpenCV
    import_or_hint("cv2", "OpenCV is required to resize Atari frames: pip install opencv-python-headless")
    ale_env = ale.AtariEnv(
        game=rom, obs_type="rgb", frameskip=1, repeat_action_probability=repeat_action_probability,
        full_action_space=full_action_space, max_num_frames_per_episode=max_frames,
    )  # fmt: skip
    env = Atari100kEnv(ale_env, noop_max, frame_skip, size, terminal_on_life_loss, grayscale, render_mode)
    if seed is not None:
        env.reset(seed=seed)  # seeds ALE and the no-op generator; the next reset(seed=None) continues them
    return env


def atari100k_env_id(game: str) -> str:
    """Gymnasium id of an Atari100k game: ``"ms_pacman"`` -> ``"sb3wm/atari100k-ms-pacman-v0"``."""
    return f"sb3wm/atari100k-{normalize_game_name(game).replace('_', '-')}-v0"


def register() -> None:
    """Register ``sb3wm/atari100k-{game}-v0`` for the 26 Atari100k games (re-running is a no-op)."""
    register_ids(  # no TimeLimit: ALE truncates at max_frames emulator frames
        ((atari100k_env_id(game), {"game": game}) for game in ATARI100K_GAMES),
        "sb3_worldmodels.envs.atari:make_atari100k",
    )
