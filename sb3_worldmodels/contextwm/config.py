"""Configuration of APV and ContextWM world models: Dreamer's settings plus the stacked model, context and bonus."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, cast

from sb3_worldmodels.dreamer.config import DreamerConfig, make_config

__all__ = ["ContextWMConfig", "CONTEXT_MODES", "make_contextwm_config", "ARCHITECTURE_FIELDS"]

CONTEXT_MODES: tuple[str, ...] = ("random", "first", "last")
_AUGMENTS: tuple[str, ...] = ("none", "shift", "erasing", "shift+erasing")


@dataclass
class ContextWMConfig(DreamerConfig):
    """:class:`~sb3_worldmodels.dreamer.config.DreamerConfig` plus APV and ContextWM settings (``specs/contextwm.md``).

    Built on DreamerV2 by default (the papers' base). Every field can be set through ``policy_kwargs`` of
    :class:`~sb3_worldmodels.contextwm.APV` / :class:`~sb3_worldmodels.contextwm.ContextDreamer` and through
    ``sb3wm pretrain --kwargs``.
    """

    # ResNet encoder / decoder (APV, ContextWM): widths (d, 2d, 4d) from ``cnn_depth`` unless given
    resnet_depths: tuple[int, ...] | None = None
    resnet_blocks: int = 2
    resnet_norm: str = "batch"
    # stacked latent model
    concat_embed: bool = False  # feed [af features, embedding] to the action-conditional RSSM (on for DMC)
    af_kl_scale: float = 0.0  # KL weight of the action-free RSSM during fine-tuning
    warmup_updates: int = 100  # encoder and action-free RSSM learn with lr 0 for these first updates
    # video-based intrinsic bonus (APV): r + intrinsic_scale * r_int drives behaviour learning
    intrinsic_scale: float = 1.0  # beta: 1.0 on Meta-World, 0.1 on DMC; 0 turns the bonus off
    intrinsic_window: int = 5
    intrinsic_proj: int = 128
    intrinsic_queue: int = 4096
    intrinsic_k: int = 16
    # ContextWM
    context: bool = False
    context_mode: str = "random"
    context_augment: str = "none"
    cross_attention_scales: tuple[int, ...] = (8, 16)
    attention_heads: int = 4
    attention_dropout: float = 0.1
    kv_mask_ratio: float = 0.75
    rep_reward_scale: float = 1.0  # beta_r of the representative (task-reward-only) head; ContextWM only

    @property
    def depths(self) -> tuple[int, ...]:
        """Widths of the ResNet stages."""
        d = self.cnn_depth
        return tuple(self.resnet_depths) if self.resnet_depths else (d, 2 * d, 4 * d)


#: Fields that decide the shapes of the pre-trained modules (encoder, action-free RSSM, decoder, context encoder).
ARCHITECTURE_FIELDS: tuple[str, ...] = (
    "deter", "hidden", "stoch", "classes", "act", "norm", "learned_initial", "cnn_depth", "resnet_depths",
    "resnet_blocks", "resnet_norm", "context", "cross_attention_scales", "attention_heads",
)  # fmt: skip


def make_contextwm_config(version: str = "v2", model_size: str | None = None, **overrides: Any) -> ContextWMConfig:
    """Spec defaults (DreamerV2 base by default) plus ``overrides``, validated.

    :raises ValueError: for an unknown context mode, augmentation or a bad ratio, naming the valid values.
    """
    for key in ("resnet_depths", "cross_attention_scales"):
        if overrides.get(key) is not None:
            overrides[key] = tuple(int(v) for v in overrides[key])
    cfg = cast(ContextWMConfig, make_config(version, model_size, ContextWMConfig, **overrides))
    if cfg.context_mode not in CONTEXT_MODES:
        raise ValueError(f"context_mode must be one of {CONTEXT_MODES}, got {cfg.context_mode!r}.")
    if cfg.context_augment not in _AUGMENTS:
        raise ValueError(f"context_augment must be one of {_AUGMENTS}, got {cfg.context_augment!r}.")
    if not 0.0 <= cfg.kv_mask_ratio < 1.0:
        raise ValueError(f"kv_mask_ratio must be in [0, 1), got {cfg.kv_mask_ratio}.")
    if cfg.intrinsic_scale < 0:
        raise ValueError(f"intrinsic_scale must be >= 0 (0 turns the bonus off), got {cfg.intrinsic_scale}.")
    return cfg


def config_to_dict(cfg: ContextWMConfig) -> dict[str, Any]:
    """JSON-serialisable dict of every field (tuples become lists)."""
    out: dict[str, Any] = {}
    for f in fields(cfg):
        value = getattr(cfg, f.name)
        out[f.name] = list(value) if isinstance(value, tuple) else value
    return out
