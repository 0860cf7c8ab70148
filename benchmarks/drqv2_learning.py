"""Learning curves of our DrQv2 (and MBPO) against SB3's SAC ``CnnPolicy`` from 64x64 pixels, same budget.

    python benchmarks/drqv2_learning.py                         # cartpole-swingup, 50k steps = 100k frames
    python benchmarks/drqv2_learning.py --task reacher_easy
    python benchmarks/drqv2_learning.py --task metaworld_drawer_open --algos MBPO DrQv2 --world-model tiny
    python benchmarks/drqv2_learning.py --algos DrQv2 --seeds 0 1 2 --jobs 3 --device cuda
    python benchmarks/drqv2_learning.py --algos DrQv2 --seeds 0 1 2 3 4 --jobs 5 --device cuda --shadows --tag shadows
    python benchmarks/drqv2_learning.py --steps 600 --eval-every 300 --eval-episodes 1 --learning-starts 200 \
        --batch-size 16 --tag smoke                                     # plumbing check, a few minutes
    python benchmarks/drqv2_learning.py --obs state --threads 2   # the same agents from the state vector (CPU)

Both agents see 3 stacked RGB frames of the ``sb3wm/dmc-*`` envs (64x64, action repeat 2: one env step = 2
frames). DrQv2 runs the spec's settings (batch 256, n-step 3, lr 1e-4, tau 0.01, an update every 2 steps, 2000
random seed steps = 4000 frames) with DrQ-v2's exploration schedule for the task (``linear(1.0, 0.1, 100k)``
on DrQ-v2's "easy" tasks such as cartpole-swingup, ``500k`` on "medium" ones such as reacher-easy). SAC runs
SB3's defaults for ``CnnPolicy`` on ``VecFrameStack(3)`` frames, with the same 2000 random seed steps and a
replay buffer as large as the budget (SB3's buffer stores obs and next_obs: about 3.7 GB for 50k steps); on a
CPU its 50k updates at batch 256 take about a second each, and ``--sac-train-freq 2`` gives it DrQv2's update
schedule (one update every 2 env steps) at half the time.

``--obs state`` runs both agents on DMC's state vector instead (DrQv2's ``MlpPolicy``: its actor and twin
critics on the vector, no encoder and no frame stack; SAC's ``MlpPolicy``), a check of the RL part of DrQv2
(n-step returns, twin critics, noise schedule, target critics) that runs on a CPU in about an hour; its
results carry the suffix ``_state``.

Every (algorithm, seed) runs in its own process; the deterministic policy is evaluated every ``--eval-every``
env steps on ``--eval-episodes`` episodes, and the run is checkpointed after each evaluation under
benchmarks/.runs/ (``learning.py``'s ``learn_resumable``): the same command given again resumes stopped runs
from their last evaluation (``--restart`` starts over), so a run can span several sittings. Writes, under benchmarks/results/: drqv2_learning_<task>.csv (task,
algo, seed, step, frames, eval_return, wall_seconds), .png (mean and min/max over seeds, via
``benchmarks/learning.py``'s plot) and .json (final returns, paper reference, settings, wall time).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import learn_resumable, run_dir, set_options, write_curves  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"

TASKS: dict[str, dict[str, Any]] = {
    # paper: DrQ-v2's return at 100k frames (the reference figures); std_duration: DrQ-v2's task
    # preset
    "cartpole_swingup": dict(env="sb3wm/dmc-cartpole-swingup-v0", steps=50_000, eval_every=5_000,
                             std_duration=100_000, paper=626, target=600),
    "reacher_easy": dict(env="sb3wm/dmc-reacher-easy-v0", steps=50_000, eval_every=5_000,
                         std_duration=500_000, paper=250, target=None),
    # iVideoGPT's MBPO setting: Meta-World at action repeat 2, 100-step episodes, std decay over 100k frames
    "metaworld_drawer_open": dict(env="sb3wm/metaworld-drawer-open-v0",
                                  env_kwargs=dict(action_repeat=2, max_episode_steps=100), steps=50_000,
                                  eval_every=5_000, std_duration=50_000, paper=None, target=None),
}
FRAMES_PER_STEP = 2  # action repeat of the sb3wm/dmc ids


def make_model(task: str, algo: str, seed: int, args: dict[str, Any]) -> tuple[Any, Any]:
    """The agent and its evaluation env (wrapped the way the agent needs)."""
    import gymnasium as gym
    from stable_baselines3 import SAC
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

    import sb3_worldmodels  # noqa: F401  (registers the ids)
    from sb3_worldmodels import MBPO, DrQv2
    from sb3_worldmodels.drqv2 import linear_schedule

    spec = TASKS[task]
    steps = args["steps"] or spec["steps"]
    state = _from_state(args)
    env_kwargs = {**spec.get("env_kwargs", {}), **({"shadows": True} if args.get("shadows") else {}),
                  **({"obs_type": "state", "render_mode": None} if state else {})}

    def make() -> Any:
        return gym.make(spec["env"], **env_kwargs)

    if algo in ("DrQv2", "MBPO"):
        common = dict(seed=seed, device=args["device"], buffer_size=max(steps, 1),
                      learning_starts=min(args["learning_starts"], steps), batch_size=args["batch_size"],
                      std_schedule=linear_schedule(1.0, 0.1, spec["std_duration"]),
                      policy_kwargs=dict(precision=args["precision"]))
        if algo == "MBPO":
            model: Any = MBPO("CnnPolicy", make(), world_model=world_model(args["world_model"]), **common,
                              **json.loads(args["mbpo_kwargs"]))
        else:
            model = DrQv2("MlpPolicy" if state else "CnnPolicy", make(), **common)
        return model, Monitor(make())  # DrQv2 and MBPO stack frames themselves (in predict's state)

    def stacked(env_fn: Any) -> Any:
        if state:
            return DummyVecEnv([env_fn])
        return VecTransposeImage(VecFrameStack(DummyVecEnv([env_fn]), 3))

    model = SAC("MlpPolicy" if state else "CnnPolicy", stacked(make), seed=seed, device=args["device"],
                buffer_size=max(steps, 1), learning_starts=min(args["learning_starts"], steps),
                batch_size=args["batch_size"], train_freq=args["sac_train_freq"])
    return model, stacked(lambda: Monitor(make()))


def world_model(name: str) -> Any:
    """MBPO's world model: ``tiny`` (CPU-sized iVideoGPT at 64x64), ``spec`` (the "64" tokenizer and "138M"
    transformer) or a checkpoint directory of ``sb3wm pretrain ivideogpt``."""
    from sb3_worldmodels.ivideogpt import make_tokenizer_config, make_transformer_config

    if name == "tiny":
        return dict(tokenizer=make_tokenizer_config("tiny", image_size=64, patch=4),
                    transformer=make_transformer_config("tiny", max_tokens=1024))
    return None if name == "spec" else name


def _from_state(args: dict[str, Any]) -> bool:
    """Whether the agents observe the state vector (``--obs state``) rather than pixels."""
    return args.get("obs", "pixels") == "state"


def _obs_suffix(args: dict[str, Any]) -> str:
    """``"_state"`` for runs from the state vector, ``""`` from pixels (the names of earlier pixel runs)."""
    return "_state" if _from_state(args) else ""


def run_one(task: str, algo: str, seed: int, args: dict[str, Any]) -> list[dict[str, Any]]:
    """Train one (algo, seed), or resume it from its last checkpoint, and return its evaluation curve."""
    import torch

    torch.set_num_threads(args["threads"])
    spec = TASKS[task]
    model, eval_env = make_model(task, algo, seed, args)
    settings = {k: args[k] for k in ("steps", "eval_every", "eval_episodes", "learning_starts", "batch_size",
                                     "precision", "sac_train_freq", "world_model", "mbpo_kwargs")}
    settings.update(set_options(args, {"shadows": False, "obs": "pixels"}))
    steps, every = args["steps"] or spec["steps"], args["eval_every"] or spec["eval_every"]
    _, curve = learn_resumable(model, eval_env, steps, every, args["eval_episodes"],
                               {"task": task, "algo": algo, "seed": seed}, FRAMES_PER_STEP,
                               run_dir=run_dir(f"drqv2_learning_{task}{_obs_suffix(args)}", args["tag"], algo, seed),
                               settings=settings, restart=args["restart"])
    return curve


def main() -> None:
    """Run every (algo, seed) in parallel processes and write CSV, PNG and JSON."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=list(TASKS), default="cartpole_swingup")
    parser.add_argument("--algos", nargs="+", choices=["DrQv2", "SAC", "MBPO"], default=["DrQv2", "SAC"])
    parser.add_argument("--mbpo-kwargs", default="{}",
                        help='JSON of other MBPO arguments, e.g. \'{"model_warmup_updates": 200}\'')
    parser.add_argument("--world-model", default="tiny",
                        help="MBPO's world model: tiny (CPU), spec (iVideoGPT 64 + 138M) or a checkpoint directory")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                        help="DrQv2's update precision")
    parser.add_argument("--steps", type=int, default=0,
                        help="env steps (default: the task's budget, 50k = 100k frames)")
    parser.add_argument("--eval-every", type=int, default=0,
                        help="env steps between evaluations (default 5k)")
    parser.add_argument("--eval-episodes", type=int, default=10)
    parser.add_argument("--learning-starts", type=int, default=2_000, help="random seed steps of both agents")
    parser.add_argument("--batch-size", type=int, default=256, help="batch of both agents")
    parser.add_argument("--sac-train-freq", type=int, default=1,
                        help="env steps per SAC gradient step (SB3's default 1; 2 = DrQv2's update schedule, half "
                             "the CPU time)")
    parser.add_argument("--shadows", action="store_true",
                        help="render with the simulator's shadows and multisampling, as the papers did (about 4.5x "
                             "slower frames on a CPU renderer; off by default, as in the sb3wm ids)")
    parser.add_argument("--obs", choices=["pixels", "state"], default="pixels",
                        help="what both agents observe: 64x64 frames (CnnPolicy, 3 stacked) or the state vector "
                             "(MlpPolicy)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--restart", action="store_true", help="discard the runs' checkpoints and start over")
    args = parser.parse_args()
    settings = dict(vars(args))
    jobs = [(args.task, algo, seed, settings) for algo in args.algos for seed in args.seeds]
    start = time.time()
    with mp.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        curves = pool.starmap(run_one, jobs)
    rows = [row for curve in curves for row in curve]
    name = f"drqv2_learning_{args.task}{_obs_suffix(settings)}{'_' + args.tag if args.tag else ''}"
    spec = TASKS[args.task]
    state = _from_state(settings)
    seen = "state" if state else "64x64 pixels"
    write_curves(rows, name, f"{spec['env']} from {seen} (x2 = frames)")
    final = {}
    for algo in args.algos:
        mine = [r for r in rows if r["algo"] == algo]
        last = max(r["step"] for r in mine)
        vals = [r["eval_return"] for r in mine if r["step"] == last]
        final[algo] = {"step": last, "frames": last * FRAMES_PER_STEP, "mean": float(np.mean(vals)),
                       "per_seed": vals, "wall_seconds": max(r["wall_seconds"] for r in mine)}
    # the paper's figures and the target are for pixels
    summary = {"task": args.task, "env": spec["env"], "paper_drqv2_at_100k_frames": None if state else spec["paper"],
               "target": None if state else spec["target"], "settings": settings, "final": final,
               "wall_seconds": round(time.time() - start, 1)}
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
