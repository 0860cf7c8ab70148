"""What every clip reader shares: the clip index, frame fitting (crop + resize) and reporting of skipped entries.

A *source* is one video, frame folder or episode file with ``n`` frames. A clip of ``clip_length`` frames taken
every ``stride`` frames spans ``(clip_length - 1) * stride + 1`` frames, so a source holds ``n - span + 1`` clips,
one per start frame. :class:`ClipDataset` numbers the clips of all its sources one after another; sources
shorter than the span are skipped, counted, and named in one warning.
"""

from __future__ import annotations

import abc
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import Dataset

__all__ = ["ClipDataset", "find_files", "fit_frames"]

_CV2_HINT = 'Resizing frames needs OpenCV: pip install "sb3-worldmodels[video]"'
#: how many skipped names one warning lists (all of them are in ``dataset.skipped``)
_NAMED_IN_WARNING = 10


def import_cv2() -> Any:
    """``cv2``, or an ImportError naming the extra that installs it."""
    try:
        import cv2
    except ImportError as exc:
        raise ImportError(_CV2_HINT) from exc
    return cv2


def natural_key(name: str) -> list[Any]:
    """Sort key that orders ``2.jpg`` before ``10.jpg`` (digit runs compare as numbers)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name)]


def find_files(root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], suffixes: tuple[str, ...],
               what: str) -> list[Path]:
    """The files under ``root`` (searched recursively) whose suffix is in ``suffixes``, in natural order.

    :param root: a folder, one file, or a list of files.
    :param suffixes: lower-case suffixes with the dot, e.g. ``(".npz",)``.
    :param what: what the files are, for the error message.
    :raises FileNotFoundError: ``root`` does not exist or holds no such file.
    """
    if isinstance(root, (str, os.PathLike)):
        path = Path(root)
        if not path.exists():
            raise FileNotFoundError(f"{what}: {path} does not exist.")
        if path.is_dir():
            files = [p for p in path.rglob("*") if p.suffix.lower() in suffixes and p.is_file()]
        else:
            files = [path]
    else:
        files = [Path(p) for p in root]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{what}: these files do not exist: {missing[:_NAMED_IN_WARNING]}")
    if not files:
        raise FileNotFoundError(f"{what}: no {'/'.join(suffixes)} files under {root}; pass the folder that holds them.")
    return sorted(files, key=lambda p: natural_key(str(p)))


def fit_frames(frames: np.ndarray, size: int, center_crop: bool = True) -> np.ndarray:
    """Fit uint8 frames ``(T, H, W, 3)`` to ``(T, size, size, 3)``.

    With ``center_crop`` the largest centred square is cut out first, so nothing is stretched; otherwise the whole
    frame is squashed to a square (what ``ffmpeg -vf scale=64:64`` does). Downscaling averages pixels
    (``cv2.INTER_AREA``), upscaling interpolates bilinearly. Frames already ``size x size`` are returned as they are.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"Frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}.")
    height, width = frames.shape[1:3]
    if center_crop and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        frames = frames[:, top : top + side, left : left + side]
    if frames.shape[1:3] == (size, size):
        return np.ascontiguousarray(frames)
    cv2 = import_cv2()
    interpolation = cv2.INTER_AREA if min(frames.shape[1:3]) >= size else cv2.INTER_LINEAR
    return np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=interpolation) for f in frames])


class ClipDataset(Dataset, abc.ABC):
    """Base of the clip readers: a map-style dataset of fixed-length clips over sources of varying length.

    Subclasses list their sources, call :meth:`_build_index` with each one's frame count, and implement
    :meth:`_read`. Items are dicts of numpy arrays: ``"image"`` uint8 ``(clip_length, size, size, 3)`` and whatever
    per-frame arrays the source has (:attr:`keys`); the default ``DataLoader`` collate turns them into tensors
    with a leading batch dimension.

    :param clip_length: frames per clip.
    :param stride: take every ``stride``-th frame.
    :param size: side of the square output frames.
    :param center_crop: crop the centred square before resizing (``False``: squash the whole frame).
    """

    #: the keys of every item
    keys: tuple[str, ...] = ("image",)

    def __init__(self, clip_length: int, stride: int = 1, size: int = 64, center_crop: bool = True) -> None:
        for name, value in (("clip_length", clip_length), ("stride", stride), ("size", size)):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}.")
        self.clip_length, self.stride, self.size = int(clip_length), int(stride), int(size)
        self.center_crop = center_crop
        self.sources: list[str] = []
        self.lengths = np.zeros(0, dtype=np.int64)
        #: ``(source, reason)`` of every source left out (too short, missing, unreadable)
        self.skipped: list[tuple[str, str]] = []
        self._first_clip = np.zeros(1, dtype=np.int64)

    @property
    def span(self) -> int:
        """Frames one clip covers in its source: ``(clip_length - 1) * stride + 1``."""
        return (self.clip_length - 1) * self.stride + 1

    def _build_index(self, sources: Sequence[str], lengths: Sequence[int], what: str) -> None:
        """Index the clips of ``sources``; those shorter than :attr:`span` join :attr:`skipped`.

        Warns once, naming the skipped sources; raises ``ValueError`` when no clip is left.
        """
        keep = [(s, int(n)) for s, n in zip(sources, lengths) if int(n) >= self.span]
        self.skipped += [(s, f"{int(n)} frames < {self.span} needed") for s, n in zip(sources, lengths)
                         if int(n) < self.span]
        total = len(keep) + len(self.skipped)
        self.sources = [s for s, _ in keep]
        self.lengths = np.array([n for _, n in keep], dtype=np.int64)
        self._first_clip = np.concatenate([[0], np.cumsum(self.lengths - self.span + 1)])
        hint = (f"clip_length={self.clip_length} x stride={self.stride} needs {self.span} frames per {what}")
        if self.skipped:
            named = "; ".join(f"{s} ({why})" for s, why in self.skipped[:_NAMED_IN_WARNING])
            more = f" and {len(self.skipped) - _NAMED_IN_WARNING} more" if len(self.skipped) > _NAMED_IN_WARNING else ""
            warnings.warn(f"{type(self).__name__}: skipped {len(self.skipped)} of {total} {what}s "
                          f"({hint}): {named}{more}. All are listed in `.skipped`.", stacklevel=3)
        if not self.sources:
            raise ValueError(f"{type(self).__name__}: no clip left: all {total} {what}s were skipped ({hint}). "
                             "Use shorter clips, a smaller stride, or check the paths.")

    def __len__(self) -> int:
        return int(self._first_clip[-1])

    def locate(self, index: int) -> tuple[int, np.ndarray]:
        """Source number and frame numbers of clip ``index`` (negative indices count from the end)."""
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"clip index {index} out of range for {n} clips")
        index %= n
        source = int(np.searchsorted(self._first_clip, index, side="right") - 1)
        start = index - int(self._first_clip[source])
        return source, start + self.stride * np.arange(self.clip_length)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        source, frames = self.locate(index)
        item = self._read(source, frames)
        item["image"] = fit_frames(item["image"], self.size, self.center_crop)
        if len(item["image"]) != self.clip_length:  # a reader bug, never a silent short clip
            raise RuntimeError(f"{self.sources[source]}: read {len(item['image'])} frames, "
                               f"expected {self.clip_length}.")
        return item

    @abc.abstractmethod
    def _read(self, source: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        """Read ``frames`` (ascending frame numbers) of source number ``source``; ``"image"`` may be any size."""

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.sources)} sources, {len(self)} clips of {self.clip_length} "
                f"frames, stride {self.stride}, {self.size}x{self.size}, {len(self.skipped)} skipped)")
