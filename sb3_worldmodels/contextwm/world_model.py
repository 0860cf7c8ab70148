"""APV / ContextWM world models: the action-free video model (pre-training) and the stacked model (fine-tuning).

Both hold the same pre-trainable modules under the same names, so a pre-training checkpoint loads strictly into
the fine-tuning model:

* ``encoder``: :class:`~sb3_worldmodels.common.resnet.ResNetEncoder` (image -> embedding);
* ``af_rssm``: action-free :class:`~sb3_worldmodels.common.rssm.RSSM` over the embeddings;
* ``decoder``: :class:`~sb3_worldmodels.common.resnet.ResNetDecoder` (with cross-attention for ContextWM);
* ``context_encoder``: :class:`~sb3_worldmodels.contextwm.context.ContextEncoder` (ContextWM only), whose
  multi-scale maps of one context frame per sequence reach the decoder and nothing else.

During fine-tuning (APV's stacked latent model) an action-conditional ``rssm`` reads the action-free features
(optionally concatenated with the embedding), the decoder and heads read its features, and the behavioural
reward head learns ``r + intrinsic_scale * r_int`` with APV's video-based bonus.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from sb3_worldmodels.common.augment import random_shift
from sb3_worldmodels.common.distributions import MSEDist, TwoHotDist
from sb3_worldmodels.common.init import dreamer_init
from sb3_worldmodels.common.nets import ScalarHead
from sb3_worldmodels.common.resnet import ResNetDecoder, ResNetEncoder
from sb3_worldmodels.common.rssm import RSSM, State
from sb3_worldmodels.contextwm.bonus import VideoIntrinsicBonus
from sb3_worldmodels.contextwm.config import ContextWMConfig
from sb3_worldmodels.contextwm.context import ContextEncoder, augment_context, random_erasing, select_context
from sb3_worldmodels.dreamer.world_model import WorldModel, kl_loss_terms, openloop_features, openloop_grid

__all__ = ["PRETRAINED_MODULES", "StackedWorldModel", "VideoModules", "VideoWorldModel"]

#: modules a pre-training checkpoint holds (``context_encoder`` only for ContextWM)
PRETRAINED_MODULES: tuple[str, ...] = ("encoder", "af_rssm", "decoder", "context_encoder")


class VideoModules:
    """The pre-trainable modules and what both world models do with them (a mixin for ``nn.Module`` classes)."""

    cfg: ContextWMConfig
    encoder: ResNetEncoder
    af_rssm: RSSM
    decoder: ResNetDecoder
    context_encoder: ContextEncoder | None
    training: bool

    def _build_video_modules(self, image_shape: tuple[int, ...]) -> None:
        """Build encoder, action-free RSSM, decoder (reading RSSM features) and context encoder."""
        cfg = self.cfg
        channels, height, width = (int(v) for v in image_shape)
        if height != width:
            raise ValueError(
                f"APV / ContextWM take square images, got {height}x{width}; resize them, e.g. "
                "gymnasium.wrappers.ResizeObservation(env, (64, 64))."
            )
        norm = cfg.resnet_norm
        self.encoder = ResNetEncoder(channels, cfg.depths, height, cfg.act, norm, cfg.resnet_blocks)
        self.af_rssm = RSSM(
            self.encoder.out_dim, 0, cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix, cfg.act, cfg.norm,
            cfg.learned_initial,
        )
        scales = cfg.cross_attention_scales if cfg.context else ()
        self.decoder = ResNetDecoder(
            self.af_rssm.feat_dim, channels, cfg.depths, height, scales, cfg.attention_heads,
            cfg.attention_dropout, cfg.kv_mask_ratio, norm, cfg.resnet_blocks,
        )
        self.context_encoder = (
            ContextEncoder(channels, cfg.depths, height, cfg.act, norm, cfg.resnet_blocks) if cfg.context else None
        )

    def to_float(self, images: Tensor) -> Tensor:
        """uint8 images -> float in [0, 1] plus the version's offset (-0.5 in V2)."""
        if images.dtype != torch.uint8:
            raise ValueError(f"Images must be uint8 (0..255), got {images.dtype}.")
        return images.to(torch.get_default_dtype()) / 255.0 + self.cfg.image_offset

    def context_maps(self, images: Tensor, mode: str | None = None) -> dict[int, Tensor] | None:
        """Context encoder maps of one frame per sequence of float ``images`` (B, T, C, H, W); ``None`` without context.

        The frame is chosen by ``cfg.context_mode`` (or ``mode``) and augmented in training as
        ``cfg.context_augment`` says.
        """
        if self.context_encoder is None:
            return None
        frame = select_context(images, mode or self.cfg.context_mode)
        if self.training and self.cfg.context_augment != "none":
            aug = self.cfg.context_augment
            if aug == "shift+erasing":
                frame = augment_context(frame)
            elif aug == "shift":
                frame = random_shift(frame)
            else:
                frame = random_erasing(frame)
        return self.context_encoder(frame)

    def image_dist(self, feat: Tensor, context: dict[int, Tensor] | None) -> MSEDist:
        """Image distribution (unit-variance Gaussian, V2's coefficient) decoded from ``feat``."""
        return MSEDist(self.decoder(feat, context), dims=3, coef=self.cfg.image_loss_coef)

    def _video(self, truth: Tensor, recon: Tensor) -> Tensor:
        """uint8 (B, T, C, H, 3W) real | predicted | error frames from float images."""
        return openloop_grid(truth, recon, self.cfg.image_offset)


class VideoWorldModel(nn.Module, VideoModules):
    """Action-free world model pre-trained on videos: image reconstruction + KL (``specs/contextwm.md``).

    :param image_shape: (C, H, W) of the frames.
    :param cfg: the configuration (``context=True`` for ContextWM, else APV's plain model).
    """

    def __init__(self, image_shape: tuple[int, int, int], cfg: ContextWMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.image_shape = tuple(int(v) for v in image_shape)
        self._build_video_modules(self.image_shape)
        # the action-free RSSM as the official pre-training builds it (its GRU keeps PyTorch's initialisation in V2)
        dreamer_init([self.af_rssm], cfg.version, [self.af_rssm.gru.linear] if cfg.version == "v2" else [])

    def loss(self, images: Tensor, is_first: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Pre-training loss on uint8 clips (B, T, C, H, W) with (B, T) ``is_first`` flags.

        :return: the loss and its metrics (``image_loss``, ``kl_loss``, ``kl``, ``dyn_loss``, ``rep_loss``).
        """
        x = self.to_float(images)
        post, prior = self.af_rssm.observe(self.encoder(x), None, is_first)
        image_loss = -self.image_dist(self.af_rssm.feat(post), self.context_maps(x)).log_prob(x).mean()
        kl_loss, metrics = kl_loss_terms(self.cfg, *self.af_rssm.kl(post, prior))
        total = image_loss + kl_loss
        metrics.update(image_loss=image_loss.detach(), kl_loss=kl_loss.detach(), loss=total.detach())
        return total, metrics

    @torch.no_grad()
    def openloop(self, images: Tensor, is_first: Tensor, context: int = 5) -> Tensor:
        """Observe ``context`` frames, then predict the rest of the clip with the prior (no actions).

        The decoder's context frame is taken from the observed part. :return: uint8 (B, T, C, H, 3W).
        """
        x = self.to_float(images)
        post, _ = self.af_rssm.observe(self.encoder(x[:, :context]), None, is_first[:, :context])
        feat = openloop_features(self.af_rssm, post, None, x.shape[1])
        return self._video(x, self.decoder(feat, self.context_maps(x[:, :context])))


class StackedWorldModel(WorldModel, VideoModules):
    """APV's stacked latent model for fine-tuning (plus ContextWM's context and dual reward heads).

    Takes a single image observation (``CnnPolicy``). ``rssm`` is the action-conditional RSSM that behaviour
    learning imagines with; ``af_rssm`` the pre-trained action-free one beneath it.
    """

    cfg: ContextWMConfig

    def _build_networks(self) -> int:
        cfg = self.cfg
        if self.vectors or len(self.images) != 1:
            raise ValueError(
                "APV / ContextDreamer take a single image observation (use 'CnnPolicy'); got images "
                f"{list(self.images)} and vectors {list(self.vectors)}."
            )
        self.image_key = next(iter(self.images))
        shape = self.images[self.image_key].shape
        # the action-conditional RSSM below has the action-free one's sizes, so the pre-trained decoder reads it
        self._build_video_modules(shape)
        in_dim = self.af_rssm.feat_dim + (self.encoder.out_dim if cfg.concat_embed else 0)
        self.rssm = RSSM(
            in_dim, self.action_width, cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix, cfg.act, cfg.norm,
            cfg.learned_initial,
        )
        feat = self.rssm.feat_dim
        self.bonus = (
            VideoIntrinsicBonus(self.af_rssm.feat_dim, cfg.intrinsic_window, cfg.intrinsic_proj, cfg.intrinsic_queue,
                                cfg.intrinsic_k)
            if cfg.intrinsic_scale > 0 else None
        )
        self.rep_reward = (
            ScalarHead(feat, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm, cfg.reward_head == "twohot", cfg.bins)
            if cfg.context and cfg.rep_reward_scale > 0 else None
        )
        return feat

    def dreamer_modules(self) -> list[nn.Module]:
        """The RSSMs and heads: the encoder, decoder and context encoder have the ResNets' own initialisation."""
        return [m for m in (self.af_rssm, self.rssm, self.reward, self.cont, self.rep_reward) if m is not None]

    # ---------------------------------------------------------------------------------------- latents
    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """Embedding of preprocessed observations, shape (..., embed_dim)."""
        return self.encoder(obs[self.image_key])

    def stack_input(self, af_state: State, embed: Tensor) -> Tensor:
        """Input of the action-conditional RSSM: the action-free features (and the embedding with ``concat_embed``)."""
        af_feat = self.af_rssm.feat(af_state)
        return torch.cat([af_feat, embed], -1) if self.cfg.concat_embed else af_feat

    def observe(self, embed: Tensor, actions: Tensor, is_first: Tensor) -> tuple[State, State, State, State]:
        """Filter (B, T) sequences through both RSSMs: ``(af_post, af_prior, post, prior)``."""
        af_post, af_prior = self.af_rssm.observe(embed, None, is_first)
        post, prior = self.rssm.observe(self.stack_input(af_post, embed), actions, is_first)
        return af_post, af_prior, post, prior

    def rep_reward_dist(self, feat: Tensor) -> TwoHotDist | MSEDist:
        """Representative reward head (task reward only), ContextWM's second head."""
        assert self.rep_reward is not None
        return self.rep_reward.dist(self.rep_reward(feat))

    # ---------------------------------------------------------------------------------------- loss
    def loss(
        self,
        observations: Tensor | dict[str, Tensor],
        prev_actions: Tensor,
        rewards: Tensor,
        is_first: Tensor,
        is_terminal: Tensor,
        gamma: float | None = None,
    ) -> tuple[Tensor, State, dict[str, Any]]:
        """Fine-tuning loss on a (B, T) batch: image, reward(s), continue, action-conditional (+ action-free) KL.

        :param gamma: the discount, which a DreamerV2 continue head learns (see :meth:`WorldModel.cont_loss`).
        """
        cfg = self.cfg
        x = self.preprocess(observations)[self.image_key]
        embed = self.encoder(x)
        af_post, af_prior, post, prior = self.observe(embed, self.model_actions(prev_actions), is_first)
        feat = self.rssm.feat(post)
        obs_loss = -self.image_dist(feat, self.context_maps(x)).log_prob(x).mean()

        metrics: dict[str, Any] = {}
        if self.bonus is not None:
            # APV: the bonus of step t looks at steps t..t+window-1, so the reward head learns on the first
            # T - window + 1 steps (as the reference code does)
            r_int = self.bonus(self.af_rssm.feat(af_post).detach())
            n = r_int.shape[1]
            target = rewards[:, :n] + cfg.intrinsic_scale * r_int
            reward_loss = -self.reward_dist(feat[:, :n]).log_prob(target).mean()
            metrics["intrinsic_reward"] = r_int.mean().detach()
        else:
            reward_loss = -self.reward_dist(feat).log_prob(rewards).mean()
        cont_loss = self.cont_loss(feat, is_terminal, gamma)
        kl_loss, kl_metrics = kl_loss_terms(cfg, *self.rssm.kl(post, prior))
        total, loss_metrics = self.combine_losses(obs_loss, reward_loss, kl_loss, cont_loss)
        if self.rep_reward is not None:
            rep_loss = -self.rep_reward_dist(feat).log_prob(rewards).mean()
            total = total + cfg.rep_reward_scale * rep_loss
            metrics["rep_reward_loss"] = rep_loss.detach()
        # always part of the loss, as in the official fine-tuning (loss_scales.af_kl, 0 by default): at scale 0 the
        # action-free prior head gets a zero gradient, so Adam's L2 weight decay still moves it, as there
        af_kl, af_metrics = kl_loss_terms(cfg, *self.af_rssm.kl(af_post, af_prior))
        total = total + cfg.af_kl_scale * af_kl
        metrics["af_kl"] = af_metrics["kl"]
        metrics.update(loss_metrics)
        metrics.update(kl_metrics)
        metrics["model_loss"] = total.detach()
        return total, post, metrics

    # ---------------------------------------------------------------------------------------- video
    def _context_state(self, x: Tensor, actions: Tensor, is_first: Tensor) -> dict[str, Tensor]:
        """The action-conditional state after filtering ``x`` through both RSSMs (what imagination rolls)."""
        _, _, post, _ = self.observe(self.encoder(x), actions, is_first)
        return {k: v[:, -1] for k, v in post.items()}

    def _decode_image(self, feat: Tensor, context: Tensor) -> Tensor:
        """Mean image, decoded with the features of the last context frame when the model has a context encoder."""
        return self.decoder(feat, self.context_maps(context, mode="last"))

    # ---------------------------------------------------------------------------------------- video
    @torch.no_grad()
    def openloop(
        self,
        observations: Tensor | dict[str, Tensor],
        prev_actions: Tensor,
        is_first: Tensor,
        context: int = 5,
        key: str | None = None,
    ) -> Tensor:
        """Open-loop prediction video: ``context`` observed frames, then imagination under the real actions.

        :return: uint8 (B, T, C, H, 3 * W) frames: real | predicted | error, side by side.
        """
        x = self.preprocess(observations)[self.image_key]
        actions = self.model_actions(prev_actions)
        _, _, post, _ = self.observe(self.encoder(x[:, :context]), actions[:, :context], is_first[:, :context])
        feat = openloop_features(self.rssm, post, actions, x.shape[1])
        return self._video(x, self.decoder(feat, self.context_maps(x[:, :context])))
