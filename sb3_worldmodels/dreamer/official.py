"""The official DreamerV2 / Harmony-DreamerV2 (thuml/HarmonyDream ``wmlib-torch``) in our classes: its configuration
as our settings and its weights (``variables.pt``, the agent's ``state_dict``) as our policy's.

The layer names and layouts are mapped by :mod:`sb3_worldmodels.common.wmlib`. In short (``wm.`` is the official
world model, ``_task_behavior.`` its actor-critic; ours live under ``world_model.`` and ``behavior.``):

=============================================  ===============================================
official                                       ours
=============================================  ===============================================
``wm.encoder.conv{i}``                         ``world_model.encoders.<image key>.net.{2i}``
``wm.rssm.img_in``                             ``world_model.rssm.img_in.0``
``wm.rssm._cell._layer``, ``._norm``           ``world_model.rssm.gru.linear``, ``.norm``
``wm.rssm.img_out_0``, ``img_dist_0``          ``world_model.rssm.img_out.0.0``, ``img_out.1``
``wm.rssm.obs_out``, ``obs_dist``              ``world_model.rssm.obs_out.0.0``, ``obs_out.1``
``wm.heads.decoder.convin``, ``conv{i}``       ``world_model.decoders.<image key>.linear``, ``net.{2i}``
``wm.heads.reward``, ``wm.heads.discount``     ``world_model.reward``, ``world_model.cont``
``wm.harmony_s1`` / ``s2`` / ``s3``            ``world_model.harmonizer.log_sigma`` (reward / obs / dyn)
``_task_behavior.actor.{dense*, out.out}``     ``behavior.actor`` (its output layer: ``out.out`` rows,
``_task_behavior.actor.out.std``               then ``out.std`` rows)
``_task_behavior.critic``                      ``behavior.critic``
``_task_behavior._target_critic``              ``behavior.slow_critic``
=============================================  ===============================================

Layers that read model features get their input columns swapped (``[stoch, deter]`` there, ``[deter, stoch]`` here).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

from sb3_worldmodels.common.wmlib import (
    StateFiller,
    feature_columns,
    linear_from_wmlib,
    mlp_from_wmlib,
    rssm_from_wmlib,
    take,
)

__all__ = ["WMLIB_REQUIRED", "check_settings", "config_from_wmlib", "dreamerv2_state_from_wmlib", "heads_from_wmlib",
           "v2_settings_from_wmlib"]

#: official settings every ``wmlib`` agent of the papers has (DreamerV2, APV, ContextWM), with our reason
WMLIB_REQUIRED: dict[str, tuple[Any, str]] = {
    "rssm.ensemble": (1, "one prior head"),
    "rssm.norm": ("none", "DreamerV2 has no norm outside the GRU"),
    "rssm.std_act": ("sigmoid2", "categorical latents only"),
    "kl.forward": (False, "KL balancing as in the paper"),
    "kl.free_avg": (True, "free nats on the mean KL"),
    "reward_head.dist": ("mse", "DreamerV2's unit-variance Gaussian reward head"),
    "critic.dist": ("mse", "DreamerV2's unit-variance Gaussian critic"),
    "expl_behavior": ("greedy", "no exploration behaviour"),
    "clip_rewards": ("identity", "no reward transformation here: wrap the env, e.g. "
                                 "gymnasium.wrappers.TransformReward(env, np.tanh) for 'tanh'"),
}
#: ... and those of the DreamerV2 agent (``wmlib-torch``, which also holds DreamerV3 settings)
_REQUIRED: dict[str, tuple[Any, str]] = {
    **WMLIB_REQUIRED,
    "dynamics_type": ("rssm", "only the RSSM is implemented"),
    "encoder_type": ("plaincnn", "DreamerV2's convolutional encoder (APV / ContextWM: use their own classes)"),
    "decoder_type": ("plaincnn", "DreamerV2's transposed-convolution decoder"),
    "reward_perc": (False, "DreamerV2 does not normalise returns"),
    "slow_regularizer": (False, "DreamerV3's regulariser is not part of DreamerV2"),
    "fast_lambda_return": (False, "DreamerV2 bootstraps from the slow critic"),
}


def check_settings(flat: Mapping[str, Any], required: Mapping[str, tuple[Any, str]]) -> None:
    """Raise a ``ValueError`` naming every official setting of ``flat`` that differs from ``required``."""
    bad = [f"{k}={flat.get(k)!r} (needs {v!r}: {why})" for k, (v, why) in required.items()
           if k in flat and flat[k] != v]
    if bad:
        raise ValueError(f"Unsupported official settings: {'; '.join(bad)}.")


def v2_settings_from_wmlib(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The DreamerV2 settings every ``wmlib`` agent shares (RSSM, heads, KL, optimizers, actor-critic, replay):
    ``(policy_kwargs, algorithm_kwargs)``; see :func:`config_from_wmlib`."""
    for head in ("reward_head", "critic", "actor") + (("discount_head",) if flat.get("pred_discount") else ()):
        if flat.get(f"{head}.layers") != flat["actor.layers"] or flat.get(f"{head}.units") != flat["actor.units"]:
            raise ValueError(f"Our heads share one width and depth: {head}.layers/units "
                             f"({flat.get(f'{head}.layers')}, {flat.get(f'{head}.units')}) differ from the actor's.")
    policy = dict(
        version="v2",
        deter=flat["rssm.deter"], hidden=flat["rssm.hidden"], stoch=flat["rssm.stoch"], classes=flat["rssm.discrete"],
        cnn_depth=flat["encoder.cnn_depth"], mlp_layers=flat["reward_head.layers"], units=flat["reward_head.units"],
        actor_layers=flat["actor.layers"],
        kl_free=float(flat["kl.free"]), kl_balance=float(flat["kl.balance"]), kl_scale=float(flat["loss_scales.kl"]),
        cont_head=bool(flat["pred_discount"]), cont_scale=float(flat.get("loss_scales.discount", 1.0)),
        model_lr=float(flat["model_opt.lr"]), model_eps=float(flat["model_opt.eps"]),
        model_grad_clip=float(flat["model_opt.clip"]), weight_decay=float(flat["model_opt.wd"]),
        actor_lr=float(flat["actor_opt.lr"]), critic_lr=float(flat["critic_opt.lr"]),
        ac_eps=float(flat["actor_opt.eps"]), ac_grad_clip=float(flat["actor_opt.clip"]),
        actor_entropy=float(flat["actor_ent"]), actor_min_std=float(flat["actor.min_std"]),
        lam=float(flat["discount_lambda"]),
        slow_critic_every=int(flat["slow_target_update"]), slow_critic_fraction=float(flat["slow_target_fraction"]),
    )
    batch, length = int(flat["dataset.batch"]), int(flat["dataset.length"])
    algorithm = dict(
        batch_size=batch, sequence_length=length, gamma=float(flat["discount"]),
        imagination_horizon=int(flat["imag_horizon"]), learning_starts=int(flat["prefill"]),
        train_ratio=batch * length * int(flat["train_steps"]) / int(flat["train_every"]),
        pretrain_updates=int(flat["pretrain"]),
        replay_buffer_kwargs=dict(prioritize_ends=bool(flat["replay.prioritize_ends"])),
    )
    return policy, algorithm


def config_from_wmlib(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our settings for the official ``config.yaml`` of a DreamerV2 / Harmony-DreamerV2 run (its flat ``Config``).

    :return: ``(policy_kwargs, algorithm_kwargs)``: :class:`~sb3_worldmodels.dreamer.config.DreamerConfig` fields
        and :class:`~sb3_worldmodels.dreamer.dreamer.DreamerV2` arguments (batch, length, gamma, horizon, train
        ratio, prefill, updates after the prefill, end-prioritised replay).
    :raises ValueError: for a setting the DreamerV2 family of the papers does not use, naming it.
    """
    check_settings(flat, _REQUIRED)
    policy, algorithm = v2_settings_from_wmlib(flat)
    policy["harmony"] = bool(flat.get("harmony", False))
    return policy, algorithm


def dreamerv2_state_from_wmlib(sd: Mapping[str, Tensor], policy: Any, image_key: str = "image") -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.dreamer.policies.DreamerPolicy` state dict from an official DreamerV2 agent's.

    :param sd: the official agent's ``state_dict()`` (``torch.load(".../variables.pt")``).
    :param policy: our policy, built with the run's settings (:func:`config_from_wmlib`) for a single image
        observation; its own buffers (return normaliser, update counter) are kept.
    :param image_key: the official observation key of the image.
    :return: a full state dict for ``policy.load_state_dict``.
    """
    wm, behavior = policy.world_model, policy.behavior
    if len(wm.encoders) != 1 or wm.vectors:
        raise ValueError("The official DreamerV2 mapping covers a single image observation (CnnPolicy).")
    key = next(iter(wm.encoders))
    rssm = wm.rssm
    cols = feature_columns(rssm.deter_size, rssm.stoch_flat)
    filler = StateFiller(policy)
    put, state = filler.put, filler.state
    put("world_model.rssm.", rssm_from_wmlib(sd, "wm.rssm.", rssm, "world_model.rssm"))
    encoder = wm.encoders[key].net
    for n, i in enumerate(i for i, m in enumerate(encoder) if isinstance(m, torch.nn.Conv2d)):
        put(f"world_model.encoders.{key}.net.{i}.",
            linear_from_wmlib(sd, f"wm.encoder.conv{n}", encoder[i], f"encoder conv {n}"))
    decoder = wm.decoders[key]
    put(f"world_model.decoders.{key}.linear.",
        linear_from_wmlib(sd, "wm.heads.decoder.convin", decoder.linear, "decoder linear", cols))
    for n, i in enumerate(i for i, m in enumerate(decoder.net) if isinstance(m, torch.nn.ConvTranspose2d)):
        put(f"world_model.decoders.{key}.net.{i}.",
            linear_from_wmlib(sd, f"wm.heads.decoder.conv{n}", decoder.net[i], f"decoder conv {n}"))
    if wm.harmonizer is not None:
        names = {"obs": "wm.harmony_s2", "reward": "wm.harmony_s1", "dyn": "wm.harmony_s3"}
        state["world_model.harmonizer.log_sigma"] = torch.stack(
            [take(sd, names[n], (), "harmonizer") for n in wm.harmonizer.names])
    put("", heads_from_wmlib(sd, policy))
    return state


def heads_from_wmlib(sd: Mapping[str, Tensor], policy: Any) -> dict[str, Tensor]:
    """Our reward and continue heads, actor, critic and slow critic (policy state-dict keys) from an official agent's
    ``wm.heads.reward`` / ``discount`` and ``_task_behavior`` (every ``wmlib`` agent has them)."""
    wm, behavior = policy.world_model, policy.behavior
    cols = feature_columns(wm.rssm.deter_size, wm.rssm.stoch_flat)
    state: dict[str, Tensor] = {}

    def put(prefix: str, part: Mapping[str, Tensor]) -> None:
        state.update({f"{prefix}{k}": v for k, v in part.items()})

    put("world_model.reward.", mlp_from_wmlib(sd, "wm.heads.reward.", wm.reward, "reward head", cols))
    if wm.cont is not None:
        put("world_model.cont.", mlp_from_wmlib(sd, "wm.heads.discount.", wm.cont, "continue head", cols))
    elif "wm.heads.discount.out.out.weight" in sd:
        raise ValueError("The official agent has a discount head (pred_discount: True): build ours with "
                         "cont_head=True.")
    put("behavior.actor.", mlp_from_wmlib(sd, "_task_behavior.actor.", behavior.actor, "actor", cols,
                                          ("out.out", "out.std") if not behavior.discrete else ("out.out",)))
    put("behavior.critic.", mlp_from_wmlib(sd, "_task_behavior.critic.", behavior.critic, "critic", cols))
    put("behavior.slow_critic.", mlp_from_wmlib(sd, "_task_behavior._target_critic.", behavior.slow_critic,
                                                "slow critic", cols))
    return state
