"""Curves of stopped or unfinished benchmark runs, read from their checkpoints.

    python benchmarks/collect_curves.py drqv2_learning_cartpole_swingup --name drqv2_learning_cartpole_swingup \
        --root /path/to/copied/benchmarks/.runs --note "H100, SAC stopped at 40k steps when the lease ended"

The learning scripts write their CSV/PNG/JSON only when every run of a command has finished. A run stopped
earlier (a session or a GPU lease that ended) keeps its curve in ``<root>/<bench>/<algo>_s<seed>/state.json``
(``learning.py``'s ``learn_resumable``); this script writes those curves as ``benchmarks/results/<name>.csv`` and
``.png`` (``learning.py``'s plot; for the transfer benchmark also ``<name>_openloop.png``, its held-out world-model
error), and ``<name>.json`` with each run's last step and return, its wall time and the note, so partial figures
are kept in the same form as finished ones.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learning import RESULTS, plot, write_curves


def collect(bench_dir: Path) -> tuple[list[dict], dict[str, dict]]:
    """The curve rows of every run under ``bench_dir`` and, per run, its last evaluation and wall time."""
    rows: list[dict] = []
    last: dict[str, dict] = {}
    for state_file in sorted(bench_dir.glob("*/state.json")):
        state = json.loads(state_file.read_text())
        curve = state.get("curve", [])
        if not curve:
            continue
        rows += curve
        last[state_file.parent.name] = {"step": curve[-1]["step"], "eval_return": curve[-1]["eval_return"],
                                            "wall_seconds": round(state.get("elapsed", 0.0), 1),
                                            "settings": state.get("settings", {})}
        if "heldout_frame_mse" in curve[-1]:  # the transfer benchmark's world-model figures
            last[state_file.parent.name]["heldout_frame_mse"] = curve[-1]["heldout_frame_mse"]
    if not rows:
        raise FileNotFoundError(f"No run with an evaluation under {bench_dir} (expected <run>/state.json files).")
    return rows, last


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", help="the benchmark's folder name under the runs root")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent / ".runs")
    parser.add_argument("--name", default=None, help="results file name (default: the benchmark's)")
    parser.add_argument("--note", default="", help="where and how the runs ran, and why they stopped")
    parser.add_argument("--heldout-clips", type=Path, default=None,
                        help="transfer benchmark: its held-out clips file, for the trivial-prediction figures")
    args = parser.parse_args()
    rows, last = collect(args.root / args.bench)
    name = args.name or args.bench
    write_curves(rows, name, name.replace("_", " "))
    summary: dict = {"runs": last, "note": args.note}
    if any("heldout_frame_mse" in row for row in rows):
        references = {}
        if args.heldout_clips is not None:
            from transfer import openloop_baselines

            summary["heldout_baselines"] = openloop_baselines(str(args.heldout_clips))
            references["copy of the last observed frame"] = summary["heldout_baselines"]["copy_last_frame_mse"]
        plot(rows, RESULTS / f"{name}_openloop.png", name.replace("_", " "), key="heldout_frame_mse",
             ylabel="open-loop frame MSE, held-out clips (lower is better)", references=references)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    for run, info in last.items():
        print(f"{run}: step {info['step']}, return {info['eval_return']:.1f}, {info['wall_seconds']} s")


if __name__ == "__main__":
    main()
