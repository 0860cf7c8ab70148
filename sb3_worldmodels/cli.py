"""The ``sb3wm`` command: ``train`` any of our algorithms on a gymnasium id, ``demo`` the quick showcase.

    sb3wm demo --steps 2500 --out demo_out
    sb3wm train DreamerHarmony sb3wm/dmc-cartpole-swingup-v0 --steps 100000 --model-size S --out runs/h
    sb3wm collect-videos --env sb3wm/dmc-walker-walk-v0 --episodes 100 --policy random --out videos/walker
    sb3wm pretrain contextwm --data ssv2=/data/ssv2:list.txt --data sim=videos/walker@0.5 --steps 200000 --out ckpt/ctx
    sb3wm pretrain ivideogpt --data sim=videos/walker --steps 200000 --tokenizer-steps 100000 --out ckpt/ivg
    sb3wm predict runs/h/agent.zip --env sb3wm/dmc-cartpole-swingup-v0 --context 5 --horizon 45 --out pred.mp4
    sb3wm predict ckpt/ivg --video clip.mp4 --context 2 --horizon 14 --out pred.mp4
    sb3wm bench dreamer --model-size S --obs pixels --precision bf16
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.prediction import predict_clip, predict_video

__all__ = ["main", "train", "demo", "predict_clip", "predict_video"]

ALGOS = ("DreamerV3", "DreamerV2", "DreamerHarmony")


def _algo_class(name: str) -> Any:
    import sb3_worldmodels

    if name not in ALGOS:
        raise SystemExit(f"Unknown algorithm {name!r}; choose one of {', '.join(ALGOS)}.")
    return getattr(sb3_worldmodels, name)


def _default_policy(env: Any) -> str:
    from gymnasium import spaces

    space = env.observation_space
    if isinstance(space, spaces.Dict):
        return "MultiInputPolicy"
    return "CnnPolicy" if len(space.shape) == 3 else "MlpPolicy"


def train(
    algo: str,
    env_id: str,
    steps: int,
    out: str | Path,
    model_size: str = "S",
    seed: int = 0,
    eval_episodes: int = 5,
    algo_kwargs: dict[str, Any] | None = None,
    progress_bar: bool = True,
) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` for ``steps`` env steps, writing tensorboard logs, the agent, an
    open-loop video (image envs) and ``score.json`` (final evaluation) under ``out``.

    :return: the score record written to ``out/score.json``.
    """
    import gymnasium as gym
    from stable_baselines3.common.evaluation import evaluate_policy
    from stable_baselines3.common.monitor import Monitor

    from sb3_worldmodels.common.video import openloop_frames, write_video

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    env = gym.make(env_id)
    kwargs = dict(algo_kwargs or {})
    kwargs.setdefault("policy_kwargs", {}).setdefault("model_size", model_size)
    model = _algo_class(algo)(_default_policy(env), env, seed=seed, verbose=1, tensorboard_log=str(out / "tb"),
                              **kwargs)
    start = time.time()
    model.learn(steps, progress_bar=progress_bar, tb_log_name=algo)
    train_seconds = time.time() - start
    model.save(out / "agent.zip")
    record: dict[str, Any] = {"algo": algo, "env": env_id, "steps": steps, "model_size": model_size,
                              "train_seconds": round(train_seconds, 1), "updates": model._n_updates}
    if model.policy.world_model.images and model.replay_buffer.size() >= 32:
        batch = model.replay_buffer.sample_sequences(4, min(50, model.sequence_length * 2, model.replay_buffer.size() // 2))
        frames = openloop_frames(model.policy.world_model, batch)
        record["video"] = str(write_video(out / "openloop_real_vs_imagined.mp4", frames))
        write_video(out / "openloop_real_vs_imagined.gif", frames)
    eval_env = Monitor(gym.make(env_id))
    rewards, lengths = evaluate_policy(model, eval_env, n_eval_episodes=eval_episodes, deterministic=True,
                                       return_episode_rewards=True)
    record.update(eval_mean_return=float(np.mean(rewards)), eval_std_return=float(np.std(rewards)),
                  eval_episodes=eval_episodes, eval_mean_length=float(np.mean(lengths)))
    with atomic_path(out / "score.json") as tmp:
        tmp.write_text(json.dumps(record, indent=2))
    return record


def demo(steps: int = 2500, out: str | Path = "demo_out", model_size: str = "XS", eval_episodes: int = 2) -> dict:
    """The quick showcase: DreamerHarmony on DMC cartpole-swingup from 64x64 pixels for a short budget."""
    return train(
        "DreamerHarmony",
        "sb3wm/dmc-cartpole-swingup-v0",
        steps,
        out,
        model_size=model_size,
        eval_episodes=eval_episodes,
        algo_kwargs=dict(learning_starts=500, batch_size=8, sequence_length=32, train_ratio=32, video_interval=50),
    )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sb3wm`` command."""
    parser = argparse.ArgumentParser(prog="sb3wm", description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_demo = sub.add_parser("demo", help="short DreamerHarmony run on DMC cartpole-swingup pixels")
    p_demo.add_argument("--steps", type=int, default=2500)
    p_demo.add_argument("--out", default="demo_out")
    p_demo.add_argument("--model-size", default="XS")
    p_demo.add_argument("--eval-episodes", type=int, default=2)
    p_train = sub.add_parser("train", help="train an algorithm on a gymnasium id")
    p_train.add_argument("algo", choices=ALGOS)
    p_train.add_argument("env")
    p_train.add_argument("--steps", type=int, required=True)
    p_train.add_argument("--out", required=True)
    p_train.add_argument("--model-size", default="S")
    p_train.add_argument("--seed", type=int, default=0)
    p_train.add_argument("--eval-episodes", type=int, default=5)
    p_train.add_argument("--kwargs", default="{}", help='JSON of extra algorithm keywords, e.g. \'{"train_ratio": 64}\'')
    p_collect = sub.add_parser("collect-videos", help="record episodes of an env as npz files for video pre-training")
    p_collect.add_argument("--env", required=True, help="gymnasium id, e.g. sb3wm/dmc-walker-walk-v0")
    p_collect.add_argument("--episodes", type=int, required=True)
    p_collect.add_argument("--policy", default="random", help="'random' or the path of an agent saved by SB3 (.zip)")
    p_collect.add_argument("--out", required=True)
    p_collect.add_argument("--seed", type=int, default=0)
    p_collect.add_argument("--max-episode-steps", type=int, default=None)
    p_collect.add_argument("--algo", default=None, help="the agent's algorithm when it cannot be read from the zip")
    p_collect.add_argument("--env-kwargs", default="{}", help='JSON of gym.make keywords, e.g. \'{"size": 96}\'')
    p_predict = sub.add_parser("predict", help="video of what a world model imagines next to what happens")
    p_predict.add_argument("source", help="an agent saved by model.save (Dreamer family, APV, ContextDreamer, MBPO) "
                                          "with --env, or a checkpoint directory of sb3wm pretrain with --video")
    where = p_predict.add_mutually_exclusive_group(required=True)
    where.add_argument("--env", help="gymnasium id the agent plays, e.g. sb3wm/dmc-cartpole-swingup-v0")
    where.add_argument("--video", help="a clip to continue: an .npz episode or a video file")
    p_predict.add_argument("--context", type=int, default=None,
                           help="observed frames before imagination starts (default 5 with --env, 2 with --video)")
    p_predict.add_argument("--horizon", type=int, default=None, help="imagined frames (default 45 / 14)")
    p_predict.add_argument("--policy", choices=["agent", "random"], default="agent", help="who acts in the episode")
    p_predict.add_argument("--seed", type=int, default=0)
    p_predict.add_argument("--out", default="prediction.mp4", help=".mp4 or .gif")
    p_predict.add_argument("--env-kwargs", default="{}", help='JSON of gym.make keywords, e.g. \'{"size": 96}\'')
    p_bench = sub.add_parser("bench", help="time an update / an imagined frame on this machine")
    p_bench.add_argument("what", choices=["dreamer", "drqv2", "ivideogpt"])
    p_bench.add_argument("--model-size", default="S", help="dreamer: tiny, XS, S, M, L, XL")
    p_bench.add_argument("--obs", choices=["pixels", "vector"], default="pixels", help="dreamer: input")
    p_bench.add_argument("--size", type=int, default=64, help="drqv2: image side (64, 84)")
    p_bench.add_argument("--tokenizer", default="64", help="ivideogpt: tokenizer preset")
    p_bench.add_argument("--transformer", default="138M", help="ivideogpt: transformer preset")
    p_bench.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="dreamer, drqv2")
    p_bench.add_argument("--repeats", type=int, default=3, help="timed repetitions after a warm-up")
    p_bench.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p_bench.add_argument("--device", default="cpu")
    from sb3_worldmodels.pretrain import add_arguments as add_pretrain_arguments

    add_pretrain_arguments(sub.add_parser("pretrain", help="pre-train an APV / ContextWM / iVideoGPT world model on "
                                          "videos (also under torchrun: python -m sb3_worldmodels.pretrain)"))
    args = parser.parse_args(argv)
    if args.command == "pretrain":
        from sb3_worldmodels.pretrain import run_from_args

        record = run_from_args(args)
    elif args.command == "collect-videos":
        from sb3_worldmodels.data import record_episodes

        paths = record_episodes(args.env, args.episodes, args.policy, args.out, seed=args.seed,
                                max_episode_steps=args.max_episode_steps, env_kwargs=json.loads(args.env_kwargs),
                                algo=args.algo)
        record = {"env": args.env, "episodes": len(paths), "out": str(args.out)}
    elif args.command == "predict" and args.env:
        record = predict_video(args.source, args.env, args.out, args.context or 5, args.horizon or 45, args.policy,
                               args.seed, json.loads(args.env_kwargs))
    elif args.command == "predict":
        record = predict_clip(args.source, args.video, args.out, args.context or 2, args.horizon or 14, args.seed)
    elif args.command == "bench":
        from sb3_worldmodels import bench

        if args.what == "dreamer":
            record = bench.dreamer_update(args.model_size, args.obs, args.repeats, args.threads, args.precision,
                                          device=args.device)
        elif args.what == "drqv2":
            record = bench.drqv2_update(args.size, args.repeats, args.threads, args.precision, args.device)
        else:
            record = bench.ivideogpt_generation(args.tokenizer, args.transformer, repeats=args.repeats,
                                                threads=args.threads, device=args.device)
    elif args.command == "demo":
        record = demo(args.steps, args.out, args.model_size, args.eval_episodes)
    else:
        record = train(args.algo, args.env, args.steps, args.out, args.model_size, args.seed, args.eval_episodes,
                       json.loads(args.kwargs))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
