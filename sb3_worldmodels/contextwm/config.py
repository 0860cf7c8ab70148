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

    @classmethod
    def presets(cls, version: str) -> dict[str, dict[str, dict[str, Any]]]:
        """APV / ContextWM fine-tuning presets on DreamerV2 (:data:`APV_PRESETS`), plus ``"pretrain"`` for the video
        pre-training; DreamerV3's single configuration otherwise."""
        return APV_PRESETS if version == "v2" else super().presets(version)

    @property
    def depths(self) -> tuple[int, ...]:
        """Widths of the ResNet stages."""
        d = self.cnn_depth
        return tuple(self.resnet_depths) if self.resnet_depths else (d, 2 * d, 4 * d)


_DMC_FINETUNING: dict[str, dict[str, Any]] = {
    "sizes": {},
    "config": dict(kl_free=1.0, cont_head=False, intrinsic_scale=0.1, concat_embed=True, warmup_updates=0,
                   context_augment="none", action_pad=50),
    "algorithm": dict(batch_size=16, sequence_length=50, train_ratio=160.0, learning_starts=1000, pretrain_updates=100,
                      prioritize_ends=False),
}

#: APV / ContextWM on DreamerV2 per environment family, from thuml/ContextWM ``configs/apv_finetuning.yaml``
#: (``metaworld`` :114-131, ``dmc_vision`` :134-147, ``dmc_remastered`` :149-162, ``defaults``) and the README's
#: commands (ContextWM on Meta-World: ``--encoder_ctx.ctx_aug erasing``, both: ``--loss_scales.aux_reward 1.0``,
#: our ``rep_reward_scale``); ``"pretrain"``: the video pre-training (``configs/apv_pretraining.yaml``: free nats 0).
#: ``action_pad``: the action-conditional RSSM reads actions zero-padded to ``fill_action: 50`` entries.
#: ``warmup_updates`` is the official ``enc_lr_type: no_pretrain`` (encoder and action-free RSSM at learning rate 0
#: during the ``pretrain: 100`` updates after the prefill) or ``none`` (0).
APV_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "metaworld": {
        "sizes": {},
        "config": dict(kl_free=0.0, cont_head=False, intrinsic_scale=1.0, concat_embed=False, warmup_updates=100,
                       context_augment="erasing", action_pad=50),
        "algorithm": dict(batch_size=50, sequence_length=50, train_ratio=500.0, learning_starts=5000,
                          pretrain_updates=100, prioritize_ends=True),
    },
    "dmc": _DMC_FINETUNING,
    "dmcr": _DMC_FINETUNING,
    "default": {
        "sizes": {},
        "config": dict(kl_free=0.0, cont_head=False, intrinsic_scale=1.0, concat_embed=False, warmup_updates=100,
                       action_pad=50),
        "algorithm": dict(batch_size=16, sequence_length=50, train_ratio=160.0, learning_starts=10000,
                          pretrain_updates=100, prioritize_ends=True),
    },
    "pretrain": {
        "sizes": {},
        "config": dict(kl_free=0.0),
        "algorithm": dict(batch_size=16, sequence_length=25, train_ratio=400.0, learning_starts=0,
                          pretrain_updates=0, prioritize_ends=False),
    },
}

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
