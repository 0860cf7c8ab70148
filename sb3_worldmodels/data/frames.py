"""Folders of extracted frames with a list file, the layout of Something-Something-v2, Human3.6M, YouTube driving."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sb3_worldmodels.data.clips import ClipDataset, fit_frames, import_cv2, natural_key

__all__ = ["FrameFolderDataset", "read_list_file"]

FRAME_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png")


def read_list_file(list_file: str | os.PathLike[str]) -> list[tuple[str, int]]:
    """Parse a list file: one ``path num_frames [label]`` per line; blank lines and ``#`` comments are ignored.

    :return: ``(path, num_frames)`` per entry (labels are not used for pre-training).
    :raises ValueError: a line that does not start with a path and an integer frame count (names the line).
    """
    list_file = Path(list_file)
    if not list_file.is_file():
        raise FileNotFoundError(f"List file {list_file} does not exist.")
    entries = []
    for number, line in enumerate(list_file.read_text().splitlines(), start=1):
        fields = line.split()
        if not fields or fields[0].startswith("#"):
            continue
        if len(fields) < 2 or not fields[1].lstrip("-").isdigit():
            raise ValueError(f"{list_file}:{number}: expected 'path num_frames [label]', got {line!r}.")
        entries.append((fields[0], int(fields[1])))
    if not entries:
        raise ValueError(f"List file {list_file} has no entries; write one 'path num_frames [label]' per line.")
    return entries


class FrameFolderDataset(ClipDataset):
    """Clips from folders of frames (``.jpg``/``.jpeg``/``.png``, in natural order: ``2.jpg`` before ``10.jpg``).

    Every line ``path num_frames [label]`` of ``list_file`` names a folder (relative to ``root``, or absolute) and
    its frame count; the index is built from these counts, without listing the folders. Entries whose folder is
    missing or shorter than a clip are skipped with a warning that names them (see ``.skipped``). A folder that
    holds fewer frames than its line claims, or an unreadable image, raises an error when read.

    Items: ``{"image": uint8 (clip_length, size, size, 3)}``.

    :param root: folder the list file's paths are relative to.
    :param list_file: the list file.
    :param clip_length: frames per clip.
    :param stride: take every ``stride``-th frame.
    :param size: side of the square output frames.
    :param center_crop: crop the centred square before resizing (``False``: squash the whole frame).
    """

    def __init__(self, root: str | os.PathLike[str], list_file: str | os.PathLike[str], clip_length: int,
                 stride: int = 1, size: int = 64, center_crop: bool = True) -> None:
        super().__init__(clip_length, stride, size, center_crop)
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"FrameFolderDataset: root {self.root} is not a folder.")
        sources, lengths = [], []
        for path, num_frames in read_list_file(list_file):
            folder = self.root / path
            if folder.is_dir():
                sources.append(str(folder))
                lengths.append(num_frames)
            else:
                self.skipped.append((str(folder), "folder not found"))
        self._build_index(sources, lengths, "folder")

    def _read(self, source: int, frames: np.ndarray) -> dict[str, np.ndarray]:
        folder = Path(self.sources[source])
        names = sorted((e.name for e in os.scandir(folder) if os.path.splitext(e.name)[1].lower() in FRAME_SUFFIXES),
                       key=natural_key)
        if len(names) < self.lengths[source]:
            raise ValueError(f"{folder} holds {len(names)} frames but the list file says {self.lengths[source]}; "
                             "regenerate the list file from the folders.")
        cv2 = import_cv2()
        images = []
        for i in frames:
            image = cv2.imread(str(folder / names[i]), cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"Cannot read frame {folder / names[i]} (corrupt or not an image); "
                                 "re-extract it or remove the folder from the list file.")
            rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)[None]
            images.append(fit_frames(rgb, self.size, self.center_crop)[0])  # frames of one folder may differ in size
        return {"image": np.stack(images)}
