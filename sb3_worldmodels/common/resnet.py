"""ResNet image encoder and decoder of APV / ContextWM, with optional cross-attention to context maps.

The computation is the official one (thuml/ContextWM at 3a8bca8, ``wmlib/nets/modules.py``,
``wmlib/nets/encoder/resnet.py``, ``encoder/ctx_resnet.py``, ``wmlib/nets/decoder/resnet.py`` and
``decoder/ctx_resnet.py``; configs ``res_depth: 3, res_layers: 2, res_norm: batch, cnn_depth: 48``), checked
against it by ``tests/test_conformance_contextwm_pretrain.py``:

- :class:`ResidualLayer` (``modules.py:24-102``): ``ReLU(identity(x) + [conv3x3 -> BN -> ReLU -> conv3x3 -> BN](z))``
  where ``identity`` is a 1x1 conv + BN when the width changes, and ``z = x``, or the output of a
  :class:`CrossAttentionBlock` on ``x`` (``z = ReLU(x + BN(Attention(x + q_pos, ctx + kv_pos)))``) when the layer
  reads a context map.
- :class:`ResNetEncoder`: a 3x3 stride-2 stem conv + activation (64 -> 32), then per stage a stack of 2 residual
  layers at widths 48 / 96 / 192 followed by a 2x2 average pool: 32 -> 16 -> 8 -> 4, i.e. a 4x4x192 = 3072
  embedding. The pre-pool outputs of the stages (32x32x48, 16x16x96, 8x8x192) are the multi-scale feature maps
  the context encoder keeps as shortcuts.
- :class:`ResNetDecoder`: a linear layer to a 4x4x192 map, then per stage a nearest 2x upsampling and a stack of 2
  residual layers that keeps the width and halves it in its last layer (192 -> 96 at 8x8, 96 -> 48 at 16x16,
  48 -> 24 at 32x32), and a 3x3 stride-2 transposed conv to the image (64x64). With cross-attention, the
  even-indexed layers (0, 2, ...) of the stack at each chosen scale (8 and 16 in ContextWM: the official code
  attends at every context map narrower than 32) attend to the context map of that scale.

Initialisation as the official code's: the layers it creates through ``core.Module.get`` (the stem conv, the
decoder's linear layer and its output transposed conv) get Xavier-uniform weights and zero biases
(``wmlib/core/torch_utils.py:23-28``); the ones it builds directly inside the residual layers (convolutions,
BatchNorm, ``nn.MultiheadAttention``) keep PyTorch's defaults; the positional embeddings start at zero.

Images are channels-first floats (``WorldModel.preprocess`` output); leading dims are folded into one batch dim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal, overload

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sb3_worldmodels.common import distributions
from sb3_worldmodels.common.init import dreamer_init
from sb3_worldmodels.common.nets import check_image_size, get_act

__all__ = ["CrossAttentionBlock", "ResidualLayer", "ResNetEncoder", "ResNetDecoder", "make_norm", "xavier_init"]


def make_norm(channels: int, norm: str) -> nn.Module:
    """``BatchNorm2d`` for ``norm="batch"`` (APV / ContextWM), identity for ``"none"``."""
    if norm == "batch":
        return nn.BatchNorm2d(channels)
    if norm == "none":
        return nn.Identity()
    raise ValueError(f"Unknown ResNet norm {norm!r}; choose 'batch' or 'none'.")


def xavier_init(layer: nn.Module) -> nn.Module:
    """Xavier-uniform weight, zero bias: what the official ``core.Module.get`` gives every layer it creates
    (:func:`~sb3_worldmodels.common.init.dreamer_init`'s DreamerV2 style); returns ``layer``."""
    dreamer_init([layer], "v2")
    return layer


def kv_mask_noise(like: Tensor, n: int, tokens: int) -> Tensor:
    """Uniform noise (n, tokens) whose ``argsort`` picks the key/value tokens kept by the cross-attention.

    Drawn through :func:`sb3_worldmodels.common.distributions.uniform_like`, the seam the conformance tests
    use to feed our code and the official code the same noise.
    """
    return distributions.uniform_like(like.new_empty(n, tokens, dtype=torch.float32))


class CrossAttentionBlock(nn.Module):
    """ContextWM cross-attention from a decoder map to a context map: ``ReLU(x + Norm(Attention(x, ctx)))``.

    The official code spreads it over its ``ResidualLayer`` (``wmlib/nets/modules.py:38-41, 68-94``):
    ``cross_attention`` (:class:`~torch.nn.MultiheadAttention` ``att`` + residual dropout), ``norm_cross_att``,
    ``q_pos_emb`` and ``kv_pos_emb``; here they are one module (``attn``, ``resid_dropout``, ``norm``, the two
    embeddings). Queries are the decoder map's pixels plus a learned positional embedding (HW, C), keys and values
    the context map's pixels plus their own (HcWc, C); both start at zero. A random ``kv_mask_ratio`` fraction of
    the key/value tokens is dropped, independently per map, in training *and* evaluation, as the official
    ``random_mask`` does on every call (``kv_mask=False`` in :meth:`forward` keeps them all, which the qualitative
    tools use to show the whole attention map). Attention dropout and residual dropout (0.1) as the official
    ``CrossAttention``.

    :param dim: channels of the decoder map and of the context map.
    :param size: side of the (square) decoder map, for the query positional embedding.
    :param context_size: side of the context map (defaults to ``size``).
    :param heads: attention heads.
    :param dropout: attention and residual dropout.
    :param kv_mask_ratio: fraction of key/value tokens dropped, in ``[0, 1)``.
    :param norm: norm on the attention output (``"batch"`` or ``"none"``).
    """

    def __init__(
        self,
        dim: int,
        size: int,
        context_size: int | None = None,
        heads: int = 4,
        dropout: float = 0.1,
        kv_mask_ratio: float = 0.75,
        norm: str = "batch",
    ) -> None:
        super().__init__()
        context_size = size if context_size is None else context_size
        n_kv = context_size * context_size
        if not 0.0 <= kv_mask_ratio < 1.0 or int(n_kv * (1.0 - kv_mask_ratio)) < 1:
            raise ValueError(
                f"kv_mask_ratio={kv_mask_ratio} must be in [0, 1) and keep at least one of the {n_kv} context "
                "tokens; use e.g. 0.75 (ContextWM) or 0.0 to keep them all."
            )
        self.size, self.context_size, self.kv_mask_ratio = size, context_size, kv_mask_ratio
        self.attn = nn.MultiheadAttention(dim, heads, dropout=dropout, batch_first=True)
        self.resid_dropout = nn.Dropout(dropout)
        self.norm = make_norm(dim, norm)
        self.q_pos_emb = nn.Parameter(torch.zeros(size * size, dim))
        self.kv_pos_emb = nn.Parameter(torch.zeros(n_kv, dim))

    @property
    def kept_tokens(self) -> int:
        """Number of key/value tokens attended to (``int(HcWc * (1 - kv_mask_ratio))``, as the official code)."""
        return int(self.context_size**2 * (1.0 - self.kv_mask_ratio))

    @overload
    def forward(self, x: Tensor, ctx: Tensor, return_attention: Literal[False] = ...,
                kv_mask: bool = ...) -> Tensor: ...

    @overload
    def forward(self, x: Tensor, ctx: Tensor, return_attention: Literal[True],
                kv_mask: bool = ...) -> tuple[Tensor, Tensor]: ...

    @overload
    def forward(self, x: Tensor, ctx: Tensor, return_attention: bool,
                kv_mask: bool = ...) -> Tensor | tuple[Tensor, Tensor]: ...

    def forward(
        self, x: Tensor, ctx: Tensor, return_attention: bool = False, kv_mask: bool = True
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Attend from ``x`` (N, C, H, W) to ``ctx`` (N, C, Hc, Wc).

        :param x: decoder map.
        :param ctx: context map, one per decoder map.
        :param return_attention: also return the attention weights.
        :param kv_mask: drop the random ``kv_mask_ratio`` fraction of the context tokens (the official computation,
            in training and evaluation); ``False`` attends to every token.
        :return: ``ReLU(x + Norm(Attention))`` of ``x``'s shape; with ``return_attention`` also the weights
            (N, heads, H * W, Hc * Wc) over all context pixels, exactly 0 on the dropped tokens (the weights are
            the ones applied, i.e. after attention dropout in training mode).
        """
        n, c, h, w = x.shape
        if (h, w) != (self.size, self.size) or tuple(ctx.shape) != (n, c, self.context_size, self.context_size):
            raise ValueError(
                f"CrossAttentionBlock built for a ({c}, {self.size}, {self.size}) map and a "
                f"({c}, {self.context_size}, {self.context_size}) context, got {tuple(x.shape)} and "
                f"{tuple(ctx.shape)}; give one context map per decoder map, from a context encoder with the "
                "decoder's depths."
            )
        kv = ctx.flatten(2).transpose(1, 2) + self.kv_pos_emb  # (N, HcWc, C)
        n_kv = kv.shape[1]
        keep = None
        if kv_mask and self.kv_mask_ratio > 0:
            keep = kv_mask_noise(kv, n, n_kv).argsort(dim=1)[:, : self.kept_tokens]  # (N, S)
            kv = kv.gather(1, keep[..., None].expand(-1, -1, c))
        q = x.flatten(2).transpose(1, 2) + self.q_pos_emb  # (N, HW, C)
        out, weights = self.attn(q, kv, kv, need_weights=return_attention, average_attn_weights=False)
        out = self.resid_dropout(out).transpose(1, 2).reshape(n, c, h, w)
        y = F.relu(x + self.norm(out))
        if not return_attention:
            return y
        assert weights is not None
        if keep is not None:
            full = weights.new_zeros(*weights.shape[:-1], n_kv)
            weights = full.scatter(-1, keep[:, None, None, :].expand_as(weights), weights)
        return y, weights


class ResidualLayer(nn.Module):
    """The official ``ResidualLayer`` (``wmlib/nets/modules.py:24-102``), optionally with cross-attention first.

    ``res_block`` is ``[conv3x3, BN, ReLU, conv3x3, BN]`` (``[conv3x3, ReLU, conv3x3]`` without norm), both convs
    without bias; ``identity`` a bias-free 1x1 conv + norm when the width changes.

    :param in_dim: input channels.
    :param out_dim: output channels.
    :param norm: ``"batch"`` or ``"none"``.
    :param cross_attention: a :class:`CrossAttentionBlock` over ``in_dim`` channels, or ``None``.
    """

    def __init__(
        self, in_dim: int, out_dim: int, norm: str = "batch", cross_attention: CrossAttentionBlock | None = None
    ) -> None:
        super().__init__()
        self.cross_attention = cross_attention
        self.identity: nn.Module = nn.Identity()
        if in_dim != out_dim:
            self.identity = nn.Sequential(nn.Conv2d(in_dim, out_dim, 1, bias=False), make_norm(out_dim, norm))
        conv1 = nn.Conv2d(in_dim, out_dim, 3, padding=1, bias=False)
        conv2 = nn.Conv2d(out_dim, out_dim, 3, padding=1, bias=False)
        if norm == "none":
            self.res_block = nn.Sequential(conv1, nn.ReLU(), conv2)
        else:
            self.res_block = nn.Sequential(conv1, make_norm(out_dim, norm), nn.ReLU(), conv2, make_norm(out_dim, norm))

    def forward(
        self, x: Tensor, ctx: Tensor | None = None, return_attention: bool = False, kv_mask: bool = True
    ) -> tuple[Tensor, Tensor | None]:
        """(N, in_dim, H, W) -> ((N, out_dim, H, W), attention weights or ``None``).

        :param x: input map.
        :param ctx: context map, required exactly when the layer has cross-attention.
        :param return_attention: return the attention weights (only layers with cross-attention have any).
        :param kv_mask: see :meth:`CrossAttentionBlock.forward`.
        """
        z, weights = x, None
        if self.cross_attention is not None:
            if ctx is None:
                raise ValueError("This residual layer attends to a context map; pass the context.")
            if return_attention:
                z, weights = self.cross_attention(x, ctx, return_attention=True, kv_mask=kv_mask)
            else:
                z = self.cross_attention(x, ctx, kv_mask=kv_mask)
        return F.relu(self.identity(x) + self.res_block(z)), weights


def _check_depths(depths: Sequence[int], image_size: int, in_channels: int) -> tuple[int, ...]:
    depths = tuple(int(d) for d in depths)
    if not depths or min(depths) < 1:
        raise ValueError(f"depths must be a non-empty sequence of positive widths, e.g. (48, 96, 192); got {depths}")
    check_image_size((in_channels, image_size, image_size), len(depths) + 1, "ResNet")
    return depths


class ResNetEncoder(nn.Module):
    """APV / ContextWM ResNet image encoder: (..., C, H, W) -> (..., out_dim), 4 x 4 x 192 = 3072 at 64x64.

    The official ``ResNetEncoder`` (``wmlib/nets/encoder/resnet.py``): ``stem`` is its ``convin`` (+ activation),
    ``stages[i]`` its ``res{i}.stack``, each followed by its ``pool{i}``.

    :param in_channels: image channels.
    :param depths: widths of the stages (one per 2x down-sampling after the stem).
    :param image_size: side of the square input image (divisible by ``2 ** (len(depths) + 1)``).
    :param act: activation after the stem conv (the residual layers use ReLU, as in the reference).
    :param norm: ``"batch"`` (reference) or ``"none"``.
    :param blocks: residual layers per stage.
    """

    def __init__(
        self,
        in_channels: int = 3,
        depths: Sequence[int] = (48, 96, 192),
        image_size: int = 64,
        act: str = "elu",
        norm: str = "batch",
        blocks: int = 2,
    ) -> None:
        super().__init__()
        self.depths = _check_depths(depths, image_size, in_channels)
        self.in_channels, self.image_size = in_channels, image_size
        self.stem = nn.Sequential(xavier_init(nn.Conv2d(in_channels, self.depths[0], 3, 2, 1)), get_act(act)())
        self.stages = nn.ModuleList()
        ch = self.depths[0]
        for depth in self.depths:
            layers = [ResidualLayer(ch if i == 0 else depth, depth, norm) for i in range(blocks)]
            self.stages.append(nn.ModuleList(layers))
            ch = depth
        side = image_size // 2 ** (len(self.depths) + 1)
        self.out_shape = (self.depths[-1], side, side)
        self.out_dim = self.depths[-1] * side * side
        #: sides of the feature maps returned by :meth:`feature_maps`, largest first (32, 16, 8 at 64x64)
        self.scales = tuple(image_size // 2 ** (i + 1) for i in range(len(self.depths)))

    def _fold(self, x: Tensor) -> Tensor:
        shape = tuple(x.shape[-3:])
        if shape != (self.in_channels, self.image_size, self.image_size):
            side = 2 ** (len(self.depths) + 1)
            raise ValueError(
                f"This encoder was built for ({self.in_channels}, {self.image_size}, {self.image_size}) images, got "
                f"{shape} (channels first); build it with in_channels={shape[0]} and image_size={shape[-1]} (square, "
                f"divisible by {side}), or resize the observations to {self.image_size}x{self.image_size} (e.g. "
                f"gymnasium.wrappers.ResizeObservation(env, ({self.image_size}, {self.image_size})))."
            )
        return x.reshape(-1, *x.shape[-3:])

    def feature_maps(self, x: Tensor) -> dict[int, Tensor]:
        """Pre-pool output of every stage, keyed by its side: ``{32: (..., 48, 32, 32), 16: ..., 8: ...}`` (64x64).

        :param x: (..., C, H, W) float images.
        :return: maps of shape (..., C_i, s_i, s_i), keyed by the side s_i.
        """
        return {s: h.reshape(*x.shape[:-3], *h.shape[1:]) for s, h in self._maps(self._fold(x)).items()}

    def _maps(self, h: Tensor) -> dict[int, Tensor]:
        h = self.stem(h)
        maps: dict[int, Tensor] = {}
        for i, stage in enumerate(self.stages):
            if i > 0:
                h = F.avg_pool2d(h, 2)
            for layer in stage:
                h, _ = layer(h)
            maps[h.shape[-1]] = h
        return maps

    def forward(self, x: Tensor) -> Tensor:
        """(..., C, H, W) float images -> (..., out_dim) embedding (the pooled last feature map, flattened)."""
        last = self._maps(self._fold(x))[self.scales[-1]]
        return F.avg_pool2d(last, 2).reshape(*x.shape[:-3], self.out_dim)


class ResNetDecoder(nn.Module):
    """APV / ContextWM ResNet image decoder, with ContextWM's cross-attention at the chosen scales.

    The official ``ResNetDecoder`` / ``ContextualizedResNetDecoder`` (``wmlib/nets/decoder/resnet.py``,
    ``decoder/ctx_resnet.py``): ``linear`` is its ``convin``, ``stages[i]`` its ``res{i}.stack`` (after the
    ``unpool{i}`` upsampling), ``out`` its ``convout``. The official decoder reads features ``[stoch, deter]``,
    ours ``[deter, stoch]``: the columns of ``linear`` are the official ones reordered
    (:mod:`sb3_worldmodels.contextwm.official`).

    :param feat_dim: input feature size.
    :param out_channels: image channels.
    :param depths: encoder stage widths; the decoder mirrors them (192 -> 96 -> 48 -> 24 with the defaults).
    :param image_size: side of the square output image.
    :param cross_attention_scales: sides of the decoder maps (among 8, 16, 32 at 64x64) whose even-indexed residual
        layers attend to the context map of the same side; ``()`` for the plain APV decoder, ``(8, 16)`` for
        ContextWM (the official code attends at every map narrower than 32).
    :param heads: attention heads.
    :param dropout: attention dropout.
    :param kv_mask_ratio: fraction of context tokens dropped.
    :param norm: ``"batch"`` or ``"none"``.
    :param blocks: residual layers per stage.
    """

    def __init__(
        self,
        feat_dim: int,
        out_channels: int = 3,
        depths: Sequence[int] = (48, 96, 192),
        image_size: int = 64,
        cross_attention_scales: Sequence[int] = (),
        heads: int = 4,
        dropout: float = 0.1,
        kv_mask_ratio: float = 0.75,
        norm: str = "batch",
        blocks: int = 2,
    ) -> None:
        super().__init__()
        self.depths = _check_depths(depths, image_size, out_channels)
        self.shape = (out_channels, image_size, image_size)
        side = image_size // 2 ** (len(self.depths) + 1)
        self.start = (self.depths[-1], side, side)
        stage_sides = [side * 2 ** (i + 1) for i in range(len(self.depths))]
        self.cross_attention_scales = tuple(sorted(int(s) for s in cross_attention_scales))
        unknown = set(self.cross_attention_scales) - set(stage_sides)
        if unknown:
            raise ValueError(
                f"cross_attention_scales {sorted(unknown)} are not decoder map sides; choose among {stage_sides} "
                "(ContextWM uses (8, 16) at 64x64)."
            )
        self.linear = xavier_init(nn.Linear(feat_dim, self.depths[-1] * side * side))
        self.stages = nn.ModuleList()
        widths = (*self.depths[::-1], self.depths[0] // 2)
        for i, s in enumerate(stage_sides):
            ch, out = widths[i], widths[i + 1]
            layers = []
            for j in range(blocks):
                attn = None
                if j % 2 == 0 and s in self.cross_attention_scales:  # official has_addin: x % 2 == 0
                    attn = CrossAttentionBlock(ch, s, None, heads, dropout, kv_mask_ratio, norm)
                layers.append(ResidualLayer(ch, out if j == blocks - 1 else ch, norm, attn))
            self.stages.append(nn.ModuleList(layers))
        self.out = xavier_init(nn.ConvTranspose2d(widths[-1], out_channels, 3, 2, 1, output_padding=1))

    def _context(self, context: Mapping[int, Tensor] | None, lead: tuple[int, ...], n: int) -> dict[int, Tensor]:
        """Fold each context map to (N, C, s, s), repeating it over the feature dims its lead dims lack."""
        if not self.cross_attention_scales:
            return {}
        if context is None or any(s not in context for s in self.cross_attention_scales):
            have = None if context is None else sorted(context)
            raise ValueError(
                f"This decoder attends to context maps at sides {list(self.cross_attention_scales)}; pass "
                f"context=ContextEncoder(...)(frame) (got {have})."
            )
        out = {}
        for s in self.cross_attention_scales:
            ctx = context[s]
            c_lead = tuple(ctx.shape[:-3])
            if c_lead != lead[: len(c_lead)]:
                raise ValueError(
                    f"Context map at side {s} has leading dims {c_lead}, which must be a prefix of the features' "
                    f"{lead} (e.g. one context per sequence: (B, C, {s}, {s}) for (B, T, F) features)."
                )
            ctx = ctx.reshape(-1, *ctx.shape[-3:])
            out[s] = ctx.repeat_interleave(n // ctx.shape[0], dim=0) if ctx.shape[0] != n else ctx
        return out

    def _run(
        self, feat: Tensor, context: Mapping[int, Tensor] | None, return_attention: bool, kv_mask: bool = True
    ) -> tuple[Tensor, dict[int, Tensor]]:
        lead = tuple(feat.shape[:-1])
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, *self.start)
        ctx = self._context(context, lead, x.shape[0])
        maps: dict[int, Tensor] = {}
        for stage in self.stages:
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            for layer in stage:
                x, weights = layer(x, ctx.get(x.shape[-1]), return_attention, kv_mask)
                if weights is not None and x.shape[-1] not in maps:
                    maps[x.shape[-1]] = weights.reshape(*lead, *weights.shape[1:])
        return self.out(x).reshape(*lead, *self.shape), maps

    def forward(self, feat: Tensor, context: Mapping[int, Tensor] | None = None, kv_mask: bool = True) -> Tensor:
        """(..., feat_dim) -> (..., C, H, W) mean image.

        :param feat: features.
        :param context: context maps by side (from :meth:`ResNetEncoder.feature_maps` / ``ContextEncoder``),
            required when the decoder has cross-attention. Their leading dims are a prefix of ``feat``'s (one context per
            sequence, ``(B, C, s, s)`` for ``(B, T, F)`` features) and are repeated over the rest.
        :param kv_mask: drop the random fraction of context tokens (the official computation, also in evaluation);
            ``False`` attends to all of them.
        """
        return self._run(feat, context, False, kv_mask)[0]

    def forward_with_attention(
        self, feat: Tensor, context: Mapping[int, Tensor], kv_mask: bool = True
    ) -> tuple[Tensor, dict[int, Tensor]]:
        """Like :meth:`forward`, also returning the cross-attention weights by side (of the first attending layer
        of each stage): ``(..., heads, s*s, s*s)``."""
        return self._run(feat, context, True, kv_mask)
