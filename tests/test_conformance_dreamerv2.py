"""DreamerV2 and Harmony-DreamerV2 against the official code (thuml/HarmonyDream ``wmlib-torch``) on the same weights.

The fixtures (``tests/conformance/fixtures/dreamerv2_*``, ``harmony_v2_*``) hold the official agent's weights, a
fixed batch and what the official code computed from them; ``tests/conformance/README.md`` says how they are made.
Our policy is built from the run's official configuration (:func:`config_from_wmlib`), loaded through the
documented mapping (:func:`dreamerv2_state_from_wmlib`), and both sides sample from the same fixed noise.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sb3_worldmodels.common import distributions
from sb3_worldmodels.dreamer.official import config_from_wmlib, dreamerv2_state_from_wmlib
from sb3_worldmodels.dreamer.policies import DreamerPolicy
from tests.conformance.common import assert_close, fixed_uniform, load_fixture

CASES = ["dreamerv2_dmc", "dreamerv2_cont", "harmony_v2_dmc", "dreamerv2_discrete"]


@pytest.fixture(autouse=True)
def fixed_noise(monkeypatch: pytest.MonkeyPatch) -> None:
    """Our samplers read the noise the official ones read in the generator."""
    monkeypatch.setattr(distributions, "uniform_like",
                        lambda x: torch.from_numpy(fixed_uniform(tuple(x.shape))).to(x.device, x.dtype))


def build(name: str) -> tuple[DreamerPolicy, dict[str, np.ndarray], dict[str, Any], dict[str, Any]]:
    """Our policy with the official weights, the fixture's arrays, its metadata and the algorithm settings."""
    arrays, meta = load_fixture(name)
    policy_kwargs, algorithm = config_from_wmlib(meta["config"])
    image = arrays["batch/image"]
    obs_space = spaces.Box(0, 255, image.shape[2:], np.uint8)
    n = arrays["batch/action"].shape[-1]
    action_space = spaces.Discrete(n) if meta.get("discrete") else spaces.Box(-1, 1, (n,), np.float32)
    policy = DreamerPolicy(obs_space, action_space, lambda _: policy_kwargs["model_lr"], **policy_kwargs)
    policy.load_state_dict(dreamerv2_state_from_wmlib(official(arrays, "weights/"), policy))
    return policy, arrays, meta, algorithm


def official(arrays: dict[str, np.ndarray], prefix: str, base: str = "weights/") -> dict[str, torch.Tensor]:
    """The official state dict stored under ``prefix`` (entries it lacks, e.g. parameters without a gradient, are
    filled from ``base`` so that the mapping sees a whole agent; compare only what ``prefix`` holds)."""
    out = {k[len(base):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(base)}
    out.update({k[len(prefix):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix)})
    return out


def mapped(policy: DreamerPolicy, arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """The official tensors under ``prefix`` in our parameter names (through the same mapping as the weights)."""
    return dreamerv2_state_from_wmlib(official(arrays, prefix), policy)


def batch(arrays: dict[str, np.ndarray], discrete: bool = False) -> SimpleNamespace:
    """The fixture's batch as our replay buffer samples it (a discrete action as its index, SB3's convention)."""
    t = {k[len("batch/"):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("batch/")}
    if discrete:
        t["action"] = t["action"].argmax(-1, keepdim=True).float()
    return SimpleNamespace(observations=t["image"], prev_actions=t["action"], rewards=t["reward"],
                           is_first=t["is_first"], is_terminal=t["is_terminal"], is_last=t["is_last"])


def feat_official_layout(feat: torch.Tensor, policy: DreamerPolicy) -> torch.Tensor:
    """Our (N, H+1, [deter, stoch]) features as the official (H+1, N, [stoch, deter])."""
    deter = policy.world_model.rssm.deter_size
    return torch.cat([feat[..., deter:], feat[..., :deter]], -1).transpose(0, 1)


def compare_grads(policy: DreamerPolicy, arrays: dict[str, np.ndarray], prefix: str, module: str) -> None:
    """Every gradient the official code computed under ``prefix`` against ours, for our parameters in ``module``."""
    theirs = mapped(policy, arrays, prefix)
    names = {k[len(prefix):] for k in arrays if k.startswith(prefix)}
    assert names, prefix
    compared = 0
    for name, param in policy.named_parameters():
        if not name.startswith(module) or param.grad is None:
            continue
        assert_close(param.grad, theirs[name], f"gradient of {name}")
        compared += 1
    assert compared >= 5, f"only {compared} gradients compared under {module}"


@pytest.mark.parametrize("name", CASES)
def test_world_model_losses_and_gradients_match_the_official_code(name: str) -> None:
    policy, arrays, meta, _ = build(name)
    b = batch(arrays, bool(meta.get("discrete")))
    wm = policy.world_model
    wm.train()
    total, post, metrics = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                                   meta["config"]["discount"])
    total.backward()
    assert_close(metrics["obs_loss"], arrays["wm/loss_image"], "image loss")
    assert_close(metrics["reward_loss"], arrays["wm/loss_reward"], "reward loss")
    assert_close(metrics["kl_loss"], arrays["wm/loss_kl"], "KL loss")
    if "wm/loss_discount" in arrays:
        assert_close(metrics["cont_loss"], arrays["wm/loss_discount"], "discount loss")
    assert_close(total, arrays["wm/model_loss"], "total world-model loss")
    assert_close(post["deter"], arrays["wm/post_deter"], "posterior deter")
    assert_close(post["logits"].log_softmax(-1), torch.from_numpy(arrays["wm/post_logit"]).log_softmax(-1),
                 "posterior log-probabilities")
    compare_grads(policy, arrays, "wm_grad/", "world_model.")


@pytest.mark.parametrize("name", CASES)
def test_actor_critic_losses_and_gradients_match_the_official_code(name: str) -> None:
    policy, arrays, meta, algorithm = build(name)
    b = batch(arrays, bool(meta.get("discrete")))
    wm = policy.world_model
    with torch.no_grad():
        _, post, _ = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                             algorithm["gamma"])
    horizon = arrays["ac/feat"].shape[0] - 1
    feat, actions, _ = policy.behavior.imagine(wm, post, horizon)
    assert_close(feat_official_layout(feat, policy), arrays["ac/feat"], "imagined features")
    # official action t led into state t; ours is taken in state t
    assert_close(actions.transpose(0, 1)[:-1], arrays["ac/action"][1:], "imagined actions")
    actor_loss, critic_loss, _ = policy.behavior.losses(wm, post, b.is_terminal, horizon, algorithm["gamma"])
    assert_close(actor_loss, arrays["ac/actor_loss"], "actor loss")
    assert_close(critic_loss, arrays["ac/critic_loss"], "critic loss")
    actor_loss.backward(inputs=list(policy.behavior.actor.parameters()), retain_graph=True)
    critic_loss.backward(inputs=list(policy.behavior.critic.parameters()))
    compare_grads(policy, arrays, "ac_grad/", "behavior.actor.")
    compare_grads(policy, arrays, "ac_grad/", "behavior.critic.")


@pytest.mark.parametrize("name", CASES)
def test_one_training_step_gives_the_official_parameters(name: str) -> None:
    policy, arrays, meta, algorithm = build(name)
    b = batch(arrays, bool(meta.get("discrete")))
    horizon = arrays["ac/feat"].shape[0] - 1
    policy.train_step(b, horizon, algorithm["gamma"])
    theirs = mapped(policy, arrays, "after/")
    after = {k[len("after/"):] for k in arrays if k.startswith("after/")}
    assert after
    for key, value in policy.state_dict().items():
        if key.startswith(("world_model.", "behavior.actor.", "behavior.critic.", "behavior.slow_critic.")):
            assert_close(value, theirs[key], f"{key} after one step")


def test_critic_target_entropy_is_the_official_in_place_bonus(monkeypatch: pytest.MonkeyPatch) -> None:
    """``critic_target_entropy`` (DreamerV2's default) adds ``actor_entropy * H(pi(s_{t-1}))`` to the critic's target of
    each imagined state t >= 1, what the official ``objective += ent_scale * ent`` on a view of the targets does;
    without it the critic regresses the plain lambda-returns."""
    policy, arrays, _, algorithm = build("dreamerv2_dmc")
    b = batch(arrays)
    wm, ac = policy.world_model, policy.behavior
    with torch.no_grad():
        _, post, _ = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                             algorithm["gamma"])
    horizon = arrays["ac/feat"].shape[0] - 1
    targets = {}
    value_loss = type(ac).value_loss

    def capture(self: Any, dist: Any, target: torch.Tensor, slow_target: Any = None) -> torch.Tensor:
        targets[self.cfg.critic_target_entropy] = target.detach()
        return value_loss(self, dist, target, slow_target)

    monkeypatch.setattr(type(ac), "value_loss", capture)
    for flag in (True, False):
        ac.cfg.critic_target_entropy = flag
        ac.losses(wm, post, b.is_terminal, horizon, algorithm["gamma"])
    _, _, raw = ac.imagine(wm, post, horizon)
    entropy = ac.dist_from_raw(raw).entropy().detach()
    bonus = targets[True] - targets[False]
    torch.testing.assert_close(bonus[:, 0], torch.zeros_like(bonus[:, 0]))
    torch.testing.assert_close(bonus[:, 1:], ac.cfg.actor_entropy * entropy[:, : horizon - 1], rtol=1e-3, atol=1e-8)
    assert bonus[:, 1:].abs().min() > 0


def test_official_configuration_with_reward_clipping_is_refused_with_the_fix() -> None:
    """We do not transform rewards (every official preset we follow has ``clip_rewards: identity``); an official
    configuration that does (the ``defaults``' ``tanh``) is refused, naming the wrapper that does it."""
    _, meta = load_fixture("dreamerv2_dmc")
    with pytest.raises(ValueError, match="clip_rewards='tanh'.*TransformReward"):
        config_from_wmlib({**meta["config"], "clip_rewards": "tanh"})
