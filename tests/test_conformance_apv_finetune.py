"""APV and ContextWM fine-tuning against the official code (thuml/ContextWM ``wmlib``, ``APV_Finetune``) on the
same weights.

The fixtures (``tests/conformance/fixtures/apv_finetune_*``, made by ``tests/conformance/make_apv_finetune.py``) hold
the official agent right after its own dummy pass (the bonus queue holds one point, the slow critic made its first
copy), a fixed batch and what the official code computed from them. Our policy is built from the run's official
configuration (:func:`finetune_config_from_official`) and loaded through :func:`finetune_state_from_official`;
both sides sample from the same fixed noise.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sb3_worldmodels.common import distributions
from sb3_worldmodels.contextwm.official import finetune_config_from_official, finetune_state_from_official
from sb3_worldmodels.contextwm.policies import APVPolicy
from tests.conformance.common import assert_close, fixed_uniform, load_fixture
from tests.test_conformance_dreamerv2 import batch, feat_official_layout, official

CASES = ["apv_finetune_dmc", "apv_finetune_metaworld", "contextwm_finetune_dmcr"]


@pytest.fixture(autouse=True)
def fixed_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our samplers read the noise the official ones read in the generator."""
    monkeypatch.setattr(distributions, "uniform_like",
                        lambda x: torch.from_numpy(fixed_uniform(tuple(x.shape))).to(x.device, x.dtype))


def mapped(policy: APVPolicy, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The official tensors under ``prefix`` in our names (the bonus queue's fill from the fixture's counters)."""
    sd = official(arrays, prefix)
    counters = "counters_after/" if prefix == "after/" else "counters/"
    sd["bonus_queue_fill"] = torch.as_tensor(arrays.get(f"{counters}bonus_queue_fill", 0))
    return finetune_state_from_official(sd, policy)


def build(name: str) -> tuple[APVPolicy, dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Our fine-tuning policy with the official weights and counters, the arrays, metadata and algorithm settings."""
    arrays, meta = load_fixture(name)
    policy_kwargs, algorithm = finetune_config_from_official(meta["config"])
    obs_space = spaces.Box(0, 255, arrays["batch/image"].shape[2:], np.uint8)
    action_space = spaces.Box(-1, 1, arrays["batch/action"].shape[-1:], np.float32)
    policy_kwargs["attention_dropout"] = 0.0  # off on both sides (the fixture's)
    policy = APVPolicy(obs_space, action_space, lambda _: policy_kwargs["model_lr"], **policy_kwargs)
    policy.load_state_dict(mapped(policy, arrays, "weights/"))
    policy.behavior.updates.fill_(int(arrays["counters/slow_critic_updates"]))
    return policy, arrays, meta, algorithm


@contextmanager
def float64(policy: APVPolicy, b: SimpleNamespace) -> Iterator[SimpleNamespace]:
    """``policy`` and the batch in float64 (the fixture's gradients, imagination and updated parameters are the
    official fp64 ones: the fp32 gradients of the BatchNorm ResNet are ill-conditioned, see ``record_agent``)."""
    policy.double()
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # our preprocessing and initial states follow the default dtype
    try:
        yield SimpleNamespace(**{k: v if k == "observations" else v.double() for k, v in vars(b).items()})
    finally:
        torch.set_default_dtype(previous)


def compare_grads(policy: APVPolicy, arrays: dict[str, np.ndarray], prefix: str, module: str) -> int:
    """Every gradient the official code computed under ``prefix`` against ours, for our parameters in ``module``."""
    theirs = mapped(policy, arrays, prefix)
    compared = 0
    for name, param in policy.named_parameters():
        if name.startswith(module) and param.grad is not None:
            assert_close(param.grad, theirs[name], f"gradient of {name}")
            compared += 1
    return compared


@pytest.mark.parametrize("name", CASES)
def test_stacked_world_model_losses_and_gradients_match_the_official_code(name: str) -> None:
    policy, arrays, _, algorithm = build(name)
    b = batch(arrays)
    wm = copy.deepcopy(policy.world_model)  # the forward pass moves the bonus queue and the BatchNorm statistics
    wm.train()
    total, post, metrics = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                                   algorithm["gamma"])
    assert_close(metrics["obs_loss"], arrays["wm/loss_image"], "image loss")
    assert_close(metrics["reward_loss"], arrays["wm/loss_reward"], "reward loss (with the intrinsic bonus)")
    assert_close(metrics["kl_loss"], arrays["wm/loss_kl"], "KL loss")
    assert_close(total, arrays["wm/model_loss"], "total world-model loss")
    assert_close(post["deter"], arrays["wm/post_deter"], "posterior deter")
    wm = policy.world_model
    wm.train()
    with float64(policy, b) as b64:
        total, _, _ = wm.loss(b64.observations, b64.prev_actions, b64.rewards, b64.is_first, b64.is_terminal,
                              algorithm["gamma"])
        total.backward()
        assert compare_grads(policy, arrays, "wm_grad/", "world_model.") >= 20


@pytest.mark.parametrize("name", CASES)
def test_actor_critic_losses_and_gradients_match_the_official_code(name: str) -> None:
    policy, arrays, _, algorithm = build(name)
    wm = policy.world_model
    with float64(policy, batch(arrays)) as b:
        with torch.no_grad():
            wm.train()
            _, post, _ = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                                 algorithm["gamma"])
        wm.eval()
        horizon = arrays["ac/feat"].shape[0] - 1
        feat, _, _ = policy.behavior.imagine(wm, post, horizon)
        assert_close(feat_official_layout(feat, policy), arrays["ac/feat"], "imagined features")
        actor_loss, critic_loss, _ = policy.behavior.losses(wm, post, b.is_terminal, horizon, algorithm["gamma"])
        assert_close(actor_loss, arrays["ac/actor_loss"], "actor loss")
        assert_close(critic_loss, arrays["ac/critic_loss"], "critic loss")
        actor_loss.backward(inputs=list(policy.behavior.actor.parameters()), retain_graph=True)
        critic_loss.backward(inputs=list(policy.behavior.critic.parameters()))
        assert compare_grads(policy, arrays, "ac_grad/", "behavior.actor.") >= 5
        assert compare_grads(policy, arrays, "ac_grad/", "behavior.critic.") >= 5


@pytest.mark.parametrize("name", CASES)
def test_one_training_step_gives_the_official_parameters(name: str) -> None:
    """World model (two optimizer groups, each clipped on its own; Meta-World: the encoder and action-free RSSM at
    learning rate 0 during the warm-up), actor, critic, slow critic, and the bonus's buffers."""
    policy, arrays, _, algorithm = build(name)
    horizon = arrays["ac/feat"].shape[0] - 1
    with float64(policy, batch(arrays)) as b:
        policy.train_step(b, horizon, algorithm["gamma"])
    theirs = mapped(policy, arrays, "after/")
    for key, value in policy.state_dict().items():
        if key.startswith(("world_model.", "behavior.actor.", "behavior.critic.", "behavior.slow_critic.")):
            if key.endswith("bonus.queue"):  # compare the filled slots: the official queue is newest first
                count = int(policy.world_model.bonus.count)
                value, theirs[key] = value[:count].sort(0).values, theirs[key][:count].sort(0).values
            assert_close(value, theirs[key], f"{key} after one step")
