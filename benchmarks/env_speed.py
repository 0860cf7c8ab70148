"""Frames per second of env step + render at 64x64 on CPU, one simulator after another.

    python benchmarks/env_speed.py                       # every suite that is installed
    python benchmarks/env_speed.py --steps 500 --ids sb3wm/crafter-v0

Each id runs in a fresh process with one thread: ``reset``, then ``--steps`` random actions (resetting at episode
ends), timed after ``--warmup`` steps; one agent step renders one 64x64 frame, so frames/s = agent steps/s (the
action repeat of each suite is reported: simulator steps/s = frames/s x repeat). Writes
benchmarks/results/env_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"

#: (id, gym.make kwargs): one or two ids per suite, each with its default options
DEFAULT_IDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("sb3wm/dmc-cartpole-swingup-v0", {}),
    ("sb3wm/dmc-walker-walk-v0", {}),
    ("sb3wm/dmcr-cartpole-swingup-v0", {}),
    ("sb3wm/dmcr-walker-walk-v0", {}),
    ("sb3wm/metaworld-drawer-open-v0", {}),
    ("sb3wm/atari100k-pong-v0", {}),
    ("sb3wm/crafter-v0", {}),
)


def time_env(env_id: str, kwargs: dict[str, Any], steps: int, warmup: int) -> dict[str, Any]:
    """Step ``env_id`` with random actions and return frames/s (runs in its own process)."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import gymnasium as gym
    import numpy as np

    import sb3_worldmodels  # noqa: F401  (registers the ids)

    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    image = obs["image"] if isinstance(obs, dict) else obs
    start, resets = None, 0
    for i in range(warmup + steps):
        if i == warmup:
            start = time.perf_counter()
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
            resets += 1
    assert start is not None
    seconds = time.perf_counter() - start
    repeat = getattr(env.unwrapped, "action_repeat", None)
    env.close()
    return {"id": env_id, "kwargs": kwargs, "frames_per_second": steps / seconds, "steps": steps,
            "resets": resets, "frame_shape": list(np.shape(image)), "action_repeat": repeat}


def main() -> None:
    """Time every id in its own process and write the JSON and Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ids", nargs="+", default=None, help="ids to time (default: one or two per suite)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--out", default=str(RESULTS / "env_speed"))
    args = parser.parse_args()
    ids = [(i, {}) for i in args.ids] if args.ids else list(DEFAULT_IDS)
    rows: list[dict[str, Any]] = []
    ctx = mp.get_context("spawn")
    for env_id, kwargs in ids:
        with ctx.Pool(1) as pool:
            try:
                row = pool.apply(time_env, (env_id, kwargs, args.steps, args.warmup))
            except Exception as exc:  # a suite whose extra is missing is reported, not fatal
                row = {"id": env_id, "kwargs": kwargs, "error": f"{type(exc).__name__}: {exc}"}
        print(row, flush=True)
        rows.append(row)
    meta = {"machine": platform.processor() or platform.machine(), "threads": 1, "steps": args.steps,
            "mujoco_gl": os.environ.get("MUJOCO_GL"), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"One process, one thread, random actions, 64x64 RGB frames, {args.steps} timed steps; resets at episode "
             "ends are inside the timing (Crafter's world generation takes ~0.8 s per reset). Atari steps are 4 "
             "emulator frames each (frame skip 4).", "",
             "| id | frames/s (agent steps/s) | action repeat |", "|---|---|---|"]
    for r in rows:
        fps = f"{r['frames_per_second']:.0f}" if "frames_per_second" in r else r["error"]
        lines.append(f"| {r['id']} | {fps} | {r.get('action_repeat') or ''} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
