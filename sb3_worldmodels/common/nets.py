"""Network building blocks: MLPs, convolutional image encoders and decoders, norms.

Two architectures are covered by one set of classes:

- DreamerV3 style: LayerNorm + SiLU everywhere, kernel-4 stride-2 convs with padding 1 (the image is
  halved at every stage down to 4x4), a linear layer back to 4x4 and transposed convs in the decoder.
- DreamerV2 style: ELU without norms, kernel-4 stride-2 convs without padding (64 -> 2x2 x 8d), and a
  decoder from a 1x1 map with transposed-conv kernels 5, 5, 6, 6.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import MSEDist, TwoHotDist
from sb3_worldmodels.common.init import mark_zero_init

__all__ = ["get_act", "AlignedLinear", "MLP", "ScalarHead", "ChannelNorm", "ConvEncoder", "ConvDecoder",
           "check_image_size", "image_size_error"]


def get_act(name: str) -> type[nn.Module]:
    """Activation class by name: ``silu``, ``elu``, ``relu``, ``tanh``, ``gelu``."""
    table: dict[str, type[nn.Module]] = {
        "silu": nn.SiLU,
        "elu": nn.ELU,
        "relu": nn.ReLU,
        "tanh": nn.Tanh,
        "gelu": nn.GELU,
    }
    if name not in table:
        raise ValueError(f"Unknown activation {name!r}; choose one of {sorted(table)}.")
    return table[name]


class AlignedLinear(nn.Linear):
    """``nn.Linear`` whose matrix product runs on an output width rounded up to a multiple of ``ALIGN``.

    The parameters, their shapes and the ``state_dict`` are those of ``nn.Linear``, and so are the outputs: the
    weight and bias get zero rows appended for the product and the extra columns are sliced off (a view). This is
    for wide, oddly sized outputs such as DreamerV3's 255-bin two-hot heads: on an AVX2 CPU with MKL a
    (16384 x 64) @ (64 x 255) product took 46 ms against 14 ms at 256 columns, and GPU kernels favour aligned
    widths too. Widths under ``MIN_WIDTH`` or already aligned run as a plain ``nn.Linear``.

    :param pad_logits: for logits read only through a softmax
        (:class:`~sb3_worldmodels.common.distributions.TwoHotDist` with its ``bins``): return the aligned width, the
        extra columns set to ``-inf`` (classes of probability exactly zero), instead of slicing. That skips the
        slice's copy before the softmax and its zero-filled gradient in the backward pass. :attr:`width` is the
        width returned.
    """

    ALIGN = 16
    MIN_WIDTH = 64

    def __init__(self, in_features: int, out_features: int, bias: bool = True, pad_logits: bool = False,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> None:
        super().__init__(in_features, out_features, bias, device, dtype)
        self.pad = 0 if out_features < self.MIN_WIDTH else -out_features % self.ALIGN
        if pad_logits and not bias:
            raise ValueError("AlignedLinear(pad_logits=True) needs bias=True: the extra logits are -inf biases.")
        self.pad_logits = pad_logits
        self.width = out_features + self.pad if pad_logits else out_features

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_features) -> (..., width): the values of ``nn.Linear``, then ``-inf`` under ``pad_logits``."""
        if self.pad == 0:
            return super().forward(x)
        fill = -math.inf if self.pad_logits else 0.0
        bias = None if self.bias is None else F.pad(self.bias, (0, self.pad), value=fill)
        out = F.linear(x, F.pad(self.weight, (0, 0, 0, self.pad)), bias)
        return out if self.pad_logits else out[..., : self.out_features]


class MLP(nn.Sequential):
    """Stack of ``layers`` x (Linear -> [LayerNorm] -> act), then an optional output Linear.

    :param in_dim: input features.
    :param out_dim: output features of the final Linear, or ``None`` to end on the last hidden layer.
    :param layers: number of hidden layers.
    :param units: hidden width.
    :param act: activation name.
    :param norm: whether to put LayerNorm before each activation.
    :param zero_out: initialise the output layer to zero (DreamerV3 reward and critic heads).
    :param pad_logits: the output layer's ``pad_logits`` (see :class:`AlignedLinear`): for two-hot heads, whose
        outputs may then be wider than ``out_dim``; :attr:`out_dim` is the width returned.
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int | None,
        layers: int,
        units: int,
        act: str = "silu",
        norm: bool = True,
        zero_out: bool = False,
        pad_logits: bool = False,
    ) -> None:
        mods: list[nn.Module] = []
        dim = in_dim
        for _ in range(layers):
            mods.append(nn.Linear(dim, units, bias=not norm))
            if norm:
                mods.append(nn.LayerNorm(units, eps=1e-3))
            mods.append(get_act(act)())
            dim = units
        if out_dim is not None:
            out = AlignedLinear(dim, out_dim, pad_logits=pad_logits)
            if zero_out:
                nn.init.zeros_(out.weight)
                nn.init.zeros_(out.bias)
                mark_zero_init(out)
            mods.append(out)
            dim = out.width
        super().__init__(*mods)
        self.out_dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """(..., in_dim) -> (..., out_dim); leading dims are folded into one batch dim for plain GEMMs
        (a Linear on a non-contiguous 3-d slice would otherwise run as a much slower batched matmul)."""
        lead = x.shape[:-1]
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(*lead, self.out_dim)


class ScalarHead(MLP):
    """An :class:`MLP` predicting one scalar per input, read as a distribution: two-hot over ``bins`` (DreamerV3
    reward and critic heads: zero-initialised output, logits padded with :class:`AlignedLinear`'s ``pad_logits``) or
    a unit Gaussian on a single output (DreamerV2). The output layer and the distribution are chosen together here,
    so a padded two-hot output is always read with its number of bins.

    :param in_dim: input features.
    :param layers: number of hidden layers.
    :param units: hidden width.
    :param act: activation name.
    :param norm: whether to put LayerNorm before each activation.
    :param twohot: two-hot over ``bins`` (else a unit Gaussian, ``MSEDist`` with ``coef=0.5``).
    :param bins: number of two-hot bins.
    """

    def __init__(self, in_dim: int, layers: int, units: int, act: str = "silu", norm: bool = True,
                 twohot: bool = True, bins: int = 255) -> None:
        super().__init__(in_dim, bins if twohot else 1, layers, units, act, norm, zero_out=twohot, pad_logits=twohot)
        self.twohot, self.bins = twohot, bins

    def dist(self, out: Tensor) -> TwoHotDist | MSEDist:
        """The distribution of this head's raw output ``out`` (of this head or a copy of it, e.g. a slow critic)."""
        return TwoHotDist(out, bins=self.bins) if self.twohot else MSEDist(out[..., 0], coef=0.5)


class ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channel axis of an (N, C, H, W) tensor."""

    def forward(self, x: Tensor) -> Tensor:  # noqa: D102
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def check_image_size(shape: Sequence[int], stages: int, style: str) -> None:
    """Raise a ``ValueError`` naming the fix when the conv stack cannot take (C, H, W) images."""
    _, h, w = shape
    side = 2**stages
    bad = (h, w) != (64, 64) or stages != 4 if style == "v2" else h % side or w % side or h < side or w < side
    if bad:
        raise ValueError(image_size_error(shape, stages, style))


def image_size_error(shape: Sequence[int], stages: int, style: str) -> str:
    """Message for an image the encoder cannot take, naming the fix."""
    need = "exactly 64x64" if style == "v2" else f"a side divisible by {2 ** stages} and at least {2 ** stages}"
    return (
        f"Images of shape {tuple(shape)} (channels first) cannot be taken by the {style} conv encoder, which "
        f"needs {need}. Resize the observations (e.g. gymnasium.wrappers.ResizeObservation(env, (64, 64)) or "
        f"the env's size=64 option)."
    )


class ConvEncoder(nn.Module):
    """Image encoder (channels-first float input) to a flat embedding.

    :param shape: (C, H, W) of the input image.
    :param depth: channels of the first conv; doubled at every stage.
    :param stages: number of stride-2 convs (4 for 64x64).
    :param act: activation name.
    :param norm: channel LayerNorm after each conv (V3).
    :param style: ``"v3"`` (padding 1, exact halving) or ``"v2"`` (no padding, 64 -> 2x2).
    """

    def __init__(
        self,
        shape: Sequence[int],
        depth: int,
        stages: int = 4,
        act: str = "silu",
        norm: bool = True,
        style: str = "v3",
    ) -> None:
        super().__init__()
        c, h, w = shape
        check_image_size(shape, stages, style)
        layers: list[nn.Module] = []
        ch = c
        for i in range(stages):
            out = depth * 2**i
            layers.append(nn.Conv2d(ch, out, 4, 2, padding=1 if style == "v3" else 0, bias=not norm))
            if norm:
                layers.append(ChannelNorm(out, eps=1e-3))
            layers.append(get_act(act)())
            ch = out
        self.net = nn.Sequential(*layers)
        with torch.no_grad():
            self.out_shape = tuple(self.net(torch.zeros(1, c, h, w)).shape[1:])
        self.out_dim = int(torch.tensor(self.out_shape).prod())

    def forward(self, x: Tensor) -> Tensor:
        """(..., C, H, W) float image -> (..., out_dim) embedding."""
        lead = x.shape[:-3]
        y = self.net(x.reshape(-1, *x.shape[-3:]).contiguous(memory_format=torch.channels_last))
        return y.reshape(*lead, -1)


class ConvDecoder(nn.Module):
    """Image decoder from a feature vector to a (C, H, W) mean image.

    :param feat_dim: input feature size.
    :param shape: (C, H, W) of the output image.
    :param depth: channels of the last hidden stage (mirrors :class:`ConvEncoder`).
    :param stages: number of stride-2 transposed convs.
    :param act: activation name.
    :param norm: channel LayerNorm after each hidden transposed conv (V3).
    :param style: ``"v3"`` (linear to a (8d, H/16, W/16) map, kernel-4 transposed convs) or ``"v2"``
        (linear to a 32d x 1 x 1 map, kernels 5, 5, 6, 6).
    """

    def __init__(
        self,
        feat_dim: int,
        shape: Sequence[int],
        depth: int,
        stages: int = 4,
        act: str = "silu",
        norm: bool = True,
        style: str = "v3",
    ) -> None:
        super().__init__()
        c, h, w = shape
        check_image_size(shape, stages, style)
        self.shape = (c, h, w)
        self.style = style
        layers: list[nn.Module] = []
        if style == "v2":
            self.start = (32 * depth, 1, 1)
            kernels = (5, 5, 6, 6)
            chans = [32 * depth, 4 * depth, 2 * depth, depth, c]
            for i, k in enumerate(kernels):
                layers.append(nn.ConvTranspose2d(chans[i], chans[i + 1], k, 2))
                if i < len(kernels) - 1:
                    layers.append(get_act(act)())
        else:
            self.start = (depth * 2 ** (stages - 1), h // 2**stages, w // 2**stages)
            ch = self.start[0]
            for i in range(stages):
                last = i == stages - 1
                out = c if last else ch // 2
                layers.append(nn.ConvTranspose2d(ch, out, 4, 2, padding=1, bias=last or not norm))
                if not last:
                    if norm:
                        layers.append(ChannelNorm(out, eps=1e-3))
                    layers.append(get_act(act)())
                ch = out
        self.linear = nn.Linear(feat_dim, int(torch.tensor(self.start).prod()))
        self.net = nn.Sequential(*layers)

    def forward(self, feat: Tensor) -> Tensor:
        """(..., feat_dim) -> (..., C, H, W) mean image."""
        lead = feat.shape[:-1]
        x = self.linear(feat.reshape(-1, feat.shape[-1])).reshape(-1, *self.start)
        x = self.net(x.contiguous(memory_format=torch.channels_last))
        return x.reshape(*lead, *self.shape)
