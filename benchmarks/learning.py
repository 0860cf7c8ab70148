"""Learning curves: DreamerV3, DreamerHarmony (and DreamerV2, any algorithm of the package) against SB3's SAC at the
same env-step budget.

    python benchmarks/learning.py --task pendulum        # Pendulum-v1, 20k steps (target: DreamerV3 >= -200)
    python benchmarks/learning.py --task cartpole_state  # DMC cartpole-swingup from state, 100k frames (target >= 513)
    python benchmarks/learning.py --task pendulum --algos DreamerV3 SAC --seeds 0 1 --jobs 2

Every (algorithm, seed) runs in its own process with ``--threads`` torch threads (default 1); the policy is evaluated every
``--eval-every`` env steps on ``--eval-episodes`` episodes (deterministic). After every evaluation the run is
checkpointed (model, replay buffer, curve so far) under benchmarks/.runs/: a run that was stopped (a session
ended, the machine rebooted) resumes from its last evaluation when the same command is given again, and
``--restart`` starts it over. Writes, under
benchmarks/results/: learning_<task>.csv (task, algo, seed, step, eval_return, wall_seconds),
learning_<task>.png (mean and min/max over seeds) and learning_<task>.json (final returns, settings, time).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
RUNS = Path(__file__).resolve().parent / ".runs"  # resumable run checkpoints (git-ignored)

TASKS: dict[str, dict[str, Any]] = {
    "pendulum": dict(env="Pendulum-v1", env_kwargs={}, steps=20_000, eval_every=2_000, frames_per_step=1),
    "cartpole_state": dict(env="sb3wm/dmc-cartpole-swingup-v0", env_kwargs={"obs_type": "state"}, steps=50_000,
                           eval_every=5_000, frames_per_step=2),
}


def run_one(task: str, algo: str, seed: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one (algo, seed), or resume it from its last checkpoint, and return its evaluation curve."""
    import gymnasium as gym
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor

    import sb3_worldmodels

    torch.set_num_threads(args.get("threads", 1))
    spec = TASKS[task]
    env = gym.make(spec["env"], **spec["env_kwargs"])
    if args.get("reward_scale", 1.0) != 1.0:  # the agent learns from scaled rewards; evaluation reports the env's own
        env = gym.wrappers.TransformReward(env, lambda r, scale=args["reward_scale"]: scale * r)
    eval_env = Monitor(gym.make(spec["env"], **spec["env_kwargs"]))
    eval_env.reset(seed=10_000 + seed)  # EvalCallback does not seed it: later resets continue this stream
    if algo == "SAC":
        model: Any = SAC("MlpPolicy", env, seed=seed, learning_rate=1e-3 if task == "pendulum" else 3e-4)
    else:
        cls = getattr(sb3_worldmodels, algo)
        model = cls("MlpPolicy", env, seed=seed, learning_starts=args["learning_starts"], batch_size=args["batch_size"],
                    sequence_length=args["sequence_length"], train_ratio=args["train_ratio"],
                    policy_kwargs=dict(model_size=args["model_size"], precision=args["precision"],
                                       **json.loads(args["policy_kwargs"])))
    run = {"task": task, "algo": algo, "seed": seed}
    settings = {k: args[k] for k in ("steps", "eval_every", "eval_episodes", "model_size", "train_ratio",
                                     "batch_size", "sequence_length", "learning_starts")}
    settings.update(set_options(args, {"precision": "fp32", "policy_kwargs": "{}", "reward_scale": 1.0}))
    steps, every = args["steps"] or spec["steps"], args["eval_every"] or spec["eval_every"]
    _, curve = learn_resumable(model, eval_env, steps, every, args["eval_episodes"], run, spec["frames_per_step"],
                               run_dir=run_dir(f"learning_{task}", args["tag"], algo, seed),
                               settings=settings, restart=args["restart"])
    return curve


def run_dir(name: str, tag: str, algo: str, seed: int) -> Path:
    """Where the checkpoints of one (algo, seed) run of a benchmark live: ``benchmarks/.runs/<name>[_<tag>]/``."""
    return RUNS / f"{name}{'_' + tag if tag else ''}" / f"{algo}_s{seed}"


def learn_resumable(
    model: Any, eval_env: Any, steps: int, eval_every: int, eval_episodes: int, row: dict[str, Any],
    frames_per_step: int = 1, run_dir: Path | None = None, settings: dict[str, Any] | None = None,
    restart: bool = False, callbacks: Sequence[Any] = (), measure: Callable[[Any], dict[str, float]] | None = None,
) -> tuple[Any, list[dict[str, Any]]]:
    """Train ``model`` to ``steps`` env steps, evaluating it every ``eval_every`` steps (see :func:`curve_recorder`).

    With a ``run_dir``, the run is checkpointed there after every evaluation (the model with its optimizers, the
    replay buffer, the curve so far and the wall time spent), each checkpoint replacing the last as a whole; when
    ``run_dir`` already holds one (and ``restart`` is false), the model and buffer are loaded from it and training
    goes on from that step with ``reset_num_timesteps=False``, the wall time adding to the time already spent.
    The resumed run restarts the training episode and does not restore the random-number streams, so it is a
    continuation of the run, not a bit-identical replay of an uninterrupted one. ``settings`` must equal the
    stored ones (a clear error otherwise: a different run would be spliced onto the old curve). ``measure(model)``,
    if given, adds its figures to every evaluation's row.

    :return: the trained model (the loaded one after a resume) and the whole evaluation curve.
    """
    curve: list[dict[str, Any]] = []
    elapsed = 0.0
    if run_dir is not None:
        if restart:
            for path in (run_dir, _sibling(run_dir, "old"), _sibling(run_dir, "tmp")):
                shutil.rmtree(path, ignore_errors=True)
        if not run_dir.exists() and _sibling(run_dir, "old").exists():  # stopped while swapping checkpoints
            _sibling(run_dir, "old").rename(run_dir)
        if (run_dir / "state.json").exists():
            state = json.loads((run_dir / "state.json").read_text())
            if state["settings"] != (settings or {}):
                raise ValueError(f"{run_dir} holds a run with other settings ({state['settings']} != {settings}): "
                                 "pass --restart to start it over, or --tag to keep both")
            model = type(model).load(run_dir / "model.zip", env=model.get_env(), device=model.device)
            model.load_replay_buffer(run_dir / "replay.pkl")
            curve, elapsed = state["curve"], float(state["elapsed"])
            print(f"resuming {run_dir} at step {model.num_timesteps} ({elapsed:.0f} s spent so far)", flush=True)

    def checkpoint(model: Any, seconds: float) -> None:
        assert run_dir is not None
        tmp, old = _sibling(run_dir, "tmp"), _sibling(run_dir, "old")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        model.save(tmp / "model.zip")
        model.save_replay_buffer(tmp / "replay.pkl")
        (tmp / "state.json").write_text(json.dumps({"settings": settings or {}, "step": model.num_timesteps,
                                                   "elapsed": seconds, "curve": curve}, indent=1))
        if run_dir.exists():
            run_dir.rename(old)
        tmp.rename(run_dir)
        shutil.rmtree(old, ignore_errors=True)

    recorder = curve_recorder(eval_env, eval_every, eval_episodes, curve, row, frames_per_step, elapsed=elapsed,
                              on_eval=checkpoint if run_dir is not None else None, measure=measure)
    if steps > model.num_timesteps:
        model.learn(steps - model.num_timesteps, callback=[recorder, *callbacks], reset_num_timesteps=False)
    return model, curve


def set_options(args: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The options of ``defaults`` that ``args`` sets to another value: what a run's settings record of options
    added after runs were checkpointed, so that those runs (which ran at the defaults) still resume."""
    return {k: args[k] for k, default in defaults.items() if args.get(k, default) != default}


def _sibling(path: Path, suffix: str) -> Path:
    return path.with_name(f"{path.name}.{suffix}")


def curve_recorder(
    eval_env: Any, eval_freq: int, n_eval_episodes: int, curve: list[dict[str, Any]], row: dict[str, Any],
    frames_per_step: int = 1, elapsed: float = 0.0, on_eval: Callable[[Any, float], None] | None = None,
    measure: Callable[[Any], dict[str, float]] | None = None,
) -> Any:
    """An SB3 ``EvalCallback`` that appends ``{**row, step, frames, eval_return, wall_seconds}`` (and the figures of
    ``measure(model)``, if given) to ``curve`` after every evaluation (and prints it), then calls
    ``on_eval(model, wall_seconds)`` once that step is stored and trained on. ``wall_seconds`` counts from the
    callback's creation plus ``elapsed`` (the time a resumed run had already spent)."""
    from stable_baselines3.common.callbacks import EvalCallback

    start = time.time() - elapsed

    class Recorder(EvalCallback):
        def _on_step(self) -> bool:
            out = super()._on_step()
            if self.n_calls % self.eval_freq == 0:
                curve.append({**row, "step": self.num_timesteps, "frames": self.num_timesteps * frames_per_step,
                              "eval_return": float(self.last_mean_reward),
                              "wall_seconds": round(time.time() - start, 1),
                              **(measure(self.model) if measure is not None else {})})
                print(curve[-1], flush=True)
                self.pending = on_eval is not None
            return out

        # SB3 calls on_step before it stores the step's transition and trains on it: the checkpoint waits for
        # the start of the next rollout (or the end of training), so that a resumed run loses nothing
        def _on_rollout_start(self) -> None:
            self._checkpoint()

        def _on_training_end(self) -> None:
            self._checkpoint()

        def _checkpoint(self) -> None:
            if getattr(self, "pending", False) and on_eval is not None:
                self.pending = False
                on_eval(self.model, time.time() - start)

    return Recorder(eval_env, eval_freq=eval_freq, n_eval_episodes=n_eval_episodes, verbose=0)


def write_curves(rows: list[dict[str, Any]], name: str, title: str) -> None:
    """Write the curve rows to ``benchmarks/results/<name>.csv`` and their plot to ``<name>.png``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    fields = list(dict.fromkeys(key for row in rows for key in row))  # runs resumed from older rows may lack some
    with open(RESULTS / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, RESULTS / f"{name}.png", title)


def plot(rows: list[dict[str, Any]], path: Path, title: str, key: str = "eval_return",
         ylabel: str = "eval return", references: dict[str, float] | None = None) -> None:
    """Mean curve of ``key`` per algorithm with the min/max band over seeds (rows without ``key`` are skipped), and
    a dashed horizontal line per ``references`` entry (label: value)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r.get(key) not in (None, "")]
    fig, ax = plt.subplots(figsize=(6, 4))
    for algo in sorted({r["algo"] for r in rows}):
        steps = sorted({r["step"] for r in rows if r["algo"] == algo})
        vals = [[r[key] for r in rows if r["algo"] == algo and r["step"] == s] for s in steps]
        mean = [float(np.mean(v)) for v in vals]
        ax.plot(steps, mean, label=algo)
        ax.fill_between(steps, [min(v) for v in vals], [max(v) for v in vals], alpha=0.2)
    for label, value in (references or {}).items():
        ax.axhline(value, linestyle="--", color="gray", linewidth=1)
        ax.annotate(label, (0, value), xycoords=("axes fraction", "data"), fontsize=7, color="gray", va="bottom")
    ax.set_xlabel("env steps")
    ax.set_ylabel(ylabel)
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
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="Dreamer update precision")
    parser.add_argument("--policy-kwargs", default="{}",
                        help='JSON of other Dreamer config fields, e.g. \'{"units": 256, "mlp_layers": 2}\'')
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads per run (a resource, not a setting: a run may resume with another)")
    parser.add_argument("--reward-scale", type=float, default=1.0,
                        help="multiply the training env's rewards (evaluation returns stay in the env's units)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--restart", action="store_true", help="discard the runs' checkpoints and start over")
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
