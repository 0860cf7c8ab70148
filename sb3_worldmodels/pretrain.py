"""Action-free pre-training of APV / ContextWM world models on videos, on one process or many (``torchrun``)::

    python -m sb3_worldmodels.pretrain contextwm --data ssv2=/data/ssv2:list.txt --data sim=/data/dmc_npz@0.5 \\
        --steps 200000 --out ckpt/ctx
    torchrun --nproc_per_node 8 -m sb3_worldmodels.pretrain contextwm --data ... --steps 200000 --out ckpt/ctx
    sb3wm pretrain apv --data clips=videos/ --steps 1000 --out ckpt/apv --model-size tiny

Each update draws a global batch of ``batch_size`` clips of ``sequence_length`` frames and minimises image + KL
loss of the :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel`. Under ``torchrun`` the model is wrapped
in ``DistributedDataParallel`` (gloo on CPU, NCCL on GPU) and every process takes its own disjoint part of each
global batch; rank 0 logs (stdout, csv, tensorboard: losses, clips/s, reconstruction and open-loop videos) and
writes the checkpoint (:mod:`sb3_worldmodels.contextwm.checkpoint`) to ``out`` every ``save_interval`` updates. A run
started again with the same ``out`` resumes from the checkpoint there: same step, weights, optimizer, data order and
random streams, so it ends where an uninterrupted run would.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.utils import set_random_seed
from torch import Tensor, nn
from torch.utils.data import DataLoader, Dataset, Sampler

from sb3_worldmodels.common import distributed as ddp
from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.contextwm.checkpoint import (
    KINDS,
    TRAINER_FILE,
    load_pretrained,
    load_trainer_state,
    read_config,
    save_pretrained,
)
from sb3_worldmodels.contextwm.config import ContextWMConfig, config_to_dict, make_contextwm_config
from sb3_worldmodels.contextwm.world_model import VideoWorldModel
from sb3_worldmodels.dreamer.policies import _optimizer

__all__ = [
    "GlobalBatchSampler",
    "VideoLoss",
    "add_arguments",
    "build_dataset",
    "build_video_model",
    "main",
    "parse_data_spec",
    "pretrain",
    "rank_seed",
    "run_from_args",
    "to_model_input",
    "train_step",
]

_VIDEO_HELP = "name=PATH[:LIST][@WEIGHT]"


# ------------------------------------------------------------------------------------------------ data
def parse_data_spec(spec: str) -> tuple[str, Path, Path | None, float]:
    """Split a ``--data`` spec ``name=PATH[:LIST][@WEIGHT]`` into ``(name, path, list_file, weight)``.

    ``name=`` may be left out (the folder's name is used), ``LIST`` is a list file of frame folders (relative to
    ``PATH`` when it exists there), ``WEIGHT`` the sampling weight in a mixture (default 1).
    """
    name, sep, rest = spec.partition("=")
    if not sep:
        name, rest = "", spec
    weight = 1.0
    head, at, tail = rest.rpartition("@")
    if at:
        try:
            weight = float(tail)
        except ValueError as exc:
            raise ValueError(f"--data {spec!r}: the weight after '@' must be a number ({_VIDEO_HELP}).") from exc
        rest = head
    path_str, colon, list_str = rest.partition(":")
    if not path_str:
        raise ValueError(f"--data {spec!r} names no path; use {_VIDEO_HELP}, e.g. ssv2=/data/ssv2:list.txt@2.")
    path = Path(path_str)
    list_file = None
    if colon:
        list_file = path / list_str if (path / list_str).is_file() or not Path(list_str).is_file() else Path(list_str)
    return name or path.name, path, list_file, weight


def _reader_for(path: Path, list_file: Path | None, sequence_length: int) -> Dataset:
    """The clip reader of one data spec: frame folders with a list, npz episodes, or video files."""
    from sb3_worldmodels.data import FrameFolderDataset, NpzEpisodeDataset, VideoFileDataset
    from sb3_worldmodels.data.video import VIDEO_SUFFIXES

    if list_file is not None:
        return FrameFolderDataset(path, list_file, clip_length=sequence_length)
    if not path.exists():
        raise FileNotFoundError(f"--data path {path} does not exist.")
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    has_npz = any(p.suffix.lower() == ".npz" for p in files)
    has_video = any(p.suffix.lower() in VIDEO_SUFFIXES for p in files)
    if has_npz and has_video:
        raise ValueError(f"{path} holds both .npz episodes and video files; give each its own --data spec "
                         "(move one kind to another folder).")
    if has_npz:
        return NpzEpisodeDataset(path, clip_length=sequence_length)
    if has_video:
        return VideoFileDataset(path, clip_length=sequence_length)
    raise FileNotFoundError(f"{path} holds no .npz episodes and no {'/'.join(VIDEO_SUFFIXES)} videos; for folders "
                            f"of frames add the list file: {path}:list.txt ({_VIDEO_HELP}).")


def build_dataset(specs: str | Sequence[str], sequence_length: int, seed: int = 0) -> Dataset:
    """The clip dataset of ``--data`` specs (see :func:`parse_data_spec`): one reader, or a weighted mixture.

    ``LIST`` given: :class:`~sb3_worldmodels.data.FrameFolderDataset`; a folder of ``.npz``:
    :class:`~sb3_worldmodels.data.NpzEpisodeDataset`; a folder of mp4/webm/...:
    :class:`~sb3_worldmodels.data.VideoFileDataset`; several specs: a
    :class:`~sb3_worldmodels.data.MixtureDataset` with the weights. Clips are ``sequence_length`` frames, 64x64.
    """
    from sb3_worldmodels.data import MixtureDataset

    specs = [specs] if isinstance(specs, str) else list(specs)
    if not specs:
        raise ValueError(f"No data given; pass --data {_VIDEO_HELP} (repeatable).")
    parsed = [parse_data_spec(s) for s in specs]
    names = [p[0] for p in parsed]
    if len(set(names)) != len(names):
        raise ValueError(f"Data names must differ, got {names}; name each spec (name=PATH).")
    readers = [_reader_for(path, list_file, sequence_length) for _, path, list_file, _ in parsed]
    if len(readers) == 1:
        return readers[0]
    return MixtureDataset(readers, [p[3] for p in parsed], seed=seed)


def _as_dataset(data: Dataset | str | Sequence[str], sequence_length: int, seed: int) -> Dataset:
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return build_dataset(str(data), sequence_length, seed)
    if isinstance(data, Sequence) and all(isinstance(d, (str, os.PathLike)) for d in data):
        return build_dataset([str(d) for d in data], sequence_length, seed)
    raise TypeError(f"data must be a clip Dataset or --data spec strings ({_VIDEO_HELP}), got {type(data)}.")


def _image_shape(dataset: Dataset, sequence_length: int) -> tuple[int, int, int]:
    """(C, H, W) of the dataset's frames, checking that its items are uint8 clips of ``sequence_length`` frames."""
    item = dataset[0]
    image = np.asarray(item["image"] if isinstance(item, dict) else item)
    if image.ndim != 4 or image.shape[-1] != 3 or image.dtype != np.uint8:
        raise ValueError(f"Dataset items must hold 'image' uint8 (T, H, W, 3), got {image.dtype} {image.shape}.")
    if image.shape[0] != sequence_length:
        raise ValueError(f"The dataset's clips have {image.shape[0]} frames but sequence_length={sequence_length}; "
                         "build the reader with clip_length=sequence_length.")
    return 3, int(image.shape[1]), int(image.shape[2])


class GlobalBatchSampler(Sampler[int]):
    """Indices of this process's part of every global batch, from ``start_step`` on, without end.

    The dataset is walked in a fresh permutation per epoch (seeded by ``(seed, epoch)``); global batch ``s`` is
    positions ``s * global_batch ... (s + 1) * global_batch`` of that endless stream, and process ``rank`` takes
    its ``global_batch / world_size`` consecutive share (as ``DistributedSampler`` splits data, but per batch).
    The batches are a pure function of ``(seed, step)``: any number of processes see the same global batches, and a
    resumed run continues the stream where it stopped.

    :param size: items in the dataset.
    :param global_batch: clips per update over all processes.
    :param rank: this process.
    :param world_size: number of processes (must divide ``global_batch``).
    :param seed: seed of the permutations.
    :param start_step: first global batch to yield.
    """

    def __init__(self, size: int, global_batch: int, rank: int = 0, world_size: int = 1, seed: int = 0,
                 start_step: int = 0) -> None:
        if size < 1:
            raise ValueError("The dataset is empty.")
        if global_batch % world_size:
            raise ValueError(f"batch_size={global_batch} is the global batch and must be divisible by the "
                             f"{world_size} processes; pick a multiple of {world_size}.")
        self.size, self.global_batch, self.rank, self.world_size = int(size), int(global_batch), rank, world_size
        self.local_batch = self.global_batch // world_size
        self.seed, self.start_step = int(seed), int(start_step)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng((self.seed, epoch)).permutation(self.size)

    def global_indices(self, step: int) -> np.ndarray:
        """The dataset indices of global batch ``step`` (every process's part, in rank order)."""
        start = step * self.global_batch
        epoch, offset = divmod(start, self.size)
        parts, need = [], self.global_batch
        while need > 0:
            chunk = self._permutation(epoch)[offset : offset + need]
            parts.append(chunk)
            need -= len(chunk)
            epoch, offset = epoch + 1, 0
        return np.concatenate(parts)

    def local_indices(self, step: int) -> np.ndarray:
        """This process's part of global batch ``step``."""
        return self.global_indices(step)[self.rank * self.local_batch : (self.rank + 1) * self.local_batch]

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            yield from (int(i) for i in self.local_indices(step))
            step += 1


# ------------------------------------------------------------------------------------------------ model
def build_video_model(kind: str, image_shape: tuple[int, int, int], model_size: str | None = None,
                      **config_overrides: Any) -> VideoWorldModel:
    """The action-free world model to pre-train: ContextWM (``kind="contextwm"``) or APV's plain one (``"apv"``).

    :param config_overrides: any :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field (DreamerV2 base).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if "context" in config_overrides and bool(config_overrides["context"]) != (kind == "contextwm"):
        raise ValueError(f"context={config_overrides['context']} contradicts kind={kind!r}; the kind decides it.")
    config_overrides.setdefault("preset", "pretrain")  # apv_pretraining.yaml: free nats 0
    cfg = make_contextwm_config("v2", model_size, **{**config_overrides, "context": kind == "contextwm"})
    return VideoWorldModel(image_shape, cfg)


class VideoLoss(nn.Module):
    """``forward(images, is_first)`` is the pre-training loss of ``model``, so DDP can wrap it (DDP synchronises
    gradients only through ``forward``)."""

    def __init__(self, model: VideoWorldModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: Tensor, is_first: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Loss and metrics of :meth:`VideoWorldModel.loss`."""
        return self.model.loss(images, is_first)


def to_model_input(images: Tensor, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """uint8 clips (B, T, H, W, 3) from the readers -> model images (B, T, 3, H, W) and ``is_first`` (1 at t = 0)."""
    images = images.to(device, non_blocking=True).permute(0, 1, 4, 2, 3).contiguous()
    is_first = torch.zeros(images.shape[:2], device=images.device)
    is_first[:, 0] = 1.0
    return images, is_first


def train_step(loss_module: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor, is_first: Tensor,
               cfg: ContextWMConfig) -> dict[str, Tensor]:
    """One update: loss (bf16 autocast when ``cfg.precision == "bf16"``), backward (DDP averages the gradients over
    the processes), clip to ``cfg.model_grad_clip``, optimizer step. :return: detached metrics (``grad_norm`` too).
    """
    with autocast(images.device.type, cfg.precision):
        loss, metrics = loss_module(images, is_first)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    params = [p for group in optimizer.param_groups for p in group["params"]]
    metrics["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, cfg.model_grad_clip)
    optimizer.step()
    return {k: v.detach() for k, v in metrics.items()}


def rank_seed(seed: int, rank: int) -> int:
    """Seed of the random stream (latent sampling, context choice, masking) of process ``rank``."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(1)[0])


def _rng_state() -> dict[str, Any]:
    """This process's RNG states, in types ``torch.load(weights_only=True)`` reads."""
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), *np_state[2:]],
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, *rest = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), *rest))
    python = state["python"]
    random.setstate((python[0], tuple(python[1]), python[2]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _check_resume(out: Path, cfg: ContextWMConfig, kind: str, image_shape: tuple[int, ...],
                  trainer: dict[str, Any], batch_size: int, sequence_length: int, seed: int) -> None:
    """Refuse to resume with other settings than the checkpoint's (the run could not continue exactly)."""
    saved = read_config(out)
    ours = {**config_to_dict(cfg), "image_shape": list(image_shape), "kind": kind}
    run = {"batch_size": batch_size, "sequence_length": sequence_length, "seed": seed}
    diffs = [f"{k}: checkpoint {saved.get(k)!r}, now {v!r}" for k, v in ours.items() if saved.get(k) != v]
    diffs += [f"{k}: checkpoint {trainer.get(k)!r}, now {v!r}" for k, v in run.items() if trainer.get(k) != v]
    if diffs:
        raise ValueError(f"{out} holds a pre-training run with other settings, so it cannot be resumed: "
                         f"{'; '.join(diffs)}. Pass the same settings, or choose a new --out.")


def _resume_or_seed(out: Path, model: VideoWorldModel, optimizer: torch.optim.Optimizer, info: ddp.DistInfo,
                    kind: str, image_shape: tuple[int, ...], batch_size: int, sequence_length: int, seed: int,
                    dataset_size: int) -> int:
    """Restore weights, optimizer and this process's random stream from the checkpoint in ``out`` when it holds a
    trainer state, else seed this process's stream. :return: the step to start from."""
    trainer = load_trainer_state(out) if (out / TRAINER_FILE).is_file() else None
    if trainer is None:
        set_random_seed(rank_seed(seed, info.rank))
        return 0
    _check_resume(out, model.cfg, kind, image_shape, trainer, batch_size, sequence_length, seed)
    load_pretrained(model, out)
    optimizer.load_state_dict(trainer["optimizer"])
    step = int(trainer["step"])
    if trainer.get("dataset_size") != dataset_size:
        warnings.warn(f"Resuming {out} on a dataset of {dataset_size} clips; the checkpoint was trained on "
                      f"{trainer.get('dataset_size')}, so the data order differs from an uninterrupted run.",
                      stacklevel=3)
    if len(trainer["rng"]) == info.world_size:
        _set_rng_state(trainer["rng"][info.rank])
    else:
        warnings.warn(f"Resuming a {len(trainer['rng'])}-process run on {info.world_size} processes: the random "
                      "streams restart (the data order is kept).", stacklevel=3)
        set_random_seed(rank_seed(seed + step, info.rank))
    return step


def _video_grid(video: Tensor) -> np.ndarray:
    """uint8 (B, T, C, H, W') -> (T, B * H, W', C) frames, one row per clip."""
    return torch.cat(list(video), dim=-2).permute(0, 2, 3, 1).cpu().numpy()


def _log_videos(logger: Any, model: VideoWorldModel, images: Tensor, is_first: Tensor, device: torch.device) -> None:
    """Reconstruction and open-loop prediction videos of up to 4 clips (eval mode, outside the training RNG)."""
    from sb3_worldmodels.common.video import log_video

    n, length = min(4, images.shape[0]), images.shape[1]
    was_training = model.training
    model.eval()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        recon = model.openloop(images[:n], is_first[:n], context=length)
        openloop = model.openloop(images[:n], is_first[:n], context=max(1, min(5, length - 1)))
    model.train(was_training)
    log_video(logger, "pretrain/reconstruction", _video_grid(recon))
    log_video(logger, "pretrain/openloop", _video_grid(openloop))


# ------------------------------------------------------------------------------------------------ training
def pretrain(
    kind: str = "contextwm",
    data: Dataset | str | Sequence[str] = (),
    steps: int = 1000,
    out: str | os.PathLike[str] = "pretrain_out",
    batch_size: int = 16,
    sequence_length: int = 25,
    lr: float = 3e-4,
    model_size: str | None = None,
    seed: int = 0,
    log_interval: int = 100,
    save_interval: int = 1000,
    video_interval: int = 1000,
    num_workers: int = 0,
    progress_bar: bool = True,
    device: torch.device | str = "auto",
    **config_overrides: Any,
) -> VideoWorldModel:
    """Pre-train an action-free world model on video clips for ``steps`` updates; resumes from ``out`` if possible.

    Runs as one process, or as one of ``torchrun``'s processes (DDP; rank 0 logs and saves).

    :param kind: ``"contextwm"`` (context encoder + cross-attention decoder) or ``"apv"`` (plain world model).
    :param data: a clip dataset (items ``{"image": uint8 (sequence_length, H, W, 3)}``) or ``--data`` specs
        ``name=PATH[:LIST][@WEIGHT]`` (see :func:`build_dataset`).
    :param steps: total updates (a resumed run goes on up to this many).
    :param out: checkpoint directory; tensorboard / csv logs go to ``out/tb``.
    :param batch_size: global batch (clips per update over all processes; divisible by their number).
    :param sequence_length: frames per clip.
    :param lr: learning rate (``model_lr``).
    :param model_size: size preset (``"tiny"`` for tests; ``None``: the spec's DreamerV2 network).
    :param seed: seed of the initial weights, the data order and the random streams.
    :param log_interval: updates between log lines (losses averaged over them and the processes, clips/s).
    :param save_interval: updates between checkpoints (one is always written at the end).
    :param video_interval: updates between reconstruction / open-loop videos in tensorboard (0: none).
    :param num_workers: ``DataLoader`` worker processes per training process.
    :param progress_bar: show a tqdm bar on rank 0.
    :param device: ``"auto"`` (CUDA when present; ``cuda:LOCAL_RANK`` under torchrun), ``"cpu"``, ``"cuda"``...
    :param config_overrides: any :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field.
    :return: the trained model (the same on every process).
    """
    from stable_baselines3.common.logger import configure
    from tqdm import tqdm

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    for name, value in (("steps", steps), ("batch_size", batch_size), ("sequence_length", sequence_length),
                        ("log_interval", log_interval), ("save_interval", save_interval)):
        if int(value) < 1:
            raise ValueError(f"{name} must be >= 1, got {value}.")
    info = ddp.init_distributed(device)
    loss_module: nn.Module | None = None
    try:
        if batch_size % info.world_size:
            raise ValueError(f"batch_size={batch_size} is the global batch and must be divisible by the "
                             f"{info.world_size} processes; pick a multiple of {info.world_size}.")
        out = Path(out)
        dataset = _as_dataset(data, sequence_length, seed)
        image_shape = _image_shape(dataset, sequence_length)
        set_random_seed(seed)  # the same initial weights on every process
        model = build_video_model(kind, image_shape, model_size, model_lr=lr, **config_overrides).to(info.device)
        cfg = model.cfg
        optimizer = _optimizer(model.parameters(), cfg.model_lr, cfg.model_eps, cfg.weight_decay)
        size = len(dataset)  # type: ignore[arg-type]
        step = _resume_or_seed(out, model, optimizer, info, kind, image_shape, batch_size, sequence_length, seed, size)
        model.train()
        loss_module = VideoLoss(model)
        if ddp.is_distributed():
            from torch.nn.parallel import DistributedDataParallel

            loss_module = DistributedDataParallel(
                loss_module, device_ids=[info.device.index] if info.device.type == "cuda" else None,
                forward_sync_buffers=True,
            )
        sampler = GlobalBatchSampler(size, batch_size, info.rank, info.world_size, seed, start_step=step)
        loader = DataLoader(dataset, batch_size=sampler.local_batch, sampler=sampler, num_workers=num_workers,
                            pin_memory=info.device.type == "cuda", generator=torch.Generator().manual_seed(seed))
        logger = None
        if info.is_main:
            log_dir = out / "tb"
            csv_log = log_dir / "progress.csv"
            # SB3's csv writer truncates: keep the history (never overwrite a kept one, never keep an empty one)
            if step > 0 and csv_log.is_file() and csv_log.stat().st_size > 0:
                kept, n = log_dir / f"progress.until_step_{step}.csv", 1
                while kept.exists():
                    n += 1
                    kept = log_dir / f"progress.until_step_{step}.{n}.csv"
                csv_log.rename(kept)
            logger = configure(str(log_dir), ["stdout", "csv", "tensorboard"])
        sums: dict[str, Tensor] = {}
        window_steps, window_start, run_start, start_step = 0, time.perf_counter(), time.perf_counter(), step
        overhead = 0.0
        batches = iter(loader)
        with tqdm(total=steps, initial=step, unit="update", disable=not (progress_bar and info.is_main),
                  desc=f"pretrain {kind}") as bar:
            while step < steps:
                images, is_first = to_model_input(next(batches)["image"], info.device)
                metrics = train_step(loss_module, optimizer, images, is_first, cfg)
                step += 1
                window_steps += 1
                for k, v in metrics.items():
                    sums[k] = sums[k] + v.float() if k in sums else v.float()
                bar.update()
                if video_interval and step % video_interval == 0 and logger is not None:
                    tic = time.perf_counter()  # recorded now, written with the next log line
                    _log_videos(logger, model, images, is_first, info.device)
                    overhead += time.perf_counter() - tic
                if step % log_interval == 0 or step == steps:
                    means = ddp.all_reduce_mean({k: v / window_steps for k, v in sums.items()}, info.device)
                    if logger is not None:
                        elapsed = time.perf_counter() - window_start - overhead  # without videos and saving
                        for k, v in means.items():
                            logger.record(f"pretrain/{k}", v)
                        logger.record("time/clips_per_second", window_steps * batch_size / max(elapsed, 1e-9))
                        logger.record("time/total_clips", step * batch_size)
                        logger.record("time/elapsed_seconds", time.perf_counter() - run_start)
                        logger.record("time/updates", step)
                        logger.record("time/processes", info.world_size)
                        logger.dump(step)
                    bar.set_postfix(loss=f"{means['loss']:.4g}")
                    sums, window_steps, window_start, overhead = {}, 0, time.perf_counter(), 0.0
                if step % save_interval == 0 or step == steps:
                    tic = time.perf_counter()
                    _save(model, out, step, kind, optimizer, info, batch_size, sequence_length, seed, size)
                    overhead += time.perf_counter() - tic
        ddp.broadcast_buffers(model)  # BatchNorm statistics of the last batch differ per process: keep rank 0's
        if logger is not None:
            logger.close()
            if step > start_step:
                print(f"pre-trained {kind} for {step - start_step} updates ({step} in all) -> {out}")
        ddp.barrier()
        return model
    finally:
        # DDP's reducer holds the process group: free it before the group ends, not at interpreter exit (where
        # destroying gloo's threads aborts the process)
        del loss_module
        gc.collect()
        ddp.cleanup(info)


def _save(model: VideoWorldModel, out: Path, step: int, kind: str, optimizer: torch.optim.Optimizer,
          info: ddp.DistInfo, batch_size: int, sequence_length: int, seed: int, dataset_size: int) -> None:
    """Rank 0 writes the checkpoint with every process's RNG state (a collective: all processes call it)."""
    rngs = ddp.all_gather_object(_rng_state())
    if info.is_main:
        save_pretrained(model, out, step, kind, trainer_state={
            "optimizer": optimizer.state_dict(), "rng": rngs, "world_size": info.world_size,
            "batch_size": batch_size, "sequence_length": sequence_length, "seed": seed,
            "dataset_size": dataset_size,
        })
    ddp.barrier()


# ------------------------------------------------------------------------------------------------ command line
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the pre-training arguments (shared by ``python -m sb3_worldmodels.pretrain`` and ``sb3wm pretrain``)."""
    parser.add_argument("kind", choices=(*KINDS, "ivideogpt"),
                        help="contextwm (with context), apv (plain world model) or ivideogpt (tokenizer + transformer)")
    parser.add_argument("--data", action="append", required=True, metavar=_VIDEO_HELP,
                        help="a clip source, repeatable: PATH:LIST = frame folders + list file, a folder of .npz "
                             "episodes, or a folder of mp4/webm videos; @WEIGHT = its weight in the mixture")
    parser.add_argument("--steps", type=int, required=True, help="total updates")
    parser.add_argument("--out", required=True, help="checkpoint directory (resumed from when it holds one)")
    parser.add_argument("--batch-size", type=int, default=16, help="global batch, split over the processes")
    parser.add_argument("--sequence-length", type=int, default=None,
                        help="frames per clip (default 25; ivideogpt: 16, 2 of them context)")
    parser.add_argument("--lr", type=float, default=None, help="learning rate (default 3e-4; ivideogpt: 1e-4)")
    parser.add_argument("--tokenizer-steps", type=int, default=None,
                        help="ivideogpt: updates of the tokenizer phase, within --steps (default: half)")
    parser.add_argument("--tokenizer", default="64", help="ivideogpt: tokenizer preset (64, tiny)")
    parser.add_argument("--transformer", default="138M", help="ivideogpt: transformer preset (138M, 436M, tiny)")
    parser.add_argument("--model-size", default=None, help="tiny, XS, S, M, L, XL (default: the spec's network)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader workers per process")
    parser.add_argument("--log-interval", type=int, default=100)
    parser.add_argument("--save-interval", type=int, default=1000)
    parser.add_argument("--video-interval", type=int, default=1000, help="0: no videos")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--no-progress-bar", action="store_true")
    parser.add_argument("--kwargs", default="{}",
                        help='JSON of ContextWMConfig fields, e.g. \'{"resnet_norm": "none", "cnn_depth": 32}\'; '
                             'ivideogpt: {"tokenizer": {fields}, "transformer": {fields}}')
    return parser


def run_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Run :func:`pretrain` with parsed :func:`add_arguments` arguments. :return: a summary record."""
    try:
        overrides = json.loads(args.kwargs)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--kwargs is not valid JSON ({exc}): {args.kwargs!r}") from exc
    if not isinstance(overrides, dict):
        raise SystemExit(f"--kwargs must be a JSON object of config fields, got {args.kwargs!r}.")
    if args.kind == "ivideogpt":
        return _run_ivideogpt(args, overrides)
    model = pretrain(args.kind, args.data, args.steps, args.out, batch_size=args.batch_size,
                     sequence_length=args.sequence_length or 25, lr=args.lr or 3e-4, model_size=args.model_size,
                     seed=args.seed,
                     log_interval=args.log_interval, save_interval=args.save_interval,
                     video_interval=args.video_interval, num_workers=args.num_workers,
                     progress_bar=not args.no_progress_bar, device=args.device, **overrides)
    return {"kind": args.kind, "out": str(args.out), "step": read_config(args.out)["step"],
            "parameters": sum(p.numel() for p in model.parameters())}


def _run_ivideogpt(args: argparse.Namespace, overrides: dict[str, Any]) -> dict[str, Any]:
    """``pretrain ivideogpt``: :func:`~sb3_worldmodels.ivideogpt.pretrain.pretrain_ivideogpt` with the arguments."""
    from sb3_worldmodels.ivideogpt import make_tokenizer_config, make_transformer_config
    from sb3_worldmodels.ivideogpt.pretrain import pretrain_ivideogpt

    unknown = sorted(set(overrides) - {"tokenizer", "transformer"})
    if unknown:
        raise SystemExit(f"--kwargs for ivideogpt takes 'tokenizer' and 'transformer' field dicts, got {unknown}.")
    model = pretrain_ivideogpt(
        args.data, args.out, args.steps, args.steps // 2 if args.tokenizer_steps is None else args.tokenizer_steps,
        make_tokenizer_config(args.tokenizer, **overrides.get("tokenizer", {})),
        make_transformer_config(args.transformer, **overrides.get("transformer", {})),
        batch_size=args.batch_size, sequence_length=args.sequence_length or 16, lr=args.lr or 1e-4, seed=args.seed,
        log_interval=args.log_interval, save_interval=args.save_interval, num_workers=args.num_workers,
        progress_bar=not args.no_progress_bar, device=args.device,
    )
    return {"kind": "ivideogpt", "out": str(args.out), "parameters": sum(p.numel() for p in model.parameters())}


def main(argv: list[str] | None = None) -> None:
    """Entry point of ``python -m sb3_worldmodels.pretrain`` (and of ``torchrun ... -m sb3_worldmodels.pretrain``)."""
    parser = argparse.ArgumentParser(prog="python -m sb3_worldmodels.pretrain", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    record = run_from_args(add_arguments(parser).parse_args(argv))
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
