"""Tests for :mod:`sb3_worldmodels.common.nets`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sb3_worldmodels.common.nets import MLP, AlignedLinear, ChannelNorm, ConvDecoder, ConvEncoder, ScalarHead, get_act


def test_get_act():
    assert get_act("silu") is nn.SiLU and get_act("elu") is nn.ELU and get_act("tanh") is nn.Tanh
    with pytest.raises(ValueError, match="Unknown activation"):
        get_act("swish2")


# ------------------------------------------------------------------------------------------------ MLP
@pytest.mark.parametrize("norm", [True, False])
def test_mlp_shapes_and_norm(norm):
    mlp = MLP(7, 3, layers=2, units=16, act="elu", norm=norm)
    assert mlp(torch.randn(5, 4, 7)).shape == (5, 4, 3)
    assert mlp.out_dim == 3
    norms = [m for m in mlp if isinstance(m, nn.LayerNorm)]
    linears = [m for m in mlp if isinstance(m, nn.Linear)]
    acts = [m for m in mlp if isinstance(m, nn.ELU)]
    assert len(linears) == 3 and len(acts) == 2
    assert len(norms) == (2 if norm else 0)
    # hidden linears drop their bias only when followed by a norm; the output layer always has one
    assert all((lin.bias is None) == norm for lin in linears[:-1])
    assert linears[-1].bias is not None
    if norm:  # Linear -> LayerNorm -> act ordering
        kinds = [type(m) for m in mlp]
        assert kinds == [nn.Linear, nn.LayerNorm, nn.ELU, nn.Linear, nn.LayerNorm, nn.ELU, AlignedLinear]


@pytest.mark.parametrize("out", [255, 256, 3, 70])
def test_aligned_linear_is_a_linear(out):
    """Same parameters, state_dict, outputs and gradients as ``nn.Linear`` (255: the padded product)."""
    torch.manual_seed(0)
    plain = nn.Linear(64, out)
    aligned = AlignedLinear(64, out)
    assert aligned.state_dict().keys() == plain.state_dict().keys()
    aligned.load_state_dict(plain.state_dict())  # an nn.Linear checkpoint loads as is
    x = torch.randn(3, 50, 64, requires_grad=True)
    y_plain, y_aligned = plain(x), aligned(x)
    assert y_aligned.shape == (3, 50, out)
    torch.testing.assert_close(y_aligned, y_plain)
    g = torch.randn_like(y_plain)
    grads = [torch.autograd.grad(y, [x, *m.parameters()], g) for y, m in ((y_plain, plain), (y_aligned, aligned))]
    for a, b in zip(*grads, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(b, a)


@pytest.mark.parametrize("out", [255, 256, 3, 70])
def test_aligned_linear_pad_logits_adds_minus_inf_columns(out):
    """``pad_logits``: the ``nn.Linear`` values, then ``-inf`` up to :attr:`width`; the gradients are unchanged."""
    torch.manual_seed(0)
    plain = nn.Linear(64, out)
    padded = AlignedLinear(64, out, pad_logits=True)
    padded.load_state_dict(plain.state_dict())
    expected = -out % 16 if out >= 64 else 0
    assert padded.width == out + expected
    x = torch.randn(2, 9, 64, requires_grad=True)
    y = padded(x)
    assert y.shape == (2, 9, padded.width)
    torch.testing.assert_close(y[..., :out], plain(x))
    assert torch.isneginf(y[..., out:]).all()
    g = torch.randn(2, 9, out)  # through a log-softmax, the way TwoHotDist reads the logits
    got = torch.autograd.grad(torch.log_softmax(y, -1)[..., :out], [x, *padded.parameters()], g)
    want = torch.autograd.grad(torch.log_softmax(plain(x), -1), [x, *plain.parameters()], g)
    for a, b in zip(want, got, strict=True):
        assert torch.isfinite(b).all()
        torch.testing.assert_close(b, a)
    with pytest.raises(ValueError, match="bias=True"):
        AlignedLinear(64, 255, bias=False, pad_logits=True)
    mlp = MLP(5, out, layers=1, units=64, pad_logits=True)
    assert mlp.out_dim == padded.width and mlp(torch.randn(3, 5)).shape == (3, padded.width)


def test_mlp_no_output_layer():
    mlp = MLP(7, None, layers=3, units=11)
    assert mlp.out_dim == 11
    assert mlp(torch.randn(2, 7)).shape == (2, 11)
    assert isinstance(mlp[-1], nn.SiLU)


def test_mlp_zero_layers_is_linear():
    mlp = MLP(4, 2, layers=0, units=99)
    assert len(mlp) == 1 and isinstance(mlp[0], nn.Linear) and mlp[0].in_features == 4


def test_mlp_zero_out():
    mlp = MLP(6, 255, layers=2, units=8, zero_out=True)
    out = mlp[-1]
    assert torch.count_nonzero(out.weight) == 0 and torch.count_nonzero(out.bias) == 0
    assert torch.count_nonzero(mlp(torch.randn(3, 6))) == 0
    # hidden layers are not zeroed, and zero_out=False leaves the output random
    assert torch.count_nonzero(mlp[0].weight) > 0
    assert torch.count_nonzero(MLP(6, 255, layers=2, units=8)[-1].weight) > 0
    # the zero output layer still learns (gradient reaches its weight)
    mlp(torch.randn(3, 6)).sum().backward()
    assert out.weight.grad.abs().sum() > 0


def test_channel_norm_normalises_channels():
    norm = ChannelNorm(5, eps=1e-3)
    x = torch.randn(2, 5, 3, 4) * 10 + 3
    y = norm(x)
    assert y.shape == x.shape
    torch.testing.assert_close(y.mean(1), torch.zeros(2, 3, 4), atol=1e-5, rtol=0)
    torch.testing.assert_close(y.var(1, unbiased=False), torch.ones(2, 3, 4), atol=1e-3, rtol=0)


# ------------------------------------------------------------------------------------ conv encoder/decoder
@pytest.mark.parametrize("size", [32, 64, 96])
def test_v3_encoder_decoder_shapes(size):
    depth = 4
    enc = ConvEncoder((3, size, size), depth=depth, style="v3")
    assert enc.out_shape == (8 * depth, size // 16, size // 16)
    assert enc.out_dim == 8 * depth * (size // 16) ** 2
    x = torch.rand(2, 3, 3, size, size)  # (B, T, C, H, W)
    emb = enc(x)
    assert emb.shape == (2, 3, enc.out_dim)
    dec = ConvDecoder(17, (3, size, size), depth=depth, style="v3")
    assert dec.start == (8 * depth, size // 16, size // 16)
    assert dec(torch.randn(2, 3, 17)).shape == (2, 3, 3, size, size)
    assert dec(torch.randn(5, 17)).shape == (5, 3, size, size)
    assert any(isinstance(m, ChannelNorm) for m in enc.modules())
    assert any(isinstance(m, ChannelNorm) for m in dec.modules())


def test_v3_grayscale_and_stages():
    enc = ConvEncoder((1, 64, 64), depth=2, stages=3, style="v3")
    assert enc.out_shape == (8, 8, 8)
    dec = ConvDecoder(5, (1, 64, 64), depth=2, stages=3, style="v3")
    assert dec(torch.randn(4, 5)).shape == (4, 1, 64, 64)


def test_v2_encoder_decoder_shapes():
    depth = 3
    enc = ConvEncoder((3, 64, 64), depth=depth, act="elu", norm=False, style="v2")
    assert enc.out_shape == (8 * depth, 2, 2)
    assert enc.out_dim == 32 * depth
    assert enc(torch.rand(4, 3, 64, 64)).shape == (4, 32 * depth)
    convs = [m for m in enc.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [depth, 2 * depth, 4 * depth, 8 * depth]
    assert all(c.kernel_size == (4, 4) and c.stride == (2, 2) and c.padding == (0, 0) for c in convs)
    assert not any(isinstance(m, (ChannelNorm, nn.LayerNorm)) for m in enc.modules())

    dec = ConvDecoder(10, (3, 64, 64), depth=depth, act="elu", norm=False, style="v2")
    assert dec.start == (32 * depth, 1, 1)
    tconvs = [m for m in dec.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [t.kernel_size[0] for t in tconvs] == [5, 5, 6, 6]
    assert dec(torch.randn(2, 6, 10)).shape == (2, 6, 3, 64, 64)


@pytest.mark.parametrize(
    "shape,style",
    [((3, 60, 60), "v3"), ((3, 64, 60), "v3"), ((3, 8, 8), "v3"), ((3, 32, 32), "v2"), ((3, 96, 96), "v2")],
)
def test_encoder_bad_size_raises_resize_hint(shape, style):
    with pytest.raises(ValueError, match="Resize") as info:
        ConvEncoder(shape, depth=4, style=style)
    assert str(tuple(shape)) in str(info.value)


def test_decoder_v2_bad_size_raises_resize_hint():
    with pytest.raises(ValueError, match="Resize"):
        ConvDecoder(8, (3, 32, 32), depth=4, style="v2")


def test_decoder_v3_bad_size_raises_resize_hint():
    with pytest.raises(ValueError, match="Resize"):
        ConvDecoder(8, (3, 60, 60), depth=4, style="v3")


def test_encoder_takes_plain_channels_first_input():
    """Ordinary contiguous (N, C, H, W) tensors work; channels_last memory format is not required."""
    enc = ConvEncoder((3, 64, 64), depth=4, style="v3")
    x = torch.rand(3, 3, 64, 64)
    assert x.is_contiguous()
    y = enc(x)
    y_cl = enc(x.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(y, y_cl, rtol=1e-5, atol=1e-5)
    # a non-contiguous view also works and gives the same embedding
    x_nc = torch.rand(3, 64, 64, 3).permute(0, 3, 1, 2)
    assert not x_nc.is_contiguous()
    torch.testing.assert_close(enc(x_nc), enc(x_nc.contiguous()), rtol=1e-5, atol=1e-5)
    # each sample is encoded independently of the batch layout
    torch.testing.assert_close(enc(x[1:2]), y[1:2], rtol=1e-5, atol=1e-5)
    # channels-last *shaped* (H, W, C) input is rejected rather than silently misread
    with pytest.raises(RuntimeError):
        enc(torch.rand(2, 64, 64, 3))


def test_encoder_decoder_gradients_flow():
    enc = ConvEncoder((3, 32, 32), depth=2, style="v3")
    dec = ConvDecoder(enc.out_dim, (3, 32, 32), depth=2, style="v3")
    x = torch.rand(2, 3, 32, 32)
    ((dec(enc(x)) - x) ** 2).mean().backward()
    for p in [*enc.parameters(), *dec.parameters()]:
        assert p.grad is not None and torch.isfinite(p.grad).all()
    assert enc.net[0].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("twohot", [True, False])
def test_scalar_head_reads_its_output_with_its_bins(twohot):
    """A two-hot ScalarHead returns padded logits and reads them over its bins; a Gaussian one a single output."""
    from sb3_worldmodels.common.distributions import MSEDist, TwoHotDist

    head = ScalarHead(6, layers=1, units=16, twohot=twohot, bins=255)
    out = head(torch.randn(4, 6))
    dist = head.dist(out)
    if twohot:
        assert out.shape == (4, 256) and torch.isneginf(out[:, 255]).all()
        assert isinstance(dist, TwoHotDist) and dist.bins.shape == (255,)
        assert torch.all(out[:, :255] == 0)  # zero-initialised output layer: a zero mean
        torch.testing.assert_close(dist.mean, torch.zeros(4), atol=1e-5, rtol=0)
    else:
        assert out.shape == (4, 1) and isinstance(dist, MSEDist) and dist.mode.shape == (4,)
