"""Video files (mp4, webm, mkv, avi, mov) decoded with PyAV, seeking to each clip instead of decoding from the start."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from sb3_worldmodels.data.clips import ClipDataset, find_files, fit_frames

__all__ = ["VIDEO_SUFFIXES", "VideoFileDataset", "count_frames"]

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".webm", ".mkv", ".avi", ".mov")
_AV_HINT = 'Reading video files needs PyAV: pip install "sb3-worldmodels[video]"'


def _av() -> Any:
    try:
        import av
    except ImportError as exc:
        raise ImportError(_AV_HINT) from exc
    return av


def count_frames(path: str | os.PathLike[str]) -> int:
    """Frames of the first video stream: the container's count when it has one (mp4), else its packets (webm)."""
    with _av().open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path} has no video stream.")
        stream = container.streams.video[0]
        if stream.frames > 0:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)


class VideoFileDataset(ClipDataset):
    """Clips from video files (every ``.mp4``/``.webm``/``.mkv``/``.avi``/``.mov`` under ``root``, recursively).

    The index counts each file's frames once (container metadata, or its packets when the container has no count,
    as webm). Reading a clip seeks to the key frame before it and decodes only up to its last frame; frame numbers
    come from the frames' timestamps at the stream's average rate. Frames are cropped to the centred square
    (``center_crop=False``: squashed) and resized to ``size x size``. Files that cannot be opened are skipped with a
    warning naming them (see ``.skipped``), as are videos shorter than a clip; a video that decodes fewer frames
    than its header promised raises an error naming it.

    Items: ``{"image": uint8 (clip_length, size, size, 3)}``.

    :param root: a folder, one video file, or a list of them.
    :param clip_length: frames per clip.
    :param stride: take every ``stride``-th frame.
    :param size: side of the square output frames.
    :param center_crop: crop the centred square before resizing (``False``: squash the whole frame).
    """

    def __init__(self, root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], clip_length: int,
                 stride: int = 1, size: int = 64, center_crop: bool = True) -> None:
        super().__init__(clip_length, stride, size, center_crop)
        av = _av()
        sources, lengths = [], []
        for path in find_files(root, VIDEO_SUFFIXES, "VideoFileDataset"):
            try:
                lengths.append(count_frames(path))
            except (av.error.FFmpegError, ValueError) as exc:
                self.skipped.append((str(path), f"unreadable: {type(exc).__name__}: {exc}"))
                continue
            sources.append(str(path))
        self._build_index(sources, lengths, "video")

    def _read(self, source: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        path = self.sources[source]
        av = _av()
        try:
            images = self._decode(path, frames, seek=True)
            if images is None or len(images) < len(frames):  # odd timestamps (variable rate): count from the start
                images = self._decode(path, frames, seek=False)
        except av.error.FFmpegError as exc:
            raise RuntimeError(f"Decoding {path} failed ({exc}); re-encode it or move it out of the dataset.") from exc
        assert images is not None
        missing = [int(i) for i in frames if int(i) not in images]
        if missing:
            raise RuntimeError(f"{path} decoded no frame {missing[0]} although its header counts "
                               f"{self.lengths[source]} frames; re-encode it (e.g. ffmpeg -i in -c:v libx264 out.mp4).")
        return {"image": np.stack([images[int(i)] for i in frames])}

    def _decode(self, path: str, frames: np.ndarray, seek: bool) -> dict[int, np.ndarray] | None:
        """Frames ``frames`` of ``path`` as ``{number: fitted frame}``.

        With ``seek``, jump to the key frame before the first wanted frame and number frames by timestamp; returns
        ``None`` when timestamps are missing or the jump overshot. Without, decode from the start and count.
        """
        wanted, first, last = {int(i) for i in frames}, int(frames[0]), int(frames[-1])
        images: dict[int, np.ndarray] = {}
        with _av().open(path) as container:
            stream = container.streams.video[0]
            rate, time_base, origin = stream.average_rate, stream.time_base, stream.start_time or 0
            if not rate or time_base is None:
                seek = False
            if seek and first > 0:
                container.seek(origin + int(first / rate / time_base), stream=stream, backward=True)
            for count, frame in enumerate(container.decode(stream)):
                number = count
                if seek:
                    if frame.pts is None:
                        return None
                    number = round(float((frame.pts - origin) * time_base * rate))
                    if count == 0 and number > first:
                        return None
                if number in wanted:
                    images[number] = fit_frames(frame.to_ndarray(format="rgb24")[None], self.size, self.center_crop)[0]
                if number >= last:
                    break
        return images
