"""Dreamer configuration: the spec defaults of DreamerV2 and DreamerV3 and the ``model_size`` presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from sb3_worldmodels.common.precision import check_precision

__all__ = ["DreamerConfig", "MODEL_SIZES", "make_config"]

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
    model_lr=3e-4,
    actor_lr=8e-5,
    critic_lr=8e-5,
    model_eps=1e-5,
    ac_eps=1e-5,
    model_grad_clip=100.0,
    ac_grad_clip=100.0,
    weight_decay=1e-6,
)


def make_config(
    version: str = "v3", model_size: str | None = None, config_class: type[DreamerConfig] = DreamerConfig,
    **overrides: Any,
) -> DreamerConfig:
    """Spec defaults for ``version`` ("v3" or "v2") at ``model_size``, then ``overrides``.

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
    valid = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise TypeError(
            f"Unknown Dreamer policy_kwargs {unknown}. Valid keys: model_size and {sorted(valid - {'extra'})}."
        )
    cfg.update(overrides)
    check_precision(cfg.get("precision", "fp32"))
    return config_class(**cfg)
