"""Update precision: ``"fp32"`` or ``"bf16"`` autocast, shared by every model of the package.

bf16 autocast is fast on GPUs and on CPUs with bf16 matrix units (Intel AMX, AVX512-BF16). On a CPU without them
(e.g. an AVX2-only AMD EPYC) PyTorch emulates bf16 matrix products: a DreamerV3 update measured 10.0 s in bf16
against 1.0 s in fp32 on such a machine. :func:`autocast` therefore warns, once per process, when bf16 is asked
for on such a CPU.
"""

from __future__ import annotations

import functools
import warnings

import torch

__all__ = ["PRECISIONS", "autocast", "check_precision", "cpu_has_fast_bf16"]

#: the accepted values of every ``precision`` argument
PRECISIONS = ("fp32", "bf16")

_warned = False


def check_precision(precision: str) -> str:
    """Return ``precision`` if it is one of :data:`PRECISIONS`, else raise a ``ValueError`` naming them."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be 'fp32' or 'bf16' (bf16 autocast), got {precision!r}.")
    return precision


@functools.cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU multiplies bf16 matrices natively (AMX tiles or AVX512-BF16); probed once per process.

    ``True`` when this PyTorch build cannot tell (its private ``torch.cpu`` probes are missing).
    """
    probes = [getattr(torch.cpu, name, None) for name in ("_is_amx_tile_supported", "_is_avx512_bf16_supported")]
    if any(p is None for p in probes):
        return True
    return any(bool(p()) for p in probes)  # type: ignore[misc]


def autocast(device_type: str, precision: str) -> torch.autocast:
    """bf16 autocast on ``device_type`` when ``precision == "bf16"``, a disabled (no-op) autocast for ``"fp32"``.

    Warns once per process when bf16 is used on a CPU without native bf16 matrix units (see the module docstring).
    """
    global _warned
    bf16 = check_precision(precision) == "bf16"
    if bf16 and device_type == "cpu" and not _warned and not cpu_has_fast_bf16():
        _warned = True
        warnings.warn(
            "precision='bf16' on a CPU without bf16 matrix units (no AMX or AVX512-BF16): PyTorch emulates bf16 "
            "matrix products there, about 10x slower than fp32. Use precision='fp32' on this machine.",
            UserWarning,
            stacklevel=2,
        )
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16)
