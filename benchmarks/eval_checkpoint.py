"""Evaluate a run checkpoint of ``learning.py`` on more episodes than its curve used.

    python benchmarks/eval_checkpoint.py benchmarks/.runs/learning_cartpole_state_tiny_r512_lr4x/DreamerV3_s0
    python benchmarks/eval_checkpoint.py <run_dir> [<run_dir> ...] --episodes 20 --out eval_cartpole_tiny_lr4x

A curve point of ``learning.py`` is the mean of ``--eval-episodes`` (default 5) deterministic episodes, and on
DMC cartpole-swingup that mean moves by 100-150 between neighbouring evaluations of one run. This loads each
``<run_dir>/model.zip`` (the algorithm is read from the folder name, ``<Algo>_s<seed>``, or given with ``--algo``),
plays ``--episodes`` deterministic episodes with SB3's ``evaluate_policy`` on a fresh environment seeded with
``--seed``, and prints (and with ``--out`` writes to ``benchmarks/results/<out>.json``) the mean, the standard
deviation, the standard error and every episode's return, with the checkpoint's step count.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def algo_of(run_dir: Path) -> str:
    """The algorithm class name of a ``learning.py`` run folder ``<Algo>_s<seed>``."""
    name, sep, seed = run_dir.name.rpartition("_s")
    if not sep or not seed.isdigit():
        raise ValueError(f"cannot tell the algorithm from the folder name {run_dir.name!r}: pass --algo")
    return name


def evaluate(run_dir: Path, algo: str, env_id: str, env_kwargs: dict[str, Any], episodes: int,
             seed: int) -> dict[str, Any]:
    """The figures of the module docstring for one checkpoint."""
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    import sb3_worldmodels

    env = Monitor(gym.make(env_id, **env_kwargs))
    env.reset(seed=seed)
    model = getattr(sb3_worldmodels, algo).load(run_dir / "model.zip", env=env)
    returns, lengths = evaluate_policy(model, env, n_eval_episodes=episodes, deterministic=True,
                                       return_episode_rewards=True)
    env.close()
    std = statistics.stdev(returns) if len(returns) > 1 else 0.0
    return {"run_dir": str(run_dir), "algo": algo, "num_timesteps": int(model.num_timesteps), "episodes": episodes,
            "seed": seed, "mean": statistics.fmean(returns), "std": std, "sem": std / len(returns) ** 0.5,
            "returns": [float(r) for r in returns], "lengths": [int(n) for n in lengths]}


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="learning.py run folders (holding model.zip)")
    parser.add_argument("--algo", default="", help="algorithm class (default: from each folder's name)")
    parser.add_argument("--env", default="sb3wm/dmc-cartpole-swingup-v0")
    parser.add_argument("--env-kwargs", default='{"obs_type": "state"}', help="JSON keyword arguments of the env")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20_000, help="seed of the evaluation env's first reset")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="", help="write benchmarks/results/<out>.json")
    args = parser.parse_args()
    if args.episodes < 1:
        parser.error(f"--episodes must be >= 1, got {args.episodes}")
    for run_dir in args.run_dirs:
        if not (run_dir / "model.zip").exists():
            parser.error(f"{run_dir} holds no model.zip: pass a benchmarks/.runs/<bench>/<algo>_s<seed> folder")
    import torch

    torch.set_num_threads(args.threads)
    results = []
    for run_dir in args.run_dirs:
        result = evaluate(run_dir, args.algo or algo_of(run_dir), args.env, json.loads(args.env_kwargs),
                          args.episodes, args.seed)
        print(f"{result['algo']} at {result['num_timesteps']} steps: {result['mean']:.1f} +- {result['sem']:.1f} "
              f"(std {result['std']:.1f}, {args.episodes} episodes)", flush=True)
        results.append(result)
    if args.out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
