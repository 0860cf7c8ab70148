"""Tests for :mod:`sb3_worldmodels.common.resnet` and :mod:`sb3_worldmodels.contextwm.context`."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sb3_worldmodels.common.resnet import CrossAttentionBlock, ResidualLayer, ResNetDecoder, ResNetEncoder
from sb3_worldmodels.contextwm import ContextEncoder, augment_context, random_erasing, select_context

SMALL = (8, 16, 32)  # narrow widths for the tests that do not check the paper's sizes


def images(*lead: int, size: int = 64) -> torch.Tensor:
    return torch.rand(*lead, 3, size, size) - 0.5


# ------------------------------------------------------------------------------------------------ encoder
def test_encoder_shapes_at_64():
    enc = ResNetEncoder()
    x = images(2, 3)
    assert enc.out_dim == 3072 and enc.out_shape == (192, 4, 4) and enc.scales == (32, 16, 8)
    assert enc(x).shape == (2, 3, 3072)
    maps = enc.feature_maps(x)
    assert {s: tuple(m.shape) for s, m in maps.items()} == {
        32: (2, 3, 48, 32, 32),
        16: (2, 3, 96, 16, 16),
        8: (2, 3, 192, 8, 8),
    }
    # the embedding is the 2x2 average pool of the last map, flattened
    torch.testing.assert_close(enc(x), F.avg_pool2d(maps[8].reshape(6, 192, 8, 8), 2).reshape(2, 3, 3072))
    # 2 residual layers per stage, BatchNorm inside, a 3x3 stride-2 stem
    assert [len(stage) for stage in enc.stages] == [2, 2, 2]
    assert any(isinstance(m, nn.BatchNorm2d) for m in enc.modules())
    assert enc.stem[0].kernel_size == (3, 3) and enc.stem[0].stride == (2, 2)


def test_encoder_other_size_and_errors():
    gray = ResNetEncoder(in_channels=1, depths=SMALL, image_size=48)
    assert gray(images(2, size=48)[:, :1]).shape == (2, 32 * 9) and gray.out_dim == 32 * 9
    with pytest.raises(ValueError, match="divisible by 16.*ResizeObservation"):
        ResNetEncoder(image_size=60)
    enc = ResNetEncoder(depths=SMALL)
    with pytest.raises(ValueError, match="image_size=32.*ResizeObservation"):
        enc(images(2, size=32))
    with pytest.raises(ValueError, match="in_channels=1"):
        enc(torch.rand(2, 1, 64, 64))
    with pytest.raises(ValueError, match="norm"):
        ResNetEncoder(norm="layer")


def test_residual_layer_skip_path():
    layer = ResidualLayer(8, 16)
    assert isinstance(layer.identity, nn.Sequential) and isinstance(ResidualLayer(8, 8).identity, nn.Identity)
    out, weights = layer(torch.randn(2, 8, 5, 5))
    assert out.shape == (2, 16, 5, 5) and weights is None and (out >= 0).all()
    # the official layout: [conv, BN, ReLU, conv, BN], and [conv, ReLU, conv] without norm (wmlib/nets/modules.py)
    assert [type(m) for m in layer.res_block] == [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.BatchNorm2d]
    assert [type(m) for m in ResidualLayer(8, 16, "none").res_block] == [nn.Conv2d, nn.ReLU, nn.Conv2d]
    assert all(m.bias is None for m in layer.modules() if isinstance(m, nn.Conv2d))


def test_official_initialisation():
    """Xavier-uniform weights and zero biases where the official code builds the layer through ``Module.get`` (stem,
    decoder linear and output conv); PyTorch's defaults in the residual layers; zero positional embeddings."""
    torch.manual_seed(0)
    enc, dec = ResNetEncoder(), ResNetDecoder(2048, cross_attention_scales=(8, 16))
    for layer in (enc.stem[0], dec.linear, dec.out):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(layer.weight)
        bound = (6 / (fan_in + fan_out)) ** 0.5
        assert layer.weight.abs().max() <= bound and layer.weight.abs().max() > 0.9 * bound
        assert torch.count_nonzero(layer.bias) == 0
    conv = enc.stages[1][0].res_block[0]  # PyTorch's default: kaiming_uniform(a=sqrt(5)), bound 1 / sqrt(fan_in)
    bound = 1 / nn.init._calculate_fan_in_and_fan_out(conv.weight)[0] ** 0.5
    assert bound * 0.9 < conv.weight.abs().max() <= bound


# ------------------------------------------------------------------------------------------------ decoder
def test_plain_decoder_shapes():
    dec = ResNetDecoder(50)
    assert dec(torch.randn(2, 3, 50)).shape == (2, 3, 3, 64, 64)
    assert not any(isinstance(m, CrossAttentionBlock) for m in dec.modules())
    # widths 192 -> 96 (8x8) -> 48 (16x16) -> 24 (32x32), then the transposed conv to the image
    assert [stage[-1].res_block[-2].out_channels for stage in dec.stages] == [96, 48, 24]
    assert dec.out.in_channels == 24


def test_cross_attention_decoder_layout_and_errors():
    dec = ResNetDecoder(50, cross_attention_scales=(16, 8))
    assert dec.cross_attention_scales == (8, 16)
    attn = [[layer.cross_attention for layer in stage] for stage in dec.stages]
    # only the first layer of the stacks at 8x8 and 16x16 attends
    assert attn[2] == [None, None] and attn[0][1] is None and attn[1][1] is None
    # with more layers, every even-indexed one (the official has_addin: x % 2 == 0)
    deep = ResNetDecoder(50, depths=SMALL, cross_attention_scales=(8,), blocks=3)
    assert [layer.cross_attention is not None for layer in deep.stages[0]] == [True, False, True]
    assert attn[0][0].attn.embed_dim == 192 and attn[1][0].attn.embed_dim == 96
    assert attn[0][0].attn.num_heads == 4 and attn[0][0].attn.dropout == 0.1 and attn[0][0].kv_mask_ratio == 0.75
    with pytest.raises(ValueError, match="pass context"):
        dec(torch.randn(2, 50))
    with pytest.raises(ValueError, match="choose among"):
        ResNetDecoder(50, cross_attention_scales=(4,))
    ctx = ContextEncoder()(images(2))
    with pytest.raises(ValueError, match="prefix"):
        dec(torch.randn(3, 4, 50), ctx)


def test_context_reaches_decoder_output_and_broadcasts():
    torch.manual_seed(0)
    ctx_enc, dec = ContextEncoder(depths=SMALL), ResNetDecoder(20, depths=SMALL, cross_attention_scales=(8, 16))
    for p in dec.parameters():  # move off the zero-init positional embeddings and BatchNorm's identity affine
        p.data.add_(0.05 * torch.randn_like(p))
    ctx_enc.eval(), dec.eval()
    feat = torch.randn(2, 3, 20)
    frames = images(2)
    ctx_a, ctx_b = ctx_enc(frames), ctx_enc(frames.flip(-1))
    out_a = dec(feat, ctx_a, kv_mask=False)
    assert out_a.shape == (2, 3, 3, 64, 64)
    torch.testing.assert_close(dec(feat, ctx_a, kv_mask=False), out_a)  # deterministic in eval mode without mask
    assert (dec(feat, ctx_b, kv_mask=False) - out_a).abs().max() > 1e-4  # a different context changes the image
    # one context per sequence == the same context given for every step
    per_step = {s: m[:, None].expand(2, 3, *m.shape[1:]) for s, m in ctx_a.items()}
    torch.testing.assert_close(dec(feat, per_step, kv_mask=False), out_a)
    image, maps = dec.forward_with_attention(feat, ctx_a, kv_mask=False)
    torch.testing.assert_close(image, out_a)
    # with the (official, default) random key/value mask: the same mask draws give the same image
    torch.manual_seed(4)
    masked = dec(feat, ctx_a)
    torch.manual_seed(4)
    torch.testing.assert_close(dec(feat, per_step), masked)
    assert (masked - out_a).abs().max() > 1e-6
    assert {s: tuple(m.shape) for s, m in maps.items()} == {8: (2, 3, 4, 64, 64), 16: (2, 3, 4, 256, 256)}


def test_context_gradients_come_only_from_the_decoder():
    enc, ctx_enc = ResNetEncoder(depths=SMALL), ContextEncoder(depths=SMALL)
    dec = ResNetDecoder(enc.out_dim, depths=SMALL, cross_attention_scales=(8, 16))
    seq = images(2, 3)
    embed = enc(seq)
    ctx = ctx_enc(select_context(seq, "first"))
    # a loss on the embedding alone (what the RSSM sees) leaves the context encoder without gradients
    embed.square().mean().backward(retain_graph=True)
    assert all(p.grad is None for p in ctx_enc.parameters())
    assert all(p.grad is not None for p in enc.parameters())
    enc.zero_grad()
    # the reconstruction loss trains the context encoder, through the attention, positional embeddings included
    F.mse_loss(dec(embed, ctx), seq).backward()
    grads = [p.grad for p in ctx_enc.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    for stage in dec.stages[:2]:
        block = stage[0].cross_attention
        assert block.q_pos_emb.grad.abs().sum() > 0 and block.kv_pos_emb.grad.abs().sum() > 0


# ------------------------------------------------------------------------------------------------ cross-attention
def test_cross_attention_block_init_and_shapes():
    block = CrossAttentionBlock(16, 8)
    assert block.q_pos_emb.shape == (64, 16) and block.kv_pos_emb.shape == (64, 16)
    assert torch.count_nonzero(block.q_pos_emb) == 0 and torch.count_nonzero(block.kv_pos_emb) == 0
    assert block.q_pos_emb.requires_grad and block.kept_tokens == 16
    x, ctx = torch.randn(3, 16, 8, 8), torch.randn(3, 16, 8, 8)
    y = block(x, ctx)
    assert y.shape == x.shape and (y >= 0).all()
    y, weights = block(x, ctx, return_attention=True)
    assert weights.shape == (3, 4, 64, 64)
    assert CrossAttentionBlock(16, 8, context_size=4)(x, torch.randn(3, 16, 4, 4)).shape == x.shape
    with pytest.raises(ValueError, match="one context map per decoder map"):
        block(x, torch.randn(2, 16, 8, 8))
    with pytest.raises(ValueError, match="kv_mask_ratio"):
        CrossAttentionBlock(16, 8, kv_mask_ratio=1.0)


def test_cross_attention_masking_train_and_eval():
    block = CrossAttentionBlock(16, 8, dropout=0.0)  # no attention dropout: the zeros are the masked tokens only
    x, ctx = torch.randn(4, 16, 8, 8), torch.randn(4, 16, 8, 8)
    block.train()
    _, w = block(x, ctx, return_attention=True)
    zeros = (w == 0).sum(-1)
    assert (zeros == 64 - 16).all()  # 75% of the 64 key/value tokens dropped, for every query and head
    kept = w[:, 0, 0] > 0
    assert (kept[:, None, None, :] == (w > 0)).all()  # one kept set per sample, shared by queries and heads
    assert not (kept[0] == kept[1]).all()  # ...drawn independently per sample
    torch.testing.assert_close(w.sum(-1), torch.ones(4, 4, 64))
    # the dropped tokens do not reach the output
    torch.manual_seed(3)
    y1, w1 = block(x, ctx, return_attention=True)
    dropped = (w1[:, 0, 0] == 0).reshape(4, 1, 8, 8)
    other = torch.where(dropped, torch.randn_like(ctx), ctx)
    assert not torch.equal(other, ctx)
    torch.manual_seed(3)
    y2 = block(x, other)
    torch.testing.assert_close(y1, y2)
    # eval mode: still 75 % dropped, as the official random_mask on every call
    block.eval()
    _, w = block(x, ctx, return_attention=True)
    assert ((w == 0).sum(-1) == 64 - 16).all()
    # kv_mask=False keeps every token (also with the default dropout in eval mode), rows sum to 1
    for blk in (block, CrossAttentionBlock(16, 8)):
        blk.eval()
        _, w = blk(x, ctx, return_attention=True, kv_mask=False)
        assert (w > 0).all()
        torch.testing.assert_close(w.sum(-1), torch.ones(4, 4, 64))


# ------------------------------------------------------------------------------------------------ context branch
def test_context_encoder_maps():
    ctx_enc = ContextEncoder()
    maps = ctx_enc(images(2))
    shapes = {s: tuple(m.shape) for s, m in maps.items()}
    assert shapes == {32: (2, 48, 32, 32), 16: (2, 96, 16, 16), 8: (2, 192, 8, 8)}
    assert ctx_enc.scales == (32, 16, 8)


def test_select_context():
    seq = torch.arange(4 * 6).reshape(4, 6, 1, 1, 1).expand(4, 6, 3, 2, 2).contiguous()
    assert (select_context(seq, "first")[:, 0, 0, 0] == seq[:, 0, 0, 0, 0]).all()
    assert (select_context(seq, "last")[:, 0, 0, 0] == seq[:, -1, 0, 0, 0]).all()
    picks = torch.stack([select_context(seq)[:, 0, 0, 0] for _ in range(30)])  # (30, 4) frame ids
    rows = torch.arange(4) * 6
    assert ((picks >= rows) & (picks < rows + 6)).all()  # each context comes from its own sequence
    assert len((picks - rows).unique()) == 6  # every timestep gets picked
    g1, g2 = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    assert torch.equal(select_context(seq, generator=g1), select_context(seq, generator=g2))
    with pytest.raises(ValueError, match="random"):
        select_context(seq, "middle")
    with pytest.raises(ValueError, match=r"\(B, T, C, H, W\)"):
        select_context(seq[0])


def test_random_erasing():
    x = torch.rand(64, 3, 32, 32) + 1.0  # never equal to the fill value
    out = random_erasing(x, prob=1.0, value=-7.0)
    mask = out[:, 0] == -7.0
    assert ((out == -7.0) == mask[:, None]).all()  # the same rectangle in every channel
    assert torch.equal(out[~mask[:, None].expand_as(x)], x[~mask[:, None].expand_as(x)])
    for m in mask:
        rows, cols = m.any(1).nonzero()[:, 0], m.any(0).nonzero()[:, 0]
        h, w = len(rows), len(cols)
        assert rows[-1] - rows[0] + 1 == h and cols[-1] - cols[0] + 1 == w and m.sum() == h * w  # a rectangle
        assert 1 <= m.sum() <= 0.4 * 32 * 32
    assert torch.equal(random_erasing(x, prob=0.0), x)
    erased = (random_erasing(x, prob=0.5)[:, 0] == 0).flatten(1).any(1).float().mean()
    assert 0.25 < erased < 0.75
    with pytest.raises(ValueError, match="float"):
        random_erasing(x.to(torch.uint8))


def test_augment_context():
    x = images(16, size=32)
    assert torch.equal(augment_context(x, shift_pad=0, erase_prob=0.0), x)
    shifted = augment_context(x, shift_pad=4, erase_prob=0.0)
    assert shifted.shape == x.shape and not torch.equal(shifted, x)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    torch.testing.assert_close(augment_context(x, generator=g1), augment_context(x, generator=g2))
