"""ContextWM's qualitative tools: open-loop prediction, cross-attention maps and compositional decoding.

Each works on a pre-trained :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` (action-free latents)
and on the :class:`~sb3_worldmodels.contextwm.world_model.StackedWorldModel` of a fine-tuned agent (pass the
clip's previous ``actions``). Images are uint8 clips (B, T, C, H, W); results are uint8 frames ready for
:func:`~sb3_worldmodels.common.video.write_video` (after moving channels last) or tensorboard.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from sb3_worldmodels.contextwm.world_model import StackedWorldModel, VideoModules, VideoWorldModel

__all__ = [
    "attention_maps", "attention_overlay", "attention_video", "compositional_decode", "openloop_video",
    "posterior_features",
]


def _need_actions(actions: Tensor | None) -> Tensor:
    if actions is None:
        raise ValueError("A fine-tuned (stacked) world model needs the clip's previous actions: pass actions=.")
    return actions


def _check_context(wm: VideoModules) -> None:
    if wm.context_encoder is None:
        raise ValueError("This world model has no context encoder (APV); use a ContextWM model (context=True).")


def posterior_features(
    wm: VideoWorldModel | StackedWorldModel, images: Tensor, is_first: Tensor, actions: Tensor | None = None
) -> Tensor:
    """Posterior features (B, T, F) the decoder reads: action-free for a video model, action-conditional for a
    fine-tuned one (``actions``: the previous actions as stored by the replay buffer)."""
    x = wm.to_float(images)
    embed = wm.encoder(x)
    if isinstance(wm, StackedWorldModel):
        _, _, post, _ = wm.observe(embed, wm.model_actions(_need_actions(actions)), is_first)
        return wm.rssm.feat(post)
    post, _ = wm.af_rssm.observe(embed, None, is_first)
    return wm.af_rssm.feat(post)


@torch.no_grad()
def openloop_video(
    wm: VideoWorldModel | StackedWorldModel,
    images: Tensor,
    is_first: Tensor,
    actions: Tensor | None = None,
    context: int = 5,
) -> Tensor:
    """``context`` observed frames, then imagined ones: uint8 (B, T, C, H, 3W) real | predicted | error."""
    wm.eval()
    if isinstance(wm, StackedWorldModel):
        return wm.openloop(images, _need_actions(actions), is_first, context=context)
    return wm.openloop(images, is_first, context=context)


@torch.no_grad()
def attention_maps(
    wm: VideoWorldModel | StackedWorldModel,
    images: Tensor,
    is_first: Tensor,
    actions: Tensor | None = None,
    context_mode: str = "first",
) -> dict[int, Tensor]:
    """Cross-attention of the decoder over the context frame, per decoder scale.

    Averaged over heads and over the decoder's query positions: for each frame, where in the context frame the
    decoder looked. Every context token is attended to here (no random key/value masking, which the model applies
    in training and evaluation as the official code does), so the map covers the whole context frame.
    :return: ``{side: (B, T, side, side)}`` maps that sum to 1 over the context grid.
    """
    _check_context(wm)
    wm.eval()
    feat = posterior_features(wm, images, is_first, actions)
    ctx = wm.context_maps(wm.to_float(images), mode=context_mode)
    _, maps = wm.decoder.forward_with_attention(feat, ctx, kv_mask=False)
    out = {}
    for side, weights in maps.items():  # (B, T, heads, queries, keys)
        keys = weights.mean((-3, -2))
        k = int(round(keys.shape[-1] ** 0.5))
        out[side] = keys.reshape(*keys.shape[:-1], k, k)
    return out


def attention_overlay(frame: Tensor, attention: Tensor, alpha: float = 0.6) -> Tensor:
    """Blend a (side, side) attention map, upsampled and normalised to [0, 1], in red over a uint8 (C, H, W) frame."""
    heat = F.interpolate(attention[None, None].float(), size=frame.shape[-2:], mode="bilinear", align_corners=False)[0, 0]
    heat = (heat - heat.min()) / (heat.max() - heat.min() + 1e-8)
    rgb = frame.float() / 255.0
    red = torch.stack([torch.ones_like(heat), torch.zeros_like(heat), torch.zeros_like(heat)])
    mixed = rgb * (1 - alpha * heat) + red * (alpha * heat)
    return (mixed.clamp(0, 1) * 255).round().to(torch.uint8)


@torch.no_grad()
def compositional_decode(
    wm: VideoWorldModel | StackedWorldModel,
    dynamics_images: Tensor,
    context_images: Tensor,
    is_first: Tensor,
    actions: Tensor | None = None,
    context_mode: str = "first",
) -> Tensor:
    """Decode the latent dynamics of one clip with the context of another (ContextWM's compositional decoding).

    :param dynamics_images: uint8 (B, T, C, H, W) clips whose latent states are decoded.
    :param context_images: uint8 (B, T', C, H, W) clips that give the context frame.
    :return: uint8 (B, T, C, H, 3W): dynamics clip | decoded with its own context | decoded with the other context.
        Both decodings attend to every context token (no random key/value masking), so they differ by the
        context alone.
    """
    _check_context(wm)
    wm.eval()
    feat = posterior_features(wm, dynamics_images, is_first, actions)
    x = wm.to_float(dynamics_images)
    own = wm.decoder(feat, wm.context_maps(x, mode=context_mode), kv_mask=False)
    other = wm.decoder(feat, wm.context_maps(wm.to_float(context_images), mode=context_mode), kv_mask=False)
    off = wm.cfg.image_offset
    video = torch.cat([x - off, own - off, other - off], -1).clamp(0, 1)
    return (video * 255).round().to(torch.uint8)


@torch.no_grad()
def attention_video(
    wm: VideoWorldModel | StackedWorldModel,
    images: Tensor,
    is_first: Tensor,
    actions: Tensor | None = None,
    n: int = 4,
) -> Tensor:
    """Frames for tensorboard: each step's cross-attention (finest attended scale) over the first frame of ``n`` clips.

    :return: uint8 (T, H, n * W, C) frames, channels last.
    """
    images, is_first = images[:n], is_first[:n]
    actions = None if actions is None else actions[:n]
    maps = attention_maps(wm, images, is_first, actions, context_mode="first")
    fine = maps[max(maps)]  # (B, T, s, s)
    rows = [
        torch.stack([attention_overlay(images[b, 0], fine[b, t]) for t in range(fine.shape[1])])
        for b in range(fine.shape[0])
    ]  # each (T, C, H, W)
    return torch.cat(rows, -1).permute(0, 2, 3, 1)
