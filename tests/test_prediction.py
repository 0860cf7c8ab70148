"""Video prediction from pre-trained checkpoints (``sb3wm predict DIR --video CLIP``): ContextWM and iVideoGPT."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from sb3_worldmodels import IVideoGPT
from sb3_worldmodels.cli import main
from sb3_worldmodels.data import record_episodes, sample_videos
from sb3_worldmodels.ivideogpt import make_tokenizer_config, make_transformer_config
from sb3_worldmodels.prediction import predict_clip, read_clip
from sb3_worldmodels.pretrain import pretrain


@pytest.fixture(scope="module")
def episode(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("npz")
    return record_episodes("sb3wm/dmc-cartpole-swingup-v0", 1, out_dir=out, max_episode_steps=10,
                           progress_bar=False)[0]


def ivideogpt(action_dim: int = 0) -> IVideoGPT:
    return IVideoGPT(make_tokenizer_config("tiny", image_size=64, patch=4),
                     make_transformer_config("tiny", max_tokens=1024), action_dim=action_dim)


def test_read_clip_fits_frames_and_returns_episode_actions(episode: Path) -> None:
    frames, actions = read_clip(episode, 32)
    assert frames.shape == (11, 32, 32, 3) and frames.dtype == np.uint8 and actions.shape == (10, 1)
    video, none = read_clip(sample_videos()[-1], 64)  # carphone: 176x144, centre-cropped to a square
    assert video.shape[1:] == (64, 64, 3) and len(video) == 120 and none is None
    with pytest.raises(FileNotFoundError, match="npz"):
        read_clip("missing.npz")


def test_ivideogpt_checkpoint_continues_a_clip(episode: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    ivideogpt().save_pretrained(tmp_path / "ivg")
    main(["predict", str(tmp_path / "ivg"), "--video", str(episode), "--horizon", "4", "--out",
          str(tmp_path / "pred.gif")])
    out = capsys.readouterr().out
    record = json.loads(out[out.rindex('{\n  "checkpoint"'):])
    assert record["context"] == 2 and len(record["psnr_per_frame"]) == 4 and len(record["ssim_per_frame"]) == 4
    video = np.stack(imageio.mimread(tmp_path / "pred.gif"))
    assert video.shape[:3] == (6, 64, 3 * 64)
    with pytest.raises(ValueError, match="reads 2 context frames"):
        predict_clip(tmp_path / "ivg", episode, tmp_path / "p.gif", context=1)


def test_action_conditioned_ivideogpt_needs_the_episode_actions(episode: Path, tmp_path: Path) -> None:
    ivideogpt(action_dim=1).save_pretrained(tmp_path / "ivg")
    record = predict_clip(tmp_path / "ivg", episode, tmp_path / "p.gif", horizon=3)
    assert record["horizon"] == 3
    with pytest.raises(ValueError, match="actions"):
        predict_clip(tmp_path / "ivg", sample_videos()[-1], tmp_path / "p.gif", horizon=3)


def test_contextwm_checkpoint_continues_a_real_video(tmp_path: Path) -> None:
    pretrain("contextwm", [f"real={sample_videos()[-1].parent}"], steps=1, out=tmp_path / "ctx", batch_size=2,
             sequence_length=8, model_size="tiny", progress_bar=False, video_interval=0, device="cpu")
    record = predict_clip(tmp_path / "ctx", sample_videos()[-1], tmp_path / "p.mp4", context=3, horizon=5)
    assert record["horizon"] == 5 and (tmp_path / "p.mp4").stat().st_size > 0
    with pytest.raises(FileNotFoundError, match="checkpoint"):
        predict_clip(tmp_path, sample_videos()[-1], tmp_path / "p.mp4")


def test_official_contextwm_checkpoint_continues_a_real_video(tmp_path: Path) -> None:
    """An official pre-training logdir (the tiny fixture written by thuml/ContextWM's own save path) predicts too."""
    official = Path(__file__).parent / "conformance" / "fixtures" / "contextwm_official"
    record = predict_clip(official, sample_videos()[-1], tmp_path / "p.mp4", context=3, horizon=4)
    assert record["horizon"] == 4 and (tmp_path / "p.mp4").stat().st_size > 0
