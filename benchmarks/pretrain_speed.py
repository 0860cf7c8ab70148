"""Pre-training throughput (clips/s) on CPU for 1 and 2 DDP processes (torchrun, gloo), tiny and default sizes.

    python benchmarks/pretrain_speed.py                               # both sizes, 1 and 2 processes
    python benchmarks/pretrain_speed.py --sizes tiny --steps 20 --kind apv

Each run is the real entry point, ``python -m sb3_worldmodels.pretrain`` (1 process) or
``torchrun --standalone --nproc_per_node 2 -m sb3_worldmodels.pretrain`` (2 processes), one torch thread per
process, on clips of DMC cartpole-swingup recorded once in a temporary folder (random policy, npz episodes). The
global batch is the same for 1 and 2 processes (each of the 2 takes half). Throughput is the median of the per-update
``time/clips_per_second`` the run logs (data loading + forward + backward + gradient all-reduce + optimizer step;
videos and checkpoints are not timed), leaving out the first ``--warmup`` updates. The machine's load average is
recorded before and after every run: this machine is shared, so compare runs taken at similar load.
Writes benchmarks/results/pretrain_speed.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parents[1]


def record_clips(folder: Path, episodes: int, steps: int) -> None:
    """Random-policy episodes of DMC cartpole-swingup (64x64) as npz files."""
    from sb3_worldmodels.data import record_episodes

    record_episodes("sb3wm/dmc-cartpole-swingup-v0", episodes, out_dir=folder, max_episode_steps=steps,
                    progress_bar=False)


def run(kind: str, data: Path, out: Path, procs: int, size: str, steps: int, batch: int, length: int) -> float:
    """Seconds of one pre-training run (its logs land in ``out/tb``)."""
    launcher = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(procs)]
                if procs > 1 else [sys.executable])
    cmd = [*launcher, "-m", "sb3_worldmodels.pretrain", kind, "--data", f"sim={data}", "--steps", str(steps),
           "--out", str(out), "--batch-size", str(batch), "--sequence-length", str(length), "--log-interval", "1",
           "--save-interval", str(10 * steps), "--video-interval", "0", "--no-progress-bar", "--device", "cpu"]
    if size != "default":
        cmd += ["--model-size", size]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return time.perf_counter() - start


def clips_per_second(out: Path, warmup: int) -> tuple[float, int]:
    """Median per-update clips/s after ``warmup`` updates, and how many updates it is taken over."""
    rows = [r for r in csv.DictReader((out / "tb" / "progress.csv").open()) if r.get("time/clips_per_second")]
    values = [float(r["time/clips_per_second"]) for r in rows if int(r["time/updates"]) > warmup]
    return statistics.median(values), len(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", default="contextwm", choices=("contextwm", "apv"))
    parser.add_argument("--sizes", nargs="+", default=["tiny", "default"])
    parser.add_argument("--procs", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--steps", type=int, default=None, help="updates per run (default: 12 tiny, 5 others)")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=8, help="global batch")
    parser.add_argument("--sequence-length", type=int, default=25)
    args = parser.parse_args()

    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "clips"
        record_clips(data, episodes=4, steps=60)
        for size in args.sizes:
            steps = args.steps or (12 if size == "tiny" else 5)
            for procs in args.procs:
                out = Path(tmp) / f"{size}_{procs}"
                load_before = os.getloadavg()[0]
                seconds = run(args.kind, data, out, procs, size, steps, args.batch_size, args.sequence_length)
                load_after = os.getloadavg()[0]
                cps, n = clips_per_second(out, args.warmup)
                results.append(dict(size=size, processes=procs, clips_per_second=round(cps, 2),
                                    updates_per_second=round(cps / args.batch_size, 3), timed_updates=n,
                                    run_seconds=round(seconds, 1), load_before=round(load_before, 2),
                                    load_after=round(load_after, 2)))
                print(json.dumps(results[-1]), flush=True)
    import torch

    meta = dict(kind=args.kind, batch_size=args.batch_size, sequence_length=args.sequence_length,
                threads_per_process=1, cpus=os.cpu_count(), torch=torch.__version__, python=platform.python_version(),
                machine=platform.machine(), date=time.strftime("%Y-%m-%d %H:%M"))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "pretrain_speed.json").write_text(json.dumps({"meta": meta, "results": results}, indent=2))
    lines = [f"{args.kind} pre-training on CPU, global batch {args.batch_size} x {args.sequence_length} frames of "
             f"64x64, one torch thread per process, {meta['cpus']} CPUs (shared machine: load average in the table), "
             f"torch {meta['torch']}; `python benchmarks/pretrain_speed.py`.", "",
             "| size | processes | clips/s | updates/s | speed-up | load avg before / after |", "|---|---|---|---|---|---|"]
    for r in results:
        base = next((b["clips_per_second"] for b in results if b["size"] == r["size"] and b["processes"] == 1), None)
        speedup = f"{r['clips_per_second'] / base:.2f}x" if base else "-"
        lines.append(f"| {r['size']} | {r['processes']} | {r['clips_per_second']} | {r['updates_per_second']} | "
                     f"{speedup} | {r['load_before']} / {r['load_after']} |")
    (RESULTS / "pretrain_speed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
