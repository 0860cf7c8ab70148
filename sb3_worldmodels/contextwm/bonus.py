"""APV's video-based intrinsic bonus: k-NN distance of windowed, randomly projected action-free features.

Follows the reference implementations (younggyoseo/apv ``apv_finetuning/agent.py`` and thuml/ContextWM
``wmlib/agents/expl.py`` ``VideoIntrBonus``, config ``k: 16, intr_seq_length: 5, queue_size: 4096, queue_dim: 128,
intr_reward_norm: {momentum: 0.99, scale: 1.0, eps: 1e-8, init: 1.0}``):

1. the action-free features (B, T, F) are averaged over windows of ``window`` consecutive steps with stride 1 and
   no padding (``unfold``), so index t averages steps ``t .. t + window - 1`` and only ``T - window + 1`` bonuses
   come out: the reference trains the reward head on the first ``T - window + 1`` steps only;
2. the window means are projected by a fixed random Gaussian matrix (F, proj_dim) of std ``1 / proj_dim``;
3. the projected points of the whole batch are inserted into a FIFO queue of ``queue_size`` points *first*;
4. the bonus of a point is its mean L2 distance to its ``k`` nearest neighbours in the queue (``min(k, size)`` of
   them), the point itself included (it is in the queue, at distance 0), as in the reference; neighbours are
   ranked with one matrix product and their distances then measured exactly (no ``sqrt`` of a cancelled GEMM);
5. it is divided by a running mean of ``|bonus|`` (``mag <- momentum * mag + (1 - momentum) * mean|bonus|``,
   initialised to 1, updated with the batch before dividing by ``mag + eps``), the reference's ``StreamNorm``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import at_least_fp32

__all__ = ["VideoIntrinsicBonus"]


class VideoIntrinsicBonus(nn.Module):
    """APV intrinsic bonus with its projection, FIFO queue and running mean as buffers (saved in ``state_dict``).

    :param feat_dim: size F of the action-free RSSM features.
    :param window: steps averaged per point.
    :param proj_dim: dimension of the random projection.
    :param queue_size: points kept in the FIFO queue.
    :param k: nearest neighbours averaged.
    :param momentum: momentum of the running mean of ``|bonus|``.
    :param eps: added to the running mean before dividing.
    """

    projection: Tensor
    queue: Tensor
    ptr: Tensor
    count: Tensor
    mag: Tensor

    def __init__(
        self,
        feat_dim: int,
        window: int = 5,
        proj_dim: int = 128,
        queue_size: int = 4096,
        k: int = 16,
        momentum: float = 0.99,
        eps: float = 1e-8,
    ) -> None:
        super().__init__()
        if min(feat_dim, window, proj_dim, queue_size, k) < 1 or not 0.0 <= momentum <= 1.0:
            raise ValueError(
                "feat_dim, window, proj_dim, queue_size and k must be >= 1 and momentum in [0, 1]; got "
                f"{feat_dim=}, {window=}, {proj_dim=}, {queue_size=}, {k=}, {momentum=}."
            )
        self.window, self.k, self.momentum, self.eps = window, k, momentum, eps
        self.register_buffer("projection", torch.randn(feat_dim, proj_dim) / proj_dim)
        self.register_buffer("queue", torch.zeros(queue_size, proj_dim))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next slot to write
        self.register_buffer("count", torch.zeros((), dtype=torch.long))  # filled slots
        self.register_buffer("mag", torch.ones(()))

    @property
    def points(self) -> Tensor:
        """The queued points, oldest first: (size, proj_dim)."""
        size, n = int(self.count), self.queue.shape[0]
        order = (torch.arange(size, device=self.queue.device) + (int(self.ptr) - size)) % n
        return self.queue[order]

    def project(self, feats: Tensor) -> Tensor:
        """(B, T, F) features -> (B, T - window + 1, proj_dim) projected window means."""
        if feats.dim() != 3 or feats.shape[-1] != self.projection.shape[0] or feats.shape[1] < self.window:
            raise ValueError(
                f"VideoIntrinsicBonus takes (B, T, {self.projection.shape[0]}) features with "
                f"T >= window={self.window}; "
                f"got {tuple(feats.shape)}. Pass the action-free RSSM features of sequences at least window long."
            )
        means = at_least_fp32(feats.detach()).unfold(1, self.window, 1).mean(-1)
        return means @ self.projection

    @torch.no_grad()
    def insert(self, points: Tensor) -> None:
        """Append (N, proj_dim) points to the FIFO queue, overwriting the oldest ones (only the newest fit if N is
        larger than the queue)."""
        size = self.queue.shape[0]
        points = points[-size:]
        idx = (torch.arange(points.shape[0], device=self.queue.device) + self.ptr) % size
        self.queue[idx] = points.to(self.queue.dtype)
        self.ptr.copy_((self.ptr + points.shape[0]) % size)
        self.count.copy_(torch.clamp(self.count + points.shape[0], max=size))

    def knn_distance(self, points: Tensor) -> Tensor:
        """Mean L2 distance of each of (N, proj_dim) points to its ``min(k, size)`` nearest queued points."""
        if int(self.count) == 0:
            raise ValueError(
                "The bonus queue is empty; call the module (or compute(..., update=True)) on a batch first."
            )
        queue = self.queue[: int(self.count)]  # slots fill from 0, so the first `count` are the valid ones
        # rank by |q|^2 - 2 p.q (one GEMM; |p|^2 is constant per row), then measure the k chosen exactly
        rank = torch.addmm(queue.square().sum(-1)[None], points, queue.T, alpha=-2.0)
        idx = rank.topk(min(self.k, queue.shape[0]), dim=-1, largest=False, sorted=False).indices
        return (points[:, None] - queue[idx]).norm(dim=-1).mean(-1)

    @torch.no_grad()
    def compute(self, feats: Tensor, update: bool = False) -> Tensor:
        """Normalised bonus (B, T - window + 1) of (B, T, F) features.

        :param feats: action-free features (detached internally).
        :param update: insert the points into the queue first and fold the batch into the running mean (training);
            ``False`` leaves every buffer untouched (evaluation).
        """
        points = self.project(feats)
        b, t, d = points.shape
        points = points.reshape(b * t, d)
        if update:
            self.insert(points)
        bonus = self.knn_distance(points)
        if update:
            self.mag.mul_(self.momentum).add_((1 - self.momentum) * bonus.abs().mean())
        return (bonus / (self.mag + self.eps)).reshape(b, t)

    def forward(self, feats: Tensor) -> Tensor:
        """Training-time bonus: ``compute(feats, update=True)``, shape (B, T - window + 1)."""
        return self.compute(feats, update=True)
