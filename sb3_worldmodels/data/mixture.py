"""A weighted mixture of clip datasets, reproducible from a seed and safe with ``DataLoader`` workers."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from torch.utils.data import Dataset

__all__ = ["MixtureDataset"]


class MixtureDataset(Dataset):
    """Draw clips from several datasets with given sampling weights.

    Item ``i`` is a pure function of ``(seed, epoch, i)``: a generator seeded with that triple picks dataset ``k``
    with probability ``weights[k] / sum(weights)``, then one of its clips uniformly. So the mixture is a plain
    map-style dataset: no state is shared between ``DataLoader`` workers, any number of workers (or processes under
    ``DistributedSampler``) see the same items, and the same seed gives the same clips. Items are already random
    draws, so ``shuffle=False`` is fine; call :meth:`set_epoch` to draw afresh each epoch. Frame stride, clip length
    and resizing are each dataset's own; all must yield frames of the same size.

    Items hold the keys every dataset has (``"image"`` at least, see :attr:`keys`) and ``"source"``: the number of
    the dataset the clip came from.

    :param datasets: the datasets (e.g. :class:`~sb3_worldmodels.data.FrameFolderDataset`,
        :class:`~sb3_worldmodels.data.NpzEpisodeDataset`, :class:`~sb3_worldmodels.data.VideoFileDataset`).
    :param weights: non-negative sampling weights, one per dataset (default: equal).
    :param length: items per epoch (default: the datasets' clips together).
    :param seed: seed of the draws.
    """

    def __init__(self, datasets: Sequence[Dataset], weights: Sequence[float] | None = None, length: int | None = None,
                 seed: int = 0) -> None:
        self.datasets = list(datasets)
        if not self.datasets:
            raise ValueError("MixtureDataset needs at least one dataset.")
        weights = [1.0] * len(self.datasets) if weights is None else [float(w) for w in weights]
        if len(weights) != len(self.datasets):
            raise ValueError(f"Got {len(weights)} weights for {len(self.datasets)} datasets; pass one per dataset.")
        if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
            raise ValueError(f"weights must be finite, >= 0 and not all 0, got {weights}.")
        empty = [i for i, d in enumerate(self.datasets) if len(d) == 0]  # type: ignore[arg-type]
        if empty:
            raise ValueError(f"Datasets {empty} of the mixture are empty.")
        sizes = {getattr(d, "size", None) for d in self.datasets} - {None}
        if len(sizes) > 1:
            raise ValueError(f"The datasets yield frames of different sizes {sorted(sizes)}; give them the same size=.")
        self.probabilities = np.array(weights) / sum(weights)
        self.length = sum(len(d) for d in self.datasets) if length is None else int(length)  # type: ignore[arg-type]
        if self.length < 1:
            raise ValueError(f"length must be >= 1, got {length}.")
        self.seed, self.epoch = int(seed), 0
        common = [k for k in getattr(self.datasets[0], "keys", ("image",))
                  if all(k in getattr(d, "keys", ("image",)) for d in self.datasets)]
        #: the keys of every item
        self.keys: tuple[str, ...] = (*common, "source")

    def set_epoch(self, epoch: int) -> None:
        """Draw a new set of clips (call before each epoch, as with ``DistributedSampler``)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return self.length

    def locate(self, index: int) -> tuple[int, int]:
        """The dataset number and the clip number within it of item ``index``."""
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} items")
        rng = np.random.default_rng((self.seed, self.epoch, index % self.length))
        source = int(rng.choice(len(self.datasets), p=self.probabilities))
        return source, int(rng.integers(len(self.datasets[source])))  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        source, clip = self.locate(index)
        item = self.datasets[source][clip]
        out = {k: item[k] for k in self.keys if k != "source"}
        out["source"] = np.int64(source)
        return out
