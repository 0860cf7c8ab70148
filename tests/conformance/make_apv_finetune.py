"""Fixtures of the official APV / ContextWM fine-tuning (thuml/ContextWM ``wmlib``) on a fixed batch.

Run in the official code's virtual environment (see ``README.md``)::

    /work/official/venv-torch/bin/python -m tests.conformance.make_apv_finetune --official /path/to/ContextWM

For each configuration it builds the official ``APV_Finetune`` agent at a tiny size (its own dummy pass creates
the modules, fills the intrinsic bonus's queue with one point and makes the first slow-critic copy, as at the
start of every official run) and stores what :func:`tests.conformance.wmlib_runner.record_agent` records: the
stacked world model's loss terms and gradients, the actor-critic's losses and gradients on a fixed imagined
trajectory, and every parameter after one whole ``train`` step with the two official world-model optimizers.
ContextWM's context frame choice and key/value mask read the fixed noise, and its dropout is off, as in
``make_contextwm``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conformance import wmlib_runner
from tests.conformance.make_contextwm import no_dropout, patch_context_randomness
from tests.conformance.wmlib_runner import make_batch

TINY = {
    "render_size": [64, 64],
    "rssm.hidden": 16, "rssm.deter": 16, "rssm.stoch": 4, "rssm.discrete": 4,
    "af_rssm.hidden": 16, "af_rssm.deter": 16, "af_rssm.stoch": 4, "af_rssm.discrete": 4,
    "encoder.cnn_depth": 4, "encoder.res_layers": 1, "decoder.cnn_depth": 4, "decoder.res_layers": 1,
    "encoder_ctx.ctx_cnn_depth": 4, "encoder_ctx.ctx_res_layers": 1,
    "reward_head.layers": 2, "reward_head.units": 16,
    "discount_head.layers": 2, "discount_head.units": 16,
    "actor.layers": 2, "actor.units": 16,
    "critic.layers": 2, "critic.units": 16,
    "imag_horizon": 5,
    "queue_size": 64, "queue_dim": 8, "k": 4,
}  # fmt: skip

#: name: (config sections after ``defaults``, overrides)
CONFIGS: dict[str, tuple[list[str], dict[str, Any]]] = {
    # APV on DMC: free nats 1, intrinsic bonus beta 0.1, [embedding, action-free features] into the RSSM
    "apv_finetune_dmc": (["dmc_vision", "plainresnet"], {"task": "dmc_walker_walk"}),
    # APV on Meta-World: free nats 0, beta 1, no concatenation, the encoder at learning rate 0 at first
    "apv_finetune_metaworld": (["metaworld", "plainresnet"], {"task": "metaworld_door_open"}),
    # ContextWM on DMC Remastered as the README runs it (--loss_scales.reward 1.0 --loss_scales.aux_reward 1.0)
    "contextwm_finetune_dmcr": (["dmc_remastered", "contextualized"],
                                {"task": "dmcr_walker_walk", "loss_scales.reward": 1.0, "loss_scales.aux_reward": 1.0}),
}

B, T, A = 2, 7, 2


def run(wmlib: Any, root: Path, name: str, configuration: tuple[list[str], dict[str, Any]]) -> None:
    """Build one configuration and save its fixture."""
    sections, overrides = configuration
    agent, cfg = wmlib_runner.build_agent(wmlib, root, "apv_finetuning.yaml", "APV_Finetune", sections,
                                          {**TINY, **overrides}, A)
    no_dropout(agent)  # ContextWM's attention and residual dropout (0.1): off on both sides
    out = wmlib_runner.record_agent(agent, cfg, make_batch(B, T, A), float64=True)
    wmlib_runner.write(name, out, {
        "official": "thuml/ContextWM wmlib", "config": dict(cfg.flat), "agent": "wmlib.agents.APV_Finetune",
        "configs": ["defaults", *sections], "overrides": {**TINY, **overrides},
        "batch": {"B": B, "T": T, "action_dim": A},
        "command": "python -m tests.conformance.make_apv_finetune --official <ContextWM>",
        "float64": "wm_grad/, ac/, ac_grad/ and after/ were computed in float64 from the fp32 weights (the fp32 "
                   "gradients of the BatchNorm ResNet are ill-conditioned); wm/ is the fp32 forward pass",
    }, root)


if __name__ == "__main__":
    wmlib_runner.cli(__doc__, "a thuml/ContextWM checkout", CONFIGS, run, prepare=patch_context_randomness)
