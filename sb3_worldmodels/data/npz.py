"""One ``.npz`` file per episode: the format the recorder writes and :class:`NpzEpisodeDataset` reads.

An episode of ``T`` frames holds one row per frame, as in Dreamer's replay and
:class:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer`:

====================  ===========================  ==========================================================
key                   array                        row ``t``
====================  ===========================  ==========================================================
``image``             uint8 ``(T, H, W, 3)``        the frame (``(T, 3, H, W)`` is read too)
``action``            float32 ``(T, action_dim)``   the action that led to frame ``t`` (zeros where ``is_first``)
``reward``            float32 ``(T,)``              the reward received with frame ``t`` (0 where ``is_first``)
``is_first``          bool ``(T,)``                 frame ``t`` comes from ``reset``
``is_terminal``       bool ``(T,)``                 the episode terminated at frame ``t`` (not a time limit)
====================  ===========================  ==========================================================

Discrete actions are stored as their index in a trailing dimension of size 1. Only ``image`` is required; other
datasets (Open X-Embodiment exports, BAIR's ``aux1_image``, RoboNet) are read by naming their keys.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

import numpy as np

from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.data.clips import ClipDataset, find_files

__all__ = ["EPISODE_KEYS", "NpzEpisodeDataset", "write_episode"]

#: the keys of a recorded episode, in the order written
EPISODE_KEYS: tuple[str, ...] = ("image", "action", "reward", "is_first", "is_terminal")
_DTYPES = {"action": np.float32, "reward": np.float32, "is_first": bool, "is_terminal": bool}


def write_episode(path: str | os.PathLike[str], episode: Mapping[str, np.ndarray]) -> Path:
    """Write one episode as a compressed ``.npz``, atomically (a reader never sees a half-written file).

    :param path: target file (``.npz``).
    :param episode: ``image`` uint8 ``(T, H, W, 3)`` and any of ``action``, ``reward``, ``is_first``,
        ``is_terminal`` with ``T`` rows each (cast to the dtypes of the format).
    :return: ``path``.
    """
    path = Path(path)
    image = np.asarray(episode["image"])
    if image.ndim != 4 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"episode['image'] must be uint8 (T, H, W, 3), got {image.dtype} {image.shape}.")
    arrays = {"image": image}
    for key, value in episode.items():
        if key != "image":
            arrays[key] = np.asarray(value, dtype=_DTYPES.get(key))
            if len(arrays[key]) != len(image):
                raise ValueError(f"episode[{key!r}] has {len(arrays[key])} rows but image has {len(image)}.")
    with atomic_path(path) as tmp:
        np.savez_compressed(tmp, **arrays)
    return path


def _read_header(f: IO[bytes]) -> tuple[tuple[int, ...], bool, np.dtype]:
    """Shape, Fortran order and dtype from the header of an ``.npy`` stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(f)
    read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = read(f)
    return tuple(shape), fortran_order, dtype


def _array_shapes(path: str | os.PathLike[str]) -> dict[str, tuple[int, ...]]:
    """The shape of every array of an ``.npz``, read from the array headers alone (no array is decompressed)."""
    with zipfile.ZipFile(path) as archive:
        shapes = {}
        for name in archive.namelist():
            if name.endswith(".npy"):
                with archive.open(name) as f:
                    shapes[name[: -len(".npy")]] = _read_header(f)[0]
    return shapes


def _read_rows(archive: zipfile.ZipFile, key: str, rows: np.ndarray) -> np.ndarray:
    """``rows`` (ascending) of array ``key``, reading only from the first to the last of them.

    Stored (uncompressed) members are read at the rows' offset; compressed ones are decompressed up to the last row
    only, not to the end of the episode.
    """
    with archive.open(f"{key}.npy") as f:
        shape, fortran_order, dtype = _read_header(f)
        if fortran_order or dtype.hasobject or not shape:
            f.seek(0)
            return np.lib.format.read_array(f)[rows]
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        first, stop = int(rows[0]), int(rows[-1]) + 1
        f.seek(f.tell() + first * row_bytes)
        block = np.frombuffer(f.read((stop - first) * row_bytes), dtype=dtype).reshape(stop - first, *shape[1:])
    return block[rows - first]


class NpzEpisodeDataset(ClipDataset):
    """Clips from one ``.npz`` per episode (every ``*.npz`` under ``root``, searched recursively).

    Items hold ``"image"`` uint8 ``(clip_length, size, size, 3)`` plus, when every episode has them, ``"action"``
    float32 ``(clip_length, action_dim)``, ``"reward"`` float32 ``(clip_length,)``, ``"is_first"`` and
    ``"is_terminal"`` bool ``(clip_length,)`` (:attr:`keys` lists them). With ``stride > 1`` actions and rewards are
    left out: the rows between two kept frames would be lost, so frame-skipped clips are action-free. Clips never
    cross episodes. Episodes shorter than a clip and unreadable files are skipped with a warning naming them (see
    ``.skipped``); a file without ``image_key``, or with per-frame arrays of the wrong length, raises an error.

    :param root: a folder, one ``.npz`` file, or a list of them.
    :param image_key: key of the frames, e.g. ``"aux1_image"`` for BAIR.
    :param clip_length: frames per clip.
    :param stride: take every ``stride``-th frame.
    :param size: side of the square output frames.
    :param center_crop: crop the centred square before resizing (``False``: squash the whole frame).
    :param action_key: key of the actions (``None``: ignore actions).
    :param reward_key: key of the rewards (``None``: ignore rewards).
    """

    def __init__(self, root: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], image_key: str = "image",
                 clip_length: int = 16, stride: int = 1, size: int = 64, center_crop: bool = True,
                 action_key: str | None = "action", reward_key: str | None = "reward") -> None:
        super().__init__(clip_length, stride, size, center_crop)
        self.image_key = image_key
        # item key -> key in the files
        wanted = {"action": action_key, "reward": reward_key, "is_first": "is_first", "is_terminal": "is_terminal"}
        if stride > 1:
            wanted = {k: v for k, v in wanted.items() if k not in ("action", "reward")}
        wanted = {k: v for k, v in wanted.items() if v is not None}
        sources, lengths, present = [], [], {k: 0 for k in wanted}
        for path in find_files(root, (".npz",), "NpzEpisodeDataset"):
            try:
                shapes = _array_shapes(path)
            except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:  # truncated download, not an npz
                self.skipped.append((str(path), f"unreadable: {type(exc).__name__}: {exc}"))
                continue
            if image_key not in shapes:
                raise KeyError(f"{path} has no key {image_key!r} (its keys: {sorted(shapes)}); pass image_key=.")
            shape = shapes[image_key]
            if len(shape) != 4 or 3 not in (shape[1], shape[3]):
                raise ValueError(f"{path}: {image_key!r} has shape {shape}; expected (T, H, W, 3) or (T, 3, H, W).")
            for item_key, file_key in wanted.items():
                if file_key in shapes:
                    if shapes[file_key][:1] != shape[:1]:
                        raise ValueError(
                            f"{path}: {file_key!r} has shape {shapes[file_key]} but {image_key!r} has {shape[0]} "
                            "rows; the format stores one row per frame (see sb3_worldmodels.data.npz). Re-export, "
                            f"or pass {item_key}_key=None to ignore it.")
                    present[item_key] += 1
            sources.append(str(path))
            lengths.append(shape[0])
        partial = [k for k, n in present.items() if 0 < n < len(sources)]
        if partial:
            warnings.warn(f"NpzEpisodeDataset: {partial} are missing from some episodes under {root}; they are left "
                          "out of every item.", stacklevel=2)
        self._file_keys = {k: v for k, v in wanted.items() if present[k] == len(sources) and sources}
        self.keys = ("image", *self._file_keys)
        self._build_index(sources, lengths, "episode")

    def _read(self, source: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        with zipfile.ZipFile(self.sources[source]) as archive:
            image = _read_rows(archive, self.image_key, frames)
            if image.shape[-1] != 3:  # (T, 3, H, W)
                image = image.transpose(0, 2, 3, 1)
            if image.dtype != np.uint8:
                raise ValueError(f"{self.sources[source]}: {self.image_key!r} is {image.dtype}; expected uint8 0-255.")
            item = {"image": image}
            for item_key, file_key in self._file_keys.items():
                value = np.asarray(_read_rows(archive, file_key, frames), dtype=_DTYPES[item_key])
                item[item_key] = value.reshape(len(frames), -1) if item_key == "action" else value
        return item
