"""Transfer benchmark of ContextWM / APV: pre-train on videos of other domains, fine-tune on a new task.

    # the CPU-feasible run: about 4.5 h on 2 idle cores (tiny network, clips of 16 x 25, 3040 updates per run;
    # measured with one thread: ContextDreamer 1.4 s per update, APV 0.65 s, DreamerV2 0.25 s, pre-training
    # 1.9 s (contextwm) and 1.4 s (apv) per update)
    python benchmarks/transfer.py --model-size tiny --sequence-length 25 --train-ratio 64 --pretrain-steps 2000 \\
        --steps 20000 --eval-every 2000 --seeds 0 1 --jobs 2
    # the spec's network and replay settings (on a GPU)
    python benchmarks/transfer.py --device cuda --pretrain-steps 20000 --steps 100000 --eval-every 10000 \\
        --seeds 0 1 2 --jobs 3
    # a Meta-World target (intrinsic scale 1.0 and no embedding concatenation, as the papers set them)
    python benchmarks/transfer.py --target sb3wm/metaworld-drawer-open-v0 --model-size tiny
    # plumbing check, a few minutes
    python benchmarks/transfer.py --model-size tiny --episodes-per-domain 1 --pretrain-steps 3 --steps 300 \\
        --eval-every 150 --eval-episodes 1 --batch-size 2 --sequence-length 8 --train-ratio 16 --seeds 0 1 \\
        --jobs 2 --tag smoke

The pipeline, side by side at the same env-step budget:

1. record ``--episodes-per-domain`` random-policy episodes of each source domain (``--sources``, default DMC
   walker-walk and cheetah-run) with :func:`~sb3_worldmodels.data.record_episodes` into ``--work``/videos, and add
   the real mp4 clips of :func:`~sb3_worldmodels.data.sample_videos` (each source an equal weight of the mixture);
   files already there are kept, so a re-run records nothing new;
2. pre-train action-free, once per kind the methods need (``contextwm`` with context, ``apv`` without), into
   ``--work``/pretrain/<kind>-<settings>: a re-run with the same settings resumes there (or finds it finished);
3. fine-tune on ``--target`` (default ``sb3wm/dmc-cartpole-swingup-v0``): ContextDreamer from the contextwm
   checkpoint, APV from the apv checkpoint, ContextDreamer from scratch and DreamerV2 (the plain world model of
   the papers), every (method, seed) in its own spawned process with one torch thread, evaluated (deterministic
   policy) every ``--eval-every`` env steps on ``--eval-episodes`` episodes, and checkpointed after each
   evaluation under benchmarks/.runs/: the same command given again resumes stopped runs from their last
   evaluation (``--restart`` starts them over), so the benchmark can span several sittings.

All methods share batch, sequence length, train ratio, model size and prefill; the APV-family methods use the
spec's target settings (DMC: intrinsic scale 0.1 and ``concat_embed``; Meta-World: 1.0 and no concatenation) unless
``--intrinsic-scale`` / ``--[no-]concat-embed`` say otherwise. ``--model-size`` defaults to the spec's DreamerV2
network, which is only practical on a GPU; on a CPU ``--model-size tiny`` is the feasible one.

At every evaluation the world model is also scored on fixed held-out clips of the target (random-policy episodes
recorded once into ``--work``/videos/<target>_heldout): it observes 5 frames, imagines the rest of the clip under the
recorded actions, and the per-pixel MSE of the imagined frames and the MSE of the predicted rewards are recorded
(``heldout_frame_mse``, ``heldout_reward_mse``). This measures the world model itself, which pre-training is meant to
improve, also where the returns cannot separate the methods. Read them against trivial predictions, which the JSON
records as ``heldout_baselines`` (and the plot as a dashed line): every imagined frame a copy of the last observed
one, every reward the clips' mean.

Writes, under benchmarks/results/: transfer_<target>[_<tag>].csv (target, algo, seed, step, frames, eval_return,
wall_seconds, heldout_frame_mse, heldout_reward_mse), .png (returns: mean and min/max over seeds, via
``benchmarks/learning.py``'s plot), _openloop.png (the held-out frame MSE, the same way) and .json (final return and
held-out frame MSE of each method, per seed and mean over seeds; pre-training step, final losses and time per kind;
update and interaction seconds per run; settings; wall time).

What the paper claims (ContextWM, Wu et al., NeurIPS 2023): a world model pre-trained on in-the-wild videos with a
context encoder is more sample-efficient when fine-tuned than the plain world model (DreamerV2) and than plain-WM
pre-training (APV). This benchmark runs far from the paper's scale (simulator and a few real clips instead of
Something-Something-v2, thousands instead of ~1.2M pre-training updates, a small network on CPU). Report its
figures honestly, whatever they show: whether pre-trained ContextDreamer beats the others here or not, with the
curves, the number of seeds and the budget.
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing as mp
import re
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import learn_resumable, plot, run_dir, write_curves  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SOURCES = ("sb3wm/dmc-walker-walk-v0", "sb3wm/dmc-cheetah-run-v0")
PAPER_CLAIM = ("ContextWM pre-trained on in-the-wild videos is more sample-efficient than the plain world model "
               "(DreamerV2) and than APV's plain-WM pre-training (Wu et al., NeurIPS 2023).")

#: method -> (label in the CSV / plot, algorithm class in sb3_worldmodels, pre-trained kind or None)
METHODS: dict[str, tuple[str, str, str | None]] = {
    "contextwm": ("ContextDreamer(pretrained)", "ContextDreamer", "contextwm"),
    "apv": ("APV(pretrained)", "APV", "apv"),
    "contextwm_scratch": ("ContextDreamer(scratch)", "ContextDreamer", None),
    "dreamerv2": ("DreamerV2", "DreamerV2", None),
}


def slug(env_id: str) -> str:
    """A file-name part of a gymnasium id: ``"sb3wm/dmc-cartpole-swingup-v0"`` -> ``"dmc_cartpole_swingup"``."""
    name = re.sub(r"-v\d+$", "", env_id.split("/")[-1])
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_")


def is_metaworld(env_id: str) -> bool:
    """Whether ``env_id`` is a Meta-World task (the spec's intrinsic scale and ``concat_embed`` differ there)."""
    return "metaworld" in env_id.lower()


# ------------------------------------------------------------------------------------------------ videos
def record_sources(sources: list[str], episodes: int, work: Path, seed: int) -> list[list[Path]]:
    """Record ``episodes`` random-policy episodes of every source into ``work/videos/<source>`` (files already there
    are kept). :return: one episode list per source, in order."""
    from sb3_worldmodels.data import record_episodes

    return [record_episodes(source, episodes, out_dir=work / "videos" / slug(source), seed=seed,
                            progress_bar=False) for source in sources]


def heldout_clips(target: str, work: Path, args: dict[str, Any], n_clips: int = 16, episodes: int = 4) -> Path:
    """Record ``episodes`` random-policy episodes of the target once (``work``/videos/<target>_heldout) and store
    ``n_clips`` fixed clips of ``--sequence-length`` frames from them beside that folder, in
    <target>_heldout_clips_<N>x<T>.npz: images (N, T, C, H, W) uint8, actions (N, T, A) (the action before each
    frame, 0 at the first) and rewards (N, T). :return: the clips file."""
    from sb3_worldmodels.data import NpzEpisodeDataset, record_episodes

    out = work / "videos" / f"{slug(target)}_heldout"
    paths = record_episodes(target, episodes, out_dir=out, seed=10_000 + args["pretrain_seed"], progress_bar=False)
    clips_path = out.parent / f"{out.name}_clips_{n_clips}x{args['sequence_length']}.npz"  # beside the episodes
    if not clips_path.exists():
        data = NpzEpisodeDataset(paths, clip_length=args["sequence_length"])
        rng = np.random.default_rng(args["pretrain_seed"])
        items = [data[int(i)] for i in rng.choice(len(data), n_clips, replace=False)]
        np.savez(clips_path, images=np.stack([c["image"] for c in items]).transpose(0, 1, 4, 2, 3),
                 actions=np.stack([c["action"] for c in items]), rewards=np.stack([c["reward"] for c in items]))
    return clips_path


def openloop_errors(clips_path: str, context: int = 5) -> Any:
    """``measure(model)`` for :func:`learning.learn_resumable`: the world model's open-loop prediction errors on the
    held-out clips: observe ``context`` frames, imagine the rest under the recorded actions (``predict``, eval mode),
    and compare. :return: ``heldout_frame_mse`` (per pixel, images in [0, 1]) and ``heldout_reward_mse``."""
    import torch

    clips = np.load(clips_path)
    images, actions, rewards = (torch.as_tensor(clips[k]) for k in ("images", "actions", "rewards"))

    def measure(model: Any) -> dict[str, float]:
        wm = model.policy.world_model
        dev = model.device
        frames, predicted = wm.predict(images[:, :context].to(dev), actions[:, context:].to(dev),
                                       actions[:, 1:context].to(dev))
        truth = images[:, context:].to(dev).float() / 255
        return {"heldout_frame_mse": round(float(((frames.float() / 255 - truth) ** 2).mean()), 6),
                "heldout_reward_mse": round(float(((predicted - rewards[:, context:].to(dev)) ** 2).mean()), 6)}

    return measure


def openloop_baselines(clips_path: str, context: int = 5) -> dict[str, float]:
    """What :func:`openloop_errors` would give for trivial predictions, to read its figures against: every imagined
    frame a copy of the last observed one (a world model that predicts no motion), and every reward the clips' mean
    reward."""
    clips = np.load(clips_path)
    images = clips["images"].astype(np.float32) / 255
    rewards = clips["rewards"][:, context:]
    return {"copy_last_frame_mse": round(float(((images[:, context:] - images[:, context - 1:context]) ** 2).mean()), 6),
            "mean_reward_mse": round(float(rewards.var()), 6)}


def pretrain_data(episodes: list[list[Path]], sequence_length: int, seed: int) -> Any:
    """The pre-training mixture: the episodes of each source and the real mp4 clips, one equal weight each."""
    from sb3_worldmodels.data import MixtureDataset, NpzEpisodeDataset, VideoFileDataset, sample_videos

    readers = [NpzEpisodeDataset(paths, clip_length=sequence_length) for paths in episodes]
    readers.append(VideoFileDataset(sample_videos(), clip_length=sequence_length))
    return MixtureDataset(readers, seed=seed)


def checkpoint_dir(work: Path, kind: str, args: dict[str, Any]) -> Path:
    """Where the ``kind`` checkpoint of these pre-training settings lives (other settings get other folders, since
    pre-training refuses to resume a checkpoint made with different ones)."""
    size = args["model_size"] or "spec"
    clips = f"b{args['batch_size']}x{args['sequence_length']}"
    return work / "pretrain" / f"{kind}-{size}-{clips}-s{args['pretrain_seed']}"


def pretrain_losses(out: Path) -> dict[str, float]:
    """The last logged pre-training losses of checkpoint ``out`` (every ``progress*.csv`` of its logs, the row with
    the most updates; resumed runs keep their history in ``progress.until_step_N.csv``)."""
    best: dict[str, str] = {}
    for path in sorted((out / "tb").glob("progress*.csv")):
        with open(path, newline="") as f:
            for row in csv.DictReader(f):
                if row.get("time/updates") and float(row["time/updates"]) >= float(best.get("time/updates", -1)):
                    best = row
    return {k.split("/", 1)[1]: float(v) for k, v in best.items() if k.startswith("pretrain/") and v != ""}


def pretrain_one(kind: str, episodes: list[list[Path]], out: Path, args: dict[str, Any]) -> dict[str, Any]:
    """Pre-train (or resume, or find finished) the ``kind`` checkpoint in ``out``. :return: its step, final losses
    and the seconds this call spent per update."""
    import torch

    from sb3_worldmodels.contextwm.checkpoint import read_config
    from sb3_worldmodels.pretrain import pretrain

    torch.set_num_threads(args["threads"])
    before = int(read_config(out)["step"]) if (out / "config.json").is_file() else 0
    steps = args["pretrain_steps"]
    start = time.time()
    if before < steps:  # a finished checkpoint is used as it is
        data = pretrain_data(episodes, args["sequence_length"], args["pretrain_seed"])
        pretrain(kind, data, steps, out, batch_size=args["batch_size"], sequence_length=args["sequence_length"],
                 model_size=args["model_size"], seed=args["pretrain_seed"],
                 log_interval=max(1, min(100, steps // 10)), save_interval=max(1, min(1000, steps)),
                 video_interval=0, progress_bar=False, device=args["device"])
    seconds = time.time() - start
    step = int(read_config(out)["step"])
    done = step - before
    return {"dir": str(out), "step": step, "updates_this_run": done, "seconds_this_run": round(seconds, 1),
            "seconds_per_update": round(seconds / done, 4) if done > 0 else None, "losses": pretrain_losses(out)}


# ------------------------------------------------------------------------------------------------ fine-tuning
def update_timer() -> Any:
    """A callback summing the seconds spent in ``train`` (between the end of one rollout and the start of the next,
    and after the last one) into its ``seconds`` attribute, and counting the updates made meanwhile in
    ``updates`` (a resumed run counts only its own)."""
    from stable_baselines3.common.callbacks import BaseCallback

    class UpdateTimer(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds, self._tic, self.updates, self._first = 0.0, None, 0, 0

        def _on_training_start(self) -> None:
            self._first = int(self.model._n_updates)

        def _on_step(self) -> bool:
            return True

        def _toc(self) -> None:
            if self._tic is not None:
                self.seconds += time.perf_counter() - self._tic
                self._tic = None

        def _on_rollout_end(self) -> None:
            self._tic = time.perf_counter()

        def _on_rollout_start(self) -> None:
            self._toc()

        def _on_training_end(self) -> None:
            self._toc()
            self.updates = int(self.model._n_updates) - self._first

    return UpdateTimer()


def make_model(method: str, seed: int, args: dict[str, Any], checkpoints: dict[str, str]) -> Any:
    """The agent of ``method`` on the target, with the shared settings."""
    import gymnasium as gym

    import sb3_worldmodels

    _, cls_name, kind = METHODS[method]
    steps = args["steps"]
    common = dict(seed=seed, device=args["device"], buffer_size=max(steps, 1), batch_size=args["batch_size"],
                  sequence_length=args["sequence_length"], train_ratio=args["train_ratio"],
                  learning_starts=args["learning_starts"])
    policy_kwargs: dict[str, Any] = {"model_size": args["model_size"]}
    extra: dict[str, Any] = {}
    if cls_name != "DreamerV2":
        policy_kwargs.update(intrinsic_scale=args["intrinsic_scale"], concat_embed=args["concat_embed"])
        extra["pretrained"] = checkpoints[kind] if kind else None
    cls = getattr(sb3_worldmodels, cls_name)
    return cls("CnnPolicy", gym.make(args["target"]), policy_kwargs=policy_kwargs, **common, **extra)


def run_one(method: str, seed: int, args: dict[str, Any], checkpoints: dict[str, str]) -> dict[str, Any]:
    """Fine-tune one (method, seed). :return: its evaluation curve and timings."""
    import gymnasium as gym
    import torch
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage

    import sb3_worldmodels  # noqa: F401  (registers the ids)

    torch.set_num_threads(args["threads"])
    model = make_model(method, seed, args, checkpoints)
    monitored = Monitor(gym.make(args["target"]))
    frames_per_step = int(getattr(monitored.unwrapped, "action_repeat", 1))
    eval_env: Any = DummyVecEnv([lambda: monitored])
    if isinstance(model.get_env(), VecTransposeImage):  # wrapped as SB3 wraps the training env
        eval_env = VecTransposeImage(eval_env)
    eval_env.seed(10_000 + seed)  # the evaluation episodes are the same in every run of this seed
    settings = {k: args[k] for k in ("steps", "eval_every", "eval_episodes", "model_size", "train_ratio", "batch_size",
                                     "sequence_length", "learning_starts", "intrinsic_scale", "concat_embed",
                                     "pretrain_steps", "episodes_per_domain", "sources")}
    timer = update_timer()
    start = time.time()
    model, curve = learn_resumable(model, eval_env, args["steps"], args["eval_every"], args["eval_episodes"],
                                   {"target": args["target"], "algo": METHODS[method][0], "seed": seed},
                                   frames_per_step, run_dir=run_dir(f"transfer_{slug(args['target'])}", args["tag"],
                                                                    method, seed),
                                   settings=settings, restart=args["restart"], callbacks=[timer],
                                   measure=openloop_errors(args["heldout_clips"]))
    learn_seconds = time.time() - start
    updates = timer.updates
    timing = {"method": METHODS[method][0], "seed": seed, "updates": int(model._n_updates),
              "updates_this_sitting": updates, "learn_seconds_this_sitting": round(learn_seconds, 1),
              "update_seconds_this_sitting": round(timer.seconds, 1),
              "seconds_per_update": round(timer.seconds / updates, 4) if updates else None,
              "interaction_and_eval_seconds_this_sitting": round(learn_seconds - timer.seconds, 1),
              "wall_seconds_total": curve[-1]["wall_seconds"] if curve else None,
              "frames_per_step": frames_per_step}
    print(timing, flush=True)
    return {"curve": curve, "timing": timing}


# ------------------------------------------------------------------------------------------------ main
def parse_args() -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--target", default="sb3wm/dmc-cartpole-swingup-v0",
                        help="fine-tuning task: an sb3wm/dmc-* or sb3wm/metaworld-* id")
    parser.add_argument("--sources", nargs="+", default=list(SOURCES), help="env ids recorded for pre-training")
    parser.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1])
    parser.add_argument("--jobs", type=int, default=2, help="parallel processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sb3wm_transfer"),
                        help="videos and pre-training checkpoints (reused by later runs)")
    parser.add_argument("--model-size", default=None,
                        help="tiny, XS, S, M, L, XL (default: the spec's DreamerV2 network; on CPU use tiny)")
    parser.add_argument("--episodes-per-domain", type=int, default=20, help="random-policy episodes per source")
    parser.add_argument("--pretrain-steps", type=int, default=5_000, help="pre-training updates per kind")
    parser.add_argument("--pretrain-seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20_000, help="fine-tuning env steps (DMC: x2 frames)")
    parser.add_argument("--batch-size", type=int, default=16, help="clips per update, pre-training and fine-tuning")
    parser.add_argument("--sequence-length", type=int, default=50,
                        help="frames per clip, pre-training and fine-tuning (the spec: 25 and 50)")
    parser.add_argument("--train-ratio", type=float, default=160, help="replayed steps per env step (fine-tuning)")
    parser.add_argument("--learning-starts", type=int, default=1_000,
                        help="random prefill steps (at most half of --steps)")
    parser.add_argument("--eval-every", type=int, default=2_000, help="env steps between evaluations")
    parser.add_argument("--eval-episodes", type=int, default=5)
    parser.add_argument("--intrinsic-scale", type=float, default=None,
                        help="beta of APV's video bonus (default: 0.1 on DMC, 1.0 on Meta-World, per the spec)")
    parser.add_argument("--concat-embed", action=argparse.BooleanOptionalAction, default=None,
                        help="feed the embedding to the action-conditional RSSM (default: on for DMC, off for "
                             "Meta-World, per the spec)")
    parser.add_argument("--tag", default="")
    parser.add_argument("--restart", action="store_true",
                        help="discard the fine-tuning runs' checkpoints (benchmarks/.runs/) and start them over")
    args = parser.parse_args()
    metaworld = is_metaworld(args.target)
    if args.intrinsic_scale is None:
        args.intrinsic_scale = 1.0 if metaworld else 0.1
    if args.concat_embed is None:
        args.concat_embed = not metaworld
    for name in ("episodes_per_domain", "pretrain_steps", "steps", "eval_every", "eval_episodes", "jobs"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}.")
    args.learning_starts = min(args.learning_starts, args.steps // 2)
    if args.learning_starts < args.sequence_length:
        parser.error(f"--learning-starts ({args.learning_starts}, at most half of --steps) must be >= "
                     f"--sequence-length ({args.sequence_length}); raise --steps or --learning-starts.")
    if args.eval_every > args.steps:
        parser.error(f"--eval-every ({args.eval_every}) exceeds --steps ({args.steps}): no evaluation would run.")
    if len(args.seeds) < 2:
        print("warning: fewer than 2 seeds; the issue asks for >= 2 per method", file=sys.stderr)
    return args


def main() -> None:
    """Record, pre-train, fine-tune every (method, seed) in parallel processes, and write CSV, PNG and JSON."""
    args = parse_args()
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    start = time.time()
    args.work.mkdir(parents=True, exist_ok=True)
    kinds = sorted({METHODS[m][2] for m in args.methods} - {None})  # type: ignore[type-var]
    # the source videos are only for pre-training: methods from scratch alone need none recorded
    episodes = record_sources(args.sources, args.episodes_per_domain, args.work, args.pretrain_seed) if kinds else []
    settings["heldout_clips"] = str(heldout_clips(args.target, args.work, settings))
    checkpoints = {kind: str(checkpoint_dir(args.work, kind, settings)) for kind in kinds}
    ctx = mp.get_context("spawn")
    pretrain_start = time.time()
    pretrained: dict[str, Any] = {}
    if kinds:
        with ctx.Pool(min(args.jobs, len(kinds))) as pool:
            done = pool.starmap(pretrain_one, [(k, episodes, Path(checkpoints[k]), settings) for k in kinds])
        pretrained = dict(zip(kinds, done))
    pretrain_seconds = time.time() - pretrain_start
    jobs = [(method, seed, settings, checkpoints) for method in args.methods for seed in args.seeds]
    finetune_start = time.time()
    with ctx.Pool(min(args.jobs, len(jobs))) as pool:
        results = pool.starmap(run_one, jobs)
    finetune_seconds = time.time() - finetune_start
    rows = [row for result in results for row in result["curve"]]
    name = f"transfer_{slug(args.target)}{'_' + args.tag if args.tag else ''}"
    sources = " + ".join(re.sub(r"^(dmc|metaworld)_", "", slug(s)) for s in args.sources)
    title = (f"{slug(args.target)} (model {args.model_size or 'spec'}, ratio {args.train_ratio:g}, "
             f"{len(args.seeds)} seeds)\npre-trained on {sources} + real clips")
    write_curves(rows, name, title)
    baselines = openloop_baselines(settings["heldout_clips"])
    plot(rows, RESULTS / f"{name}_openloop.png", title, key="heldout_frame_mse",
         ylabel="open-loop frame MSE, held-out clips (lower is better)",
         references={"copy of the last observed frame": baselines["copy_last_frame_mse"]})
    final = {}
    for method in args.methods:
        label = METHODS[method][0]
        mine = [r for r in rows if r["algo"] == label]
        last = max(r["step"] for r in mine)
        vals = [r["eval_return"] for r in mine if r["step"] == last]
        final[label] = {"step": last, "frames": max(r["frames"] for r in mine), "mean": float(np.mean(vals)),
                        "per_seed": vals}
        mse = [r["heldout_frame_mse"] for r in mine if r["step"] == last and r.get("heldout_frame_mse") is not None]
        if mse:
            final[label]["heldout_frame_mse_mean"] = float(np.mean(mse))
    summary = {"target": args.target, "paper_claim": PAPER_CLAIM, "final": final, "heldout_baselines": baselines,
               "pretraining": pretrained,
               "runs": [result["timing"] for result in results], "settings": settings,
               "pretrain_wall_seconds": round(pretrain_seconds, 1),
               "finetune_wall_seconds": round(finetune_seconds, 1), "wall_seconds": round(time.time() - start, 1)}
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
