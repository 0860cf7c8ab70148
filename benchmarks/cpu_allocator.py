"""Time per update with and without :func:`sb3_worldmodels.common.allocator.tune_cpu_allocator`, interleaved.

    python benchmarks/cpu_allocator.py --preset tiny --obs vector --threads 1 --rounds 6
    python benchmarks/cpu_allocator.py --algo drqv2 --obs 64 --threads 2 --out cpu_allocator_drqv2_64

Each round runs two fresh processes, one with glibc's default ``malloc`` settings and one with the package's
(the order alternates between rounds so that load from other processes falls on both alike); each builds the same
agent on ``sb3_worldmodels.bench``'s synthetic data (``--algo dreamer``: a DreamerV3 update at 16 x 64, horizon 15;
``--algo drqv2``: a DrQ-v2 update at batch 256) and reports the median of ``--updates`` timed updates. Writes
benchmarks/results/<out>.json (default ``cpu_allocator_dreamer_<preset>_<obs>`` or ``cpu_allocator_drqv2_<obs>``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"

SIDE = """
import json, sys
from sb3_worldmodels import bench
from sb3_worldmodels.common import allocator
tuned = {tuned} and allocator.tune_cpu_allocator("cpu")
if "{algo}" == "dreamer":
    out = bench.dreamer_update("{preset}", "{obs}", updates={updates}, threads={threads})
else:
    out = bench.drqv2_update(int("{obs}"), updates={updates}, threads={threads})
print(json.dumps({{"tuned": bool(tuned), **out}}))
"""


def run_side(tuned: bool, args: argparse.Namespace) -> dict:
    """One process: build the agent, time its updates, with or without the allocator settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_")}
    code = SIDE.format(tuned=tuned, algo=args.algo, preset=args.preset, obs=args.obs, updates=args.updates,
                       threads=args.threads)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--algo", choices=["dreamer", "drqv2"], default="dreamer")
    parser.add_argument("--preset", default="tiny", help="Dreamer model_size")
    parser.add_argument("--obs", default="vector", help="dreamer: vector or pixels; drqv2: the image size")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--updates", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    times: dict[str, list[float]] = {"default": [], "tuned": []}
    for r in range(args.rounds):
        for tuned in ((False, True) if r % 2 == 0 else (True, False)):
            side = run_side(tuned, args)
            if tuned and not side["tuned"]:
                sys.exit("the allocator settings could not be applied here (not glibc?): nothing to compare")
            times["tuned" if tuned else "default"].append(side["seconds_median"])
            print(f"round {r}: {'tuned' if tuned else 'default'} {side['seconds_median']:.3f} s/update", flush=True)
    med = {k: statistics.median(v) for k, v in times.items()}
    result = {"algo": args.algo, "preset": args.preset, "obs": args.obs, "threads": args.threads,
              "updates_per_side": args.updates, "rounds": args.rounds, "seconds_per_update": times,
              "median": med, "tuned_over_default": med["tuned"] / med["default"]}
    print(json.dumps(result, indent=1))
    default = f"dreamer_{args.preset}_{args.obs}" if args.algo == "dreamer" else f"drqv2_{args.obs}"
    name = args.out or f"cpu_allocator_{default}"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
