"""Dreamer family: DreamerV3, DreamerV2 and DreamerHarmony."""

from sb3_worldmodels.dreamer.dreamer import Dreamer, DreamerHarmony, DreamerV2, DreamerV3
from sb3_worldmodels.dreamer.policies import CnnPolicy, DreamerPolicy, MlpPolicy, MultiInputPolicy

__all__ = [
    "Dreamer",
    "DreamerV3",
    "DreamerV2",
    "DreamerHarmony",
    "DreamerPolicy",
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
]
