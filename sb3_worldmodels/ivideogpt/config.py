"""Configurations of iVideoGPT's compressive tokenizer and LLaMA-style transformer, with the spec's presets.

Presets (``specs/ivideogpt.md``): the tokenizer ``"64"`` (64x64 frames, a 16x16x64 latent grid: 256 context tokens
per context frame from a codebook of 8192, and 16 dynamics tokens per future frame from a separate codebook of 8192,
each a 4x4 patch of the conditional latent grid projected by ``Linear(1024 -> 64)``); the transformers ``"138M"``
(12 layers, width 768, 12 heads) and ``"436M"`` (24 layers, 1024, 16 heads). ``"tiny"`` presets of both run the
same code at CPU-test sizes.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

__all__ = ["TokenizerConfig", "TransformerConfig", "config_dict", "make_tokenizer_config", "make_transformer_config"]


@dataclass
class TokenizerConfig:
    """The compressive VQ tokenizer.

    :param image_size: side of the square frames (divisible by ``2 ** (len(widths) - 1) * patch``).
    :param channels: image channels.
    :param widths: channels of the encoder stages; each stage but the last halves the resolution, so the latent grid
        is ``image_size / 2 ** (len(widths) - 1)`` on a side (16 for 64x64 frames and three stages).
    :param blocks: residual blocks per stage.
    :param latent_dim: channels of the latent grid and dimension of both codebooks.
    :param context_codes: codebook size of the context-frame tokens.
    :param dynamics_codes: codebook size of the future-frame (dynamics) tokens.
    :param patch: side of the latent-grid patches that become one dynamics token each.
    :param heads: heads of the cross-attention from future frames to the context frames' features.
    :param attn_sides: grid sides (of the encoder stages) at which the conditional encoder and decoder cross-attend.
    :param commitment: weight beta of the VQ commitment loss.
    :param perceptual_weight: weight of the perceptual loss (needs a ``perceptual`` network in the loss call).
    :param context_frames: context frames per clip (2 in iVideoGPT).
    """

    image_size: int = 64
    channels: int = 3
    widths: tuple[int, ...] = (128, 256, 256)
    blocks: int = 2
    latent_dim: int = 64
    context_codes: int = 8192
    dynamics_codes: int = 8192
    patch: int = 4
    heads: int = 4
    attn_sides: tuple[int, ...] = (16, 32)
    commitment: float = 1.0
    perceptual_weight: float = 0.0
    context_frames: int = 2

    @property
    def latent_side(self) -> int:
        """Side of the latent grid."""
        return self.image_size // 2 ** (len(self.widths) - 1)

    @property
    def context_tokens(self) -> int:
        """Tokens per context frame."""
        return self.latent_side**2

    @property
    def dynamics_tokens(self) -> int:
        """Tokens per future frame."""
        return (self.latent_side // self.patch) ** 2

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the fix when the sizes do not fit together."""
        down = 2 ** (len(self.widths) - 1)
        if self.image_size % (down * self.patch):
            raise ValueError(
                f"image_size={self.image_size} must be divisible by {down * self.patch} (2 ** (stages - 1) * patch) "
                f"with widths={self.widths} and patch={self.patch}; resize the frames or change the patch."
            )
        if self.context_frames < 1:
            raise ValueError(f"context_frames must be >= 1, got {self.context_frames}.")


@dataclass
class TransformerConfig:
    """The LLaMA-style causal decoder over context and dynamics tokens.

    :param layers: decoder blocks.
    :param width: hidden size.
    :param heads: attention heads.
    :param mlp_ratio: SwiGLU hidden size over ``width`` (LLaMA's 8/3, rounded up to a multiple of 64).
    :param rope_theta: base of the rotary position frequencies.
    :param max_tokens: longest sequence (positions).
    :param norm_eps: RMSNorm epsilon.
    :param dropout: residual and attention dropout.
    """

    layers: int = 12
    width: int = 768
    heads: int = 12
    mlp_ratio: float = 8 / 3
    rope_theta: float = 10_000.0
    max_tokens: int = 4096
    norm_eps: float = 1e-6
    dropout: float = 0.0

    @property
    def mlp_hidden(self) -> int:
        """SwiGLU hidden size."""
        return 64 * -(-int(self.width * self.mlp_ratio) // 64)

    def validate(self) -> None:
        """Raise a ``ValueError`` naming the fix when the width does not split into heads of even size."""
        if self.width % self.heads or (self.width // self.heads) % 2:
            raise ValueError(
                f"width={self.width} must split into {self.heads} heads of an even size (rotary positions rotate "
                "pairs of channels); change width or heads."
            )


TOKENIZER_PRESETS: dict[str, dict[str, Any]] = {
    "64": {},
    "tiny": dict(image_size=16, widths=(16, 32, 32), blocks=1, latent_dim=8, context_codes=64, dynamics_codes=64,
                 patch=2, heads=2, attn_sides=(4, 8)),
}
TRANSFORMER_PRESETS: dict[str, dict[str, Any]] = {
    "138M": {},
    "436M": dict(layers=24, width=1024, heads=16),
    "tiny": dict(layers=2, width=64, heads=4, max_tokens=512),
}


def _make(cls: type, presets: dict[str, dict[str, Any]], preset: str, overrides: dict[str, Any]) -> Any:
    if preset not in presets:
        raise ValueError(f"Unknown {cls.__name__} preset {preset!r}; choose one of {list(presets)}.")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - names)
    if unknown:
        raise ValueError(f"Unknown {cls.__name__} fields {unknown}; the fields are {sorted(names)}.")
    values = {**presets[preset], **overrides}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    cfg = cls(**values)
    cfg.validate()
    return cfg


def make_tokenizer_config(preset: str = "64", **overrides: Any) -> TokenizerConfig:
    """The tokenizer preset ``"64"`` (the spec's) or ``"tiny"``, with any field overridden."""
    return _make(TokenizerConfig, TOKENIZER_PRESETS, preset, overrides)


def make_transformer_config(preset: str = "138M", **overrides: Any) -> TransformerConfig:
    """The transformer preset ``"138M"``, ``"436M"`` or ``"tiny"``, with any field overridden."""
    return _make(TransformerConfig, TRANSFORMER_PRESETS, preset, overrides)


def config_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config (tuples as lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}

