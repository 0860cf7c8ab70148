"""iVideoGPT: tokenizer shapes and learning, the cached transformer, token layout, prediction, checkpoints."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sb3_worldmodels import CEMPlanner, IVideoGPT
from sb3_worldmodels.ivideogpt import (
    CompressiveTokenizer,
    LlamaTransformer,
    make_tokenizer_config,
    make_transformer_config,
)
from sb3_worldmodels.ivideogpt.transformer import apply_rotary, rotary_angles


def clips(b: int = 2, t: int = 5, seed: int = 0) -> torch.Tensor:
    """uint8 (b, t, 3, 16, 16) clips of a bright bar moving one column per frame."""
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 8, (b,), generator=g)
    frames = torch.zeros(b, t, 3, 16, 16, dtype=torch.uint8)
    for i in range(b):
        for j in range(t):
            frames[i, j, :, :, int(start[i]) + j] = 255
    return frames


def test_presets_match_the_spec_and_bad_sizes_are_refused() -> None:
    cfg = make_tokenizer_config("64")
    assert (cfg.context_tokens, cfg.dynamics_tokens, cfg.context_codes, cfg.dynamics_codes) == (256, 16, 8192, 8192)
    assert cfg.patch * cfg.patch * cfg.latent_dim == 1024  # each dynamics token: Linear(1024 -> 64)
    assert (make_transformer_config("138M").layers, make_transformer_config("436M").width) == (12, 1024)
    with pytest.raises(ValueError, match="divisible"):
        make_tokenizer_config("tiny", image_size=18)
    with pytest.raises(ValueError, match="Unknown"):
        make_tokenizer_config("tiny", codes=3)
    with pytest.raises(ValueError, match="heads"):
        make_transformer_config("tiny", width=66)


def test_tokenizer_shapes_round_trip_and_learning() -> None:
    torch.manual_seed(0)
    tok = CompressiveTokenizer(make_tokenizer_config("tiny"))
    frames = clips(4, 5)
    ctx_tokens, context, _, _ = tok.encode_context(frames[:, :2])
    dyn_tokens, _, _ = tok.encode_dynamics(frames[:, 2:], context)
    assert ctx_tokens.shape == (4, 2, 16) and dyn_tokens.shape == (4, 3, 4)  # 4x4 grid; 2x2 patches of it
    assert ctx_tokens.max() < 64 and dyn_tokens.max() < 64
    assert tok.decode_context(ctx_tokens).shape == tok.decode_dynamics(dyn_tokens, context).shape[:1] + (2, 3, 16, 16)
    z = torch.randn(3, 8, 4, 4)
    assert torch.equal(tok._unpatchify(tok._patchify(z)), z)
    opt = torch.optim.Adam(tok.parameters(), 3e-3)
    first = None
    for _ in range(60):
        loss, metrics = tok.loss(frames)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or {k: float(v) for k, v in metrics.items()}
    assert float(metrics["dynamics_l1"]) < 0.5 * first["dynamics_l1"]
    assert float(metrics["context_l1"]) < 0.5 * first["context_l1"]
    with pytest.raises(ValueError, match="uint8"):
        tok.loss(frames.float())
    with pytest.raises(ValueError, match="image_size"):
        tok.loss(torch.zeros(1, 3, 3, 32, 32, dtype=torch.uint8))
    with pytest.raises(ValueError, match="perceptual"):
        CompressiveTokenizer(make_tokenizer_config("tiny", perceptual_weight=1.0)).loss(frames)


def test_rotary_positions_make_attention_depend_on_relative_offsets() -> None:
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(pq: int, pk: int) -> float:
        cq, sq = rotary_angles(8, torch.tensor([pq]), 10_000.0)
        ck, sk = rotary_angles(8, torch.tensor([pk]), 10_000.0)
        return float((apply_rotary(q, cq, sq) * apply_rotary(k, ck, sk)).sum())

    assert score(5, 2) == pytest.approx(score(13, 10), abs=1e-5)
    assert score(5, 2) != pytest.approx(score(5, 4), abs=1e-3)


def test_kv_cache_gives_the_full_sequence_outputs() -> None:
    torch.manual_seed(0)
    model = LlamaTransformer(make_transformer_config("tiny"), 50).eval()
    ids = torch.randint(0, 50, (2, 23))
    full, _ = model(model.embed(ids))
    parts, cache = [], None
    for lo, hi in ((0, 10), (10, 11), (11, 12), (12, 20), (20, 23)):
        out, cache = model(model.embed(ids[:, lo:hi]), cache)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, 1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="max_tokens"):
        model(model.embed(torch.zeros(1, 600, dtype=torch.long)))


def test_teacher_forced_logits_equal_the_cached_generation_path() -> None:
    torch.manual_seed(0)
    model = IVideoGPT("tiny", "tiny", action_dim=2).eval()
    torch.nn.init.normal_(model.action_proj.weight)  # make the actions matter
    frames, actions = clips(2, 4), torch.rand(2, 3, 2) * 2 - 1
    with torch.no_grad():
        ctx_tokens, context, _, _ = model.tokenizer.encode_context(frames[:, :2])
        dyn, _, _ = model.tokenizer.encode_dynamics(frames[:, 2:], context)
        head = model.context_sequence(ctx_tokens)
        assert head.shape == (2, 2 * 16 + 1) and bool((head[:, 16] == model.sep_token).all())
        # the cached path, token by token (as predict does), feeding the true tokens
        _, cache = model.transformer(model._embed(head))
        cached = []
        for j in range(2):
            x = model._embed(torch.full((2, 1), model.slot_token), actions[:, 1 + j, None])
            for i in range(4):
                h, cache = model.transformer(x, cache)
                cached.append(model._dynamics_logits(h[:, -1]))
                x = model._embed(dyn[:, j, i, None] + model.context_codes)
            _, cache = model.transformer(x, cache)
        # the teacher-forced loss must be the cross-entropy of exactly these logits
        loss, _ = model.transformer_loss(frames, actions)
        logits = torch.stack(cached, 1)  # (2, 8, codes)
        expected = torch.nn.functional.cross_entropy(logits.flatten(0, 1), dyn.flatten())
        torch.testing.assert_close(loss, expected, atol=1e-5, rtol=1e-5)


def test_prediction_costs_one_token_per_forward_after_the_context() -> None:
    torch.manual_seed(0)
    model = IVideoGPT("tiny", "tiny", action_dim=2)
    lengths = []
    hook = model.transformer.register_forward_pre_hook(lambda m, args: lengths.append(args[0].shape[1]))
    frames, rewards = model.predict(clips(3, 2), torch.zeros(3, 3, 2))
    hook.remove()
    assert frames.shape == (3, 3, 3, 16, 16) and frames.dtype == torch.uint8 and rewards.shape == (3, 3)
    assert lengths == [33] + [1] * (3 * model.frame_tokens)  # context once, then slot + 4 dynamics tokens per frame
    assert model.training  # the mode is restored


def test_transformer_learns_the_clips_and_the_rewards() -> None:
    torch.manual_seed(0)
    model = IVideoGPT("tiny", "tiny", action_dim=1)
    frames, actions = clips(4, 5), torch.zeros(4, 4, 1)
    rewards = frames[:, 1:, 0, 0].float().sum(-1) / 255.0  # 1 when the bar reaches column-row (0, *)
    opt = torch.optim.Adam(model.transformer_parameters(), 3e-3)
    first = None
    for _ in range(80):
        loss, metrics = model.transformer_loss(frames, actions, rewards)
        opt.zero_grad()
        loss.backward()
        opt.step()
        first = first or {k: float(v) for k, v in metrics.items()}
    assert float(metrics["token_loss"]) < 0.3 * first["token_loss"]
    assert float(metrics["token_accuracy"]) > 0.9
    assert float(metrics["reward_loss"]) < 0.3 * first["reward_loss"]
    assert model.action_proj.weight.grad is not None  # actions reach the slot embeddings
    # greedy prediction now reproduces the tokens of the true future
    model.temperature = 0.0
    predicted, _ = model.predict(frames[:, :2], actions[:, 1:4])
    with torch.no_grad():
        _, context, _, _ = model.tokenizer.encode_context(frames[:, :2])
        target = model.tokenizer.decode_dynamics(model.tokenizer.encode_dynamics(frames[:, 2:], context)[0], context)
    assert (predicted.float() - target.float()).abs().mean() < 5.0


def test_action_free_model_predicts_a_horizon_and_refuses_rollouts() -> None:
    model = IVideoGPT("tiny", "tiny")
    frames, rewards = model.predict(clips(1, 2), horizon=2)
    assert frames.shape == (1, 2, 3, 16, 16) and rewards.shape == (1, 2)
    with pytest.raises(ValueError, match="horizon"):
        model.predict(clips(1, 2))
    with pytest.raises(ValueError, match="action-free"):
        model.predict(clips(1, 2), torch.zeros(1, 2, 1))
    with pytest.raises(ValueError, match="action-conditioned"):
        model.rollout(clips(1, 2), lambda f: torch.zeros(1, 1), 2)
    with pytest.raises(ValueError, match="exactly context_frames=2"):
        model.predict(clips(1, 3), horizon=1)
    with pytest.raises(ValueError, match="action-conditioned"):
        IVideoGPT("tiny", "tiny", action_dim=2).predict(clips(1, 2), torch.zeros(1, 2, 3))


def test_rollout_lets_the_policy_act_on_imagined_frames() -> None:
    model = IVideoGPT("tiny", "tiny", action_dim=2)
    seen = []

    def policy(frames: torch.Tensor) -> torch.Tensor:
        seen.append(frames.shape[1])
        return torch.ones(frames.shape[0], 2)

    frames, actions, rewards = model.rollout(clips(2, 2), policy, horizon=3)
    assert frames.shape == (2, 3, 3, 16, 16) and actions.shape == (2, 3, 2) and rewards.shape == (2, 3)
    assert seen == [2, 3, 4]  # the context, then each imagined frame in turn


def test_save_and_load_pretrained_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = IVideoGPT("tiny", "tiny", action_dim=2, top_k=5)
    torch.nn.init.normal_(model.action_proj.weight)
    model.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in (tmp_path / "ckpt").iterdir()) == ["tokenizer", "transformer"]
    loaded = IVideoGPT.from_pretrained(tmp_path / "ckpt")
    assert loaded.top_k == 5 and loaded.action_dim == 2
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    args = (clips(1, 2), torch.rand(1, 2, 2))
    out_a = model.predict(*args, generator=torch.Generator().manual_seed(3))
    out_b = loaded.predict(*args, generator=torch.Generator().manual_seed(3))
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[1], out_b[1])
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        IVideoGPT.from_pretrained(tmp_path)


def test_planners_drive_ivideogpt() -> None:
    model = IVideoGPT("tiny", "tiny", action_dim=2)
    box = spaces.Box(-1, 1, (2,), np.float32)
    planner = CEMPlanner(model, box, horizon=2, population=4, iterations=1, elites=2, context=2,
                         goal=clips(1, 1)[0, 0], seed=0)
    action, state = planner.predict(clips(1, 1)[0, 0].numpy())
    action, _ = planner.predict(clips(1, 1)[0, 0].numpy(), state=state, episode_start=np.array([False]))
    assert box.contains(action)


def test_video_metrics_against_closed_forms() -> None:
    from sb3_worldmodels.ivideogpt.metrics import perceptual_distance, psnr, ssim

    a = torch.full((2, 4, 3, 16, 16), 100, dtype=torch.uint8)
    b = torch.full((2, 4, 3, 16, 16), 150, dtype=torch.uint8)
    x, y = 100 / 255, 150 / 255
    assert psnr(a, b).shape == (2, 4)
    torch.testing.assert_close(psnr(a, b), torch.full((2, 4), float(10 * np.log10(1 / (x - y) ** 2))))
    # constant frames: the variance terms cancel and SSIM is the luminance term (2xy + c1) / (x^2 + y^2 + c1)
    expected = (2 * x * y + 1e-4) / (x * x + y * y + 1e-4)
    torch.testing.assert_close(ssim(a, b), torch.full((2, 4), expected), atol=1e-3, rtol=0)  # fp32 variances ~1e-7
    noisy = torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)
    torch.testing.assert_close(ssim(noisy, noisy), torch.ones(3))
    assert float(ssim(noisy, torch.randint(0, 256, (3, 3, 16, 16), dtype=torch.uint8)).max()) < 0.2
    dist = perceptual_distance(a, b, lambda p, t: (p - t).abs().flatten(1).mean(1))
    torch.testing.assert_close(dist, torch.full((2, 4), 2 * (y - x)))
    with pytest.raises(ValueError, match="uint8"):
        psnr(a.float(), b.float())
    with pytest.raises(ValueError, match="window"):
        ssim(a[..., :8, :8], b[..., :8, :8])


def test_pretraining_phases_checkpoint_and_resume(tmp_path: Path) -> None:
    from sb3_worldmodels.data import record_episodes
    from sb3_worldmodels.ivideogpt.pretrain import TRAINER_FILE, cosine_lr, pretrain_ivideogpt

    data = tmp_path / "npz"
    record_episodes("sb3wm/dmc-cartpole-swingup-v0", 1, out_dir=data, max_episode_steps=12, progress_bar=False)
    common = dict(tokenizer=make_tokenizer_config("tiny", image_size=64, patch=4),
                  transformer=make_transformer_config("tiny", max_tokens=1024), batch_size=2, sequence_length=4,
                  log_interval=1, progress_bar=False, device="cpu")
    out = tmp_path / "ckpt"
    model = pretrain_ivideogpt([f"sim={data}"], out, steps=4, tokenizer_steps=2, **common)
    assert torch.load(out / TRAINER_FILE, weights_only=False)["step"] == 4
    loaded = IVideoGPT.from_pretrained(out)
    for key, value in model.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    rows = (out / "tb" / "progress.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "pretrain_tokenizer/tokenizer_loss" in header and "pretrain_transformer/token_loss" in header
    resumed = pretrain_ivideogpt([f"sim={data}"], out, steps=5, tokenizer_steps=2, **common)
    assert torch.load(out / TRAINER_FILE, weights_only=False)["step"] == 5
    assert not torch.equal(resumed.transformer.head.weight, model.transformer.head.weight)  # trained on
    assert torch.equal(resumed.tokenizer.context_quant.codebook.weight, model.tokenizer.context_quant.codebook.weight)
    assert cosine_lr(0, 100, 1.0, 10) == pytest.approx(0.1) and cosine_lr(99, 100, 1.0, 10) < 0.01
    with pytest.raises(ValueError, match="tokenizer_steps"):
        pretrain_ivideogpt([f"sim={data}"], out, steps=2, tokenizer_steps=3, **common)


def test_bf16_autocast_trains_and_predicts(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = IVideoGPT("tiny", "tiny", action_dim=2, precision="bf16")
    frames, actions = clips(2, 4), torch.rand(2, 3, 2) * 2 - 1
    for loss, _ in (model.tokenizer_loss(frames), model.transformer_loss(frames, actions, torch.ones(2, 3))):
        assert loss.dtype == torch.float32 and torch.isfinite(loss)
        loss.backward()
    assert all(p.dtype == torch.float32 for p in model.parameters())  # weights stay fp32
    predicted, rewards = model.predict(frames[:, :2], actions[:, 1:])
    assert predicted.dtype == torch.uint8 and rewards.dtype == torch.float32
    rolled, _, _ = model.rollout(frames[:, :2], lambda f: torch.zeros(2, 2), 2)
    assert rolled.shape == (2, 2, 3, 16, 16)
    model.save_pretrained(tmp_path / "bf16")
    assert IVideoGPT.from_pretrained(tmp_path / "bf16").precision == "bf16"
    with pytest.raises(ValueError, match="precision"):
        IVideoGPT("tiny", "tiny", precision="fp16")
