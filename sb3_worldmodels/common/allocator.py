"""glibc ``malloc`` settings for training on CPU: keep freed tensor memory for reuse.

PyTorch's CPU tensors come from the C library's ``malloc``. With glibc's defaults a block over the dynamic mmap
threshold (128 KiB at start) is mapped fresh from the kernel and unmapped when freed, so the large temporaries of an
update (DreamerV3's 16384 x 255 two-hot logits, their gradients, the zero-filled gradients of slices) page-fault on
every update. :func:`tune_cpu_allocator` raises the mmap threshold to 32 MiB and the trim threshold to 1 GiB, so
that such blocks are served from and returned to the heap: a ``tiny`` DreamerV3 update on the 5-d cartpole state
went from 0.58-0.67 s to 0.48-0.49 s on one AVX2 core (``benchmarks/cpu_allocator.py``). The process keeps up to
the trim threshold of freed memory instead of handing it back at once.

The algorithms call it when they are built on a CPU device. It does nothing on a C library other than glibc, or
when ``MALLOC_MMAP_THRESHOLD_`` or ``MALLOC_TRIM_THRESHOLD_`` is set in the environment: set either (e.g.
``MALLOC_MMAP_THRESHOLD_=131072``, glibc's own starting value) to keep your own settings.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

import torch

__all__ = ["MMAP_THRESHOLD", "TRIM_THRESHOLD", "tune_cpu_allocator"]

#: blocks up to this size come from the heap instead of fresh mmaps
MMAP_THRESHOLD = 32 * 1024 * 1024
#: freed memory at the top of the heap is handed back to the OS only above this
TRIM_THRESHOLD = 1024 * 1024 * 1024
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameter numbers (malloc.h)
_ENV_VARS = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")
_applied: bool | None = None


def tune_cpu_allocator(device: torch.device | str = "cpu") -> bool:
    """Apply the settings of the module docstring once per process, for a CPU ``device``.

    :param device: the device the caller trains on; nothing is done for any other than the CPU.
    :return: whether the settings are in effect (applied by this or an earlier call).
    """
    global _applied
    if torch.device(device).type != "cpu":
        return bool(_applied)
    if _applied is None:
        _applied = _apply()
    return _applied


def _apply() -> bool:
    if any(name in os.environ for name in _ENV_VARS) or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
