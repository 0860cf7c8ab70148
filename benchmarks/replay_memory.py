"""Replay memory: bytes per 64x64x3 step (ours vs SB3's ReplayBuffer) and the RSS of a memmap buffer.

    python benchmarks/replay_memory.py                    # bytes/step + 1M-step memmap fill
    python benchmarks/replay_memory.py --steps 200000     # a shorter fill

Writes benchmarks/results/replay_memory.json. RSS is read from /proc/self/status: RssAnon (private memory,
what a run really holds) and RssFile (file pages of the memmap that the kernel keeps mapped; reclaimable).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces
from stable_baselines3.common.buffers import ReplayBuffer

from sb3_worldmodels.common.buffers import SequenceReplayBuffer

RESULTS = Path(__file__).resolve().parent / "results"
OBS = spaces.Box(0, 255, (3, 64, 64), np.uint8)
ACT = spaces.Box(-1, 1, (6,), np.float32)


def rss_kb() -> dict[str, int]:
    """RssAnon / RssFile / VmRSS of this process in kB."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key = line.split(":")[0]
        if key in ("RssAnon", "RssFile", "VmRSS", "VmHWM"):
            out[key] = int(line.split()[1])
    return out


def bytes_per_step() -> dict[str, float]:
    """Stored bytes per step: ours (nbytes_per_step) and SB3's ReplayBuffer (obs + next_obs + the rest)."""
    ours = SequenceReplayBuffer(1000, OBS, ACT, device="cpu")
    sb3 = ReplayBuffer(1000, OBS, ACT, device="cpu")
    sb3_bytes = sum(a.nbytes for a in (sb3.observations, sb3.next_observations, sb3.actions, sb3.rewards, sb3.dones,
                                       sb3.timeouts)) / 1000
    return {"ours_bytes_per_step": float(ours.nbytes_per_step), "sb3_bytes_per_step": float(sb3_bytes)}


def memmap_fill(steps: int, every: int) -> dict[str, Any]:
    """Fill a memmap buffer of ``steps`` rows with pixel steps and sample from it; RSS along the way."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (64, 1, 3, 64, 64), dtype=np.uint8)
    action = np.zeros((1, 6), np.float32)
    curve = []
    with tempfile.TemporaryDirectory(dir=Path.cwd()) as tmp:
        buf = SequenceReplayBuffer(steps, OBS, ACT, device="cpu", memmap_dir=tmp)
        start = time.time()
        base = rss_kb()
        for t in range(steps):
            done = np.array([t % 500 == 499])
            buf.add(frames[t % 64], frames[(t + 1) % 64], action, np.zeros(1, np.float32), done, [{}])
            if (t + 1) % every == 0:
                buf.sample_sequences(16, 64)
                curve.append({"step": t + 1, "seconds": round(time.time() - start, 1), **rss_kb()})
                print(curve[-1], flush=True)
        disk = sum(p.stat().st_size for p in Path(tmp).iterdir())
    return {"steps": steps, "disk_bytes": disk, "rss_before": base, "curve": curve}


def main() -> None:
    """Run both measurements and write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=1_000_000)
    parser.add_argument("--every", type=int, default=50_000)
    parser.add_argument("--out", default=str(RESULTS / "replay_memory.json"))
    args = parser.parse_args()
    result: dict[str, Any] = bytes_per_step()
    print(result, flush=True)
    result["memmap"] = memmap_fill(args.steps, args.every)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
