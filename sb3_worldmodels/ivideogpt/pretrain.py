"""Action-free pre-training of iVideoGPT on video clips: the tokenizer first, then the transformer.

``pretrain_ivideogpt`` runs in one process or as one of ``torchrun``'s processes (DDP, gloo on CPU and NCCL on GPU;
every process reads its own part of each global batch, rank 0 logs and writes the checkpoint). It shares the data
path of :func:`sb3_worldmodels.pretrain.pretrain` (the same ``--data`` specs and the same global-batch sampler).
The spec's settings (``specs/ivideogpt.md``): segments of 16 frames with 2 context frames, AdamW at 1e-4 with a
linear warm-up (5000 updates) and cosine decay per phase, weight decay 0.01 except on embeddings, norms and biases,
gradient clipping at 1.0.

The checkpoint directory is :meth:`IVideoGPT.save_pretrained`'s (``tokenizer/`` and ``transformer/``) plus
``trainer.pt`` (step and optimizer states), written atomically; a run started again with the same ``out`` resumes.
"""

from __future__ import annotations

import gc
import math
import os
import time
from collections.abc import Sequence
from pathlib import Path

import torch
from stable_baselines3.common.utils import set_random_seed
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset

from sb3_worldmodels.common import distributed as ddp
from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.ivideogpt.config import TokenizerConfig, TransformerConfig
from sb3_worldmodels.ivideogpt.model import IVideoGPT

__all__ = ["cosine_lr", "pretrain_ivideogpt"]

TRAINER_FILE = "trainer.pt"


def cosine_lr(step: int, steps: int, lr: float, warmup: int) -> float:
    """Learning rate at ``step`` of a phase of ``steps`` updates: linear warm-up, then cosine decay to 0."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = (step - warmup) / max(steps - warmup, 1)
    return lr * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))


def _adamw(params: list[nn.Parameter], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (not on embeddings, norms and biases)."""
    decay = [p for p in params if p.dim() >= 2 and not getattr(p, "_no_decay", False)]
    rest = [p for p in params if p.dim() < 2 or getattr(p, "_no_decay", False)]
    return torch.optim.AdamW([{"params": decay, "weight_decay": weight_decay}, {"params": rest, "weight_decay": 0.0}],
                             lr=lr)


class _TokenizerLoss(nn.Module):
    def __init__(self, model: IVideoGPT) -> None:
        super().__init__()
        self.tokenizer = model.tokenizer

    def forward(self, frames: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.tokenizer.loss(frames)


class _TransformerLoss(nn.Module):
    """The transformer phase's loss; the tokenizer is held outside the module (frozen, no DDP gradients)."""

    def __init__(self, model: IVideoGPT) -> None:
        super().__init__()
        self.transformer, self.reward_head = model.transformer, model.reward_head
        object.__setattr__(self, "model", model)

    def forward(self, frames: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        return self.model.transformer_loss(frames)  # type: ignore[attr-defined]


def pretrain_ivideogpt(
    data: Dataset | str | Sequence[str],
    out: str | os.PathLike[str],
    steps: int = 2000,
    tokenizer_steps: int = 1000,
    tokenizer: TokenizerConfig | str = "64",
    transformer: TransformerConfig | str = "138M",
    batch_size: int = 16,
    sequence_length: int = 16,
    lr: float = 1e-4,
    warmup: int = 5000,
    weight_decay: float = 0.01,
    grad_clip: float = 1.0,
    seed: int = 0,
    log_interval: int = 100,
    save_interval: int = 1000,
    num_workers: int = 0,
    progress_bar: bool = True,
    device: torch.device | str = "auto",
) -> IVideoGPT:
    """Pre-train an action-free :class:`IVideoGPT` for ``steps`` updates, the first ``tokenizer_steps`` of them on
    the tokenizer.

    :param data: a clip dataset (items ``{"image": uint8 (sequence_length, H, W, 3)}``) or ``--data`` specs (see
        :func:`sb3_worldmodels.pretrain.build_dataset`); frames must have the tokenizer's size.
    :param out: checkpoint directory (resumed from when it holds one); logs go to ``out/tb``.
    :param steps: total updates, tokenizer and transformer phases together.
    :param tokenizer_steps: updates of the tokenizer phase (the transformer phase trains on its frozen tokens).
    :param tokenizer: tokenizer configuration or preset (``"64"``, ``"tiny"``).
    :param transformer: transformer configuration or preset (``"138M"``, ``"436M"``, ``"tiny"``).
    :param batch_size: global batch of clips (divisible by the number of processes).
    :param sequence_length: frames per clip (2 context + the rest predicted).
    :param warmup: linear warm-up updates of each phase (capped at the phase's length).
    :return: the model (the same on every process).
    """
    from stable_baselines3.common.logger import configure
    from tqdm import tqdm

    from sb3_worldmodels.pretrain import GlobalBatchSampler, build_dataset, to_model_input

    if not 0 <= tokenizer_steps <= steps or steps < 1:
        raise ValueError(f"Need steps >= 1 and 0 <= tokenizer_steps <= steps, got {steps} and {tokenizer_steps}.")
    info = ddp.init_distributed(device)
    wrapped: nn.Module | None = None
    try:
        if batch_size % info.world_size:
            raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the "
                             f"{info.world_size} processes; pick a multiple of {info.world_size}.")
        out = Path(out)
        dataset = build_dataset(data, sequence_length, seed) if isinstance(data, (str, list, tuple)) else data
        set_random_seed(seed)  # the same initial weights on every process
        step = 0
        if (out / TRAINER_FILE).is_file():
            model = IVideoGPT.from_pretrained(out, device=info.device)
            trainer = torch.load(out / TRAINER_FILE, map_location=info.device, weights_only=False)
            step = int(trainer["step"])
        else:
            model = IVideoGPT(tokenizer, transformer).to(info.device)
            trainer = None
        model.transformer.embed.weight._no_decay = True  # type: ignore[attr-defined]
        optimizers = {
            "tokenizer": _adamw(list(model.tokenizer.parameters()), lr, weight_decay),
            "transformer": _adamw(model.transformer_parameters(), lr, weight_decay),
        }
        if trainer is not None:
            for name, opt in optimizers.items():
                opt.load_state_dict(trainer["optimizers"][name])
        size = len(dataset)  # type: ignore[arg-type]
        sampler = GlobalBatchSampler(size, batch_size, info.rank, info.world_size, seed, start_step=step)
        loader = DataLoader(dataset, batch_size=sampler.local_batch, sampler=sampler, num_workers=num_workers,
                            pin_memory=info.device.type == "cuda")
        logger = configure(str(out / "tb"), ["stdout", "csv", "tensorboard"]) if info.is_main else None
        batches = iter(loader)
        phase, sums, window, tic = None, {}, 0, time.perf_counter()
        with tqdm(total=steps, initial=step, unit="update", disable=not (progress_bar and info.is_main),
                  desc="pretrain ivideogpt") as bar:
            while step < steps:
                now = "tokenizer" if step < tokenizer_steps else "transformer"
                if now != phase:  # a new phase: its loss module (under DDP when distributed)
                    phase = now
                    module: nn.Module = _TokenizerLoss(model) if phase == "tokenizer" else _TransformerLoss(model)
                    wrapped = module
                    if ddp.is_distributed():
                        from torch.nn.parallel import DistributedDataParallel

                        wrapped = DistributedDataParallel(
                            module, device_ids=[info.device.index] if info.device.type == "cuda" else None)
                    params = [p for p in module.parameters()]
                start, length = (0, tokenizer_steps) if phase == "tokenizer" else (tokenizer_steps,
                                                                                   steps - tokenizer_steps)
                optimizer = optimizers[phase]
                for group in optimizer.param_groups:
                    group["lr"] = cosine_lr(step - start, length, lr, min(warmup, max(length // 10, 1)))
                frames, _ = to_model_input(next(batches)["image"], info.device)
                model.train()
                assert wrapped is not None
                loss, metrics = wrapped(frames)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, grad_clip)
                optimizer.step()
                step += 1
                window += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + float(v)
                bar.update()
                if step % log_interval == 0 or step == steps or step == tokenizer_steps:
                    means = ddp.all_reduce_mean({k: v / window for k, v in sums.items()}, info.device)
                    if logger is not None:
                        for k, v in means.items():
                            logger.record(f"pretrain_{phase}/{k}", v)
                        logger.record("time/clips_per_second", window * batch_size / (time.perf_counter() - tic))
                        logger.record("time/updates", step)
                        logger.record("pretrain/lr", optimizer.param_groups[0]["lr"])
                        logger.dump(step)
                    sums, window, tic = {}, 0, time.perf_counter()
                if step % save_interval == 0 or step == steps or step == tokenizer_steps:
                    _save(model, optimizers, out, step, info)
        if logger is not None:
            logger.close()
        ddp.barrier()
        return model
    finally:
        del wrapped  # DDP's reducer holds the process group: free it before the group ends
        gc.collect()
        ddp.cleanup(info)


def _save(model: IVideoGPT, optimizers: dict[str, torch.optim.Optimizer], out: Path, step: int,
          info: ddp.DistInfo) -> None:
    """Rank 0 writes the model, then ``trainer.pt`` (the step marks a complete checkpoint); all processes wait."""
    if info.is_main:
        model.save_pretrained(out)
        with atomic_path(out / TRAINER_FILE) as tmp:
            torch.save({"step": step, "optimizers": {k: o.state_dict() for k, o in optimizers.items()}}, tmp)
    ddp.barrier()
