"""Weight initialisation of the Dreamer family, as each generation's official code does it.

* DreamerV2 (thuml/HarmonyDream and thuml/ContextWM ``wmlib/core/torch_utils.py:32-38``): every layer built through
  ``Module.get`` gets Xavier-uniform weights and zero biases (TensorFlow's Keras defaults, which the first DreamerV2
  had); a layer with ``outscale`` 0 is zero. The GRU's linear layer is built directly with ``nn.Linear``
  (``wmlib/nets/dynamics/rssm.py:140``) and keeps PyTorch's default initialisation.
* DreamerV3 (thuml/HarmonyDream ``dreamerv3-jax/dreamerv3/nets.py:658-705``, danijar/dreamerv3's ``Initializer``
  with ``winit: normal, fan: avg``): weights from a normal truncated at two standard deviations, scaled so that the
  variance is ``outscale / fan_avg`` (``fan_avg`` = the mean of fan-in and fan-out), zero biases; ``outscale`` 0 (the
  reward and critic heads) is zero.

Layers that the official code builds as two separate output layers (an actor's mean and standard deviation) and
ours as one are initialised half by half, so each half has the official scale.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["dreamer_init", "mark_split_output", "mark_zero_init"]

#: the factor that makes a normal truncated at +-2 std have unit variance (the official code's constant)
TRUNC_STD = 0.87962566103423978


def mark_zero_init(layer: nn.Module) -> nn.Module:
    """Mark ``layer`` as an output with ``outscale`` 0: :func:`dreamer_init` zeroes it."""
    layer.dreamer_zero_init = True  # type: ignore[assignment]
    return layer


def mark_split_output(layer: nn.Module, parts: int) -> nn.Module:
    """Mark ``layer``'s output rows as ``parts`` official layers stacked (initialised one by one)."""
    layer.dreamer_split_output = parts  # type: ignore[assignment]
    return layer


def _fans(weight: torch.Tensor) -> tuple[int, int]:
    fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(weight)
    return fan_in, fan_out


def _init_weight(weight: torch.Tensor, style: str) -> None:
    fan_in, fan_out = _fans(weight)
    if style == "v2":
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        nn.init.uniform_(weight, -bound, bound)
    else:
        std = math.sqrt(1.0 / ((fan_in + fan_out) / 2)) / TRUNC_STD
        nn.init.trunc_normal_(weight, 0.0, std, -2 * std, 2 * std)


@torch.no_grad()
def dreamer_init(modules: Iterable[nn.Module], style: str, keep: Iterable[nn.Module] = ()) -> None:
    """Initialise every ``Linear`` / ``Conv2d`` / ``ConvTranspose2d`` inside ``modules`` as ``style`` does.

    :param style: ``"v2"`` (Xavier-uniform) or ``"v3"`` (truncated normal, fan-average).
    :param keep: layers that keep the initialisation they were built with (DreamerV2's GRU).
    """
    if style not in ("v2", "v3"):
        raise ValueError(f"style must be 'v2' or 'v3', got {style!r}.")
    kept = {id(m) for m in keep}
    for module in modules:
        for layer in module.modules():
            if id(layer) in kept or not isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
                continue
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)
            if getattr(layer, "dreamer_zero_init", False):
                nn.init.zeros_(layer.weight)
                continue
            parts = getattr(layer, "dreamer_split_output", 1)
            for chunk in layer.weight.chunk(parts, 0):
                _init_weight(chunk, style)
