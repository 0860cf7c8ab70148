"""Update speed of our DrQv2 against SB3's SAC ``CnnPolicy``, side by side in one run.

One update = what ``model.train(gradient_steps=1, batch_size=256)`` does: sample a batch of 256 from the
replay buffer (ours: n-step transitions of 3 stacked frames rebuilt from single stored frames; SAC: one-step
transitions of 9-channel observations from SB3's ``VecFrameStack``), then one gradient step of every network
(ours: augmentation, encoder + twin critics, actor, target critics; SAC: its default ``CnnPolicy`` with
NatureCNN extractors for actor and critic, critics, actor, entropy coefficient, target critics). Both sides
see the same 3 x 3-channel stacked frames of DMC cartpole-swingup at 84x84 and 64x64, with the same number of
threads.

The configurations are timed in interleaved rounds so that both sides meet the same machine load; a timed
update is dropped (up to ``--max-dropped`` times) when other processes used more than 10% of the machine while
it ran (the filter of ``benchmarks/update_speed.py``).

    python benchmarks/drqv2_speed.py                           # 84 and 64, ours fp32 + SAC, 2 threads
    python benchmarks/drqv2_speed.py --precision fp32 bf16     # also our bf16 autocast
    python benchmarks/drqv2_speed.py --sizes 64 --updates 5

Writes benchmarks/results/drqv2_speed.json and .md.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheeprl_speed import _busy_cpu_seconds  # noqa: E402  (machine-wide busy CPU seconds, /proc/stat)
from update_speed import gemm_peak  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
ENV_ID = "sb3wm/dmc-cartpole-swingup-v0"
BATCH = 256
FILL = 1_000  # transitions put into each replay buffer before timing


def make_ours(size: int, precision: str, channels_last: bool) -> Callable[[], None]:
    """A DrQv2 with spec defaults whose buffer holds ``FILL`` random frames; returns its one-update call."""
    import sb3_worldmodels  # noqa: F401  (registers the ids)
    from sb3_worldmodels import DrQv2

    model = DrQv2("CnnPolicy", gym.make(ENV_ID, size=size), buffer_size=10_000, seed=0,
                  policy_kwargs=dict(precision=precision, channels_last=channels_last))
    model.set_logger(_null_logger())
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (FILL + 1, 1, 3, size, size), dtype=np.uint8)
    for t in range(FILL):  # episodes of 500 steps (DMC's 1000 frames at action repeat 2), ended by truncation
        done = (t + 1) % 500 == 0
        model.replay_buffer.add(frames[t], frames[t + 1], rng.uniform(-1, 1, (1, 1)).astype(np.float32),
                                rng.normal(size=1), np.array([done]), [{"TimeLimit.truncated": done}])
    return functools.partial(model.train, gradient_steps=1, batch_size=BATCH)


def make_sac(size: int) -> Callable[[], None]:
    """SB3's SAC ``CnnPolicy`` (defaults) on 3 stacked frames, buffer of ``FILL`` random transitions."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack, VecTransposeImage

    import sb3_worldmodels  # noqa: F401

    env = VecTransposeImage(VecFrameStack(DummyVecEnv([lambda: gym.make(ENV_ID, size=size)]), 3))
    model = SAC("CnnPolicy", env, buffer_size=FILL + 10, batch_size=BATCH, seed=0)
    model.set_logger(_null_logger())
    rng = np.random.default_rng(0)
    shape = (1, *env.observation_space.shape)
    for _ in range(FILL):
        obs, nxt = (rng.integers(0, 256, shape, dtype=np.uint8) for _ in range(2))
        model.replay_buffer.add(obs, nxt, rng.uniform(-1, 1, (1, 1)).astype(np.float32), rng.normal(size=1),
                                np.array([False]), [{}])
    return lambda: model.train(gradient_steps=1, batch_size=BATCH)


def _null_logger() -> Any:
    from stable_baselines3.common.logger import configure

    return configure(None, [])


def _quiet_run(update: Callable[[], None]) -> tuple[float, bool]:
    """Wall seconds of one update and whether the rest of the machine stayed under 10% busy meanwhile."""
    busy0, own0, t = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
    update()
    wall = time.perf_counter() - t
    busy1, own1 = _busy_cpu_seconds(), time.process_time()
    other = None if busy0 is None or busy1 is None else (busy1 - busy0) - (own1 - own0)
    return wall, other is None or other <= 0.1 * wall * (os.cpu_count() or 1)


def main() -> None:
    """Time every configuration in interleaved rounds and write the JSON and Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[84, 64])
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32"],
                        help="our side's precisions (bf16 = autocast of the forward passes); SAC runs fp32")
    parser.add_argument("--no-channels-last", action="store_true",
                        help="our encoder in the default contiguous memory format instead of channels-last")
    parser.add_argument("--updates", type=int, default=20, help="timed updates per configuration")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--max-dropped", type=int, default=20,
                        help="contended updates dropped per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", default=str(RESULTS / "drqv2_speed"))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    configs: dict[tuple[int, str], Callable[[], None]] = {}
    for size in args.sizes:
        for precision in args.precision:
            configs[(size, f"DrQv2 {precision}")] = make_ours(size, precision, not args.no_channels_last)
        configs[(size, "SAC fp32")] = make_sac(size)
    flops, times, dropped = {}, {k: [] for k in configs}, dict.fromkeys(configs, 0)
    contended = dict.fromkeys(configs, 0)  # timed updates kept although other processes were busy
    for key, update in configs.items():
        for _ in range(args.warmup):
            update()
        with FlopCounterMode(display=False) as counter:
            update()
        flops[key] = counter.get_total_flops() / 1e9
    start = time.time()
    while any(len(v) < args.updates for v in times.values()):
        for key, update in configs.items():  # one update of each configuration per round
            if len(times[key]) >= args.updates:
                continue
            wall, quiet = _quiet_run(update)
            if quiet or dropped[key] >= args.max_dropped:
                times[key].append(wall)
                contended[key] += not quiet
            else:
                dropped[key] += 1
        print({f"{s} {n}": len(v) for (s, n), v in times.items()}, flush=True)

    rows = []
    for (size, name), ts in times.items():
        median = statistics.median(ts)
        sac = statistics.median(times[(size, "SAC fp32")])
        key = (size, name)
        rows.append({"input": f"{size}x{size}", "algo": name, "updates_per_second": 1.0 / median,
                     "seconds_per_update": median, "seconds_min": min(ts), "gflops_per_update": flops[key],
                     "speedup_vs_sac": sac / median, "updates_timed": len(ts),
                     "updates_dropped_for_contention": dropped[key],
                     "timed_updates_contended": contended[key], "all_seconds": ts})
    peak = gemm_peak(args.threads)
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "threads": args.threads, "batch": BATCH, "frame_stack": 3,
            "channels_last": not args.no_channels_last,
            "gemm_peak_gflops_fp32": peak, "wall_seconds": round(time.time() - start, 1),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    n_contended = sum(contended.values())
    n_timed = sum(map(len, times.values()))
    lines = [f"Batch {BATCH}, 3 stacked RGB frames, {args.threads} threads, CPU ({meta['machine']}, "
             f"{meta['cpus']} cores, fp32 GEMM peak {peak:.0f} GFLOP/s), torch {torch.__version__}; "
             f"median (and best) of {args.updates} updates per row, rows timed in interleaved rounds; "
             f"{n_contended} of {n_timed} timed updates ran while other processes kept the machine busy.",
             "", "| input | agent | updates/s | s/update (best) | GFLOP/update | vs SAC CnnPolicy |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {r['input']} | {r['algo']} | {r['updates_per_second']:.2f} | {r['seconds_per_update']:.2f} "
              f"({r['seconds_min']:.2f}) | {r['gflops_per_update']:.0f} | {r['speedup_vs_sac']:.2f}x |"
              for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
