"""A/B time per Dreamer update: the working tree against another git revision, interleaved on the same machine.

    python benchmarks/ab_speed.py --base HEAD~1 --preset tiny --obs vector --rounds 20
    python benchmarks/ab_speed.py --base main --preset XS --obs pixels --threads 2 --out ab_xs_pixels

For a change to a hot path (world-model update, imagination) on a machine that is busy with other work, where
``update_speed.py``'s absolute timings are not to be had: the base revision is checked out with ``git worktree``
into a temporary folder, and each side runs in its own process that builds the same DreamerV3 policy (same seed,
same synthetic batch as ``update_speed.py``) and times one full update (world model + actor + critic) when told
to. The two sides take turns, alternating who goes first each round, so that load from other processes falls on
both alike. Each side also reports its losses after three seeded updates, and the largest relative difference
between the sides says whether the change kept the numbers (0: identical; ~1e-6 or less: summation order). Writes benchmarks/results/<out>.json (default ``ab_<preset>_<obs>``).
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
from gymnasium import spaces
from update_speed import synthetic_batch
from sb3_worldmodels.dreamer.policies import DreamerPolicy

preset, obs, threads, horizon = sys.argv[3], sys.argv[4], int(sys.argv[5]), 15
torch.set_num_threads(threads)
torch.manual_seed(0)
space = (spaces.Box(0, 255, (3, 64, 64), np.uint8) if obs == "pixels"
         else spaces.Box(-np.inf, np.inf, (3,), np.float32))
policy = DreamerPolicy(space, spaces.Box(-1, 1, (1,), np.float32), lambda _: 1e-4, version="v3", model_size=preset)
data = synthetic_batch(obs, 16, 64)
for line in sys.stdin:
    request = line.strip()
    if request == "loss":
        out = []
        for i in range(3):
            torch.manual_seed(100 + i)
            m = policy.train_step(data, horizon, 0.997)
            out.append({k: float(m[k]) for k in ("model_loss", "critic_loss", "actor_loss") if k in m})
        print(json.dumps(out), flush=True)
    elif request == "time":
        t = time.perf_counter()
        policy.train_step(data, horizon, 0.997)
        print(json.dumps(time.perf_counter() - t), flush=True)
"""


def start(package_root: Path, args: argparse.Namespace) -> subprocess.Popen:
    """One side's worker process, importing ``sb3_worldmodels`` from ``package_root``."""
    return subprocess.Popen(
        [sys.executable, "-c", WORKER, str(package_root), str(ROOT / "benchmarks"), args.preset, args.obs,
         str(args.threads)],
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
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--obs", choices=["vector", "pixels"], default="vector")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=20, help="timed updates per side")
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
            losses = {name: ask(proc, "loss") for name, proc in sides.items()}
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
        "base": args.base, "base_commit": commit, "preset": args.preset, "obs": args.obs, "threads": args.threads,
        "rounds": args.rounds, "batch": "16 x 64", "horizon": 15,
        "seconds_per_update_median": median, "seconds_per_update_min": {k: min(v) for k, v in times.items()},
        "tree_over_base_median": median["tree"] / median["base"], "all_seconds": times,
        "losses_after_seeded_updates": losses,
        "max_relative_loss_difference": max(
            abs(a[k] - b[k]) / max(abs(a[k]), 1e-12)
            for a, b in zip(losses["base"], losses["tree"]) for k in a
        ),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    name = args.out or f"ab_{args.preset}_{args.obs}"
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    print(json.dumps({k: v for k, v in result.items() if k != "all_seconds"}, indent=2))


if __name__ == "__main__":
    main()
