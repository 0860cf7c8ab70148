"""The ``sb3wm`` command: ``train`` any of our algorithms on a gymnasium id, ``demo`` the quick showcase.

    sb3wm demo --steps 2500 --out demo_out
    sb3wm train DreamerHarmony sb3wm/dmc-cartpole-swingup-v0 --steps 100000 --model-size S --out runs/h
    sb3wm collect-videos --env sb3wm/dmc-walker-walk-v0 --episodes 100 --policy random --out videos/walker
    sb3wm pretrain contextwm --data ssv2=/data/ssv2:list.txt --data sim=videos/walker@0.5 --steps 200000 --out ckpt/ctx
    sb3wm pretrain ivideogpt --data sim=videos/walker --steps 200000 --tokenizer-steps 100000 --out ckpt/ivg
    sb3wm predict runs/h/agent.zip --env sb3wm/dmc-cartpole-swingup-v0 --context 5 --horizon 45 --out pred.mp4
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import numpy as np

from sb3_worldmodels.common.io import atomic_path

__all__ = ["main", "train", "demo", "predict_video"]

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


def predict_video(
    agent: str | Path,
    env_id: str,
    out: str | Path = "prediction.mp4",
    context: int = 5,
    horizon: int = 45,
    policy: str = "agent",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Play an episode and compare it with what the agent's world model imagines from its first frames.

    The agent (Dreamer, APV or ContextDreamer, from ``model.save``) or random actions (``policy="random"``) play
    ``context + horizon`` steps of ``env_id``; the world model sees the first ``context`` frames and imagines the
    next ``horizon`` under the actions taken (:meth:`~sb3_worldmodels.dreamer.world_model.WorldModel.predict`).
    Writes a video of real | predicted | error frames (``.mp4`` or ``.gif``) to ``out``.

    :return: a record with the video path and the PSNR (dB, frames in [0, 1]) of each imagined frame and their mean.
    """
    import tempfile

    import torch
    from gymnasium import spaces

    from sb3_worldmodels.common.video import write_video
    from sb3_worldmodels.data import load_agent, record_episodes
    from sb3_worldmodels.ivideogpt.metrics import psnr as frame_psnr

    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1, got {context} and {horizon}.")
    if policy not in ("agent", "random"):
        raise ValueError(f"policy must be 'agent' or 'random', got {policy!r}.")
    model = load_agent(agent, device="cpu")
    wm = getattr(model.policy, "world_model", None) or getattr(model, "world_model", None)  # Dreamer family / MBPO
    if wm is None or not callable(getattr(wm, "predict", None)):
        raise ValueError(f"{agent} holds a {type(model).__name__} agent without a world model; sb3wm predict takes "
                         "a DreamerV3, DreamerV2, DreamerHarmony, APV, ContextDreamer or MBPO agent.")
    model_context = getattr(getattr(wm, "tokenizer_config", None), "context_frames", None)  # IVideoGPT's fixed count
    if model_context is not None and context < model_context:
        raise ValueError(f"This world model reads {model_context} context frames; give --context {model_context} "
                         "or more.")
    with tempfile.TemporaryDirectory(prefix="sb3wm_predict_") as tmp:
        path = record_episodes(env_id, 1, model if policy == "agent" else "random", tmp, seed=seed,
                               max_episode_steps=context + horizon, env_kwargs=env_kwargs, progress_bar=False)[0]
        with np.load(path) as episode:
            frames, actions = episode["image"], episode["action"][1:]  # action t leads from frame t to t + 1
    if len(frames) < context + 1:
        raise ValueError(f"The episode ended after {len(frames) - 1} steps; give a context shorter than that.")
    horizon = min(horizon, len(frames) - context)
    real = torch.from_numpy(frames[: context + horizon]).permute(0, 3, 1, 2)  # (T, C, H, W) uint8
    if isinstance(model.action_space, spaces.Box):
        actions = model.policy.scale_action(actions.reshape(-1, *model.action_space.shape)).reshape(len(actions), -1)
    acts = torch.as_tensor(actions, dtype=torch.float32)
    first = context - (model_context or context)  # IVideoGPT sees the last of the context frames only
    predicted, _ = wm.predict(real[None, first:context], acts[None, context - 1 : context - 1 + horizon],
                              context_actions=acts[None, first : context - 1])
    video = torch.cat([real[:context], predicted[0]]).int()
    error = ((video - real.int() + 255) // 2).clamp(0, 255)
    grid = torch.cat([real.int(), video, error], -1).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    written = write_video(out, grid)
    psnr = frame_psnr(predicted[0], real[context:]).tolist()
    return {"agent": str(agent), "env": env_id, "policy": policy, "context": context, "horizon": horizon,
            "video": str(written), "psnr_per_frame": [round(v, 2) for v in psnr],
            "mean_psnr": round(float(np.mean(psnr)), 2)}


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
    p_predict = sub.add_parser("predict", help="video of what an agent's world model imagines vs what happens")
    p_predict.add_argument("agent", help="agent saved by model.save (Dreamer family, APV, ContextDreamer)")
    p_predict.add_argument("--env", required=True, help="gymnasium id, e.g. sb3wm/dmc-cartpole-swingup-v0")
    p_predict.add_argument("--context", type=int, default=5, help="observed frames before imagination starts")
    p_predict.add_argument("--horizon", type=int, default=45, help="imagined frames")
    p_predict.add_argument("--policy", choices=["agent", "random"], default="agent", help="who acts in the episode")
    p_predict.add_argument("--seed", type=int, default=0)
    p_predict.add_argument("--out", default="prediction.mp4", help=".mp4 or .gif")
    p_predict.add_argument("--env-kwargs", default="{}", help='JSON of gym.make keywords, e.g. \'{"size": 96}\'')
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
    elif args.command == "predict":
        record = predict_video(args.agent, args.env, args.out, args.context, args.horizon, args.policy, args.seed,
                               json.loads(args.env_kwargs))
    elif args.command == "demo":
        record = demo(args.steps, args.out, args.model_size, args.eval_episodes)
    else:
        record = train(args.algo, args.env, args.steps, args.out, args.model_size, args.seed, args.eval_episodes,
                       json.loads(args.kwargs))
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
