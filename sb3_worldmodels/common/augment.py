"""Image augmentation on batches: DrQ-v2's random shift.

:func:`random_shift` moves every image of a ``(N, C, H, W)`` batch by its own whole-pixel offset in
``[-pad, pad]`` along each axis, filling the uncovered border by replicating the edge pixels, in one call:
the output of DrQ-v2's ``RandomShiftsAug`` (Yarats et al., 2021), which pads by ``pad`` and resamples with a
bilinear ``grid_sample``. Because the offsets are whole pixels, the bilinear weights land on pixel centres
and the result is a crop of the padded image: values are moved, never blended. So the crop is taken directly,
with one ``gather`` of clamped pixel indices, on uint8 or floating-point images alike (about 5x cheaper than
resampling the float batch); :func:`shift_grid` gives the equivalent ``grid_sample`` grid, which the tests
compare against. :class:`RandomShift` wraps it as an ``nn.Module``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["RandomShift", "random_shift", "shift_grid", "shift_offsets"]


def shift_grid(shifts: Tensor, height: int, width: int) -> Tensor:
    """Sampling grid for ``F.grid_sample`` that moves each image by whole pixels.

    :param shifts: ``(N, 2)`` offsets ``(dx, dy)`` in pixels (whole numbers, any floating dtype): output pixel
        ``(i, j)`` of image ``n`` samples input pixel ``(i + dy, j + dx)``.
    :param height: image height.
    :param width: image width.
    :return: ``(N, height, width, 2)`` grid of normalised ``(x, y)`` pixel-centre coordinates
        (``align_corners=False``).
    """
    kw = dict(device=shifts.device, dtype=shifts.dtype)
    xs = torch.linspace(-1.0 + 1.0 / width, 1.0 - 1.0 / width, width, **kw)  # type: ignore[arg-type]
    ys = torch.linspace(-1.0 + 1.0 / height, 1.0 - 1.0 / height, height, **kw)  # type: ignore[arg-type]
    base = torch.stack(torch.broadcast_tensors(xs[None, :], ys[:, None]), dim=-1)  # (H, W, 2) as (x, y)
    scale = torch.tensor([2.0 / width, 2.0 / height], **kw)  # type: ignore[arg-type]
    return base[None] + (shifts * scale)[:, None, None, :]


def shift_offsets(n: int, pad: int, device: torch.device | str | None = None,
                  generator: torch.Generator | None = None) -> Tensor:
    """The random offsets of :func:`random_shift`: ``(n, 2)`` int64 ``(dx, dy)``, uniform in ``[-pad, pad]``.

    The only random draw of the augmentation, kept apart so that tests can feed chosen offsets (the
    conformance test feeds the official code's shifts through it). DrQ-v2 draws ``s`` in
    ``{0, ..., 2 * pad}`` for the padded image; ``s - pad`` is the offset here.
    """
    return torch.randint(-pad, pad + 1, (n, 2), device=device, generator=generator)


def random_shift(images: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """Shift each image of a batch by its own random whole-pixel offset of at most ``pad`` (DrQ-v2's aug).

    The result is DrQ-v2's: the image padded by ``pad`` replicated border pixels and resampled (bilinear
    ``grid_sample``) at an offset drawn uniformly from ``{0, ..., 2 * pad}`` along each axis. Whole-pixel
    offsets make that resampling a crop, taken here by gathering each output pixel from its clamped source
    pixel (clamping to the edge is the replicate padding); the padded batch is never built.

    :param images: ``(N, C, H, W)`` batch, uint8 or floating point (values are moved, not rescaled).
    :param pad: largest shift in pixels along each axis; ``0`` returns ``images`` itself.
    :param generator: optional ``torch.Generator`` for the offsets (on the images' device).
    :return: the shifted batch, same shape, dtype and device (contiguous).
    :raises ValueError: if ``images`` is not 4-d or ``pad`` is negative.
    """
    if images.dim() != 4:
        raise ValueError(
            f"random_shift takes a (N, C, H, W) batch, got shape {tuple(images.shape)}; add a batch dim for a "
            "single image (images[None])."
        )
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}.")
    if pad == 0:
        return images
    n, c, h, w = images.shape
    shifts = shift_offsets(n, pad, images.device, generator)  # (dx, dy)
    rows = (torch.arange(h, device=images.device) + shifts[:, 1:]).clamp_(0, h - 1)  # (N, H)
    cols = (torch.arange(w, device=images.device) + shifts[:, :1]).clamp_(0, w - 1)  # (N, W)
    index = (rows[:, :, None] * w + cols[:, None, :]).reshape(n, 1, h * w).expand(n, c, h * w)
    return images.reshape(n, c, h * w).gather(2, index).reshape(n, c, h, w)


class RandomShift(nn.Module):
    """:func:`random_shift` as a module (no parameters): ``RandomShift(pad=4)(images)``.

    :param pad: largest shift in pixels along each axis.
    """

    def __init__(self, pad: int = 4) -> None:
        super().__init__()
        if pad < 0:
            raise ValueError(f"pad must be >= 0, got {pad}.")
        self.pad = pad

    def forward(self, images: Tensor) -> Tensor:
        """Shift each image of ``(N, C, H, W)`` ``images`` by a random offset in ``[-pad, pad]``."""
        return random_shift(images, self.pad)

    def extra_repr(self) -> str:  # noqa: D102
        return f"pad={self.pad}"
