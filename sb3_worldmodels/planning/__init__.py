"""Visual model-predictive control: CEM and MPPI over action sequences of any video predictor.

A predictor is anything with ``predict(context_frames, actions)`` (see :class:`VideoPredictor`): the Dreamer,
APV and ContextDreamer world models (``model.policy.world_model``) and :class:`~sb3_worldmodels.IVideoGPT`
implement it.
"""

from sb3_worldmodels.planning.base import Planner, VideoPredictor
from sb3_worldmodels.planning.cem import CEMPlanner
from sb3_worldmodels.planning.mppi import MPPIPlanner

__all__ = ["CEMPlanner", "MPPIPlanner", "Planner", "VideoPredictor"]
