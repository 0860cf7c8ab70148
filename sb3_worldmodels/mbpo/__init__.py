"""MBPO: a DrQ-v2 actor-critic trained on real transitions and on rollouts imagined by iVideoGPT."""

from sb3_worldmodels.mbpo.imagination import add_imagined, fill_episode_starts, imagine, sample_segments
from sb3_worldmodels.mbpo.mbpo import MBPO

__all__ = ["MBPO", "add_imagined", "fill_episode_starts", "imagine", "sample_segments"]
