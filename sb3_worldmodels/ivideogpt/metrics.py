"""Video-prediction metrics: PSNR and SSIM here; LPIPS and FVD through networks the user supplies.

All take uint8 frames ``(..., C, H, W)`` (predicted and true, same shape) and return one value per frame
``(...)``, so that a (B, T) clip gives a per-step curve. LPIPS and FVD need pre-trained networks whose weights this
package does not ship: :func:`perceptual_distance` applies any ``net(pred, true) -> (N,)`` (e.g. the ``lpips``
package's ``LPIPS(net="alex")``) frame by frame on images scaled to ``[-1, 1]``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["perceptual_distance", "psnr", "ssim"]


def _pair(pred: Tensor, true: Tensor) -> tuple[Tensor, Tensor]:
    if pred.shape != true.shape or pred.dim() < 3:
        raise ValueError(f"pred and true must be frames (..., C, H, W) of one shape, got {tuple(pred.shape)} and "
                         f"{tuple(true.shape)}.")
    if pred.dtype != torch.uint8 or true.dtype != torch.uint8:
        raise ValueError(f"Metrics take uint8 frames, got {pred.dtype} and {true.dtype}.")
    return pred.float() / 255.0, true.float() / 255.0


def psnr(pred: Tensor, true: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB per frame (frames in [0, 1]; identical frames give 100 dB)."""
    p, t = _pair(pred, true)
    mse = (p - t).pow(2).flatten(-3).mean(-1)
    return 10 * torch.log10(1.0 / mse.clamp(min=1e-10))


def ssim(pred: Tensor, true: Tensor, window: int = 11, sigma: float = 1.5) -> Tensor:
    """Structural similarity per frame (Wang et al. 2004: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03),
    averaged over channels and pixels (valid convolution, as scikit-image's ``gaussian_weights=True``)."""
    p, t = _pair(pred, true)
    lead, (c, h, w) = p.shape[:-3], p.shape[-3:]
    if min(h, w) < window:
        raise ValueError(f"SSIM's {window}x{window} window needs frames of at least that size, got {h}x{w}.")
    x, y = p.reshape(-1, c, h, w), t.reshape(-1, c, h, w)
    g = torch.exp(-((torch.arange(window, dtype=torch.float32) - (window - 1) / 2) ** 2) / (2 * sigma**2))
    g = g / g.sum()
    kernel = (g[:, None] * g[None, :]).expand(c, 1, window, window).to(x.device)

    def blur(z: Tensor) -> Tensor:
        return F.conv2d(z, kernel, groups=c)

    mx, my = blur(x), blur(y)
    vx, vy, cov = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).reshape(lead)


def perceptual_distance(pred: Tensor, true: Tensor, net: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """A perceptual distance (e.g. LPIPS) per frame with a user-supplied network on images in ``[-1, 1]``."""
    p, t = _pair(pred, true)
    lead, shape = p.shape[:-3], p.shape[-3:]
    with torch.no_grad():
        d = net(p.reshape(-1, *shape) * 2 - 1, t.reshape(-1, *shape) * 2 - 1)
    return d.reshape(lead)
