"""Update speed of our DreamerV3 against sheeprl 0.8.4's DreamerV3, side by side in one run.

One full update = world model + actor + critic, batch 16 x 64, imagination horizon 15, 2 threads, for the S
and XS presets on vector (Pendulum-sized, 3-d) and 64x64x3 pixel input. Our side runs in fp32 and, in the same
run, with ``precision="bf16"`` (bf16 autocast, fp32 weights and optimizer); sheeprl runs fp32. We also report
model FLOP utilisation: FLOPs per update (torch.utils.flop_counter) / time / this machine's GEMM peak in that
precision, measured in the same run.

    python benchmarks/update_speed.py                  # ours + sheeprl (installs sheeprl in its own venv)
    python benchmarks/update_speed.py --no-sheeprl     # ours only
    python benchmarks/update_speed.py --presets XS --obs vector --updates 5

Writes benchmarks/results/update_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch.utils.flop_counter import FlopCounterMode

from sb3_worldmodels.bench import synthetic_batch  # the same synthetic batch as `sb3wm bench dreamer`

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sheeprl_speed import _busy_cpu_seconds  # noqa: E402  (machine-wide busy CPU seconds, /proc/stat)

RESULTS = Path(__file__).resolve().parent / "results"


def gemm_peak(threads: int, n: int = 2048, reps: int = 10, dtype: torch.dtype = torch.float32) -> float:
    """GEMM GFLOP/s of this machine at ``threads`` threads in ``dtype`` (best of ``reps``)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    best = 0.0
    for _ in range(reps):
        t = time.perf_counter()
        a @ b
        best = max(best, 2 * n**3 / (time.perf_counter() - t) / 1e9)
    return best


def ours(preset: str, obs: str, updates: int, threads: int, batch: int = 16, length: int = 64,
         horizon: int = 15, precision: str = "fp32") -> dict[str, Any]:
    """Seconds per full update of our DreamerV3 policy (median over ``updates`` after one warm-up)."""
    from sb3_worldmodels.dreamer.policies import DreamerPolicy

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    space = spaces.Box(0, 255, (3, 64, 64), np.uint8) if obs == "pixels" else spaces.Box(-np.inf, np.inf, (3,), np.float32)
    policy = DreamerPolicy(space, spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-4, version="v3", model_size=preset,
                           precision=precision)
    data = synthetic_batch(obs, batch, length)
    policy.train_step(data, horizon, 0.997)  # warm-up
    with FlopCounterMode(display=False) as counter:
        policy.train_step(data, horizon, 0.997)
    flops = counter.get_total_flops()
    # Other processes on the machine slow a 2-thread GEMM-bound update many times over: time updates until
    # ``updates`` of them ran while the rest of the machine used < 10% of the CPU (as the sheeprl side does).
    times, dropped = [], 0
    while len(times) < updates and dropped < 10 * updates:
        busy0, own0, t = _busy_cpu_seconds(), time.process_time(), time.perf_counter()
        policy.train_step(data, horizon, 0.997)
        wall = time.perf_counter() - t
        busy1, own1 = _busy_cpu_seconds(), time.process_time()
        other = None if busy0 is None or busy1 is None else (busy1 - busy0) - (own1 - own0)
        if other is not None and other > 0.1 * wall * (os.cpu_count() or 1):
            dropped += 1
            continue
        times.append(wall)
    if not times:
        raise RuntimeError("every timed update ran beside other busy processes; run on a quiet machine")
    return {"side": "ours", "preset": preset, "obs": obs, "seconds_per_update": statistics.median(times),
            "seconds_min": min(times), "all_seconds": times, "updates_timed": len(times), "updates_dropped_for_contention": dropped, "gflops_per_update": flops / 1e9,
            "threads": threads, "batch": batch, "length": length, "horizon": horizon, "precision": precision}


def main() -> None:
    """Run the comparison and write the JSON and Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["XS", "S"])
    parser.add_argument("--obs", nargs="+", default=["vector", "pixels"])
    parser.add_argument("--updates", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-sheeprl", action="store_true")
    parser.add_argument("--sheeprl-updates", type=int, default=8)
    parser.add_argument("--precision", nargs="+", choices=["fp32", "bf16"], default=["fp32", "bf16"],
                        help="our side's precisions (bf16 = autocast); sheeprl always runs fp32")
    parser.add_argument("--out", default=str(RESULTS / "update_speed"))
    args = parser.parse_args()

    peaks = {"fp32": gemm_peak(args.threads), "bf16": gemm_peak(args.threads, dtype=torch.bfloat16)}
    rows: list[dict[str, Any]] = []
    for preset in args.presets:
        for obs in args.obs:
            peer = None
            if not args.no_sheeprl:
                from sheeprl_speed import DEFAULT_VENV, ensure_venv, run_sheeprl

                ensure_venv(DEFAULT_VENV)
                peer = run_sheeprl(preset, obs, args.sheeprl_updates, DEFAULT_VENV, retries=2)
                print(f"sheeprl {preset:3s} {obs:7s} {peer['seconds_per_update']:.3f} s/update", flush=True)
            for precision in args.precision:
                row = ours(preset, obs, args.updates, args.threads, precision=precision)
                row["mfu"] = row["gflops_per_update"] / row["seconds_per_update"] / peaks[precision]
                print(f"ours    {preset:3s} {obs:7s} {precision} {row['seconds_per_update']:.3f} s/update "
                      f"({row['gflops_per_update']:.0f} GFLOP, MFU {row['mfu']:.1%})", flush=True)
                if peer is not None:
                    row["sheeprl_seconds_per_update"] = peer["seconds_per_update"]
                    row["sheeprl"] = peer
                    row["ratio_to_sheeprl"] = row["seconds_per_update"] / peer["seconds_per_update"]
                    print(f"        ours/sheeprl = {row['ratio_to_sheeprl']:.2f}", flush=True)
                rows.append(row)
    meta = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__,
            "threads": args.threads, "gemm_peak_gflops_fp32": peaks["fp32"], "gemm_peak_gflops_bf16": peaks["bf16"],
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"sheeprl fp32, {args.threads} threads, batch 16 x 64, horizon 15; GEMM peak {peaks['fp32']:.0f} GFLOP/s fp32, "
             f"{peaks['bf16']:.0f} GFLOP/s bf16 (MFU is against the peak of the row's precision); torch {torch.__version__}",
             "", "| preset | input | ours precision | ours s/update | GFLOP/update | MFU | sheeprl s/update | ours / sheeprl |",
             "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peer = r.get("sheeprl_seconds_per_update")
        peer_txt = "" if peer is None else f"{peer:.2f}"
        ratio_txt = "" if peer is None else f"{r['ratio_to_sheeprl']:.2f}"
        lines.append(f"| {r['preset']} | {r['obs']} | {r['precision']} | {r['seconds_per_update']:.2f} | {r['gflops_per_update']:.0f} | "
                     f"{r['mfu']:.1%} | {peer_txt} | {ratio_txt} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
