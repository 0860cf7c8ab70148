"""A/B time per update: the working tree against another git revision, interleaved on the same machine.

    python benchmarks/ab_speed.py --base HEAD~1 --preset tiny --obs vector --rounds 20
    python benchmarks/ab_speed.py --base main --preset XS --obs pixels --threads 2 --out ab_xs_pixels
    python benchmarks/ab_speed.py --base HEAD~1 --algo drqv2 --obs 64 --precision bf16

For a change to a hot path (world-model update, imagination) on a machine that is busy with other work, where
``update_speed.py``'s absolute timings are not to be had: the base revision is checked out with ``git worktree``
into a temporary folder, and each side runs in its own process that builds the same agent with the same seed and
times one update when told to: ``--algo dreamer``, a DreamerV3 (or ``--version v2``) policy on ``update_speed.py``'s
synthetic batch (world model + actor + critic; ``--obs vector|pixels``, ``--preset``), or ``--algo drqv2``, the DrQv2 update of
``drqv2_speed.py`` (batch 256; ``--obs`` is the image side, 64 or 84). The two sides take turns, alternating who
goes first each round, so that load from other processes falls on both alike. Each side also reports the sum of
each parameter tensor after three seeded updates, and the largest relative difference between the sides says
whether the change kept the numbers (0: identical; ~1e-6: summation order). Both sides apply
:func:`~sb3_worldmodels.common.allocator.tune_cpu_allocator` first, as the agents do on a CPU (where the revision
has it; ``--plain-allocator`` leaves malloc's settings alone). Writes
benchmarks/results/<out>.json (default ``ab_<preset>_<obs>``, or ``ab_drqv2_<obs>``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"

# Runs in each side's process: build the policy, answer "loss" and "time" requests on stdin, one JSON line each.
WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
sys.path.insert(0, sys.argv[2])
import numpy as np, torch

algo, preset, obs, threads, precision, version = (sys.argv[3], sys.argv[4], sys.argv[5], int(sys.argv[6]), sys.argv[7],
                                                  sys.argv[8])
torch.set_num_threads(threads)
if sys.argv[9] == "tuned":  # as DreamerV3 and DrQv2 do on a CPU (a base revision from before it has none)
    try:
        from sb3_worldmodels.common.allocator import tune_cpu_allocator
        tune_cpu_allocator("cpu")
    except ImportError:
        pass
torch.manual_seed(0)
if algo == "dreamer":
    from gymnasium import spaces
    from update_speed import synthetic_batch
    from sb3_worldmodels.dreamer.policies import DreamerPolicy

    space = (spaces.Box(0, 255, (3, 64, 64), np.uint8) if obs == "pixels"
             else spaces.Box(-np.inf, np.inf, (3,), np.float32))
    policy = DreamerPolicy(space, spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-4, version=version,
                           model_size=preset, precision=precision)
    data = synthetic_batch(obs, 16, 64)
    update = lambda: policy.train_step(data, 15, 0.997 if version == "v3" else 0.99)
    params = policy.parameters
else:  # drqv2: the update drqv2_speed.py times (batch 256 from a buffer of random frames)
    from drqv2_speed import make_ours

    update = make_ours(int(obs), precision, True)
    params = update.func.__self__.policy.parameters
for line in sys.stdin:
    request = line.strip()
    if request == "check":  # parameters after three seeded updates
        for i in range(3):
            torch.manual_seed(100 + i)
            np.random.seed(100 + i)
            update()
        print(json.dumps([float(p.detach().double().sum()) for p in params()]), flush=True)
    elif request == "time":
        t = time.perf_counter()
        update()
        print(json.dumps(time.perf_counter() - t), flush=True)
"""


def start(package_root: Path, args: argparse.Namespace) -> subprocess.Popen:
    """One side's worker process, importing ``sb3_worldmodels`` from ``package_root``."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(package_root), str(ROOT / "benchmarks"), args.algo, args.preset, args.obs,
         str(args.threads), args.precision, args.version, "plain" if args.plain_allocator else "tuned"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )


def ask(proc: subprocess.Popen, request: str) -> Any:
    """Send one request to a worker and read its JSON answer."""
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(request + "\n")
    proc.stdin.flush()
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"the worker exited (code {proc.wait()}); see its error above")
    return json.loads(line)


def main() -> None:
    """Check out the base revision, run both sides in turns, and write the comparison."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="HEAD", help="git revision to compare the working tree against")
    parser.add_argument("--algo", choices=["dreamer", "drqv2"], default="dreamer")
    parser.add_argument("--preset", default="tiny", help="Dreamer model size")
    parser.add_argument("--version", choices=["v3", "v2"], default="v3", help="Dreamer version")
    parser.add_argument("--obs", default="vector", help="dreamer: vector or pixels; drqv2: image side (64, 84)")
    parser.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20, help="timed updates per side")
    parser.add_argument("--plain-allocator", action="store_true",
                        help="leave glibc's malloc settings alone (the agents tune them on a CPU: tune_cpu_allocator)")
    parser.add_argument("--out", default="")
    args = parser.parse_args()
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", args.base], check=True, capture_output=True,
                            text=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="sb3wm_ab_") as tmp:
        base_tree = Path(tmp) / "base"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), commit], check=True,
                       capture_output=True)
        try:
            sides = {"base": start(base_tree, args), "tree": start(ROOT, args)}
            checks = {name: ask(proc, "check") for name, proc in sides.items()}
            ask(sides["base"], "time"), ask(sides["tree"], "time")  # warm-up
            times: dict[str, list[float]] = {"base": [], "tree": []}
            for r in range(args.rounds):
                for name in ("base", "tree") if r % 2 == 0 else ("tree", "base"):
                    times[name].append(ask(sides[name], "time"))
            for proc in sides.values():
                assert proc.stdin is not None
                proc.stdin.close()
                proc.wait()
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], check=False,
                           capture_output=True)
    median = {k: statistics.median(v) for k, v in times.items()}
    result = {
        "base": args.base, "base_commit": commit, "algo": args.algo, "preset": args.preset, "obs": args.obs,
        "precision": args.precision, "threads": args.threads, "rounds": args.rounds,
        "allocator": "plain" if args.plain_allocator else "tuned",
        "seconds_per_update_median": median, "seconds_per_update_min": {k: min(v) for k, v in times.items()},
        "tree_over_base_median": median["tree"] / median["base"], "all_seconds": times,
        "max_relative_parameter_difference": max(
            abs(a - b) / max(abs(a), 1e-12) for a, b in zip(checks["base"], checks["tree"])
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.out or (f"ab_{args.preset}_{args.obs}" if args.algo == "dreamer" else f"ab_drqv2_{args.obs}")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "all_seconds"}, indent=2))


if __name__ == "__main__":
    main()
