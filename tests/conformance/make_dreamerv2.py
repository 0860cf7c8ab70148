"""Fixtures of the official DreamerV2 and Harmony-DreamerV2 (thuml/HarmonyDream ``wmlib-torch``) on a fixed batch.

Run in the official code's virtual environment (see ``README.md``)::

    /work/official/venv-torch/bin/python -m tests.conformance.make_dreamerv2 \
        --official /path/to/HarmonyDream/wmlib-torch

For each configuration it builds the official ``DreamerV2`` agent at a tiny size, and stores under
``fixtures/<name>.npz`` / ``.json``: the agent's initial weights, a fixed batch, the world-model loss terms, total,
posterior and gradients of every world-model parameter after one backward; the imagined trajectory of the
actor-critic from those posteriors (sampling patched to fixed noise, see ``wmlib_runner``), its λ-returns, actor
and critic losses and their gradients; and every parameter after one whole ``train`` step with the official
optimizers (world model, actor, critic, slow critic).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conformance import wmlib_runner
from tests.conformance.wmlib_runner import make_batch

#: the tiny network every configuration uses (official config keys)
TINY = {
    "task": "dmc_walker_walk",
    "render_size": [64, 64],
    "rssm.hidden": 16, "rssm.deter": 16, "rssm.stoch": 4, "rssm.discrete": 4,
    "encoder.cnn_depth": 2, "decoder.cnn_depth": 2,
    "reward_head.layers": 2, "reward_head.units": 16,
    "discount_head.layers": 2, "discount_head.units": 16,
    "actor.layers": 2, "actor.units": 16,
    "critic.layers": 2, "critic.units": 16,
    "imag_horizon": 5,
}  # fmt: skip

#: name: (config sections after ``defaults``, overrides)
CONFIGS: dict[str, tuple[list[str], dict[str, Any]]] = {
    # DMC from pixels: no continue head, free nats 1, the DMC learning rates
    "dreamerv2_dmc": (["dmc_vision"], {}),
    # the continue head (the defaults' pred_discount) with terminal steps in the batch; rewards unclipped so the
    # reward loss reads the raw rewards as ours does
    "dreamerv2_cont": ([], {"clip_rewards": "identity", "grad_heads": ["decoder", "reward", "discount"]}),
    # HarmonyDream on DreamerV2 (DMC)
    "harmony_v2_dmc": (["dmc_vision"], {"harmony": True}),
    # discrete actions (Atari-like, the defaults): a one-hot actor trained by REINFORCE against the slow critic
    "dreamerv2_discrete": ([], {"clip_rewards": "identity"}),
}
#: configurations with a discrete action space
DISCRETE = {"dreamerv2_discrete"}

B, T, A = 3, 6, 2


def run(wmlib: Any, root: Path, name: str, configuration: tuple[list[str], dict[str, Any]]) -> None:
    """Build one configuration and save its fixture."""
    sections, overrides = configuration
    discrete = name in DISCRETE
    agent, cfg = wmlib_runner.build_agent(wmlib, root, "dreamerv2.yaml", "DreamerV2", sections,
                                          {**TINY, **overrides}, A, discrete)
    out = wmlib_runner.record_agent(agent, cfg, make_batch(B, T, A, discrete=discrete))
    wmlib_runner.write(name, out, {
        "official": "thuml/HarmonyDream wmlib-torch", "config": dict(cfg.flat), "agent": "wmlib.agents.DreamerV2",
        "configs": ["defaults", *sections], "overrides": {**TINY, **overrides},
        "batch": {"B": B, "T": T, "action_dim": A}, "discrete": discrete,
        "command": "python -m tests.conformance.make_dreamerv2 --official <HarmonyDream>/wmlib-torch",
    }, root)


if __name__ == "__main__":
    wmlib_runner.cli(__doc__, "thuml/HarmonyDream's wmlib-torch folder", CONFIGS, run)
