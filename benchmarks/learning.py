"""Learning curves: DreamerV3 and DreamerHarmony against SB3's SAC at the same env-step budget.

    python benchmarks/learning.py --task pendulum        # Pendulum-v1, 20k steps (target: DreamerV3 >= -200)
    python benchmarks/learning.py --task cartpole_state  # DMC cartpole-swingup from state, 100k frames (target >= 513)
    python benchmarks/learning.py --task pendulum --algos DreamerV3 SAC --seeds 0 1 --jobs 2

Every (algorithm, seed) runs in its own process with one torch thread; the policy is evaluated every
``--eval-every`` env steps on ``--eval-episodes`` episodes (deterministic). Writes, under
benchmarks/results/: learning_<task>.csv (task, algo, seed, step, eval_return, wall_seconds),
learning_<task>.png (mean and min/max over seeds) and learning_<task>.json (final returns, settings, time).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import time
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"

TASKS: dict[str, dict[str, Any]] = {
    "pendulum": dict(env="Pendulum-v1", env_kwargs={}, steps=20_000, eval_every=2_000, frames_per_step=1),
    "cartpole_state": dict(env="sb3wm/dmc-cartpole-swingup-v0", env_kwargs={"obs_type": "state"}, steps=50_000,
                           eval_every=5_000, frames_per_step=2),
}


def run_one(task: str, algo: str, seed: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one (algo, seed) and return its evaluation curve."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor

    import sb3_worldmodels

    torch.set_num_threads(1)
    spec = TASKS[task]
    env = gym.make(spec["env"], **spec["env_kwargs"])
    eval_env = Monitor(gym.make(spec["env"], **spec["env_kwargs"]))
    eval_env.reset(seed=10_000 + seed)  # EvalCallback does not seed it: later resets continue this stream
    if algo == "SAC":
        model: Any = SAC("MlpPolicy", env, seed=seed, learning_rate=1e-3 if task == "pendulum" else 3e-4)
    else:
        cls = getattr(sb3_worldmodels, algo)
        model = cls("MlpPolicy", env, seed=seed, learning_starts=args["learning_starts"], batch_size=args["batch_size"],
                    sequence_length=args["sequence_length"], train_ratio=args["train_ratio"],
                    policy_kwargs=dict(model_size=args["model_size"]))
    curve: list[dict[str, Any]] = []
    steps = args["steps"] or spec["steps"]
    every = args["eval_every"] or spec["eval_every"]
    recorder = curve_recorder(eval_env, every, args["eval_episodes"], curve,
                              {"task": task, "algo": algo, "seed": seed}, spec["frames_per_step"])
    model.learn(steps, callback=recorder)
    return curve


def curve_recorder(
    eval_env: Any, eval_freq: int, n_eval_episodes: int, curve: list[dict[str, Any]], row: dict[str, Any],
    frames_per_step: int = 1,
) -> Any:
    """An SB3 ``EvalCallback`` that appends ``{**row, step, frames, eval_return, wall_seconds}`` to ``curve`` after
    every evaluation (and prints it)."""
    from stable_baselines3.common.callbacks import EvalCallback

    start = time.time()

    class Recorder(EvalCallback):
        def _on_step(self) -> bool:
            out = super()._on_step()
            if self.n_calls % self.eval_freq == 0:
                curve.append({**row, "step": self.num_timesteps, "frames": self.num_timesteps * frames_per_step,
                              "eval_return": float(self.last_mean_reward),
                              "wall_seconds": round(time.time() - start, 1)})
                print(curve[-1], flush=True)
            return out

    return Recorder(eval_env, eval_freq=eval_freq, n_eval_episodes=n_eval_episodes, verbose=0)


def write_curves(rows: list[dict[str, Any]], name: str, title: str) -> None:
    """Write the curve rows to ``benchmarks/results/<name>.csv`` and their plot to ``<name>.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, RESULTS / f"{name}.png", title)


def plot(rows: list[dict[str, Any]], path: Path, title: str) -> None:
    """Mean curve per algorithm with the min/max band over seeds."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in sorted({r["algo"] for r in rows}):
        steps = sorted({r["step"] for r in rows if r["algo"] == algo})
        vals = [[r["eval_return"] for r in rows if r["algo"] == algo and r["step"] == s] for s in steps]
        mean = [float(np.mean(v)) for v in vals]
        ax.plot(steps, mean, label=algo)
        ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
    ax.set_xlabel("env steps")
    ax.set_ylabel("eval return")
    ax.set_title(title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    """Run the runs in parallel processes and write CSV, PNG and JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), default="pendulum")
    parser.add_argument("--algos", nargs="+", default=["DreamerV3", "DreamerHarmony", "SAC"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=0, help="env steps (default: the task's budget)")
    parser.add_argument("--eval-every", type=int, default=0)
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--model-size", default="XS")
    parser.add_argument("--train-ratio", type=float, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--sequence-length", type=int, default=64)
    parser.add_argument("--learning-starts", type=int, default=1024)
    parser.add_argument("--tag", default="")
    args = parser.parse_args()
    settings = {k: v for k, v in vars(args).items()}
    jobs = [(args.task, algo, seed, settings) for algo in args.algos for seed in args.seeds]
    start = time.time()
    with mp.get_context("spawn").Pool(args.jobs) as pool:
        curves = pool.starmap(run_one, jobs)
    rows = [row for curve in curves for row in curve]
    name = f"learning_{args.task}{'_' + args.tag if args.tag else ''}"
    write_curves(rows, name, f"{TASKS[args.task]['env']} ({args.model_size}, train_ratio {args.train_ratio:g})")
    final = {}
    for algo in args.algos:
        last = max(r["step"] for r in rows if r["algo"] == algo)
        vals = [r["eval_return"] for r in rows if r["algo"] == algo and r["step"] == last]
        final[algo] = {"step": last, "mean": float(np.mean(vals)), "per_seed": vals}
    summary = {"task": args.task, "settings": settings, "final": final, "wall_seconds": round(time.time() - start, 1)}
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
