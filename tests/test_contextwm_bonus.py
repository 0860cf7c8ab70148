"""Tests for :mod:`sb3_worldmodels.contextwm.bonus` (APV's video-based intrinsic bonus)."""

from __future__ import annotations

import math

import pytest
import torch

from sb3_worldmodels.contextwm import VideoIntrinsicBonus


class BruteForceBonus:
    """The reference algorithm with Python loops: sliding windows, projection, FIFO list, sorted distances."""

    def __init__(self, projection: torch.Tensor, window: int, size: int, k: int, momentum: float) -> None:
        self.projection, self.window, self.size = projection.double(), window, size
        self.k, self.momentum = k, momentum
        self.queue: list[torch.Tensor] = []
        self.mag = 1.0

    def __call__(self, feats: torch.Tensor) -> torch.Tensor:
        b, t, _ = feats.shape
        points = []
        for i in range(b):
            for j in range(t - self.window + 1):
                mean = sum(feats[i, j + s].double() for s in range(self.window)) / self.window
                points.append(mean @ self.projection)
        self.queue = (self.queue + points)[-self.size :]
        raw = []
        for p in points:
            dists = sorted(math.sqrt(sum((p[d] - q[d]).item() ** 2 for d in range(len(p)))) for q in self.queue)
            near = dists[: min(self.k, len(dists))]
            raw.append(sum(near) / len(near))
        self.mag = self.momentum * self.mag + (1 - self.momentum) * sum(abs(r) for r in raw) / len(raw)
        out = torch.tensor([r / (self.mag + 1e-8) for r in raw], dtype=torch.float64)
        return out.reshape(b, t - self.window + 1)


def test_matches_brute_force_knn_through_wrap_around():
    bonus = VideoIntrinsicBonus(6, window=3, proj_dim=4, queue_size=10, k=3, momentum=0.9)
    ref = BruteForceBonus(bonus.projection, 3, 10, 3, 0.9)
    for t in (5, 4, 6, 3):  # 6, 4, 8 and 2 points: the queue fills, wraps and is overwritten
        feats = torch.randn(2, t, 6)
        out = bonus(feats)
        assert out.shape == (2, t - 2)
        torch.testing.assert_close(out.double(), ref(feats), rtol=1e-5, atol=1e-6)
        assert math.isclose(bonus.mag.item(), ref.mag, rel_tol=1e-6)
    assert int(bonus.count) == 10


def test_fifo_queue_order_and_wrap_around():
    bonus = VideoIntrinsicBonus(2, queue_size=5, proj_dim=1)
    pts = torch.arange(12.0)[:, None]
    bonus.insert(pts[:3])
    assert bonus.points[:, 0].tolist() == [0, 1, 2] and int(bonus.count) == 3
    bonus.insert(pts[3:7])  # wraps: 0 and 1 are evicted
    assert bonus.points[:, 0].tolist() == [2, 3, 4, 5, 6] and int(bonus.ptr) == 2
    bonus.insert(pts[7:8])
    assert bonus.points[:, 0].tolist() == [3, 4, 5, 6, 7]
    bonus.insert(pts[:12])  # more points than slots: only the newest fit
    assert bonus.points[:, 0].tolist() == [7, 8, 9, 10, 11] and int(bonus.count) == 5


def test_current_batch_is_in_the_queue_and_counts_as_its_own_neighbour():
    bonus = VideoIntrinsicBonus(3, window=1, proj_dim=3, k=16, momentum=1.0)  # momentum 1: no normalisation
    bonus.projection.copy_(torch.eye(3))
    assert bonus(torch.tensor([[[1.0, 2.0, 3.0]]])).item() == 0.0  # only itself in the queue
    out = bonus(torch.tensor([[[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]]]))
    # queue = {(1,2,3), (0,0,0), (3,4,0)}; each point averages its distance to all three, itself included
    d01, d02, d12 = math.sqrt(14), math.sqrt(4 + 4 + 9), 5.0
    torch.testing.assert_close(out, torch.tensor([[(0 + d01 + d12) / 3, (0 + d02 + d12) / 3]]))


def test_window_means_and_length():
    bonus = VideoIntrinsicBonus(1, window=3, proj_dim=1)
    bonus.projection.fill_(2.0)
    proj = bonus.project(torch.arange(6.0).reshape(1, 6, 1))
    torch.testing.assert_close(proj[0, :, 0], torch.tensor([2.0, 4.0, 6.0, 8.0]))  # 2 * mean of t..t+2
    with pytest.raises(ValueError, match="T >= window=3"):
        bonus(torch.randn(2, 2, 1))
    with pytest.raises(ValueError, match=r"\(B, T, 1\)"):
        bonus(torch.randn(2, 5, 4))


def test_running_mean_normalisation_and_compute_without_update():
    bonus = VideoIntrinsicBonus(8, window=2, proj_dim=4, queue_size=64, k=4, momentum=0.99)
    mag = 1.0
    for _ in range(3):
        feats = torch.randn(3, 6, 8) * 5
        out = bonus(feats)
        # undo the normalisation: raw k-NN distances of the same points against the same queue
        raw = bonus.knn_distance(bonus.project(feats).reshape(-1, 4)).reshape(3, 5)
        mag = 0.99 * mag + 0.01 * raw.abs().mean().item()
        assert math.isclose(bonus.mag.item(), mag, rel_tol=1e-5)
        torch.testing.assert_close(out, raw / mag, rtol=1e-5, atol=1e-6)
    state = {k: v.clone() for k, v in bonus.state_dict().items()}
    new = torch.randn(2, 4, 8) * 5
    evaluated = bonus.compute(new)  # update=False: against the queue as it is, buffers untouched
    for key, value in bonus.state_dict().items():
        assert torch.equal(value, state[key]), key
    raw = bonus.knn_distance(bonus.project(new).reshape(-1, 4)).reshape(2, 3)
    torch.testing.assert_close(evaluated, raw / bonus.mag)
    assert (evaluated > 0).all()  # the new points are not in the queue, so no zero self-distance


def test_empty_queue_and_bad_arguments():
    with pytest.raises(ValueError, match="queue is empty"):
        VideoIntrinsicBonus(4, window=1).compute(torch.randn(1, 2, 4))
    with pytest.raises(ValueError, match="k=0"):
        VideoIntrinsicBonus(4, k=0)
    with pytest.raises(ValueError, match="momentum=1.5"):
        VideoIntrinsicBonus(4, momentum=1.5)


def test_projection_statistics():
    bonus = VideoIntrinsicBonus(2048)
    assert bonus.projection.shape == (2048, 128)
    assert abs(bonus.projection.std().item() * 128 - 1.0) < 0.02 and abs(bonus.projection.mean().item()) < 1e-3
    assert not any(True for _ in bonus.parameters())  # nothing to train


def test_state_dict_round_trip():
    torch.manual_seed(1)
    a = VideoIntrinsicBonus(16, queue_size=32, k=5)
    for _ in range(3):
        a(torch.randn(2, 9, 16))
    torch.manual_seed(2)
    b = VideoIntrinsicBonus(16, queue_size=32, k=5)
    assert not torch.equal(a.projection, b.projection)
    b.load_state_dict(a.state_dict())
    assert set(a.state_dict()) == {"projection", "queue", "ptr", "count", "mag"}
    feats = torch.randn(2, 9, 16)
    torch.testing.assert_close(a(feats), b(feats))
    for key, value in a.state_dict().items():
        assert torch.equal(value, b.state_dict()[key]), key
