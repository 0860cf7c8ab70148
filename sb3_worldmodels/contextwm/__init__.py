"""APV and ContextWM: in-the-wild video pre-training of world models, fine-tuned with model-based RL."""

from sb3_worldmodels.contextwm.apv import APV, ContextDreamer
from sb3_worldmodels.contextwm.bonus import VideoIntrinsicBonus
from sb3_worldmodels.contextwm.config import ContextWMConfig, make_contextwm_config
from sb3_worldmodels.contextwm.context import (
    ContextEncoder,
    CrossAttentionBlock,
    augment_context,
    random_erasing,
    select_context,
)
from sb3_worldmodels.contextwm.policies import APVPolicy
from sb3_worldmodels.contextwm.world_model import StackedWorldModel, VideoWorldModel

__all__ = [
    "APV",
    "APVPolicy",
    "ContextDreamer",
    "ContextEncoder",
    "ContextWMConfig",
    "CrossAttentionBlock",
    "StackedWorldModel",
    "VideoIntrinsicBonus",
    "VideoWorldModel",
    "augment_context",
    "make_contextwm_config",
    "random_erasing",
    "select_context",
]
