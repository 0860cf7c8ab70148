"""Weights of the official DrQ-v2 (facebookresearch/drqv2) in our :class:`~sb3_worldmodels.drqv2.DrQv2Policy`.

The official agent keeps four modules, ``encoder`` (``Encoder``), ``actor`` (``Actor``), ``critic`` and
``critic_target`` (``Critic``), in ``drqv2.py``; our policy has the same four under the same names, with the
same layers at the same indices. Only two containers are named differently:

=============================================  =====================================================
official ``state_dict`` key (per module)        our ``DrQv2Policy.state_dict()`` key
=============================================  =====================================================
``encoder.convnet.{0,2,4,6}.{weight,bias}``     ``encoder.convs.<image_key>.{0,2,4,6}.{weight,bias}``
``actor.trunk.0.{weight,bias}`` (Linear)        ``actor.trunk.0.{weight,bias}``
``actor.trunk.1.{weight,bias}`` (LayerNorm)     ``actor.trunk.1.{weight,bias}``
``actor.policy.{0,2,4}.{weight,bias}``          ``actor.policy.{0,2,4}.{weight,bias}``
``critic.trunk.{0,1}.{weight,bias}``            ``critic.trunk.{0,1}.{weight,bias}``
``critic.Q1.{0,2,4}.{weight,bias}``             ``critic.q_nets.0.{0,2,4}.{weight,bias}``
``critic.Q2.{0,2,4}.{weight,bias}``             ``critic.q_nets.1.{0,2,4}.{weight,bias}``
``critic_target.*``                              ``critic_target.*`` (as ``critic``)
=============================================  =====================================================

Why two names differ: our encoder has one conv stack per image entry of a ``Dict`` observation (``convs`` is a
``ModuleDict`` keyed by the entry, ``"obs"`` for a plain image ``Box``), and our critic holds ``n_critics``
Q-networks in a list (``q_nets``); renaming them would also break the checkpoints saved so far.

The official networks need an official-sized policy: 84x84 frames, ``frame_stack=3`` RGB frames (9
channels), ``feature_dim=50``, ``hidden_dim=1024``, ``n_critics=2`` (the defaults of :class:`DrQv2Policy`,
except the frame size of our ``sb3wm/dmc-*`` envs, 64 by default: make them with ``size=84``). A snapshot of
the official code (``snapshot.pt``) pickles the whole agent, so it loads only with the official code
importable::

    payload = torch.load("snapshot.pt", weights_only=False)  # official repository on sys.path
    agent = payload["agent"]
    load_official_drqv2(model.policy, agent.encoder, agent.actor, agent.critic, agent.critic_target)
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch as th
from torch import Tensor, nn

__all__ = ["drqv2_state_from_official", "load_official_drqv2", "official_name"]

_RULES: dict[str, list[tuple[str, str]]] = {
    "encoder": [(r"^convnet\.(\d+)\.(weight|bias)$", r"convs.{image_key}.\1.\2")],
    "actor": [(r"^(trunk|policy)\.(\d+)\.(weight|bias)$", r"\1.\2.\3")],
    "critic": [
        (r"^trunk\.(\d+)\.(weight|bias)$", r"trunk.\1.\2"),
        (r"^Q1\.(\d+)\.(weight|bias)$", r"q_nets.0.\1.\2"),
        (r"^Q2\.(\d+)\.(weight|bias)$", r"q_nets.1.\1.\2"),
    ],
}
_RULES["critic_target"] = _RULES["critic"]


def official_name(module: str, name: str, image_key: str = "obs") -> str:
    """Our ``DrQv2Policy`` key of parameter ``name`` of the official ``module`` (see the table above).

    :param module: ``"encoder"``, ``"actor"``, ``"critic"`` or ``"critic_target"``.
    :param name: the official key within that module, e.g. ``"Q1.0.weight"``.
    :param image_key: the observation entry of our encoder's conv stack (``"obs"`` for an image ``Box``).
    :raises KeyError: for a module or name that the official DrQ-v2 does not have.
    """
    if module not in _RULES:
        raise KeyError(f"The official DrQ-v2 agent has no module {module!r}; it has {sorted(_RULES)}.")
    for pattern, repl in _RULES[module]:
        if re.match(pattern, name):
            return f"{module}." + re.sub(pattern, repl.replace("{image_key}", image_key), name)
    raise KeyError(f"{module}.{name} is not a parameter of the official DrQ-v2 {module}.")


def _state(part: nn.Module | Mapping[str, Any]) -> Mapping[str, Any]:
    return part.state_dict() if isinstance(part, nn.Module) else part


def drqv2_state_from_official(
    encoder: nn.Module | Mapping[str, Any] | None = None,
    actor: nn.Module | Mapping[str, Any] | None = None,
    critic: nn.Module | Mapping[str, Any] | None = None,
    critic_target: nn.Module | Mapping[str, Any] | None = None,
    image_key: str = "obs",
) -> dict[str, Tensor]:
    """The official modules' tensors under our ``DrQv2Policy`` keys (see the module docstring's table).

    Each argument is an official module or its ``state_dict`` (or any mapping keyed like it, e.g. its
    gradients); the parts left ``None`` are left out of the result.

    :param encoder: the official ``Encoder``.
    :param actor: the official ``Actor``.
    :param critic: the official ``Critic``.
    :param critic_target: the official target ``Critic``.
    :param image_key: the observation entry our encoder's conv stack reads (``"obs"`` for an image ``Box``).
    :return: ``{our key: tensor}`` (the tensors themselves, not copies).
    :raises KeyError: for a key the official DrQ-v2 does not have.
    """
    out: dict[str, Tensor] = {}
    parts = dict(encoder=encoder, actor=actor, critic=critic, critic_target=critic_target)
    for module, part in parts.items():
        if part is None:
            continue
        for name, value in _state(part).items():
            out[official_name(module, name, image_key)] = th.as_tensor(value)
    return out


def load_official_drqv2(
    policy: nn.Module,
    encoder: nn.Module | Mapping[str, Any],
    actor: nn.Module | Mapping[str, Any],
    critic: nn.Module | Mapping[str, Any],
    critic_target: nn.Module | Mapping[str, Any] | None = None,
) -> None:
    """Copy the official DrQ-v2 weights into ``policy`` (a :class:`~sb3_worldmodels.drqv2.DrQv2Policy`).

    All parameters are replaced (``critic_target`` defaults to a copy of ``critic``, as the official agent
    starts); the optimizers' states are left as they are.

    :raises ValueError: if the policy's encoder has not exactly one image entry or if a shape does not match
        (then the policy was built for other frames or widths: see the module docstring).
    """
    image_keys = list(getattr(policy, "image_keys", []))
    if len(image_keys) != 1 or getattr(policy.encoder, "vector_keys", []):
        raise ValueError(
            f"The official DrQ-v2 encoder reads one stacked image; this policy has image entries "
            f"{image_keys} and vector entries {getattr(policy.encoder, 'vector_keys', [])}. Build it on an image Box "
            "('CnnPolicy')."
        )
    target = critic if critic_target is None else critic_target
    state = drqv2_state_from_official(encoder, actor, critic, target, image_key=image_keys[0])
    ours = policy.state_dict()
    missing = sorted(set(ours) - set(state))
    if missing:
        raise ValueError(f"The official weights have no values for {missing}: is n_critics 2?")
    for key, value in state.items():
        if tuple(value.shape) != tuple(ours[key].shape):
            raise ValueError(
                f"{key}: the official weights have shape {tuple(value.shape)}, this policy "
                f"{tuple(ours[key].shape)}. "
                "Build the policy for the official frames and widths (84x84 RGB frames, frame_stack=3, "
                "feature_dim=50, hidden_dim=1024)."
            )
    policy.load_state_dict(state, strict=True)
