"""Human-normalised scores for the Atari100k benchmark.

``(score - random) / (human - random)``: 0 is a uniformly random agent, 1 a professional human tester.
The random and human scores are the standard table of Mnih et al. (2015) / Badia et al. (2020), taken
with no-op starts and the 108,000-frame cap, as used by SPR, IRIS, DreamerV3 and HarmonyDream
(DeepMind's ``dqn_zoo/atari_data.py`` holds the same values for all 57 games).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from sb3_worldmodels.envs.atari import normalize_game_name

__all__ = ["ATARI100K_SCORES", "HumanNormalizedScores", "aggregate_human_normalized",
           "human_normalized_score"]  # fmt: skip

#: ``game: (random score, human score)`` for the 26 Atari100k games (ale-py ROM ids).
ATARI100K_SCORES: dict[str, tuple[float, float]] = {
    "alien": (227.8, 7127.7),
    "amidar": (5.8, 1719.5),
    "assault": (222.4, 742.0),
    "asterix": (210.0, 8503.3),
    "bank_heist": (14.2, 753.1),
    "battle_zone": (2360.0, 37187.5),
    "boxing": (0.1, 12.1),
    "breakout": (1.7, 30.5),
    "chopper_command": (811.0, 7387.8),
    "crazy_climber": (10780.5, 35829.4),
    "demon_attack": (152.1, 1971.0),
    "freeway": (0.0, 29.6),
    "frostbite": (65.2, 4334.7),
    "gopher": (257.6, 2412.5),
    "hero": (1027.0, 30826.4),
    "jamesbond": (29.0, 302.8),
    "kangaroo": (52.0, 3035.0),
    "krull": (1598.0, 2665.5),
    "kung_fu_master": (258.5, 22736.3),
    "ms_pacman": (307.3, 6951.6),
    "pong": (-20.7, 14.6),
    "private_eye": (24.9, 69571.3),
    "qbert": (163.9, 13455.0),
    "road_runner": (11.5, 7845.0),
    "seaquest": (68.4, 42054.7),
    "up_n_down": (533.4, 11693.2),
}


@dataclasses.dataclass(frozen=True)
class HumanNormalizedScores:
    """Aggregate human-normalised scores over Atari100k games.

    Attributes:
        mean: Mean over games of the human-normalised score.
        median: Median over games.
        per_game: ``{ROM id: human-normalised score}``.
    """

    mean: float
    median: float
    per_game: dict[str, float]


def human_normalized_score(game: str, score: float) -> float:
    """Human-normalised score of one Atari100k game.

    Args:
        game: Game name in any common spelling: ``"ms_pacman"``, ``"ms-pacman"``, ``"MsPacman"``, or an
            id: ``"sb3wm/atari100k-ms-pacman-v0"``, ``"ALE/MsPacman-v5"``.
        score: Raw game score (undiscounted episode return, rewards not clipped).

    Returns:
        ``(score - random) / (human - random)``.

    Raises:
        ValueError: Unknown game (the message lists the 26 valid ones).
    """
    random, human = ATARI100K_SCORES[normalize_game_name(game)]
    return (float(score) - random) / (human - random)


def aggregate_human_normalized(scores: Mapping[str, float]) -> HumanNormalizedScores:
    """Mean and median human-normalised score over games, as Atari100k results are reported.

    Args:
        scores: ``{game: raw score}``, e.g. each game's mean evaluation return, in any spelling accepted
            by :func:`human_normalized_score`.

    Returns:
        The mean, the median and the per-game scores (under ale-py ROM ids).

    Raises:
        ValueError: ``scores`` is empty, or names an unknown game or one game twice.
    """
    if not scores:
        raise ValueError("scores is empty: pass {game: raw score} for at least one Atari100k game")
    per_game: dict[str, float] = {}
    for game, score in scores.items():
        key = normalize_game_name(game)
        if key in per_game:
            raise ValueError(f"Game {key!r} is given twice in scores (the last time as {game!r})")
        per_game[key] = human_normalized_score(key, score)
    values = np.fromiter(per_game.values(), dtype=np.float64)
    return HumanNormalizedScores(float(values.mean()), float(np.median(values)), per_game)
