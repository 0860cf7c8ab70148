"""Fixtures of the official APV / ContextWM pre-training world model (thuml/ContextWM ``wmlib``) on a fixed batch.

Run in the official code's virtual environment (see ``README.md``)::

    /work/official/venv-torch/bin/python -m tests.conformance.make_contextwm \
        --official /path/to/thuml/ContextWM

For APV (``encoder_type/decoder_type: resnet``) and ContextWM (``ctx_resnet``, the ``contextualized`` section of
``configs/apv_pretraining.yaml``) it builds the official ``APV_Pretrain`` agent at a tiny size and stores under
``fixtures/<name>.npz`` / ``.json``: the agent's initial state dict (what ``variables.pt`` holds, BatchNorm
statistics included), a fixed batch, the loss terms (image, KL) and total of the official fp32 forward pass in
evaluation mode, the encoder output, the loss terms and the posteriors of the fp32 forward pass in training mode,
and, computed in float64 from the same weights (the fp32 gradients of this
BatchNorm ResNet are ill-conditioned: the official fp32 ones differ from the official fp64 ones by up to 1e-2
relative), the gradient of every world-model parameter after one backward and the whole state after one official
``APV_Pretrain.train`` step (Adam, clipping, weight decay). The JSON also holds the key -> shape table of the
official model at its default size (``apv_pretraining.yaml`` defaults, rssm 1024, cnn_depth 48), which the test
turns into a state dict to check that the full-size official checkpoints map into our full-size model, and the
mean / std / max of every freshly initialised parameter at that size (the official initialisation).

``fixtures/contextwm_official/`` is a checkpoint written by the official save path itself
(``APV_Pretrain.save_model(logdir)``: ``variables.pt`` plus ``rssm_variables.pt``, ``encoder_variables.pt``,
``decoder_variables.pt``) of the tiny ContextWM model above, with its initial weights: what a user downloads from
the ContextWM README, at a size a test can load.

Randomness is fixed on both sides: the one-hot samplers read :func:`~tests.conformance.common.fixed_uniform` (see
``wmlib_runner``), so does the context frame choice (``trand``: ``np.random.choice`` in
``ContextualizedResNetEncoder.get_context``) and the key/value mask of the cross-attention (``torch.rand`` in
``wmlib/nets/modules.py:random_mask``). Dropout (attention and residual, 0.1) is set to 0 after the modules exist;
BatchNorm stays in training mode as in the official training; its running statistics are set to the fixture
batch's before the weights are stored (:func:`batch_running_statistics`), so that the evaluation-mode comparison is
sensitive.
"""

from __future__ import annotations

import copy
import sys
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.conformance import wmlib_runner
from tests.conformance.common import FIXTURES, fixed_uniform

#: the tiny network of every fixture (official config keys)
TINY: dict[str, Any] = {
    "render_size": [64, 64],
    "rssm.hidden": 16, "rssm.deter": 16, "rssm.stoch": 4, "rssm.discrete": 4,
    "encoder.cnn_depth": 2, "decoder.cnn_depth": 2, "encoder_ctx.ctx_cnn_depth": 2,
}  # fmt: skip

#: name: config sections after ``defaults``
CONFIGS: dict[str, list[str]] = {
    "apv_pretrain": ["plainresnet"],
    "contextwm_pretrain": ["contextualized"],
}
OFFICIAL_CHECKPOINT = "contextwm_official"  # written from the contextwm_pretrain model

B, T, A = 3, 4, 4


def make_batch() -> dict[str, torch.Tensor]:
    """A fixed batch: smooth uint8 clips (B, T, 3, 64, 64), an episode start inside the second clip."""
    b, t, c, h, w = np.meshgrid(*(np.arange(n) for n in (B, T, 3, 64, 64)), indexing="ij")
    wave = np.sin(0.15 * (c + 1) * h + 0.2 * w + 0.7 * b + 0.5 * t) * np.cos(0.1 * w - 0.3 * t + c)
    image = np.round(127.5 * (1 + wave)).astype(np.uint8)
    is_first = np.zeros((B, T), np.float32)
    is_first[:, 0] = 1
    is_first[1, 3] = 1
    zeros = np.zeros((B, T), np.float32)
    return {k: torch.from_numpy(v) for k, v in dict(
        image=image, action=np.zeros((B, T, A), np.float32), reward=zeros, is_first=is_first,
        is_last=zeros.copy(), is_terminal=zeros.copy(),
    ).items()}


def patch_context_randomness(wmlib: Any) -> None:
    """The context frame choice and the key/value mask read :func:`fixed_uniform` (our test feeds ours the same)."""
    ctx_module = sys.modules["wmlib.nets.encoder.ctx_resnet"]

    def choice(n: int, size: int) -> np.ndarray:  # np.random.choice(T, B): a uniform timestep per sequence
        return np.minimum(np.floor(fixed_uniform((int(size),)) * n), n - 1).astype(np.int64)

    ctx_module.np = types.SimpleNamespace(random=types.SimpleNamespace(choice=choice))
    modules = sys.modules["wmlib.nets.modules"]
    random_mask = modules.random_mask

    def fixed_random_mask(x: torch.Tensor, mask_rate: float = 0.0, seq_len: Any = None) -> torch.Tensor:
        rand = torch.rand

        def fixed_rand(*shape: int, **_: Any) -> torch.Tensor:
            return torch.from_numpy(fixed_uniform(tuple(int(s) for s in shape)))

        torch.rand = fixed_rand
        try:
            return random_mask(x, mask_rate, seq_len)
        finally:
            torch.rand = rand

    modules.random_mask = fixed_random_mask


def no_dropout(module: torch.nn.Module) -> None:
    """Attention and residual dropout off (they are created by the official dummy pass, so set afterwards)."""
    for m in module.modules():
        if isinstance(m, torch.nn.MultiheadAttention):
            m.dropout = 0.0
        elif isinstance(m, torch.nn.Dropout):
            m.p = 0.0


def batch_running_statistics(agent: Any, data: dict[str, torch.Tensor]) -> None:
    """Set every BatchNorm's running statistics to those of the fixture batch (one training pass at momentum 1).

    After the official dummy pass they are those of uniform noise frames, under which the context maps of the
    smooth fixture clips nearly vanish in evaluation mode and the key/value mask changes the loss by less than its
    rounding; with the batch's statistics the evaluation-mode comparison sees the mask.
    """
    norms = [m for m in agent.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    for m in norms:
        m.momentum = 1.0
    agent.wm.train()
    with torch.no_grad():
        agent.wm.loss(data)
    for m in norms:
        m.momentum = 0.1


def build_agent(wmlib: Any, root: Path, sections: list[str], overrides: dict[str, Any]) -> tuple[Any, Any]:
    """The official ``APV_Pretrain`` agent (modules created by its own dummy pass, dropout off) and its config."""
    agent, cfg = wmlib_runner.build_agent(wmlib, root, "apv_pretraining.yaml", "APV_Pretrain", sections, overrides, A)
    no_dropout(agent)
    return agent, cfg


def default_size_tables(wmlib: Any, root: Path, sections: list[str]) -> tuple[dict[str, list[int]], dict[str, Any]]:
    """Key -> shape of the official agent's state dict at the default size (what the published checkpoints hold),
    and key -> [mean, std, max |w|] of its freshly initialised parameters (the official initialisation)."""
    agent, _ = build_agent(wmlib, root, sections, {})
    shapes = {k: list(v.shape) for k, v in agent.state_dict().items()}
    init = {k: [float(v.mean()), float(v.std()) if v.numel() > 1 else 0.0, float(v.abs().max())]
            for k, v in agent.named_parameters()}
    return shapes, init


def run(wmlib: Any, root: Path, name: str, sections: list[str]) -> None:
    """Build one configuration and save its fixture (and the official checkpoint of the ContextWM one)."""
    agent, cfg = build_agent(wmlib, root, sections, TINY)
    data = make_batch()
    batch_running_statistics(agent, data)
    init = copy.deepcopy(agent.state_dict())
    out: dict[str, Any] = {f"weights/{k}": v.numpy().copy() for k, v in init.items()}
    out.update({f"batch/{k}": v.numpy() for k, v in data.items() if k in ("image", "is_first")})

    if name == "contextwm_pretrain":
        with tempfile.TemporaryDirectory() as tmp:  # the official save path, then only the files it wrote
            agent.save_model(Path(tmp))
            target = FIXTURES / OFFICIAL_CHECKPOINT
            target.mkdir(parents=True, exist_ok=True)
            for old in target.glob("*.pt"):
                old.unlink()
            for path in sorted(Path(tmp).glob("*.pt")):
                (target / path.name).write_bytes(path.read_bytes())

    # evaluation mode first (the agent is left in it after its dummy pass; BatchNorm on its running statistics, the
    # key/value mask still applied), then the training forward pass, both in fp32 as the official code runs them
    wm = agent.wm
    wm.eval()
    with torch.no_grad():
        eval_loss, _, _, eval_metrics = wm.loss(data)
    out["wm_eval/model_loss"] = eval_loss.numpy()
    out["wm_eval/loss_image"] = np.asarray(eval_metrics["image_loss"])
    out["wm_eval/loss_kl"] = np.asarray(eval_metrics["kl_loss"])
    wm.train()
    with torch.no_grad():
        model_loss, _, outs, metrics = wm.loss(data)
    out["wm/model_loss"] = model_loss.numpy()
    out["wm/loss_kl"] = np.asarray(metrics["kl_loss"])
    out["wm/loss_image"] = np.asarray(metrics["image_loss"])
    out["wm/embed"] = outs["embed"].numpy()
    for key in ("deter", "stoch", "logit"):
        out[f"wm/post_{key}"] = outs["post"][key].numpy()
    out["wm/prior_logit"] = outs["prior"]["logit"].numpy()
    out["wm/kl_value"] = outs["kl"].numpy()

    # gradients and one whole official training step in fp64, from the same (fp32) initial weights: in fp32 the
    # gradients of this BatchNorm ResNet are ill-conditioned (the official fp32 gradients differ from the official
    # fp64 ones by up to 1e-2 relative), so a 1e-5 comparison is made where rounding does not dominate
    agent64 = agent  # (a deep copy would break the scripted GRU's parameters)
    agent64.load_state_dict(init)
    agent64.double()
    data64 = {k: v.double() for k, v in data.items()}  # 0..255 floats: preprocess leaves the dtype
    torch.set_default_dtype(torch.float64)  # the official initial states and zero actions use the default dtype
    try:
        wm64 = agent64.wm
        wm64.train()
        wm64.zero_grad(set_to_none=True)
        loss64, _, _, _ = wm64.loss(data64)
        loss64.backward()
        out["wm64/model_loss"] = loss64.detach().numpy()
        out.update(wmlib_runner.named_grads(wm64, "wm_grad/wm."))
        agent64.load_state_dict({k: v.double() if v.is_floating_point() else v for k, v in init.items()})
        agent64.init_optimizers()
        agent64.train(data64)
        out.update({f"after/{k}": v.numpy().copy() for k, v in agent64.state_dict().items()})
    finally:
        torch.set_default_dtype(torch.float32)

    shapes, init_stats = default_size_tables(wmlib, root, sections)
    meta = {
        "official": "thuml/ContextWM wmlib",
        "agent": "wmlib.agents.APV_Pretrain",
        "configs": ["defaults", *sections],
        "overrides": TINY,
        "config": dict(cfg.flat),
        "changes": ["attention and residual dropout set to 0 after the dummy pass (MultiheadAttention.dropout, "
                    "Dropout.p)", "context frame choice and key/value mask read fixed_uniform noise",
                    "BatchNorm running statistics set to the fixture batch's (one training pass at momentum 1) "
                    "before the weights are stored",
                    "gradients (wm_grad/) and the state after one step (after/) computed in float64 from the fp32 "
                    "initial weights (stored as float32); the forward outputs (wm/) in float32"],
        "batch": {"B": B, "T": T},
        "official_default_shapes": shapes,
        "official_default_init": init_stats,
        "command": "python -m tests.conformance.make_contextwm --official <thuml/ContextWM>",
    }
    wmlib_runner.write(name, out, meta, root)


if __name__ == "__main__":
    wmlib_runner.cli(__doc__, "a thuml/ContextWM checkout", CONFIGS, run, prepare=patch_context_randomness)
