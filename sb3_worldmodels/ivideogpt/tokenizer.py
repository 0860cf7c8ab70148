"""iVideoGPT's compressive tokenizer: many tokens for the context frames, few for each future frame.

Context frames go through a VQGAN-style encoder to a ``latent_side x latent_side`` grid quantised with the context
codebook (256 tokens per 64x64 frame) and back through a plain decoder. A future frame goes through a *conditional*
encoder whose stages cross-attend to the context frames' feature maps (so it only needs to encode what changed): its
latent grid is cut into ``patch x patch`` patches, each projected to one vector and quantised with a separate
dynamics codebook (16 tokens per frame). The conditional decoder mirrors it, cross-attending to the same context
features. Training minimises the L1 reconstruction of both paths, the VQ codebook and commitment losses (beta
``commitment``) and, when a network is given, a perceptual loss.

Images are uint8 at the interface and ``x / 127.5 - 1`` inside.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sb3_worldmodels.ivideogpt.config import TokenizerConfig

__all__ = ["CompressiveTokenizer", "VectorQuantizer", "to_float", "to_uint8"]


def to_float(frames: Tensor) -> Tensor:
    """uint8 frames to floats in ``[-1, 1]``."""
    if frames.dtype != torch.uint8:
        raise ValueError(f"Frames must be uint8 (0..255), got {frames.dtype}; convert with (x * 255).to(torch.uint8).")
    return frames.float() / 127.5 - 1.0


def to_uint8(images: Tensor) -> Tensor:
    """Floats in ``[-1, 1]`` to uint8 frames."""
    return ((images.clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def _norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels, eps=1e-6)


class ResBlock(nn.Module):
    """VQGAN residual block: ``skip(x) + conv(silu(norm(conv(silu(norm(x))))))``."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_norm(cin), nn.SiLU(), nn.Conv2d(cin, cout, 3, padding=1),
                                  _norm(cout), nn.SiLU(), nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """The block's output."""
        return self.skip(x) + self.body(x)


class ContextAttention(nn.Module):
    """Cross-attention from a feature map (N, C, H, W) to context tokens (N, S, C), added to the map."""

    def __init__(self, channels: int, heads: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.attn = nn.MultiheadAttention(channels, heads, batch_first=True)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        """``x`` plus what its pixels read from ``context``."""
        n, c, h, w = x.shape
        q = self.norm(x).flatten(2).transpose(1, 2)
        out, _ = self.attn(q, context, context, need_weights=False)
        return x + out.transpose(1, 2).reshape(n, c, h, w)


class VectorQuantizer(nn.Module):
    """Nearest-codebook-vector quantisation with the straight-through gradient (VQ-VAE).

    :param codes: codebook size.
    :param dim: vector dimension.
    :param commitment: weight beta of ``|z - sg(e)|^2`` next to the codebook term ``|sg(z) - e|^2``.
    """

    def __init__(self, codes: int, dim: int, commitment: float = 1.0) -> None:
        super().__init__()
        self.commitment = commitment
        self.codebook = nn.Embedding(codes, dim)
        nn.init.uniform_(self.codebook.weight, -1.0 / codes, 1.0 / codes)

    def forward(self, z: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Quantise ``z`` (..., dim): the straight-through vectors, the indices (...) and the VQ loss."""
        flat = z.reshape(-1, z.shape[-1])
        book = self.codebook.weight
        dist = flat.pow(2).sum(1, keepdim=True) - 2 * flat @ book.t() + book.pow(2).sum(1)[None]
        idx = dist.argmin(1).view(z.shape[:-1])
        zq = self.codebook(idx)
        loss = F.mse_loss(zq, z.detach()) + self.commitment * F.mse_loss(z, zq.detach())
        return z + (zq - z).detach(), idx, loss

    def lookup(self, idx: Tensor) -> Tensor:
        """Codebook vectors (..., dim) of indices (...)."""
        return self.codebook(idx)


class Encoder(nn.Module):
    """Frames (N, C, H, W) to a latent grid (N, latent_dim, s, s), optionally cross-attending to context features.

    :param cfg: tokenizer configuration.
    :param conditional: cross-attend at the ``cfg.attn_sides`` stages to the context features of the same side.
    """

    def __init__(self, cfg: TokenizerConfig, conditional: bool = False) -> None:
        super().__init__()
        self.conditional = conditional
        self.conv_in = nn.Conv2d(cfg.channels, cfg.widths[0], 3, padding=1)
        self.stages, self.attn, self.down = nn.ModuleList(), nn.ModuleDict(), nn.ModuleList()
        self.sides: list[int] = []
        prev = cfg.widths[0]
        for i, width in enumerate(cfg.widths):
            side = cfg.image_size // 2**i
            self.sides.append(side)
            self.stages.append(nn.Sequential(*[ResBlock(prev if j == 0 else width, width) for j in range(cfg.blocks)]))
            if conditional and side in cfg.attn_sides:
                self.attn[str(side)] = ContextAttention(width, cfg.heads)
            last = i == len(cfg.widths) - 1
            self.down.append(nn.Identity() if last else nn.Conv2d(width, width, 3, stride=2, padding=1))
            prev = width
        self.mid = ResBlock(prev, prev)
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), nn.Conv2d(prev, cfg.latent_dim, 3, padding=1))

    def forward(self, x: Tensor, context: dict[int, Tensor] | None = None) -> tuple[Tensor, dict[int, Tensor]]:
        """The latent grid and the stage outputs ``{side: (N, C, side, side)}`` (the context features)."""
        h = self.conv_in(x)
        feats = {}
        for stage, down, side in zip(self.stages, self.down, self.sides):
            h = stage(h)
            if str(side) in self.attn:
                assert context is not None, "a conditional encoder needs the context features"
                h = self.attn[str(side)](h, context[side])
            feats[side] = h
            h = down(h)
        return self.out(self.mid(h)), feats


class Decoder(nn.Module):
    """A latent grid (N, latent_dim, s, s) to frames (N, C, H, W), mirroring :class:`Encoder`.

    :param cfg: tokenizer configuration.
    :param conditional: cross-attend at the ``cfg.attn_sides`` stages to the context features of the same side.
    """

    def __init__(self, cfg: TokenizerConfig, conditional: bool = False) -> None:
        super().__init__()
        widths = list(cfg.widths)
        self.conv_in = nn.Conv2d(cfg.latent_dim, widths[-1], 3, padding=1)
        self.mid = ResBlock(widths[-1], widths[-1])
        self.stages, self.attn, self.up = nn.ModuleList(), nn.ModuleDict(), nn.ModuleList()
        self.sides: list[int] = []
        prev = widths[-1]
        for i in reversed(range(len(widths))):
            side = cfg.image_size // 2**i
            self.sides.append(side)
            self.stages.append(nn.Sequential(*[ResBlock(prev if j == 0 else widths[i], widths[i])
                                               for j in range(cfg.blocks)]))
            if conditional and side in cfg.attn_sides:
                self.attn[str(side)] = ContextAttention(widths[i], cfg.heads)
            self.up.append(nn.Conv2d(widths[i], widths[i], 3, padding=1) if i > 0 else nn.Identity())
            prev = widths[i]
        self.out = nn.Sequential(_norm(prev), nn.SiLU(), nn.Conv2d(prev, cfg.channels, 3, padding=1))

    def forward(self, z: Tensor, context: dict[int, Tensor] | None = None) -> Tensor:
        """Images in ``[-1, 1]`` (unclamped) of the latent grid ``z``."""
        h = self.mid(self.conv_in(z))
        for stage, up, side in zip(self.stages, self.up, self.sides):
            h = stage(h)
            if str(side) in self.attn:
                assert context is not None, "a conditional decoder needs the context features"
                h = self.attn[str(side)](h, context[side])
            if not isinstance(up, nn.Identity):
                h = up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.out(h)


class CompressiveTokenizer(nn.Module):
    """Context frames to ``context_tokens`` tokens each, future frames to ``dynamics_tokens`` tokens each, and back.

    :param cfg: tokenizer configuration (see :func:`~sb3_worldmodels.ivideogpt.config.make_tokenizer_config`).
    """

    def __init__(self, cfg: TokenizerConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        self.context_encoder = Encoder(cfg)
        self.context_quant = VectorQuantizer(cfg.context_codes, cfg.latent_dim, cfg.commitment)
        self.context_decoder = Decoder(cfg)
        self.dynamics_encoder = Encoder(cfg, conditional=True)
        patch_dim = cfg.patch * cfg.patch * cfg.latent_dim
        self.patch_in = nn.Linear(patch_dim, cfg.latent_dim)
        self.dynamics_quant = VectorQuantizer(cfg.dynamics_codes, cfg.latent_dim, cfg.commitment)
        self.patch_out = nn.Linear(cfg.latent_dim, patch_dim)
        self.dynamics_decoder = Decoder(cfg, conditional=True)

    # ---------------------------------------------------------------------------------------- shapes
    def _check(self, frames: Tensor) -> None:
        cfg = self.cfg
        want = (cfg.channels, cfg.image_size, cfg.image_size)
        if frames.dim() != 5 or tuple(frames.shape[2:]) != want:
            raise ValueError(f"The tokenizer takes uint8 clips (B, T, {want[0]}, {want[1]}, {want[2]}); got shape "
                             f"{tuple(frames.shape)}. Resize the frames or build it with "
                             f"image_size={frames.shape[-1]}.")

    def _patchify(self, z: Tensor) -> Tensor:
        """(N, D, s, s) grid to (N, (s/p)^2, p*p*D) patch vectors."""
        p = self.cfg.patch
        n, d, s, _ = z.shape
        z = z.reshape(n, d, s // p, p, s // p, p).permute(0, 2, 4, 3, 5, 1)
        return z.reshape(n, (s // p) ** 2, p * p * d)

    def _unpatchify(self, patches: Tensor) -> Tensor:
        """Inverse of :meth:`_patchify`."""
        p, d, s = self.cfg.patch, self.cfg.latent_dim, self.cfg.latent_side
        n = patches.shape[0]
        z = patches.reshape(n, s // p, s // p, p, p, d).permute(0, 5, 1, 3, 2, 4)
        return z.reshape(n, d, s, s)

    # ---------------------------------------------------------------------------------------- context
    def encode_context(self, context_frames: Tensor) -> tuple[Tensor, dict[int, Tensor], Tensor, Tensor]:
        """Tokens (B, Tc, context_tokens) of uint8 context frames (B, Tc, C, H, W) and their features.

        :return: the tokens, the context features ``{side: (B, Tc * side^2, C)}`` the conditional networks attend
            to, the straight-through quantised grids (B * Tc, D, s, s) and the VQ loss.
        """
        self._check(context_frames)
        b, tc = context_frames.shape[:2]
        z, feats = self.context_encoder(to_float(context_frames).flatten(0, 1))
        zq, idx, vq_loss = self.context_quant(z.permute(0, 2, 3, 1))
        context = {side: f.reshape(b, tc, f.shape[1], -1).permute(0, 1, 3, 2).reshape(b, -1, f.shape[1])
                   for side, f in feats.items()}
        return idx.reshape(b, tc, -1), context, zq.permute(0, 3, 1, 2), vq_loss

    def _expand(self, context: dict[int, Tensor], frames: int) -> dict[int, Tensor]:
        """Repeat each clip's context features for its ``frames`` future frames."""
        return {side: f.repeat_interleave(frames, 0) for side, f in context.items()}

    def decode_context(self, tokens: Tensor) -> Tensor:
        """uint8 frames (B, Tc, C, H, W) of context tokens (B, Tc, context_tokens)."""
        b, tc = tokens.shape[:2]
        s = self.cfg.latent_side
        z = self.context_quant.lookup(tokens.reshape(b * tc, s, s)).permute(0, 3, 1, 2)
        return to_uint8(self.context_decoder(z)).reshape(b, tc, *self._frame_shape())

    def _frame_shape(self) -> tuple[int, int, int]:
        return self.cfg.channels, self.cfg.image_size, self.cfg.image_size

    # ---------------------------------------------------------------------------------------- dynamics
    def encode_dynamics(self, frames: Tensor, context: dict[int, Tensor]) -> tuple[Tensor, Tensor, Tensor]:
        """Tokens (B, F, dynamics_tokens) of uint8 future frames (B, F, C, H, W) given their clips' context features.

        :return: the tokens, the straight-through quantised patch vectors (B * F, n, D) and the VQ loss.
        """
        self._check(frames)
        b, f = frames.shape[:2]
        z, _ = self.dynamics_encoder(to_float(frames).flatten(0, 1), self._expand(context, f))
        zq, idx, vq_loss = self.dynamics_quant(self.patch_in(self._patchify(z)))
        return idx.reshape(b, f, -1), zq, vq_loss

    def _decode_dynamics_vectors(self, vectors: Tensor, context: dict[int, Tensor], frames: int) -> Tensor:
        return self.dynamics_decoder(self._unpatchify(self.patch_out(vectors)), self._expand(context, frames))

    def decode_dynamics(self, tokens: Tensor, context: dict[int, Tensor]) -> Tensor:
        """uint8 future frames (B, F, C, H, W) of dynamics tokens (B, F, dynamics_tokens) and the context features."""
        b, f = tokens.shape[:2]
        images = self._decode_dynamics_vectors(self.dynamics_quant.lookup(tokens.flatten(0, 1)), context, f)
        return to_uint8(images).reshape(b, f, *self._frame_shape())

    # ---------------------------------------------------------------------------------------- training
    def loss(
        self, frames: Tensor, perceptual: Callable[[Tensor, Tensor], Tensor] | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Tokenizer loss on uint8 clips (B, T, C, H, W) whose first ``context_frames`` frames are the context.

        :param perceptual: ``perceptual(recon, target) -> scalar`` on images in ``[-1, 1]`` (e.g. LPIPS), weighted
            by ``cfg.perceptual_weight``; required when that weight is positive.
        :return: the total loss and its parts (``context_l1``, ``dynamics_l1``, ``vq_loss``, ``perceptual``).
        """
        cfg = self.cfg
        self._check(frames)
        if frames.shape[1] <= cfg.context_frames:
            raise ValueError(f"Clips need more than context_frames={cfg.context_frames} frames, got {frames.shape[1]}.")
        if cfg.perceptual_weight > 0 and perceptual is None:
            raise ValueError("perceptual_weight > 0 needs a perceptual network: pass perceptual=lpips_fn (e.g. the "
                             "lpips package's LPIPS(net='vgg') with its weights), or set perceptual_weight=0.")
        tc = cfg.context_frames
        x = to_float(frames)
        _, context, zq_ctx, ctx_vq = self.encode_context(frames[:, :tc])
        recon_ctx = self.context_decoder(zq_ctx)
        future = frames[:, tc:]
        _, zq_dyn, dyn_vq = self.encode_dynamics(future, context)
        recon_dyn = self._decode_dynamics_vectors(zq_dyn, context, future.shape[1])
        target_ctx, target_dyn = x[:, :tc].flatten(0, 1), x[:, tc:].flatten(0, 1)
        ctx_l1 = (recon_ctx - target_ctx).abs().mean()
        dyn_l1 = (recon_dyn - target_dyn).abs().mean()
        vq = ctx_vq + dyn_vq
        total = ctx_l1 + dyn_l1 + vq
        metrics = {"context_l1": ctx_l1.detach(), "dynamics_l1": dyn_l1.detach(), "vq_loss": vq.detach()}
        if cfg.perceptual_weight > 0 and perceptual is not None:
            p = perceptual(torch.cat([recon_ctx, recon_dyn]), torch.cat([target_ctx, target_dyn]))
            total = total + cfg.perceptual_weight * p
            metrics["perceptual"] = p.detach()
        metrics["tokenizer_loss"] = total.detach()
        return total, metrics
