"""APV / ContextWM pre-training against the official code (thuml/ContextWM ``wmlib``) on the same weights, and the
official pre-trained checkpoints loading into APV / ContextDreamer.

The fixtures (``tests/conformance/fixtures/apv_pretrain*``, ``contextwm_pretrain*``, ``contextwm_official/``) hold the
official ``APV_Pretrain`` agent's weights, a fixed batch, what the official code computed from them and a checkpoint
written by the official save path; ``tests/conformance/README.md`` says how they are made. Our
:class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` is built from the sizes the mapping reads off the
official tensors (:func:`~sb3_worldmodels.contextwm.official.official_architecture`), loaded through the documented
mapping (:func:`~sb3_worldmodels.contextwm.official.video_state_from_official`), and both sides draw the same noise
(latent samples, context frame, key/value mask).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch

from sb3_worldmodels import APV, ContextDreamer
from sb3_worldmodels.common import distributions
from sb3_worldmodels.contextwm.checkpoint import load_pretrained, load_video_model, pretrained_config
from sb3_worldmodels.contextwm.config import make_contextwm_config
from sb3_worldmodels.contextwm.official import official_architecture, save_official, video_state_from_official
from sb3_worldmodels.contextwm.world_model import VideoWorldModel
from sb3_worldmodels.dreamer.policies import _optimizer
from sb3_worldmodels.pretrain import VideoLoss, train_step
from tests.conformance.common import FIXTURES, assert_close, fixed_uniform, load_fixture, rel_error

CASES = ["apv_pretrain", "contextwm_pretrain"]
OFFICIAL_CKPT = FIXTURES / "contextwm_official"
CARTPOLE = "sb3wm/dmc-cartpole-swingup-v0"


@pytest.fixture(autouse=True)
def fixed_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our samplers, context choice and key/value mask read the noise the official ones read in the generator."""
    monkeypatch.setattr(distributions, "uniform_like",
                        lambda x: torch.from_numpy(fixed_uniform(tuple(x.shape))).to(x.device, x.dtype))


def official(arrays: dict[str, np.ndarray], prefix: str, base: str = "weights/") -> dict[str, torch.Tensor]:
    """The official state dict stored under ``prefix``, completed from ``base`` (buffers, parameters without a
    gradient) so that the mapping sees a whole agent; compare only what ``prefix`` holds."""
    out = {k[len(base):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(base)}
    out.update({k[len(prefix):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)})
    return out


def config_overrides(meta: dict[str, Any]) -> dict[str, Any]:
    """Our settings of the fixture's official run: its loss and optimizer, dropout off (as in the generator)."""
    c = meta["config"]
    assert c["loss_scales.kl"] == 1.0 and c["loss_scales.image"] == 1.0 and not c["kl.forward"] and c["kl.free_avg"]
    return dict(kl_free=c["kl.free"], kl_balance=c["kl.balance"], model_lr=c["model_opt.lr"],
                model_eps=c["model_opt.eps"], weight_decay=c["model_opt.wd"], model_grad_clip=c["model_opt.clip"],
                kv_mask_ratio=c["decoder_ctx.ctx_attmask"], attention_dropout=0.0)


def build(name: str) -> tuple[VideoWorldModel, dict[str, np.ndarray], dict[str, Any]]:
    """Our video model with the official weights (sizes read off the official tensors), the arrays, the metadata."""
    arrays, meta = load_fixture(name)
    sd = official(arrays, "weights/")
    arch = official_architecture(sd)
    fields = {k: v for k, v in arch.items() if k not in ("image_shape", "kind")}
    model = VideoWorldModel(arch["image_shape"], make_contextwm_config("v2", None, **fields, **config_overrides(meta)))
    for module, state in video_state_from_official(sd, model).items():
        getattr(model, module).load_state_dict(state, strict=True)
    return model, arrays, meta


def batch(arrays: dict[str, np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(arrays["batch/image"]), torch.from_numpy(arrays["batch/is_first"])


def mapped(model: VideoWorldModel, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The official tensors under ``prefix`` in our names (through the same mapping as the weights)."""
    states = video_state_from_official(official(arrays, prefix), model)
    return {f"{m}.{k}": v for m, state in states.items() for k, v in state.items()}


@contextmanager
def float64(model: VideoWorldModel) -> Iterator[VideoWorldModel]:
    """``model`` in float64 (the gradients of this BatchNorm ResNet are ill-conditioned in fp32: the official fp32
    gradients differ from the official fp64 ones by up to 1e-2 relative, so the fixture's gradients and updated
    parameters are fp64 ones, and ours are compared in fp64)."""
    model.double()
    offset = model.cfg.image_offset
    model.to_float = lambda images: images.double() / 255.0 + offset  # type: ignore[method-assign]
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the RSSM's initial state
    try:
        yield model
    finally:
        torch.set_default_dtype(default)


def compare_forward(model: VideoWorldModel, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Our fp32 forward pass in training mode (BatchNorm on the batch statistics, as the official loss) against the
    official fp32 one: relative error of the encoder output, the posteriors and the losses."""
    images, is_first = batch(arrays)
    model.train()
    with torch.no_grad():
        embed = model.encoder(model.to_float(images))
        post, _ = model.af_rssm.observe(embed, None, is_first)
        total, metrics = model.loss(images, is_first)
    stoch = post["stoch"].reshape(arrays["wm/post_stoch"].shape)
    return {
        "embedding": rel_error(embed, arrays["wm/embed"]),
        "posterior deter": rel_error(post["deter"], arrays["wm/post_deter"]),
        "posterior log-probabilities": rel_error(
            post["logits"].log_softmax(-1), torch.from_numpy(arrays["wm/post_logit"]).log_softmax(-1)),
        "posterior sample": rel_error(stoch, arrays["wm/post_stoch"]),
        "image loss": rel_error(metrics["image_loss"], arrays["wm/loss_image"]),
        "KL loss": rel_error(metrics["kl_loss"], arrays["wm/loss_kl"]),
        "total loss": rel_error(total, arrays["wm/model_loss"]),
    }


def compare_gradients(model: VideoWorldModel, arrays: dict[str, np.ndarray]) -> dict[str, float]:
    """Our loss and the gradient of every parameter after one backward, in fp64, against the official fp64 ones."""
    images, is_first = batch(arrays)
    with float64(model):
        model.train()
        model.zero_grad(set_to_none=True)
        total, _ = model.loss(images, is_first)
        total.backward()
    theirs = mapped(model, arrays, "wm_grad/")
    grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert len(grads) == sum(k.startswith("wm_grad/") for k in arrays)  # every official gradient has its match
    return {"total loss (fp64)": rel_error(total, arrays["wm64/model_loss"]),
            "gradients": max(rel_error(g, theirs[n]) for n, g in grads.items())}


def compare_step(model: VideoWorldModel, arrays: dict[str, np.ndarray]) -> float:
    """One update with our pre-training step (Adam, clipping, weight decay), in fp64; the largest error over the
    whole state (parameters and BatchNorm statistics)."""
    images, is_first = batch(arrays)
    cfg = model.cfg
    with float64(model):
        model.train()
        optimizer = _optimizer(model.parameters(), cfg.model_lr, cfg.model_eps, cfg.weight_decay)
        train_step(VideoLoss(model), optimizer, images, is_first, cfg)
    theirs = mapped(model, arrays, "after/")
    return max(rel_error(v, theirs[k]) for k, v in model.state_dict().items() if not k.endswith("initial_deter"))


@pytest.mark.parametrize("name", CASES)
def test_losses_posteriors_and_gradients_match_the_official_code(name: str) -> None:
    model, arrays, _ = build(name)
    assert (model.context_encoder is not None) == (name == "contextwm_pretrain")
    for what, err in {**compare_forward(model, arrays), **compare_gradients(model, arrays)}.items():
        assert err <= 1e-5, f"{name}: {what}: relative error {err:.3g}"


@pytest.mark.parametrize("name", CASES)
def test_evaluation_mode_loss_matches_the_official_code(name: str) -> None:
    """In evaluation mode (BatchNorm on its running statistics) the official code still drops 75 % of the context
    tokens at random; so does ours."""
    model, arrays, _ = build(name)
    images, is_first = batch(arrays)
    model.eval()
    with torch.no_grad():
        total, metrics = model.loss(images, is_first)
    assert_close(metrics["image_loss"], arrays["wm_eval/loss_image"], "image loss (eval)")
    assert_close(metrics["kl_loss"], arrays["wm_eval/loss_kl"], "KL loss (eval)")
    assert_close(total, arrays["wm_eval/model_loss"], "total loss (eval)")


@pytest.mark.parametrize("name", CASES)
def test_one_pretraining_step_gives_the_official_parameters(name: str) -> None:
    model, arrays, _ = build(name)
    err = compare_step(model, arrays)
    assert err <= 1e-5, f"{name}: state after one step: relative error {err:.3g}"


def test_the_comparison_fails_on_a_perturbed_model() -> None:
    """The conformance checks are sharp: a small change of one weight is caught."""
    model, arrays, _ = build("contextwm_pretrain")
    with torch.no_grad():
        model.decoder.stages[0][0].cross_attention.kv_pos_emb[3, 1] += 1e-2
    assert compare_gradients(model, arrays)["gradients"] > 1e-5
    model, arrays, _ = build("apv_pretrain")
    with torch.no_grad():
        model.encoder.stages[1][0].res_block[1].running_var[0] += 1.0  # no effect in training mode ...
    assert max(compare_forward(model, arrays).values()) <= 1e-5
    with torch.no_grad():
        model.encoder.stages[1][0].res_block[1].weight[0] += 1e-3  # ... a BatchNorm scale has one
    assert compare_forward(model, arrays)["embedding"] > 1e-5
    model, arrays, _ = build("apv_pretrain")
    assert compare_step(model, arrays) <= 1e-5
    model, arrays, _ = build("apv_pretrain")
    model.cfg.model_lr *= 2  # the optimizer's settings are seen too
    assert compare_step(model, arrays) > 1e-5


def test_the_context_frame_is_the_official_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """Another context frame (the last instead of the official random one) changes the loss: the comparison sees
    the context choice."""
    model, arrays, _ = build("contextwm_pretrain")
    from sb3_worldmodels.contextwm import world_model

    monkeypatch.setattr(world_model, "select_context", lambda images, mode="random", generator=None: images[:, -1])
    assert compare_forward(model, arrays)["image loss"] > 1e-5


def test_the_key_value_mask_is_the_official_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """The key/value tokens kept are the official ones: keeping other ones changes the loss."""
    model, arrays, _ = build("contextwm_pretrain")
    from sb3_worldmodels.common import resnet

    noise = resnet.kv_mask_noise
    monkeypatch.setattr(resnet, "kv_mask_noise", lambda like, n, tokens: 1 - noise(like, n, tokens))
    assert compare_forward(model, arrays)["image loss"] > 1e-5


# ------------------------------------------------------------------------------------------------ official files
def test_official_checkpoint_files_give_the_official_outputs(tmp_path: Path) -> None:
    """The checkpoint the official ``APV_Pretrain.save_model`` wrote loads, in each layout, into a VideoWorldModel
    that reproduces the official loss, posteriors and gradients on the fixture batch."""
    arrays, _ = load_fixture("contextwm_pretrain")
    config = pretrained_config(OFFICIAL_CKPT)
    assert config["format"] == "official" and config["kind"] == "contextwm"
    assert (config["deter"], config["hidden"], config["stoch"], config["classes"]) == (16, 16, 4, 4)
    assert config["resnet_depths"] == (2, 4, 8) and config["cross_attention_scales"] == (8, 16)
    assert [Path(f).name for f in config["files"]] == ["encoder_variables.pt", "rssm_variables.pt",
                                                       "decoder_variables.pt"]  # what official fine-tuning reads
    only_variables = tmp_path / "only_variables"
    only_parts = tmp_path / "only_parts"
    only_variables.mkdir(), only_parts.mkdir()
    shutil.copy(OFFICIAL_CKPT / "variables.pt", only_variables)
    for part in ("encoder", "rssm", "decoder"):
        shutil.copy(OFFICIAL_CKPT / f"{part}_variables.pt", only_parts)
    paths = [OFFICIAL_CKPT, OFFICIAL_CKPT / "variables.pt", only_variables, only_parts,
             only_parts / "encoder_variables.pt"]
    reference = None
    for path in paths:
        model = load_video_model(path, attention_dropout=0.0)  # the fixture's run had dropout off
        assert model.cfg.kl_free == 0.0  # the official pre-training's free nats
        state = {k: v.clone() for k, v in model.state_dict().items()}
        if reference is None:
            reference = state
            errors = compare_forward(model, arrays)
            assert max(errors.values()) <= 1e-5, errors
            assert compare_gradients(model, arrays)["gradients"] <= 1e-5
        else:
            assert all(torch.equal(state[k], reference[k]) for k in state), path


def test_official_checkpoint_errors(tmp_path: Path) -> None:
    env = gym.make(CARTPOLE, time_limit=0.5)
    # explicit settings that contradict the checkpoint: every conflicting field, with both values
    with pytest.raises(ValueError, match=r"deter: yours 32, checkpoint 16; .*cnn_depth: yours 8, checkpoint 2"):
        ContextDreamer("CnnPolicy", env, pretrained=str(OFFICIAL_CKPT), policy_kwargs=dict(deter=32, cnn_depth=8))
    with pytest.raises(ValueError, match=r"ContextWM \(with a context encoder\) model: fine-tune it with "
                                         r"ContextDreamer"):
        APV("CnnPolicy", env, pretrained=str(OFFICIAL_CKPT))
    # a model of other sizes: the official key, our parameter and both shapes, and the settings to use
    wrong = VideoWorldModel((3, 64, 64), make_contextwm_config("v2", "tiny", context=True))
    with pytest.raises(ValueError, match=r"Official 'wm.encoder.convin.weight' has shape \(2, 3, 3, 3\) but our "
                                         r"encoder.stem.0.weight has shape \(8, 3, 3, 3\).*deter=16 \(yours: 64\)"):
        load_pretrained(wrong, OFFICIAL_CKPT)
    # an APV checkpoint has no context encoder
    arrays, _ = load_fixture("apv_pretrain")
    apv = official(arrays, "weights/")
    torch.save(apv, tmp_path / "variables.pt")
    ctx_model = load_video_model(OFFICIAL_CKPT)
    with pytest.raises(ValueError, match=r"has no \['context_encoder'\].*APV\(\.\.\., pretrained=\.\.\.\)"):
        load_pretrained(ctx_model, tmp_path / "variables.pt")
    # partial: a part file missing, a module missing from variables.pt
    partial = tmp_path / "partial"
    partial.mkdir()
    for part in ("encoder", "rssm"):
        shutil.copy(OFFICIAL_CKPT / f"{part}_variables.pt", partial)
    with pytest.raises(FileNotFoundError, match=r"lacks \[.*decoder_variables.pt'\]"):
        load_video_model(partial)
    no_decoder = tmp_path / "no_decoder"
    no_decoder.mkdir()
    torch.save({k: v for k, v in apv.items() if not k.startswith("wm.heads.")}, no_decoder / "variables.pt")
    with pytest.raises(ValueError, match=r"no 'wm.heads.decoder.convin.weight'"):
        load_video_model(no_decoder)
    # extra official weights our module has no place for (a ContextWM decoder into APV's)
    apv_model = load_video_model(tmp_path / "variables.pt")
    with pytest.raises(ValueError, match=r"weights our decoder does not have: \[.*cross_attention"):
        load_pretrained(apv_model, OFFICIAL_CKPT, modules=("decoder",))
    # not a state dict; a fine-tuning checkpoint; nothing official
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "variables.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="not a PyTorch state dict"):
        load_video_model(bad)
    finetune = tmp_path / "finetune"
    finetune.mkdir()
    torch.save({k.replace("wm.rssm.", "wm.af_rssm."): v for k, v in apv.items()}, finetune / "variables.pt")
    with pytest.raises(ValueError, match="fine-tuning checkpoint"):
        load_video_model(finetune)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_video_model(tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------ full size
@pytest.mark.parametrize("name", CASES)
def test_full_size_official_checkpoints_map_and_initialise_as_the_official(name: str) -> None:
    """The official default-size model (``apv_pretraining.yaml``: rssm 1024, cnn_depth 48; the published models'
    size), from its key -> shape table: the sizes read, the mapping fills our full-size model exactly, and our fresh
    initialisation has the official per-layer scale (Xavier-uniform where the official ``Module.get`` builds the
    layer, PyTorch's defaults elsewhere)."""
    _, meta = load_fixture(name)
    shapes = meta["official_default_shapes"]
    # every official tensor filled with its own index: after the mapping, each of ours names its official source
    keys = sorted(shapes)
    sd = {k: torch.full(shapes[k], float(i)) for i, k in enumerate(keys)}
    arch = official_architecture(sd)
    context = name == "contextwm_pretrain"
    assert (arch["deter"], arch["hidden"], arch["stoch"], arch["classes"]) == (1024, 1024, 32, 32)
    assert (arch["resnet_depths"], arch["resnet_blocks"], arch["resnet_norm"]) == ((48, 96, 192), 2, "batch")
    assert arch["context"] == context and arch["image_shape"] == (3, 64, 64)
    assert arch.get("cross_attention_scales") == ((8, 16) if context else None)
    fields = {k: v for k, v in arch.items() if k not in ("image_shape", "kind")}
    torch.manual_seed(0)
    model = VideoWorldModel(arch["image_shape"], make_contextwm_config("v2", None, **fields))
    states = video_state_from_official(sd, model)
    official_params = set()
    for module, state in states.items():
        getattr(model, module).load_state_dict(state, strict=True)
    fresh = VideoWorldModel(arch["image_shape"], make_contextwm_config("v2", None, **fields))
    init = meta["official_default_init"]
    fresh_params = dict(fresh.named_parameters())
    for ours, value in model.named_parameters():
        if ours.endswith("initial_deter"):
            continue
        source = keys[int(value.flatten()[0])]
        assert torch.all(value == keys.index(source)), ours
        official_params.add(source)
        mean, std, top = init[source]
        w = fresh_params[ours].detach()
        if std == 0:  # zero biases, BatchNorm shifts, positional embeddings; ones for norm scales
            assert torch.all(w == mean), f"{ours} ({source}) should start at {mean}"
            continue
        ratio = float(w.std()) / std
        assert abs(ratio - 1) < (0.05 if w.numel() > 10_000 else 0.3), f"{ours} ({source}): std ratio {ratio:.3f}"
        assert float(w.abs().max()) <= top * 1.2 + 1e-6, f"{ours} ({source}): max {w.abs().max():.4g} > {top:.4g}"
    # every official parameter has its place (the 50 zero action columns of img_in dropped)
    assert official_params == {k for k in init}, sorted(set(init) - official_params)[:5]


@pytest.mark.parametrize("name", ["apv_pretrain", "contextwm_pretrain"])
def test_our_model_saves_in_the_official_format(name: str, tmp_path: Path) -> None:
    """``save_official`` writes what the official ``APV_Pretrain.save_model`` writes, so the official fine-tuning loads
    it: the same files, keys and shapes, the official weights back where they came from (the action-free RSSM's 50
    zero-action columns as zeros: the official code multiplies them by zeros), and it loads back into ours."""
    model, arrays, _ = build(name)
    save_official(model, tmp_path)
    theirs = official(arrays, "weights/")
    ours = torch.load(tmp_path / "variables.pt", weights_only=True)
    assert set(ours) == set(theirs)
    for key, value in theirs.items():
        if key == "wm.rssm.img_in.weight":
            used = model.af_rssm.stoch_flat
            assert ours[key].shape == value.shape and not ours[key][:, used:].any()
            value, ours[key] = value[:, :used], ours[key][:, :used]
        assert torch.equal(ours[key], value), key
    if name == "contextwm_pretrain":  # the part files of the official save (the fixture's own), key for key
        for part in ("encoder", "rssm", "decoder"):
            official_part = torch.load(OFFICIAL_CKPT / f"{part}_variables.pt", weights_only=True)
            our_part = torch.load(tmp_path / f"{part}_variables.pt", weights_only=True)
            assert {k: tuple(v.shape) for k, v in our_part.items()} == {
                k: tuple(v.shape) for k, v in official_part.items()}, part
    reloaded = load_video_model(tmp_path, attention_dropout=0.0)
    for key, value in model.state_dict().items():
        assert torch.equal(reloaded.state_dict()[key], value), key
