"""MixtureDataset: sampling weights, per-dataset stride, seeds, epochs and DataLoader workers, on real clips."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sb3_worldmodels.data import (
    MixtureDataset,
    NpzEpisodeDataset,
    VideoFileDataset,
    fit_frames,
    sample_videos,
    write_episode,
)
from tests.test_docs import DOCS, _python_blocks

av = pytest.importorskip("av")


@pytest.fixture(scope="module")
def npz_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two episodes of real frames (carphone_pristine.mp4 at 32x32) with actions, as npz files."""
    root = tmp_path_factory.mktemp("npz")
    with av.open(str(sample_videos()[3])) as container:
        frames = fit_frames(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), 32)
    for i, (lo, hi) in enumerate(((0, 60), (60, 120))):
        n = hi - lo
        write_episode(root / f"ep{i}.npz", {"image": frames[lo:hi], "action": np.full((n, 1), i, np.float32),
                                            "reward": np.zeros(n), "is_first": np.arange(n) == 0})
    return root


@pytest.fixture(scope="module")
def videos() -> VideoFileDataset:
    return VideoFileDataset(sample_videos()[1:], clip_length=6, size=32)  # bikes and the two carphones


def test_weights_set_the_source_frequencies(npz_root: Path, videos: VideoFileDataset) -> None:
    npz = NpzEpisodeDataset(npz_root, clip_length=6, size=32)
    mixture = MixtureDataset([npz, videos, npz], weights=[1, 3, 0], length=4000, seed=0)
    sources = np.array([mixture.locate(i)[0] for i in range(len(mixture))])
    counts = np.bincount(sources, minlength=3)
    assert counts[2] == 0  # zero weight: never drawn
    assert abs(counts[0] / len(mixture) - 0.25) < 0.03  # binomial sd ~0.007
    clips = [mixture.locate(i)[1] for i in np.flatnonzero(sources == 1)]
    assert 0 <= min(clips) and max(clips) < len(videos) and len(set(clips)) > len(videos) // 2  # uniform over clips


def test_items_and_per_dataset_stride(npz_root: Path) -> None:
    dense = NpzEpisodeDataset(npz_root, clip_length=4, size=32)
    sparse = NpzEpisodeDataset(npz_root, clip_length=4, stride=5, size=32)
    mixture = MixtureDataset([dense, sparse], weights=[1, 1], length=64, seed=3)
    assert mixture.keys == ("image", "is_first", "source")  # sparse clips are action-free: actions dropped
    assert len(MixtureDataset([dense, sparse])) == len(dense) + len(sparse)  # default length
    seen = set()
    for i in range(len(mixture)):
        source, clip = mixture.locate(i)
        item = mixture[i]
        assert set(item) == set(mixture.keys) and int(item["source"]) == source
        expected = (dense, sparse)[source][clip]
        np.testing.assert_array_equal(item["image"], expected["image"])
        seen.add(source)
    assert seen == {0, 1}
    # the stride-5 clip really skips frames: its frames are dense frames 0, 5, 10, 15 of the same episode
    np.testing.assert_array_equal(sparse[0]["image"], np.stack([dense[5 * k]["image"][0] for k in range(4)]))


def test_same_seed_same_clips_with_and_without_workers(npz_root: Path, videos: VideoFileDataset) -> None:
    npz = NpzEpisodeDataset(npz_root, clip_length=6, size=32)

    def batches(num_workers: int, seed: int = 7) -> list[dict[str, torch.Tensor]]:
        mixture = MixtureDataset([npz, videos], weights=[1, 1], length=12, seed=seed)
        return list(DataLoader(mixture, batch_size=4, num_workers=num_workers))

    serial, parallel = batches(0), batches(2)
    assert len(serial) == 3 and serial[0]["image"].shape == (4, 6, 32, 32, 3)
    assert serial[0]["image"].dtype == torch.uint8
    assert set(serial[0]) == {"image", "source"}
    for a, b in zip(serial, parallel):
        torch.testing.assert_close(a["image"], b["image"], rtol=0, atol=0)
        torch.testing.assert_close(a["source"], b["source"])
    other = batches(0, seed=8)
    assert not all(torch.equal(a["image"], b["image"]) for a, b in zip(serial, other))


def test_set_epoch_draws_afresh_and_back(npz_root: Path, videos: VideoFileDataset) -> None:
    mixture = MixtureDataset([NpzEpisodeDataset(npz_root, clip_length=6, size=32), videos], length=50, seed=1)
    first = [mixture.locate(i) for i in range(50)]
    mixture.set_epoch(1)
    assert [mixture.locate(i) for i in range(50)] != first
    mixture.set_epoch(0)
    assert [mixture.locate(i) for i in range(50)] == first
    assert mixture.locate(-1) == mixture.locate(49)
    with pytest.raises(IndexError):
        mixture.locate(50)


def test_bad_mixtures(npz_root: Path, videos: VideoFileDataset) -> None:
    npz = NpzEpisodeDataset(npz_root, clip_length=6, size=32)
    with pytest.raises(ValueError, match="at least one dataset"):
        MixtureDataset([])
    with pytest.raises(ValueError, match="Got 1 weights for 2 datasets"):
        MixtureDataset([npz, videos], weights=[1])
    with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
        MixtureDataset([npz, videos], weights=[1, -1])
    with pytest.raises(ValueError, match="finite, >= 0 and not all 0"):
        MixtureDataset([npz, videos], weights=[0, 0])
    with pytest.raises(ValueError, match="different sizes.*same size="):
        MixtureDataset([npz, NpzEpisodeDataset(npz_root, clip_length=6, size=64)])


def test_video_data_guide_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """The quick example of docs/guide/video_data.rst (its only python block) runs and prints what it says."""
    blocks = _python_blocks(DOCS / "guide" / "video_data.rst")
    assert len(blocks) == 1
    exec(compile(blocks[0], "video_data.rst", "exec"), {})  # noqa: S102
    assert "torch.Size([8, 16, 64, 64, 3]) torch.uint8 tensor([" in capsys.readouterr().out
