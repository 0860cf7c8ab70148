"""DrQ-v2: model-free actor-critic from pixels with random-shift augmentation and n-step returns."""

from sb3_worldmodels.drqv2.buffers import NStepFrameStackReplayBuffer, sample_mixed, stacked_space
from sb3_worldmodels.drqv2.drqv2 import DrQv2, LinearStepSchedule, linear_schedule
from sb3_worldmodels.drqv2.official import drqv2_state_from_official, load_official_drqv2
from sb3_worldmodels.drqv2.policies import CnnPolicy, DrQv2Policy, MlpPolicy, MultiInputPolicy

__all__ = [
    "DrQv2",
    "DrQv2Policy",
    "CnnPolicy",
    "MlpPolicy",
    "MultiInputPolicy",
    "NStepFrameStackReplayBuffer",
    "LinearStepSchedule",
    "linear_schedule",
    "sample_mixed",
    "stacked_space",
    "drqv2_state_from_official",
    "load_official_drqv2",
]
