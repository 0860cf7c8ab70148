"""Dreamer configuration: the spec defaults of DreamerV2 and DreamerV3 and the ``model_size`` presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sb3_worldmodels.common.precision import check_precision

__all__ = ["DreamerConfig", "MODEL_SIZES", "PRESETS", "V2_PRESETS", "make_config"]

# name: (deter, units / RSSM hidden, cnn depth, mlp layers, stoch, classes)
MODEL_SIZES: dict[str, tuple[int, int, int, int, int, int]] = {
    "tiny": (64, 64, 8, 1, 8, 8),
    "XS": (256, 256, 24, 1, 32, 32),
    "S": (512, 512, 32, 2, 32, 32),
    "M": (1024, 640, 48, 3, 32, 32),
    "L": (2048, 768, 64, 4, 32, 32),
    "XL": (4096, 1024, 96, 5, 32, 32),
}


@dataclass
class DreamerConfig:
    """Every architectural and loss setting of a Dreamer agent (see ``specs/dreamer.md``).

    Build it with :func:`make_config`; any field can be overridden through ``policy_kwargs``.
    """

    version: str = "v3"
    model_size: str = "S"
    # the official configuration section these settings follow (see ``V2_PRESETS``); chosen from the env family by
    # the algorithm unless given
    preset: str = "default"
    # architecture
    deter: int = 512
    hidden: int = 512
    units: int = 512
    mlp_layers: int = 2
    actor_layers: int = 2
    cnn_depth: int = 32
    stoch: int = 32
    classes: int = 32
    act: str = "silu"
    norm: bool = True
    unimix: float = 0.01
    learned_initial: bool = True
    action_pad: int = 0
    image_offset: float = 0.0
    symlog_inputs: bool = True
    # world-model losses
    reward_head: str = "twohot"
    bins: int = 255
    image_loss_coef: float = 1.0
    kl_free: float = 1.0
    kl_dyn: float = 0.5
    kl_rep: float = 0.1
    kl_balance: float = 0.8
    kl_scale: float = 1.0
    cont_scale: float = 1.0
    # a continue head (terminal predictor); without one every imagined state continues (DreamerV2's DMC and
    # Meta-World presets: ``pred_discount: False``)
    cont_head: bool = True
    # the continue head learns the discount gamma * (1 - terminal) and imagination reads it as the discount
    # (DreamerV2's ``discount`` head) instead of learning 1 - terminal, multiplied by gamma (DreamerV3)
    cont_is_discount: bool = False
    harmony: bool = False
    # behaviour
    critic_head: str = "twohot"
    actor_entropy: float = 3e-4
    lam: float = 0.95
    return_norm: bool = True
    critic_target: str = "critic"  # "critic" (V3: fast critic for returns) or "slow" (V2: target network)
    slow_critic_fraction: float = 0.02
    slow_critic_every: int = 1
    slow_critic_reg: float = 1.0
    # the critic's targets R_t (t >= 1) include the actor's entropy bonus of state t - 1 under dynamics backprop,
    # as in the official DreamerV2 PyTorch code, whose actor loss adds it in place to a view of the targets
    # (thuml/HarmonyDream wmlib/agents/actor_critic.py:118,136; thuml/ContextWM the same file, :86,104)
    critic_target_entropy: bool = False
    # DreamerV3's replay value loss (0.3 in its 2023 reference code, absent from the first paper): the critic also
    # regresses lambda-returns over replayed rewards, bootstrapped from imagined returns (0 turns it off)
    critic_replay_scale: float = 0.0
    actor_grad_cont: str = "backprop"
    # dynamics backprop maximises return - value of each step (V3) or the lambda-return itself (V2's reference)
    backprop_baseline: bool = True
    actor_grad_disc: str = "reinforce"
    # continuous actions: "normal" (V3: tanh mean, std in [min, max], samples clipped straight-through) or
    # "trunc_normal" (V2: tanh mean, std = 2 sigmoid(x / 2) + min, truncated to [-1, 1]; max_std unused)
    action_dist: str = "normal"
    actor_min_std: float = 0.1
    actor_max_std: float = 1.0
    # optimisation
    model_lr: float = 1e-4
    actor_lr: float = 3e-5
    critic_lr: float = 3e-5
    model_eps: float = 1e-8
    ac_eps: float = 1e-5
    model_grad_clip: float = 1000.0
    ac_grad_clip: float = 100.0
    weight_decay: float = 0.0
    precision: str = "fp32"  # "bf16": bf16 autocast of the forward passes (GPU, or CPUs with AMX)
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def presets(cls, version: str) -> dict[str, dict[str, dict[str, Any]]]:
        """The presets of ``version`` (see :data:`V2_PRESETS`); subclasses (APV / ContextWM) have their own."""
        return PRESETS[version]


V2_OVERRIDES: dict[str, Any] = dict(
    version="v2",
    act="elu",
    norm=False,
    unimix=0.0,
    learned_initial=False,
    image_offset=-0.5,
    symlog_inputs=False,
    reward_head="mse",
    image_loss_coef=0.5,
    cont_is_discount=True,
    kl_free=1.0,
    critic_head="mse",
    actor_entropy=1e-4,
    action_dist="trunc_normal",
    backprop_baseline=False,
    return_norm=False,
    critic_target="slow",
    slow_critic_fraction=1.0,
    slow_critic_every=100,
    slow_critic_reg=0.0,
    critic_target_entropy=True,
    model_lr=3e-4,
    actor_lr=8e-5,
    critic_lr=8e-5,
    model_eps=1e-5,
    ac_eps=1e-5,
    model_grad_clip=100.0,
    ac_grad_clip=100.0,
    weight_decay=1e-6,
)


#: batch 16 x 50, one update every 5 env steps (ratio 160), 1000 prefill steps, 100 updates right after them
_V2_DMC_ALGORITHM: dict[str, Any] = dict(batch_size=16, sequence_length=50, train_ratio=160.0, learning_starts=1000,
                                         pretrain_updates=100, prioritize_ends=False)

#: DreamerV2 (and Harmony-DreamerV2) per environment family, from the sections of thuml/HarmonyDream
#: ``wmlib-torch/configs/dreamerv2.yaml``. ``"sizes"`` apply at the spec size (``model_size="default"``) only,
#: ``"config"`` always; ``"algorithm"`` holds the algorithm's defaults (batch, sequence length, train ratio =
#: batch x length / train_every, prefill, updates right after the prefill, replay sampling). Learning rates and the
#: entropy scale of every section are ``V2_OVERRIDES``'s.
V2_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    # dmc_vision / dmc_proprio (:199-220, :222-241): deter = hidden = 200, free nats 1, no discount head
    "dmc": {
        "sizes": dict(deter=200, hidden=200),
        "config": dict(kl_free=1.0, cont_head=False),
        "algorithm": _V2_DMC_ALGORITHM,
    },
    # dmc_remastered (:243-262): the default RSSM size (1024)
    "dmcr": {
        "sizes": {},
        "config": dict(kl_free=1.0, cont_head=False),
        "algorithm": _V2_DMC_ALGORITHM,
    },
    # metaworld (:175-197): free nats 0 (the default), no discount head, batch 50 x 50, prefill 5000, ends prioritised
    "metaworld": {
        "sizes": {},
        "config": dict(kl_free=0.0, cont_head=False),
        "algorithm": dict(batch_size=50, sequence_length=50, train_ratio=500.0, learning_starts=5000,
                          pretrain_updates=100, prioritize_ends=True),
    },
    # any other env: the DMC loss settings with a continue head (no official section exists for it)
    "default": {
        "sizes": {},
        "config": dict(kl_free=1.0, cont_head=True),
        "algorithm": _V2_DMC_ALGORITHM,
    },
}

#: DreamerV3 has one configuration for every domain (its paper's point)
V3_PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "sizes": {},
        "config": {},
        "algorithm": dict(batch_size=16, sequence_length=64, train_ratio=512.0, learning_starts=1024,
                          pretrain_updates=0, prioritize_ends=False),
    },
}

#: presets per Dreamer version
PRESETS: dict[str, dict[str, dict[str, dict[str, Any]]]] = {"v2": V2_PRESETS, "v3": V3_PRESETS}


def make_config(
    version: str = "v3", model_size: str | None = None, config_class: type[DreamerConfig] = DreamerConfig,
    **overrides: Any,
) -> DreamerConfig:
    """Spec defaults for ``version`` ("v3" or "v2") at ``model_size``, then the ``preset`` (an override; see
    :data:`V2_PRESETS`), then the other ``overrides``.

    DreamerV3 sizes follow the paper (XS..XL); DreamerV2's spec network is ``model_size="default"``
    (deter 1024, MLPs 4 x 400, CNN depth 48); ``"tiny"`` is a small preset for tests and CPU smoke runs.
    ``config_class`` is :class:`DreamerConfig` or a dataclass extending it (e.g. ContextWM's), whose extra
    fields keep their defaults unless overridden.
    """
    if version not in ("v2", "v3"):
        raise ValueError(f"Unknown Dreamer version {version!r}; use 'v3' or 'v2'.")
    names = list(MODEL_SIZES) + (["default"] if version == "v2" else [])
    size = model_size or ("default" if version == "v2" else "S")
    if size not in names:
        raise ValueError(f"Unknown model_size {size!r} for Dreamer{version.upper()}; choose one of {names}.")
    cfg: dict[str, Any] = {"version": version, "model_size": size}
    if size == "default":
        cfg.update(deter=1024, hidden=1024, units=400, mlp_layers=4, actor_layers=4, cnn_depth=48)
    else:
        deter, units, depth, layers, stoch, classes = MODEL_SIZES[size]
        cfg.update(deter=deter, hidden=units, units=units, mlp_layers=layers, actor_layers=layers,
                   cnn_depth=depth, stoch=stoch, classes=classes)
    if version == "v2":
        cfg.update(V2_OVERRIDES)
    presets = config_class.presets(version)
    preset = overrides.get("preset") or "default"
    if preset not in presets:
        raise ValueError(f"Unknown preset {preset!r} for {config_class.__name__} {version}; choose one of "
                         f"{sorted(presets)}.")
    cfg["preset"] = preset
    if size == "default":
        cfg.update(presets[preset]["sizes"])
    cfg.update(presets[preset]["config"])
    valid = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(
            f"Unknown Dreamer policy_kwargs {unknown}. Valid keys: model_size and {sorted(valid - {'extra'})}."
        )
    cfg.update(overrides)
    check_precision(cfg.get("precision", "fp32"))
    return config_class(**cfg)
