"""Video writing, open-loop frames, the video callback and the ``sb3wm`` command."""

from __future__ import annotations

import json
from pathlib import Path

import imageio.v2 as imageio
import numpy as np
import pytest

from sb3_worldmodels import DreamerV3
from sb3_worldmodels.cli import main
from sb3_worldmodels.common.video import OpenLoopVideoCallback, openloop_frames, write_video
from tests.dummy_envs import DotEnv


@pytest.mark.parametrize("suffix", [".mp4", ".gif"])
def test_write_video_round_trip(tmp_path: Path, suffix: str) -> None:
    frames = np.zeros((6, 16, 48, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(6)[:, None, None] * 40
    path = write_video(tmp_path / f"clip{suffix}", frames, fps=5)
    back = np.stack(imageio.mimread(path))
    assert back.shape[0] == 6 and back.shape[1:3] == (16, 48)
    assert abs(float(back[-1, ..., 0].mean()) - 200) < 12  # colours survive the codec
    assert [p.name for p in tmp_path.iterdir()] == [f"clip{suffix}"]  # no temp file left behind


def test_write_video_rejects_bad_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "x.mp4", np.zeros((3, 8, 8, 3), np.float32))


def test_openloop_frames_and_callback(tmp_path: Path) -> None:
    model = DreamerV3("CnnPolicy", DotEnv("image", size=16), learning_starts=32, batch_size=2, sequence_length=8,
                      train_ratio=16, buffer_size=1_000, policy_kwargs=dict(model_size="tiny"), seed=0)
    cb = OpenLoopVideoCallback(every=40, length=12, context=4, save_dir=str(tmp_path))
    model.learn(40, callback=cb)
    assert (tmp_path / "openloop_40.mp4").exists()
    batch = model.replay_buffer.sample_sequences(3, 12)
    frames = openloop_frames(model.policy.world_model, batch, n=3, context=4)
    assert frames.shape == (12, 3 * 16, 3 * 16, 3) and frames.dtype == np.uint8
    # the left third is the real observation: the dot column is white
    real = batch.observations[:, :, 0].numpy()  # (3, 12, 16, 16) red channel
    np.testing.assert_array_equal(frames[:, :16, :16, 0], real[0])


def test_cli_train_writes_agent_video_and_score(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    kwargs = json.dumps({"learning_starts": 64, "batch_size": 2, "sequence_length": 8, "train_ratio": 16})
    main(["train", "DreamerHarmony", "sb3wm/dmc-cartpole-swingup-v0", "--steps", "100", "--out", str(tmp_path),
          "--model-size", "tiny", "--eval-episodes", "1", "--kwargs", kwargs])
    score = json.loads((tmp_path / "score.json").read_text())
    assert score["steps"] == 100 and score["updates"] == 36 and score["eval_episodes"] == 1
    assert 0.0 <= score["eval_mean_return"] <= 500.0
    for name in ("agent.zip", "openloop_real_vs_imagined.mp4", "openloop_real_vs_imagined.gif"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert list((tmp_path / "tb").glob("DreamerHarmony_1/events.out.tfevents.*"))
    out = capsys.readouterr().out
    assert json.loads(out[out.rindex('{\n  "algo"'):]) == score  # the command prints the score record


def test_memmap_replay_through_dreamer(tmp_path: Path) -> None:
    model = DreamerV3("CnnPolicy", DotEnv("image", size=16), learning_starts=32, batch_size=2, sequence_length=8,
                      train_ratio=16, buffer_size=1_000, policy_kwargs=dict(model_size="tiny"),
                      replay_buffer_kwargs=dict(memmap_dir=str(tmp_path / "mm")), seed=0)
    model.learn(48)
    assert model.replay_buffer.is_memmap and any((tmp_path / "mm").iterdir())
    assert model._n_updates == 16


def test_cli_predict_writes_real_vs_imagined_video(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    env_id = "sb3wm/dmc-cartpole-swingup-v0"
    DreamerV3("CnnPolicy", env_id, policy_kwargs=dict(model_size="tiny"), seed=0).save(tmp_path / "agent.zip")
    main(["predict", str(tmp_path / "agent.zip"), "--env", env_id, "--context", "3", "--horizon", "5",
          "--out", str(tmp_path / "pred.gif")])
    out = capsys.readouterr().out
    record = json.loads(out[out.rindex('{\n  "agent"'):])
    assert record["horizon"] == 5 and len(record["psnr_per_frame"]) == 5 and record["mean_psnr"] > 0
    video = np.stack(imageio.mimread(tmp_path / "pred.gif"))
    assert video.shape[:3] == (8, 64, 3 * 64)
    # the context frames are shown as observed in the "predicted" column; imagination starts after them
    np.testing.assert_allclose(video[:3, :, 64:128].astype(int), video[:3, :, :64].astype(int), atol=8)
    assert np.abs(video[3:, :, 64:128].astype(int) - video[3:, :, :64].astype(int)).mean() > 1


def test_cli_predict_refuses_an_agent_without_world_model(tmp_path: Path) -> None:
    from stable_baselines3 import SAC

    SAC("MlpPolicy", "Pendulum-v1", buffer_size=10).save(tmp_path / "sac.zip")
    with pytest.raises(ValueError, match="without a world model"):
        main(["predict", str(tmp_path / "sac.zip"), "--env", "Pendulum-v1"])
