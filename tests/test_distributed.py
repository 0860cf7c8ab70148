"""Distributed pre-training: 2 processes on CPU (gloo) launched through torchrun, against single-process runs.

How exact can a 2-process run be? Each process draws its own random numbers (latent samples, context frame,
key/value masks, dropout) and, with BatchNorm, normalises with the statistics of its own half of the batch. So a
plain single-process run on the same global batch computes a different (equally valid) sample of the loss. We
check two things:

* exactly: a single process that replays what DDP must compute (each rank's half of the global batch, with that
  rank's random stream, gradients averaged) ends with the same weights and losses, bit for bit, with BatchNorm
  and without (``resnet_norm="none"``);
* within tolerance: the first-step loss of the 2-process run and of a plain 1-process ``pretrain`` differ by less
  than 4 standard deviations of the loss over random streams, measured here on the same batch and weights
  (about 0.7 % of the loss with BatchNorm at initialisation).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3.common.utils import set_random_seed
from torch.utils.data.dataloader import default_collate

from sb3_worldmodels.common.distributed import all_reduce_mean, init_distributed
from sb3_worldmodels.contextwm.checkpoint import read_config
from sb3_worldmodels.data import record_episodes
from sb3_worldmodels.dreamer.policies import _optimizer
from sb3_worldmodels.pretrain import (
    GlobalBatchSampler,
    build_dataset,
    build_video_model,
    pretrain,
    rank_seed,
    to_model_input,
)

COMMON: dict[str, Any] = dict(batch_size=4, sequence_length=8, model_size="tiny", log_interval=1, video_interval=0,
                              progress_bar=False, device="cpu")
RUNS: dict[str, tuple[int, dict[str, Any]]] = {"batch": (2, {}), "none": (3, {"resnet_norm": "none"})}

SCRIPT = """
import os, sys
from pathlib import Path
import torch
torch.set_num_threads(1)
from sb3_worldmodels.common.distributed import cleanup, init_distributed
from sb3_worldmodels.pretrain import pretrain
from tests.test_distributed import COMMON, RUNS
data, out = sys.argv[1], Path(sys.argv[2])
info = init_distributed("cpu")  # both runs share this process group (pretrain leaves a group it did not start)
for name, (steps, overrides) in RUNS.items():
    model = pretrain("contextwm", [f"sim={data}"], steps=steps, out=out / name, **COMMON, **overrides)
    torch.save(model.state_dict(), out / name / f"rank{info.rank}.pt")
cleanup(info)
"""


def _torchrun(args: list[str], cwd: Path, timeout: float = 240) -> None:
    """``torchrun --standalone --nproc_per_node 2 ARGS`` in its own session, killed with its workers on a timeout."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", *args]
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"torchrun did not finish in {timeout} s:\n{output[-4000:]}")
    assert proc.returncode == 0, output[-6000:]


@pytest.fixture(scope="module")
def episodes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dmc_npz")
    record_episodes("sb3wm/dmc-cartpole-swingup-v0", 2, out_dir=out, max_episode_steps=20, progress_bar=False)
    return out


@pytest.fixture(scope="module")
def ddp_runs(episodes: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("ddp")
    (out / "run.py").write_text(SCRIPT)
    _torchrun([str(out / "run.py"), str(episodes), str(out)], cwd=out)
    return out


def _losses(out: Path) -> list[float]:
    return [float(r["pretrain/loss"]) for r in csv.DictReader((out / "tb" / "progress.csv").open())
            if r.get("pretrain/loss")]


def _replay_ddp(episodes: Path, steps: int, overrides: dict[str, Any], world: int = 2) -> tuple[dict, list[float]]:
    """One process doing what ``world`` DDP processes do: each rank's part of the global batch with that rank's
    random stream, gradients averaged, BatchNorm statistics of each part; rank 0's running statistics are kept
    (DDP broadcasts them before every forward)."""
    dataset = build_dataset([f"sim={episodes}"], COMMON["sequence_length"])
    samplers = [GlobalBatchSampler(len(dataset), COMMON["batch_size"], r, world) for r in range(world)]
    set_random_seed(0)
    model = build_video_model("contextwm", (3, 64, 64), "tiny", model_lr=3e-4, **overrides)
    cfg = model.cfg
    optimizer = _optimizer(model.parameters(), cfg.model_lr, cfg.model_eps, cfg.weight_decay)
    streams = []
    for r in range(world):
        set_random_seed(rank_seed(0, r))
        streams.append(torch.get_rng_state())
    model.train()
    losses = []
    for step in range(steps):
        optimizer.zero_grad()
        step_losses = []
        for r in range(world):
            kept = [b.clone() for b in model.buffers()]
            torch.set_rng_state(streams[r])
            batch = default_collate([dataset[int(i)] for i in samplers[r].local_indices(step)])
            loss, _ = model.loss(*to_model_input(batch["image"]))
            (loss / world).backward()
            streams[r] = torch.get_rng_state()
            step_losses.append(loss.item())
            if r > 0:
                for buffer, value in zip(model.buffers(), kept):
                    buffer.copy_(value)
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.model_grad_clip)
        optimizer.step()
        losses.append(float(np.mean(step_losses)))
    return model.state_dict(), losses


@pytest.mark.parametrize("name", list(RUNS))
def test_ranks_agree_and_equal_the_replayed_global_batch(ddp_runs: Path, episodes: Path, name: str) -> None:
    run = ddp_runs / name
    rank0, rank1 = (torch.load(run / f"rank{r}.pt", weights_only=True) for r in range(2))
    for key, value in rank0.items():
        assert torch.equal(value, rank1[key]), key  # identical weights and BatchNorm statistics on both ranks
    steps, overrides = RUNS[name]
    expected, losses = _replay_ddp(episodes, steps, overrides)
    for key, value in expected.items():
        torch.testing.assert_close(rank0[key], value, rtol=0, atol=1e-6, msg=key)
    np.testing.assert_allclose(_losses(run), losses, rtol=1e-6)
    assert read_config(run)["step"] == steps


def test_first_loss_matches_a_single_process_run(ddp_runs: Path, episodes: Path, tmp_path: Path) -> None:
    single = pretrain("contextwm", [f"sim={episodes}"], steps=1, out=tmp_path / "single", **COMMON)
    assert single is not None
    first_ddp, first_single = _losses(ddp_runs / "batch")[0], _losses(tmp_path / "single")[0]
    # spread of the first loss over random streams, same weights and global batch
    dataset = build_dataset([f"sim={episodes}"], COMMON["sequence_length"])
    batch = default_collate([dataset[int(i)] for i in GlobalBatchSampler(len(dataset), 4).global_indices(0)])
    images, is_first = to_model_input(batch["image"])
    set_random_seed(0)
    model = build_video_model("contextwm", (3, 64, 64), "tiny").train()
    samples = []
    for seed in range(8):
        torch.manual_seed(100 + seed)
        with torch.no_grad():
            samples.append(model.loss(images, is_first)[0].item())
    sigma = float(np.std(samples))
    assert 0 < sigma < 0.05 * abs(first_single)
    assert abs(first_ddp - first_single) < 4 * sigma, (first_ddp, first_single, sigma)


def test_torchrun_module_entry_point_and_resume_on_one_process(episodes: Path, tmp_path: Path) -> None:
    out = tmp_path / "apv"
    _torchrun(["-m", "sb3_worldmodels.pretrain", "apv", "--data", f"sim={episodes}", "--steps", "2", "--out",
               str(out), "--batch-size", "4", "--sequence-length", "8", "--model-size", "tiny", "--log-interval",
               "1", "--video-interval", "2", "--no-progress-bar", "--device", "cpu"], cwd=tmp_path)
    trainer = torch.load(out / "trainer.pt", weights_only=True)
    assert (trainer["step"], trainer["world_size"], len(trainer["rng"])) == (2, 2, 2)
    assert not torch.equal(trainer["rng"][0]["torch"], trainer["rng"][1]["torch"])  # one stream per rank
    assert len(_losses(out)) == 2  # rank 0 alone logs
    with pytest.warns(UserWarning, match="2-process run on 1 processes"):
        pretrain("apv", [f"sim={episodes}"], steps=3, out=out, **COMMON)
    assert read_config(out)["step"] == 3


def test_global_batch_sampler_splits_every_batch() -> None:
    single = GlobalBatchSampler(10, 4, seed=3)
    ranks = [GlobalBatchSampler(10, 4, r, 2, seed=3) for r in range(2)]
    for step in range(7):  # crosses epochs: 10 clips, 4 per batch
        parts = [s.local_indices(step) for s in ranks]
        assert len(set(parts[0]) & set(parts[1])) == 0
        np.testing.assert_array_equal(np.concatenate(parts), single.global_indices(step))
    seen = np.concatenate([single.global_indices(s) for s in range(5)])  # 20 draws = 2 epochs
    assert sorted(seen[:10]) == list(range(10)) and sorted(seen[10:]) == list(range(10))
    stream = iter(GlobalBatchSampler(10, 4, 1, 2, seed=3, start_step=2))  # a resumed run continues the stream
    assert [next(stream) for _ in range(4)] == [*ranks[1].local_indices(2), *ranks[1].local_indices(3)]
    with pytest.raises(ValueError, match="divisible by the 2 processes"):
        GlobalBatchSampler(10, 3, 0, 2)


def test_single_process_helpers() -> None:
    info = init_distributed("cpu")
    assert (info.rank, info.world_size, info.is_main, info.device.type) == (0, 1, True, "cpu")
    assert all_reduce_mean({"a": torch.tensor(2.0), "b": 3}) == {"a": 2.0, "b": 3.0}


def test_ivideogpt_pretraining_under_torchrun(episodes: Path, tmp_path: Path) -> None:
    from sb3_worldmodels import IVideoGPT

    out = tmp_path / "ivg"
    kwargs = json.dumps({"tokenizer": {"image_size": 64, "patch": 4}, "transformer": {"max_tokens": 1024}})
    _torchrun(["-m", "sb3_worldmodels.pretrain", "ivideogpt", "--data", f"sim={episodes}", "--steps", "2",
               "--tokenizer-steps", "1", "--out", str(out), "--batch-size", "2", "--sequence-length", "4",
               "--tokenizer", "tiny", "--transformer", "tiny", "--kwargs", kwargs, "--log-interval", "1",
               "--no-progress-bar", "--device", "cpu"], cwd=tmp_path)
    assert torch.load(out / "trainer.pt", weights_only=False)["step"] == 2
    assert IVideoGPT.from_pretrained(out).tokenizer_config.image_size == 64
