"""DrQ-v2 data path: random-shift augmentation, n-step frame-stack replay (hand-computed), mixed batches."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_worldmodels.common.augment import RandomShift, random_shift, shift_grid
from sb3_worldmodels.drqv2.buffers import NStepFrameStackReplayBuffer, sample_mixed, stacked_space

FRAME = spaces.Box(0, 255, (1, 3, 3), np.uint8)  # one channel: every frame is filled with its id
ACTION = spaces.Box(-1.0, 1.0, (1,), np.float32)


# ------------------------------------------------------------------------------------------------
# augmentation
@pytest.mark.parametrize("pad,h,w", [(4, 20, 20), (2, 9, 13)])
def test_random_shift_is_a_crop_of_the_padded_image_within_pad(pad: int, h: int, w: int) -> None:
    images = torch.randint(0, 256, (64, 3, h, w)).float()
    out = random_shift(images, pad)
    assert out.shape == images.shape and out.dtype == images.dtype
    padded = F.pad(images, (pad,) * 4, mode="replicate")
    offsets = set()
    for i in range(len(images)):
        matches = [(dy, dx) for dy in range(2 * pad + 1) for dx in range(2 * pad + 1)
                   if torch.allclose(out[i], padded[i, :, dy:dy + h, dx:dx + w], atol=1e-2)]
        assert matches, f"image {i} is not a whole-pixel shift of at most {pad}"
        offsets.add(matches[0])
    assert len(offsets) > 10  # offsets are drawn per image, not once per batch


def test_random_shift_identity_at_pad_zero_and_errors() -> None:
    images = torch.rand(4, 3, 8, 8) * 255
    assert torch.equal(random_shift(images, 0), images)
    assert torch.equal(RandomShift(0)(images), images)
    # the largest shift at pad 1 moves the image by exactly one pixel, never more
    shifted = random_shift(images, 1)
    assert (shifted - images).abs().amax() > 0
    with pytest.raises(ValueError, match="batch dim"):
        random_shift(torch.zeros(3, 8, 8))
    with pytest.raises(ValueError, match="pad"):
        random_shift(images, -1)


def test_random_shift_gives_the_same_shifts_on_channels_last_input() -> None:
    images = (torch.rand(8, 9, 16, 16) * 255).contiguous(memory_format=torch.channels_last)
    gen_a, gen_b = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    a = random_shift(images, 4, generator=gen_a)
    b = random_shift(images.contiguous(), 4, generator=gen_b)
    torch.testing.assert_close(a, b)


def test_random_shift_equals_drqv2_bilinear_resampling_and_works_on_uint8() -> None:
    """The crop is DrQ-v2's RandomShiftsAug: bilinear grid_sample of the replicate-padded image at the same offsets."""
    images = torch.randint(0, 256, (32, 9, 64, 64), dtype=torch.uint8)
    out = random_shift(images, 4, generator=torch.Generator().manual_seed(3))
    assert out.dtype == torch.uint8 and out.shape == images.shape
    shifts = torch.randint(-4, 5, (32, 2), generator=torch.Generator().manual_seed(3)).float()
    reference = F.grid_sample(images.float(), shift_grid(shifts, 64, 64), mode="bilinear", padding_mode="border",
                              align_corners=False)
    torch.testing.assert_close(out.float(), reference, atol=1e-3, rtol=0)
    floats = random_shift(images.float(), 4, generator=torch.Generator().manual_seed(3))
    assert torch.equal(floats, out.float())  # same offsets and values whatever the dtype


# ------------------------------------------------------------------------------------------------ replay
def _frame(value: int) -> np.ndarray:
    return np.full((1, 1, 3, 3), value, np.uint8)


def _fill(buffer: NStepFrameStackReplayBuffer, steps: list[tuple[int, int, float, bool, bool]]) -> None:
    """Add (frame, next_frame, reward, done, truncated) steps of one env as SB3 does; action = frame / 100."""
    for frame, next_frame, reward, done, truncated in steps:
        info = {"TimeLimit.truncated": truncated} if done else {}
        buffer.add(_frame(frame), _frame(next_frame), np.array([[frame / 100]], np.float32),
                   np.array([reward]), np.array([done]), [info])


def _sample_table(buffer: NStepFrameStackReplayBuffer, n: int = 400) -> dict[int, tuple]:
    """Sampled transitions by current frame id: (stack ids, action, return, next stack, done, discount)."""
    batch = buffer.sample(n)
    table: dict[int, tuple] = {}
    for i in range(n):
        stack = tuple(int(v) for v in batch.observations[i, :, 0, 0])
        row = (stack, round(float(batch.actions[i, 0]), 4), round(float(batch.rewards[i, 0]), 6),
               tuple(int(v) for v in batch.next_observations[i, :, 0, 0]), float(batch.dones[i, 0]),
               float(batch.discounts[i, 0]))
        assert table.setdefault(stack[-1], row) == row  # the same start always gives the same transition
    return table


def test_n_step_targets_match_hand_computed_example() -> None:
    buffer = NStepFrameStackReplayBuffer(100, FRAME, ACTION, device="cpu", n_steps=3, gamma=0.5,
                                         frame_stack=2)
    _fill(buffer, [
        (10, 11, 1.0, False, False), (11, 12, 2.0, False, False), (12, 13, 3.0, False, False),
        (13, 14, 4.0, True, True),     # episode A ends by truncation: bootstrap from frame 14
        (20, 21, 10.0, False, False),
        (21, 22, 20.0, True, False),   # episode B terminates: no bootstrap
        (30, 31, 100.0, False, False), (31, 32, 200.0, False, False),  # episode C still running
    ])
    expected = {
        # start: (stack, action, n-step return, next stack, done, gamma^k)
        10: ((10, 10), 0.1, 1 + 0.5 * 2 + 0.25 * 3, (12, 13), 0.0, 0.125),
        11: ((10, 11), 0.11, 2 + 0.5 * 3 + 0.25 * 4, (13, 14), 0.0, 0.125),
        12: ((11, 12), 0.12, 3 + 0.5 * 4, (13, 14), 0.0, 0.25),  # window cut by the episode end
        13: ((12, 13), 0.13, 4.0, (13, 14), 0.0, 0.5),
        20: ((20, 20), 0.2, 10 + 0.5 * 20, (21, 22), 1.0, 0.25),
        21: ((20, 21), 0.21, 20.0, (21, 22), 1.0, 0.5),
        30: ((30, 30), 0.3, 100.0, (30, 31), 0.0, 0.5),  # cut at the newest stored row (32 is not stored yet)
    }
    table = _sample_table(buffer)
    assert set(table) == set(expected)  # terminal rows (14, 22) and the newest row (31) are never starts
    for start, row in expected.items():
        assert table[start] == (row[0], round(row[1], 4), round(row[2], 6), *row[3:]), start


def test_frame_stack_stops_at_the_oldest_row_after_wrapping() -> None:
    buffer = NStepFrameStackReplayBuffer(4, FRAME, ACTION, device="cpu", n_steps=3, gamma=0.5, frame_stack=3)
    _fill(buffer, [(i, i + 1, float(i), False, False) for i in range(6)])  # rows now hold frames 2, 3, 4, 5
    table = _sample_table(buffer)
    assert {k: (v[0], v[2], v[3], v[5]) for k, v in table.items()} == {
        2: ((2, 2, 2), 2 + 0.5 * 3 + 0.25 * 4, (3, 4, 5), 0.125),  # the reward of step i -> i + 1 is i
        3: ((2, 2, 3), 3 + 0.5 * 4, (3, 4, 5), 0.25),
        4: ((2, 3, 4), 4.0, (3, 4, 5), 0.5),
    }


def test_one_copy_per_frame_and_stacked_spaces() -> None:
    image = spaces.Box(0, 255, (3, 64, 64), np.uint8)
    buffer = NStepFrameStackReplayBuffer(1000, image, ACTION, device="cpu", frame_stack=3)
    assert buffer.observations.shape == (1000, 1, 3, 64, 64) and buffer.observations.dtype == np.uint8
    assert not hasattr(buffer, "next_observations")
    assert buffer.nbytes_per_step < 64 * 64 * 3 + 64
    assert buffer.stacked_observation_space.shape == (9, 64, 64)
    both = stacked_space(spaces.Dict(image=image, state=spaces.Box(-1, 1, (5,))), 3)
    assert both["image"].shape == (9, 64, 64) and both["state"].shape == (5,)
    with pytest.raises(ValueError, match="n_steps"):
        NStepFrameStackReplayBuffer(10, image, ACTION, n_steps=0)


# ------------------------------------------------------------------------------------------------ mixed
# batches
def _constant_buffer(reward: float, discounts: bool) -> Any:
    """A buffer whose transitions all have ``reward`` (n-step if ``discounts``, else SB3's one-step)."""
    stacked = stacked_space(FRAME, 2)
    if discounts:
        buffer: Any = NStepFrameStackReplayBuffer(50, FRAME, ACTION, device="cpu", n_steps=2, gamma=0.5,
                                                  frame_stack=2)
        _fill(buffer, [(i, i + 1, reward, False, False) for i in range(10)])
        return buffer
    buffer = ReplayBuffer(50, stacked, ACTION, device="cpu")
    for i in range(10):
        buffer.add(np.full((1, 2, 3, 3), i, np.uint8), np.full((1, 2, 3, 3), i + 1, np.uint8),
                   np.zeros((1, 1), np.float32), np.array([reward]), np.array([False]), [{}])
    return buffer


def test_sample_mixed_takes_the_ratio_from_each_buffer() -> None:
    real, imagined = _constant_buffer(1.0, discounts=True), _constant_buffer(-1.0, discounts=False)
    batch = sample_mixed([real, imagined], [1, 3], 8, gamma=0.9)
    assert batch.observations.shape == (8, 2, 3, 3) and batch.actions.shape == (8, 1)
    # real first: n-step returns 1 + 0.5 * 1 (or 1 at the newest row) with gamma^k; then the one-step imagined
    # part
    rewards, discounts = batch.rewards.view(-1).tolist(), batch.discounts.view(-1).tolist()
    assert set(rewards[:2]) <= {1.5, 1.0} and rewards[2:] == [-1.0] * 6
    assert set(discounts[:2]) <= {0.25, 0.5} and discounts[2:] == [pytest.approx(0.9)] * 6
    only_real = sample_mixed([real, imagined], [1.0, 0.0], 5)
    assert (only_real.rewards > 0).all()
    assert sample_mixed([imagined, imagined], [0.5, 0.5], 4).discounts is None
    with pytest.raises(ValueError, match="gamma"):
        sample_mixed([real, imagined], [0.5, 0.5], 4)
    with pytest.raises(ValueError, match="one ratio per buffer"):
        sample_mixed([real, imagined], [1.0], 4)
    with pytest.raises(ValueError, match="non-negative"):
        sample_mixed([real, imagined], [-1.0, 2.0], 4)
