"""Quick speed checks on your own machine (``sb3wm bench``): seconds per update or per imagined frame.

These time the hot paths with synthetic data, median of ``updates`` repetitions after one warm-up, so that a user
can see what a configuration costs before a long run:

* ``dreamer``: one full Dreamer update (world model + actor + critic) at batch 16 x 64, horizon 15;
* ``drqv2``: one DrQ-v2 update at batch 256 on 3 stacked frames (sampling from a replay buffer included);
* ``ivideogpt``: one imagined frame of an interactive rollout (slot + dynamics tokens through the KV cache, then
  decoding), and the tokens per second it implies.

The side-by-side comparisons with other libraries, MFU figures and learning curves are the scripts in the
repository's ``benchmarks/`` folder.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium import spaces

__all__ = ["dreamer_update", "drqv2_update", "ivideogpt_generation", "synthetic_batch", "time_calls"]


def time_calls(call: Callable[[], Any], repeats: int) -> dict[str, float]:
    """Median and best wall seconds of ``repeats`` calls of ``call`` after one warm-up call."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}.")
    call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"seconds_median": statistics.median(times), "seconds_min": min(times)}


def _threads(threads: int | None) -> int:
    if threads is not None:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def synthetic_batch(obs: str, batch: int, length: int, vector_dim: int = 3) -> Any:
    """A random :class:`~sb3_worldmodels.common.buffers.SequenceSamples` batch: 64x64 uint8 pixels (``obs="pixels"``)
    or ``vector_dim`` floats, one action in [-1, 1] (timing does not depend on the values)."""
    from sb3_worldmodels.common.buffers import SequenceSamples

    g = torch.Generator().manual_seed(0)
    if obs == "pixels":
        o = torch.randint(0, 256, (batch, length, 3, 64, 64), dtype=torch.uint8, generator=g)
    elif obs == "vector":
        o = torch.randn(batch, length, vector_dim, generator=g)
    else:
        raise ValueError(f"obs must be 'pixels' or 'vector', got {obs!r}.")
    z = torch.zeros(batch, length)
    first = z.clone()
    first[:, 0] = 1
    actions = torch.rand(batch, length, 1, generator=g) * 2 - 1
    return SequenceSamples(o, actions, torch.randn(batch, length, generator=g), first, z, z)


def dreamer_update(model_size: str = "S", obs: str = "pixels", updates: int = 3, threads: int | None = None,
                   precision: str = "fp32", version: str = "v3", device: str = "cpu") -> dict[str, Any]:
    """Seconds per full Dreamer update (batch 16 x 64, horizon 15) of a ``model_size`` policy."""
    from sb3_worldmodels.dreamer.policies import DreamerPolicy

    used = _threads(threads)
    torch.manual_seed(0)
    space = (spaces.Box(0, 255, (3, 64, 64), np.uint8) if obs == "pixels"
             else spaces.Box(-np.inf, np.inf, (3,), np.float32))
    policy = DreamerPolicy(space, spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-4, version=version,
                           model_size=model_size, precision=precision).to(device)
    batch = synthetic_batch(obs, 16, 64)
    batch = type(batch)(*(x.to(device) for x in batch))
    timing = time_calls(lambda: policy.train_step(batch, 15, 0.997), updates)
    return {"bench": "dreamer", "version": version, "model_size": model_size, "obs": obs, "precision": precision,
            "threads": used, "device": device, "batch": "16 x 64", "horizon": 15, **timing}


def drqv2_update(size: int = 64, updates: int = 3, threads: int | None = None, precision: str = "fp32",
                 device: str = "cpu", fill: int = 600) -> dict[str, Any]:
    """Seconds per DrQ-v2 update at batch 256 on ``size x size`` frames stacked by 3 (a buffer of random frames)."""
    from stable_baselines3.common.logger import configure

    from sb3_worldmodels.drqv2 import DrQv2

    used = _threads(threads)
    env = _FrameEnv(size)
    model = DrQv2("CnnPolicy", env, buffer_size=fill + 10, seed=0, device=device,
                  policy_kwargs=dict(precision=precision))
    model.set_logger(configure(None, []))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (fill + 1, 1, 3, size, size), dtype=np.uint8)
    for t in range(fill):
        done = (t + 1) % 200 == 0
        model.replay_buffer.add(frames[t], frames[t + 1], rng.uniform(-1, 1, (1, 1)).astype(np.float32),
                                rng.normal(size=1), np.array([done]), [{"TimeLimit.truncated": done}])
    timing = time_calls(lambda: model.train(gradient_steps=1, batch_size=256), updates)
    return {"bench": "drqv2", "size": size, "precision": precision, "threads": used, "device": device,
            "batch": 256, **timing}


class _FrameEnv(gym.Env):
    """A ``size x size`` pixel env with one continuous action: DrQv2 needs only its spaces here."""

    def __init__(self, size: int) -> None:
        self.observation_space = spaces.Box(0, 255, (size, size, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}


def ivideogpt_generation(tokenizer: str = "64", transformer: str = "138M", frames: int = 5, batch: int = 1,
                         repeats: int = 2, threads: int | None = None, device: str = "cpu") -> dict[str, Any]:
    """Seconds per imagined frame (and tokens per second) of an action-conditioned iVideoGPT rollout."""
    from sb3_worldmodels.ivideogpt import IVideoGPT

    used = _threads(threads)
    torch.manual_seed(0)
    model = IVideoGPT(tokenizer, transformer, action_dim=4).to(device).eval()
    side = model.tokenizer_config.image_size
    context = torch.randint(0, 256, (batch, model.tokenizer_config.context_frames, 3, side, side), dtype=torch.uint8,
                            device=device)
    actions = torch.zeros(batch, frames, 4, device=device)
    timing = time_calls(lambda: model.predict(context, actions), repeats)
    per_frame = timing["seconds_median"] / frames
    return {"bench": "ivideogpt", "tokenizer": tokenizer, "transformer": transformer, "batch": batch,
            "frames": frames, "threads": used, "device": device, **timing,
            "seconds_per_frame": per_frame, "tokens_per_second": batch * model.frame_tokens / per_frame,
            "parameters_millions": sum(p.numel() for p in model.parameters()) / 1e6}
