"""The state of a Dreamer-family run checkpoint: world-model and behaviour losses on replayed windows, the actor's
spread, predicted against replayed rewards, and the values.

    python benchmarks/dreamer_state.py benchmarks/.runs/learning_pendulum_tiny_r512_official/DreamerV2_s0 \\
        --env Pendulum-v1 --out dreamer_state_pendulum_v2

Reads ``model.zip`` and ``replay.pkl`` of a ``learning.py`` / ``transfer.py`` run directory (the algorithm class is
read from the zip), samples ``--batch`` windows of ``--length`` steps (seeded), runs the world-model loss and one
``ActorCritic.losses`` in imagination, and prints (and with ``--out`` writes to benchmarks/results/<out>.json) the
metrics: what tells a world model that fits from an actor that has collapsed.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"


def algorithm_class(model_zip: Path) -> Any:
    """The sb3_worldmodels class that saved ``model_zip``, from its policy's module and its ``policy_kwargs``."""
    import sb3_worldmodels

    data = json.loads(zipfile.ZipFile(model_zip).read("data"))
    module = str(data.get("policy_class", {}).get("__module__", ""))
    kwargs = data.get("policy_kwargs", {})
    if module.startswith("sb3_worldmodels.contextwm"):
        name = "ContextDreamer" if kwargs.get("context") else "APV"
    elif module.startswith("sb3_worldmodels.dreamer"):
        version = "DreamerV2" if kwargs.get("version") == "v2" else "DreamerV3"
        name = "DreamerHarmony" if kwargs.get("harmony") else version
    else:
        raise ValueError(f"{model_zip} was not saved by a Dreamer-family algorithm of sb3_worldmodels ({module}).")
    return getattr(sb3_worldmodels, name)


def state(run_dir: Path, env_id: str, batch: int, length: int, seed: int) -> dict[str, float]:
    """The metrics of the checkpoint in ``run_dir``."""
    import gymnasium as gym
    import numpy as np
    import torch

    torch.manual_seed(seed)
    np.random.seed(seed)
    cls = algorithm_class(run_dir / "model.zip")
    model = cls.load(run_dir / "model.zip", env=gym.make(env_id), device="cpu")
    model.load_replay_buffer(run_dir / "replay.pkl")
    b = model.replay_buffer.sample_sequences(batch, length)
    wm, ac = model.policy.world_model, model.policy.behavior
    with torch.no_grad():
        _, post, wm_metrics = wm.loss(b.observations, b.prev_actions, b.rewards, b.is_first, b.is_terminal,
                                      model.gamma)
        post = {k: v.detach() for k, v in post.items()}
        feat = wm.rssm.feat(post)
        dist = ac.actor_dist(feat)
        out: dict[str, float] = {f"world_model/{k}": float(v) for k, v in wm_metrics.items()}
        out["replay/reward_mean"] = float(b.rewards.mean())
        out["replay/reward_predicted_mean"] = float(wm.reward_dist(feat).mean.mean())
        out["behavior/value_posterior_mean"] = float(ac.value(feat).mean.mean())
        if hasattr(dist, "std"):
            out["behavior/actor_std_mean"] = float(dist.std.mean())
            out["behavior/actor_abs_mean"] = float(dist.mean_.abs().mean())
    _, _, behavior = ac.losses(wm, post, b.is_terminal, model.imagination_horizon, model.gamma, b.rewards, b.is_last)
    out.update({f"behavior/{k}": float(v) for k, v in behavior.items()})
    out["num_timesteps"] = float(model.num_timesteps)
    out["updates"] = float(model._n_updates)
    return out


def main() -> None:
    """Print the metrics; write them with ``--out``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path, help="a run directory holding model.zip and replay.pkl")
    parser.add_argument("--env", required=True, help="the run's gymnasium id")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="write benchmarks/results/<out>.json")
    args = parser.parse_args()
    metrics = state(args.run_dir, args.env, args.batch, args.length, args.seed)
    for key, value in metrics.items():
        print(f"{key}: {value:.4g}")
    if args.out:
        record = {"run_dir": str(args.run_dir), "env": args.env, "batch": args.batch, "length": args.length,
                  "seed": args.seed, "metrics": metrics}
        (RESULTS / f"{args.out}.json").write_text(json.dumps(record, indent=1) + "\n")


if __name__ == "__main__":
    main()
