"""Video prediction from the command line and from Python: what a world model imagines next to what happened.

Two sources (``sb3wm predict``):

* an **agent** saved by ``model.save`` (Dreamer family, APV, ContextDreamer, MBPO) and an env id: the agent (or
  random actions) plays an episode, and its world model imagines the frames after the first ``context`` ones under
  the actions taken (:func:`predict_video`);
* a **pre-trained checkpoint directory** (``sb3wm pretrain contextwm|apv|ivideogpt``) and a clip, an ``.npz``
  episode or a video file: the model continues the clip from its first ``context`` frames (:func:`predict_clip`),
  as iVideoGPT's and ContextWM's video-prediction demos do.

Both write a video of real | predicted | error frames and return PSNR and SSIM per imagined frame.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

__all__ = ["predict_clip", "predict_video", "read_clip"]


def _finish(real: Tensor, predicted: Tensor, context: int, out: str | os.PathLike[str], record: dict[str, Any]
            ) -> dict[str, Any]:
    """Write the real | predicted | error video of ``real`` (T, C, H, W) and ``predicted`` (T - context, C, H, W)
    uint8 frames, and add the video path and the per-frame PSNR / SSIM to ``record``."""
    from sb3_worldmodels.common.video import write_video
    from sb3_worldmodels.ivideogpt.metrics import psnr, ssim

    video = torch.cat([real[:context], predicted]).int()
    error = ((video - real.int() + 255) // 2).clamp(0, 255)
    grid = torch.cat([real.int(), video, error], -1).to(torch.uint8).permute(0, 2, 3, 1).numpy()
    written = write_video(out, grid)
    scores = {"psnr": psnr(predicted, real[context:]).tolist()}
    if min(real.shape[-2:]) >= 11:
        scores["ssim"] = ssim(predicted, real[context:]).tolist()
    record["video"] = str(written)
    for name, values in scores.items():
        record[f"{name}_per_frame"] = [round(v, 4 if name == "ssim" else 2) for v in values]
        record[f"mean_{name}"] = round(float(np.mean(values)), 4 if name == "ssim" else 2)
    return record


def _model_context(model: Any) -> int | None:
    """IVideoGPT's fixed number of context frames (``None`` for RSSM models, which take any)."""
    return getattr(getattr(model, "tokenizer_config", None), "context_frames", None)


def predict_video(
    agent: str | os.PathLike[str],
    env_id: str,
    out: str | os.PathLike[str] = "prediction.mp4",
    context: int = 5,
    horizon: int = 45,
    policy: str = "agent",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Play an episode and compare it with what the agent's world model imagines from its first frames.

    The agent or random actions (``policy="random"``) play ``context + horizon`` steps of ``env_id``; the world model
    sees the first ``context`` frames and imagines the next ``horizon`` under the actions taken
    (:meth:`~sb3_worldmodels.dreamer.world_model.WorldModel.predict`, or iVideoGPT's for MBPO agents). Writes a video
    of real | predicted | error frames (``.mp4`` or ``.gif``) to ``out``.

    :return: a record with the video path and the PSNR (dB) and SSIM of each imagined frame, and their means.
    """
    from gymnasium import spaces

    from sb3_worldmodels.data import load_agent, record_episodes

    if context < 1 or horizon < 1:
        raise ValueError(f"context and horizon must be >= 1, got {context} and {horizon}.")
    if policy not in ("agent", "random"):
        raise ValueError(f"policy must be 'agent' or 'random', got {policy!r}.")
    model = load_agent(agent, device="cpu")
    wm = getattr(model.policy, "world_model", None) or getattr(model, "world_model", None)  # Dreamer family / MBPO
    if wm is None or not callable(getattr(wm, "predict", None)):
        raise ValueError(f"{agent} holds a {type(model).__name__} agent without a world model; sb3wm predict takes "
                         "a DreamerV3, DreamerV2, DreamerHarmony, APV, ContextDreamer or MBPO agent.")
    model_context = _model_context(wm)
    if model_context is not None and context < model_context:
        raise ValueError(f"This world model reads {model_context} context frames; give --context {model_context} "
                         "or more.")
    with tempfile.TemporaryDirectory(prefix="sb3wm_predict_") as tmp:
        path = record_episodes(env_id, 1, model if policy == "agent" else "random", tmp, seed=seed,
                               max_episode_steps=context + horizon, env_kwargs=env_kwargs, progress_bar=False)[0]
        with np.load(path) as episode:
            frames, actions = episode["image"], episode["action"][1:]  # action t leads from frame t to t + 1
    if len(frames) < context + 1:
        raise ValueError(f"The episode ended after {len(frames) - 1} steps; give a context shorter than that.")
    horizon = min(horizon, len(frames) - context)
    real = torch.from_numpy(frames[: context + horizon]).permute(0, 3, 1, 2)  # (T, C, H, W) uint8
    if isinstance(model.action_space, spaces.Box):
        actions = model.policy.scale_action(actions.reshape(-1, *model.action_space.shape)).reshape(len(actions), -1)
    acts = torch.as_tensor(actions, dtype=torch.float32)
    first = context - (model_context or context)  # IVideoGPT sees the last of the context frames only
    predicted, _ = wm.predict(real[None, first:context], acts[None, context - 1 : context - 1 + horizon],
                              context_actions=acts[None, first : context - 1])
    record = {"agent": str(agent), "env": env_id, "policy": policy, "context": context, "horizon": horizon}
    return _finish(real, predicted[0], context, out, record)


def read_clip(path: str | os.PathLike[str], size: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """The frames (T, H, W, 3) uint8 of an ``.npz`` episode (its ``image`` array) or a video file, and the
    episode's actions (T - 1, A) (``None`` for a video file), fitted to ``size x size`` when given."""
    from sb3_worldmodels.data.clips import fit_frames

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No clip at {path}; give an .npz episode (sb3wm collect-videos) or a video file.")
    actions = None
    if path.suffix == ".npz":
        with np.load(path) as episode:
            if "image" not in episode:
                raise ValueError(f"{path} has no 'image' array (keys {list(episode.keys())}).")
            frames = episode["image"]
            actions = episode["action"][1:] if "action" in episode else None
    else:
        import imageio.v3 as iio

        frames = np.asarray(iio.imread(path, index=None))
        if frames.ndim == 3:
            frames = frames[None]
        frames = frames[..., :3]
    return (fit_frames(frames, size) if size else frames), actions


def predict_clip(
    checkpoint: str | os.PathLike[str],
    clip: str | os.PathLike[str],
    out: str | os.PathLike[str] = "prediction.mp4",
    context: int = 2,
    horizon: int = 14,
    seed: int = 0,
) -> dict[str, Any]:
    """Continue a clip with a pre-trained video world model (a ContextWM / APV or an iVideoGPT checkpoint).

    :param checkpoint: a directory written by ``sb3wm pretrain`` (or ``IVideoGPT.save_pretrained``), or an official
        ContextWM / APV pre-training checkpoint (its logdir or ``variables.pt``).
    :param clip: an ``.npz`` episode or a video file; frames are centre-cropped and resized to the model's size.
    :param context: observed frames (an iVideoGPT model sees the last of them, as many as it was built for).
    :param horizon: predicted frames (fewer when the clip is shorter). An action-conditioned iVideoGPT takes the
        actions of an ``.npz`` episode, as stored.
    :return: a record with the video path and the PSNR / SSIM of each predicted frame.
    """
    from sb3_worldmodels.contextwm.checkpoint import CONFIG_FILE, load_video_model
    from sb3_worldmodels.contextwm.official import is_official_checkpoint
    from sb3_worldmodels.ivideogpt import IVideoGPT

    path = Path(checkpoint)
    torch.manual_seed(seed)
    if (path / "tokenizer" / CONFIG_FILE).is_file():
        model: Any = IVideoGPT.from_pretrained(path)
        size = model.tokenizer_config.image_size
    elif (path / CONFIG_FILE).is_file() or is_official_checkpoint(path):
        model = load_video_model(path)
        size = int(model.image_shape[-1])
    else:
        raise FileNotFoundError(f"{path} is not a checkpoint of sb3wm pretrain (contextwm, apv or ivideogpt) nor an "
                                "official ContextWM / APV pre-training logdir (variables.pt, *_variables.pt).")
    frames, actions = read_clip(clip, size)
    if len(frames) < context + 1:
        raise ValueError(f"The clip has {len(frames)} frames; give a context shorter than that.")
    horizon = min(horizon, len(frames) - context)
    real = torch.from_numpy(frames[: context + horizon]).permute(0, 3, 1, 2).contiguous()
    model_context = _model_context(model)
    if model_context is not None:
        if context < model_context:
            raise ValueError(f"This model reads {model_context} context frames; give --context {model_context} or "
                             "more.")
        acts = None
        if model.action_dim:
            if actions is None or len(actions) < context - 1 + horizon:
                raise ValueError("This iVideoGPT is action-conditioned: give an .npz episode with its actions.")
            acts = torch.as_tensor(actions[context - 1 : context - 1 + horizon], dtype=torch.float32)[None]
        predicted, _ = model.predict(real[None, context - model_context:context], acts, horizon=horizon,
                                     generator=torch.Generator().manual_seed(seed))
        predicted = predicted[0]
    else:
        is_first = torch.zeros(1, len(real))
        is_first[0, 0] = 1.0
        with torch.no_grad():
            grid = model.openloop(real[None], is_first, context=context)[0]  # (T, C, H, 3W): real | pred | error
        predicted = grid[context:, ..., real.shape[-1] : 2 * real.shape[-1]]
    record = {"checkpoint": str(checkpoint), "clip": str(clip), "context": context, "horizon": horizon}
    return _finish(real, predicted, context, out, record)
