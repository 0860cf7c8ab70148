"""LLaMA-style causal decoder (RMSNorm, rotary positions, SwiGLU) with a key/value cache.

The cache makes iVideoGPT interactive: once the context is encoded, a step of a rollout feeds only the new tokens
(a slot token and the 16 dynamics tokens of one frame), attending to the cached keys and values of all earlier ones.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from sb3_worldmodels.ivideogpt.config import TransformerConfig

__all__ = ["KVCache", "LlamaTransformer", "RMSNorm", "apply_rotary"]

KVCache = list[tuple[Tensor, Tensor]]  # per layer: keys and values (B, heads, tokens so far, head_dim)


class RMSNorm(nn.Module):
    """Root-mean-square layer norm with a learned scale (no bias, no centring), as in LLaMA."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        """Normalise the last axis (computed in fp32)."""
        y = x.float()
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + self.eps)
        return y.to(x.dtype) * self.weight


def rotary_angles(head_dim: int, positions: Tensor, theta: float) -> tuple[Tensor, Tensor]:
    """cos and sin (T, head_dim / 2) of the rotary embedding at integer ``positions`` (T,)."""
    freqs = theta ** (-torch.arange(0, head_dim, 2, device=positions.device, dtype=torch.float32) / head_dim)
    angles = positions.float()[:, None] * freqs[None]
    return angles.cos(), angles.sin()


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate consecutive channel pairs of ``x`` (B, heads, T, head_dim) by the angles of their positions."""
    pairs = x.float().reshape(*x.shape[:-1], -1, 2)
    a, b = pairs[..., 0], pairs[..., 1]
    rotated = torch.stack([a * cos - b * sin, a * sin + b * cos], -1)
    return rotated.flatten(-2).to(x.dtype)


class Attention(nn.Module):
    """Causal multi-head self-attention with rotary positions and an optional key/value cache."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.heads, self.head_dim, self.theta = cfg.heads, cfg.width // cfg.heads, cfg.rope_theta
        self.qkv = nn.Linear(cfg.width, 3 * cfg.width, bias=False)
        self.out = nn.Linear(cfg.width, cfg.width, bias=False)
        self.dropout = cfg.dropout

    def forward(
        self, x: Tensor, positions: Tensor, cache: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """Attend from ``x`` (B, T, width) at ``positions`` (T,) to the cached tokens and to itself (causally).

        :return: the output and the keys/values including ``x``'s (the new cache entry of this layer).
        """
        b, t, _ = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_angles(self.head_dim, positions, self.theta)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        past = 0
        if cache is not None:
            past = cache[0].shape[2]
            k, v = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
        mask = None
        if t > 1 and past > 0:  # new tokens see every cached token and the new ones up to themselves
            mask = torch.ones(t, past + t, dtype=torch.bool, device=x.device).tril(past)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=t > 1 and past == 0,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(b, t, -1)), (k, v)


class SwiGLU(nn.Module):
    """LLaMA's feed-forward block: ``down(silu(gate(x)) * up(x))``."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.gate = nn.Linear(width, hidden, bias=False)
        self.up = nn.Linear(width, hidden, bias=False)
        self.down = nn.Linear(hidden, width, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        """The block's output."""
        return self.down(F.silu(self.gate(x)) * self.up(x))


class Block(nn.Module):
    """Pre-norm decoder block: ``x + attn(norm(x))``, then ``x + mlp(norm(x))``."""

    def __init__(self, cfg: TransformerConfig) -> None:
        super().__init__()
        self.attn_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.attn = Attention(cfg)
        self.mlp_norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.width, cfg.mlp_hidden)
        self.drop = nn.Dropout(cfg.dropout)

    def forward(
        self, x: Tensor, positions: Tensor, cache: tuple[Tensor, Tensor] | None
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """The block's output and its layer's new cache entry."""
        h, kv = self.attn(self.attn_norm(x), positions, cache)
        x = x + self.drop(h)
        return x + self.drop(self.mlp(self.mlp_norm(x))), kv


class LlamaTransformer(nn.Module):
    """Token embedding, ``layers`` decoder blocks, a final RMSNorm and an untied output head.

    :param cfg: the transformer configuration.
    :param vocab: vocabulary size.
    """

    def __init__(self, cfg: TransformerConfig, vocab: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(vocab, cfg.width)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.layers))
        self.norm = RMSNorm(cfg.width, cfg.norm_eps)
        self.head = nn.Linear(cfg.width, vocab, bias=False)
        self.apply(self._init)

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, std=0.02)

    def forward(
        self, embeddings: Tensor, cache: KVCache | None = None, start: int | None = None
    ) -> tuple[Tensor, KVCache]:
        """Hidden states (B, T, width) of input ``embeddings`` (B, T, width) placed after the cached tokens.

        :param cache: the cache returned by the previous call (``None``: the sequence starts here).
        :param start: position of the first input token (default: the number of cached tokens).
        :return: the final-norm hidden states and the extended cache.
        """
        past = 0 if not cache else cache[0][0].shape[2]
        first = past if start is None else start
        t = embeddings.shape[1]
        if first + t > self.cfg.max_tokens:
            raise ValueError(
                f"The sequence reaches {first + t} tokens, more than max_tokens={self.cfg.max_tokens}; predict fewer "
                "frames per call or build the transformer with a larger max_tokens."
            )
        positions = torch.arange(first, first + t, device=embeddings.device)
        x, new_cache = embeddings, []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, positions, cache[i] if cache else None)
            new_cache.append(kv)
        return self.norm(x), new_cache
