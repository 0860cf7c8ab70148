"""Curves of stopped or unfinished benchmark runs, read from their checkpoints.

    python benchmarks/collect_curves.py drqv2_learning_cartpole_swingup --name drqv2_learning_cartpole_swingup \
        --root /path/to/copied/benchmarks/.runs --note "H100, SAC stopped at 40k steps when the lease ended"

The learning scripts write their CSV/PNG/JSON only when every run of a command has finished. A run stopped
earlier (a session or a GPU lease that ended) keeps its curve in ``<root>/<bench>/<algo>_s<seed>/state.json``
(``learning.py``'s ``learn_resumable``); this script writes those curves as ``benchmarks/results/<name>.csv`` and
``.png`` (``learning.py``'s plot; for the transfer benchmark also ``<name>_openloop.png``, its held-out world-model
error), and ``<name>.json`` with each run's last step and return, its wall time and the note, so partial figures
are kept in the same form as finished ones.

With ``--merge`` the results already in ``benchmarks/results/<name>.csv`` and ``.json`` are kept for every run that
is not collected this time (its (algo, seed) has no curve under ``<root>/<bench>``), so runs of one benchmark that
ran in different sittings or machines, or under a ``--tag``, end in one set of figures:

    python benchmarks/collect_curves.py transfer_dmc_cartpole_swingup_scratch --name transfer_dmc_cartpole_swingup \
        --merge --heldout-clips /path/to/videos/dmc_cartpole_swingup_heldout_clips_16x25.npz --note "..."
"""

from __future__ import annotations

import argparse
import csv
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


def read_curves(path: Path) -> list[dict]:
    """The rows of a curve CSV written by ``learning.py``'s ``write_curves``, with numbers as numbers (empty cells,
    columns a run did not record, are left out of its rows)."""

    def value(text: str) -> object:
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with path.open(newline="") as f:
        return [{k: value(v) for k, v in row.items() if v != ""} for row in csv.DictReader(f)]


def merge(rows: list[dict], last: dict[str, dict], csv_path: Path,
          json_path: Path) -> tuple[list[dict], dict[str, dict], dict]:
    """Add to the collected ``rows`` and ``last`` the rows of the earlier results ``csv_path`` and the runs of
    ``json_path`` whose (algo, seed) was not collected.

    :return: the merged rows and runs, and the earlier JSON (for what else it holds).
    """
    if not csv_path.exists():
        raise FileNotFoundError(f"--merge: no earlier results at {csv_path}; run without --merge to write them.")
    earlier = json.loads(json_path.read_text()) if json_path.exists() else {}
    collected = {(row["algo"], row["seed"]) for row in rows}
    kept = [row for row in read_curves(csv_path) if (row["algo"], row["seed"]) not in collected]
    # the earlier runs' entries are keyed by their folder (<algo key>_s<seed>); a collected folder replaces its own
    runs = {run: info for run, info in earlier.get("runs", {}).items() if run not in last}
    return kept + rows, {**runs, **last}, earlier


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", help="the benchmark's folder name under the runs root")
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent / ".runs")
    parser.add_argument("--name", default=None, help="results file name (default: the benchmark's)")
    parser.add_argument("--note", default="", help="where and how the runs ran, and why they stopped")
    parser.add_argument("--heldout-clips", type=Path, default=None,
                        help="transfer benchmark: its held-out clips file, for the trivial-prediction figures")
    parser.add_argument("--merge", action="store_true",
                        help="keep the runs already in benchmarks/results/<name>.csv/.json that are not collected now")
    args = parser.parse_args()
    rows, last = collect(args.root / args.bench)
    name = args.name or args.bench
    earlier: dict = {}
    if args.merge:
        rows, last, earlier = merge(rows, last, RESULTS / f"{name}.csv", RESULTS / f"{name}.json")
    summary: dict = {"runs": last, "note": args.note}
    if "heldout_baselines" in earlier:
        summary["heldout_baselines"] = earlier["heldout_baselines"]
    if args.heldout_clips is not None:
        from transfer import openloop_baselines

        baselines = openloop_baselines(str(args.heldout_clips))
        if summary.setdefault("heldout_baselines", baselines) != baselines:
            raise ValueError(f"--merge: the held-out clips {args.heldout_clips} give other trivial-prediction figures "
                             f"({baselines}) than the earlier runs' ({summary['heldout_baselines']}): they are not "
                             "the clips the earlier runs were scored on.")
    write_curves(rows, name, name.replace("_", " "))
    if any("heldout_frame_mse" in row for row in rows):
        references = {}
        if "heldout_baselines" in summary:
            references["copy of the last observed frame"] = summary["heldout_baselines"]["copy_last_frame_mse"]
        plot(rows, RESULTS / f"{name}_openloop.png", name.replace("_", " "), key="heldout_frame_mse",
             ylabel="open-loop frame MSE, held-out clips (lower is better)", references=references)
    (RESULTS / f"{name}.json").write_text(json.dumps(summary, indent=2) + "\n")
    for run, info in last.items():
        print(f"{run}: step {info['step']}, return {info['eval_return']:.1f}, {info['wall_seconds']} s")


if __name__ == "__main__":
    main()
