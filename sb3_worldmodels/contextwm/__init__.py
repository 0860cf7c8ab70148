"""APV and ContextWM: in-the-wild video pre-training of world models, fine-tuned with model-based RL."""

from sb3_worldmodels.contextwm.bonus import VideoIntrinsicBonus
from sb3_worldmodels.contextwm.context import (
    ContextEncoder,
    CrossAttentionBlock,
    augment_context,
    random_erasing,
    select_context,
)

__all__ = [
    "ContextEncoder",
    "CrossAttentionBlock",
    "VideoIntrinsicBonus",
    "augment_context",
    "random_erasing",
    "select_context",
]
