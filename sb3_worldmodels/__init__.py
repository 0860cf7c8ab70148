"""sb3-worldmodels: world-model reinforcement learning as Stable-Baselines3 algorithms.

``from sb3_worldmodels import DreamerV3`` and use it like any SB3 algorithm. Importing the package also
registers the gymnasium ids ``sb3wm/...`` (DMC and the other benchmark suites).
"""

from sb3_worldmodels import envs as _envs  # noqa: F401  (registers the gymnasium ids)
from sb3_worldmodels.common.buffers import SequenceReplayBuffer
from sb3_worldmodels.common.harmony import Harmonizer
from sb3_worldmodels.contextwm import APV, ContextDreamer
from sb3_worldmodels.dreamer import DreamerHarmony, DreamerV2, DreamerV3
from sb3_worldmodels.drqv2 import DrQv2
from sb3_worldmodels.ivideogpt import IVideoGPT
from sb3_worldmodels.mbpo import MBPO
from sb3_worldmodels.planning import CEMPlanner, MPPIPlanner

__version__ = "0.1.0"

__all__ = [
    "APV",
    "CEMPlanner",
    "ContextDreamer",
    "DreamerV3",
    "DreamerV2",
    "DreamerHarmony",
    "DrQv2",
    "Harmonizer",
    "IVideoGPT",
    "MBPO",
    "MPPIPlanner",
    "SequenceReplayBuffer",
    "__version__",
]
