"""ContextWM's context branch: context-frame selection and augmentation, and the context encoder.

Following the official ``ContextualizedResNetEncoder`` (thuml/ContextWM, ``wmlib/nets/encoder/ctx_resnet.py``):
one context frame is chosen per training sequence (a random timestep by default, ``ctx_cond_choice: trand``,
``ctx_resnet.py:116-120``; also the first or last frame), optionally augmented (random shift or random erasing,
``ctx_aug``; none in pre-training), and encoded by a ResNet branch parallel to the main encoder (its ``cond_convin``
and ``cond_res{i}``, with the main encoder's widths and depth) whose pre-pool feature maps at every scale
(32x32x48, 16x16x96, 8x8x192 for 64x64 images) are the shortcuts the cross-attention decoder reads. The branch only
ever feeds the decoder, so it is trained through the decoder loss alone and the RSSM never sees it.

:class:`~sb3_worldmodels.common.resnet.CrossAttentionBlock` (the decoder's attention to these maps) lives with the
ResNet decoder in :mod:`sb3_worldmodels.common.resnet` and is re-exported here.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from sb3_worldmodels.common import distributions
from sb3_worldmodels.common.augment import random_shift
from sb3_worldmodels.common.resnet import CrossAttentionBlock, ResNetEncoder

__all__ = ["ContextEncoder", "CrossAttentionBlock", "select_context", "augment_context", "random_erasing"]

CONTEXT_MODES = ("random", "first", "last")


def select_context(images: Tensor, mode: str = "random", generator: torch.Generator | None = None) -> Tensor:
    """Pick one context frame per sequence.

    :param images: (B, T, C, H, W) frames (any dtype).
    :param mode: ``"random"`` (a uniform timestep per sequence, the ContextWM default), ``"first"`` or ``"last"``.
    :param generator: optional ``torch.Generator`` (on the images' device) for ``"random"``; without one the
        timesteps come from uniform noise drawn through
        :func:`sb3_worldmodels.common.distributions.uniform_like` (``floor(u * T)``), the seam the conformance
        tests feed the official code's noise through.
    :return: (B, C, H, W) context frames.
    """
    if images.dim() != 5:
        raise ValueError(f"select_context takes (B, T, C, H, W) sequences, got shape {tuple(images.shape)}.")
    if mode == "first":
        return images[:, 0]
    if mode == "last":
        return images[:, -1]
    if mode != "random":
        raise ValueError(f"Unknown context mode {mode!r}; choose one of {CONTEXT_MODES}.")
    b, t = images.shape[:2]
    if generator is not None:
        u = torch.rand(b, device=images.device, generator=generator)
    else:
        u = distributions.uniform_like(torch.empty(b, device=images.device))
    idx = (u * t).long().clamp_(0, t - 1)
    return images[torch.arange(b, device=images.device), idx]


def random_erasing(
    images: Tensor,
    prob: float = 0.5,
    scale: tuple[float, float] = (0.02, 0.33),
    ratio: tuple[float, float] = (0.3, 3.3),
    value: float = 0.0,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Erase one random rectangle in each image of a batch with probability ``prob`` (vectorised).

    The rectangle's area is a uniform fraction ``scale`` of the image and its aspect ratio log-uniform in ``ratio``
    (the defaults of torchvision's / kornia's ``RandomErasing``, which the reference uses); where those libraries
    retry a rectangle that does not fit, its sides are clipped to the image instead.

    :param images: (N, C, H, W) floating-point batch.
    :param prob: probability that an image is erased.
    :param scale: range of the erased area as a fraction of the image.
    :param ratio: range of the rectangle's aspect ratio (height / width).
    :param value: fill value (0.0 is mid-grey for images in [-0.5, 0.5]).
    :param generator: optional ``torch.Generator`` on the images' device.
    :return: a new batch of the same shape.
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(
            f"random_erasing takes a (N, C, H, W) floating-point batch, got shape {tuple(images.shape)} and dtype "
            f"{images.dtype}; convert uint8 images with images.float() first."
        )
    n, _, h, w = images.shape
    kw = dict(device=images.device, generator=generator)
    u = torch.rand(n, 5, **kw)  # type: ignore[arg-type]
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[:, 0])
    log_r = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * u[:, 1]
    eh = torch.sqrt(area * torch.exp(log_r)).round().clamp(1, h)
    ew = torch.sqrt(area / torch.exp(log_r)).round().clamp(1, w)
    top = torch.floor(u[:, 2] * (h - eh + 1))
    left = torch.floor(u[:, 3] * (w - ew + 1))
    rows = torch.arange(h, device=images.device)[None, :]
    cols = torch.arange(w, device=images.device)[None, :]
    in_rows = (rows >= top[:, None]) & (rows < (top + eh)[:, None])  # (N, H)
    in_cols = (cols >= left[:, None]) & (cols < (left + ew)[:, None])  # (N, W)
    mask = in_rows[:, :, None] & in_cols[:, None, :] & (u[:, 4] < prob)[:, None, None]
    return images.masked_fill(mask[:, None], value)


def augment_context(
    images: Tensor,
    shift_pad: int = 4,
    erase_prob: float = 0.5,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Context augmentation: DrQ-v2 random shift (:func:`~sb3_worldmodels.common.augment.random_shift`), then
    :func:`random_erasing`.

    :param images: (N, C, H, W) floating-point context frames.
    :param shift_pad: largest shift in pixels (0 disables the shift; the reference offers 4 and 8).
    :param erase_prob: probability of erasing a rectangle in each frame (0 disables erasing).
    :param generator: optional ``torch.Generator`` on the images' device.
    :return: the augmented frames, same shape.
    """
    images = random_shift(images, shift_pad, generator=generator)
    if erase_prob > 0:
        images = random_erasing(images, erase_prob, generator=generator)
    return images


class ContextEncoder(ResNetEncoder):
    """ResNet branch over the context frame whose forward returns its multi-scale feature maps (the shortcuts).

    A :class:`~sb3_worldmodels.common.resnet.ResNetEncoder` of its own (same constructor, same parameters; not
    shared with the main encoder) whose ``forward`` is
    :meth:`~sb3_worldmodels.common.resnet.ResNetEncoder.feature_maps`: the official ``cond_convin`` (Xavier init)
    + activation and ``cond_res{i}`` stacks, each map taken before its ``cond_pool{i}``. Build it with the decoder's
    ``depths`` so that the channels at every attended scale match (the official ``ctx_cnn_depth`` equals
    ``cnn_depth``, ``ctx_res_layers`` ``res_layers``).
    """

    def forward(self, context: Tensor) -> dict[int, Tensor]:  # type: ignore[override]
        """(..., C, H, W) float context frames -> ``{32: (..., 48, 32, 32), 16: (..., 96, 16, 16), 8: ...}``."""
        return self.feature_maps(context)
