"""Tests for :mod:`sb3_worldmodels.common.allocator` (each in a fresh interpreter: the settings are per process)."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

CHECK = """
import sb3_worldmodels.common.allocator as a
print(a.tune_cpu_allocator("{device}"), a.tune_cpu_allocator("cpu"), a._applied)
"""


def _run(device: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", CHECK.format(device=device)], capture_output=True, text=True,
                         timeout=120, env={**clean, **env}, check=True)
    return out.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the settings are glibc's")
def test_applied_once_on_cpu_and_only_for_cpu() -> None:
    assert _run("cpu") == "True True True"
    # another device leaves the allocator alone until a CPU caller comes
    assert _run("meta") == "False True True"


@pytest.mark.parametrize("var", ["MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"])
def test_users_own_malloc_settings_win(var: str) -> None:
    assert _run("cpu", **{var: "131072"}) == "False False False"


def test_algorithms_tune_it_on_cpu() -> None:
    """Building a Dreamer agent on the CPU applies the settings (DrQv2, and MBPO on it, call the same)."""
    code = """
import numpy as np, gymnasium as gym
import sb3_worldmodels.common.allocator as a
from sb3_worldmodels import DreamerV3
env = gym.make("Pendulum-v1")
DreamerV3("MlpPolicy", env, device="cpu", policy_kwargs=dict(model_size="tiny"), buffer_size=100)
print(a._applied)
"""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=clean)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == str(platform.libc_ver()[0] == "glibc")
