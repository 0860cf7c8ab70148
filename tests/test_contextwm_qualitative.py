"""ContextWM's qualitative tools: attention maps, compositional decoding, open-loop video, tensorboard logging."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import pytest
import torch

from sb3_worldmodels import ContextDreamer
from sb3_worldmodels.contextwm import qualitative as q
from sb3_worldmodels.contextwm.config import make_contextwm_config
from sb3_worldmodels.contextwm.world_model import VideoWorldModel
from tests.dummy_envs import DotEnv


@pytest.fixture()
def clips() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (2, 6, 3, 64, 64), dtype=torch.uint8, generator=g)
    is_first = torch.zeros(2, 6)
    is_first[:, 0] = 1
    return images, is_first


def test_attention_maps_are_distributions_over_the_context(clips: tuple[torch.Tensor, torch.Tensor]) -> None:
    wm = VideoWorldModel((3, 64, 64), make_contextwm_config("v2", "tiny", context=True))
    maps = q.attention_maps(wm, *clips)
    assert set(maps) == {8, 16}
    for side, m in maps.items():
        assert m.shape == (2, 6, side, side)
        torch.testing.assert_close(m.sum((-2, -1)), torch.ones(2, 6))
    overlay = q.attention_overlay(clips[0][0, 0], maps[16][0, 0])
    assert overlay.shape == (3, 64, 64) and overlay.dtype == torch.uint8
    assert q.attention_video(wm, *clips).shape == (6, 64, 128, 3)


def test_compositional_decoding_uses_the_other_context(clips: tuple[torch.Tensor, torch.Tensor]) -> None:
    wm = VideoWorldModel((3, 64, 64), make_contextwm_config("v2", "tiny", context=True))
    images, is_first = clips
    video = q.compositional_decode(wm, images, images.flip(0), is_first)
    assert video.shape == (2, 6, 3, 64, 192)
    own, other = video[..., 64:128], video[..., 128:]
    assert not torch.equal(own, other)  # same dynamics, another context frame -> another image
    same = q.compositional_decode(wm, images, images, is_first)
    torch.testing.assert_close(same[..., 64:128], same[..., 128:])  # eval mode: no masking, deterministic


def test_plain_apv_model_has_no_attention(clips: tuple[torch.Tensor, torch.Tensor]) -> None:
    wm = VideoWorldModel((3, 64, 64), make_contextwm_config("v2", "tiny", context=False))
    with pytest.raises(ValueError, match="no context encoder"):
        q.attention_maps(wm, *clips)
    assert q.openloop_video(wm, *clips, context=3).shape == (2, 6, 3, 64, 192)


def test_context_dreamer_logs_openloop_and_attention_videos(tmp_path: Path) -> None:
    model = ContextDreamer(
        "CnnPolicy", DotEnv("image", size=64, length=16), learning_starts=32, batch_size=2, sequence_length=8,
        train_ratio=16, video_interval=1, tensorboard_log=str(tmp_path), policy_kwargs=dict(model_size="tiny"), seed=0,
    )
    model.learn(48, log_interval=1)
    events = list(Path(tmp_path).rglob("events.out.tfevents*"))
    assert events and events[0].parent.name == "ContextDreamer_1"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    tags = acc.Tags()["tensors"] + acc.Tags()["images"]
    assert "world_model/openloop" in tags and "world_model/context_attention" in tags, tags


def test_stacked_model_needs_actions() -> None:
    model = ContextDreamer("CnnPolicy", gym.make("sb3wm/dmc-cartpole-swingup-v0", time_limit=0.5), learning_starts=32,
                           batch_size=2, sequence_length=8, train_ratio=16, policy_kwargs=dict(model_size="tiny"))
    model.learn(40)
    batch = model.replay_buffer.sample_sequences(2, 8)
    wm = model.policy.world_model
    with pytest.raises(ValueError, match="actions="):
        q.attention_maps(wm, batch.observations, batch.is_first)
    maps = q.attention_maps(wm, batch.observations, batch.is_first, batch.prev_actions)
    assert maps[16].shape == (2, 8, 16, 16)
