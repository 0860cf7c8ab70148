"""Pre-training checkpoints: a directory with a JSON config, safetensors weights and the trainer state.

A checkpoint directory (what ``sb3wm pretrain ... --out DIR`` writes, and ``pretrained=DIR`` of
:class:`~sb3_worldmodels.contextwm.ContextDreamer` / :class:`~sb3_worldmodels.contextwm.APV` reads) holds:

* ``config.json``: every :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field, plus ``image_shape``
  (C, H, W), ``kind`` (``"contextwm"`` or ``"apv"``) and ``step``;
* ``model.safetensors``: the :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` state dict (modules
  ``encoder``, ``af_rssm``, ``decoder`` and, for ContextWM, ``context_encoder``; BatchNorm statistics included);
* ``trainer.pt`` (optional): optimizer state, step and RNG states of every process, to resume pre-training.

Every file is written to a temporary name and renamed into place, ``config.json`` last, and each carries the step:
a reader never sees a half-written file, and a save interrupted between two renames is detected (the steps differ)
instead of mixing two checkpoints silently.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.contextwm.config import ARCHITECTURE_FIELDS, config_to_dict, make_contextwm_config
from sb3_worldmodels.contextwm.world_model import PRETRAINED_MODULES, VideoWorldModel

__all__ = [
    "CONFIG_FILE",
    "KINDS",
    "TRAINER_FILE",
    "WEIGHTS_FILE",
    "load_pretrained",
    "load_trainer_state",
    "load_video_model",
    "read_config",
    "save_pretrained",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
#: what a checkpoint can hold: ContextWM (with context encoder) or APV's plain action-free model
KINDS: tuple[str, ...] = ("contextwm", "apv")


def save_pretrained(
    model: VideoWorldModel,
    path: str | os.PathLike[str],
    step: int = 0,
    kind: str = "contextwm",
    trainer_state: dict[str, Any] | None = None,
) -> Path:
    """Write ``model`` as a checkpoint directory ``path`` (created), each file atomically, ``config.json`` last.

    :param model: the pre-trained action-free world model.
    :param path: the checkpoint directory.
    :param step: pre-training updates done (stamped into every file).
    :param kind: ``"contextwm"`` (the model must have a context encoder) or ``"apv"`` (it must not).
    :param trainer_state: optimizer state, RNG states, ... for resuming (saved with ``torch.save`` as
        ``trainer.pt``, which must load with ``weights_only=True``); ``None`` writes no trainer state and removes
        a stale ``trainer.pt``.
    :return: ``path``.
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}.")
    if not isinstance(model, VideoWorldModel):
        raise TypeError(f"save_pretrained takes a VideoWorldModel (unwrap DDP with .module), got {type(model)}.")
    if (kind == "contextwm") != bool(model.cfg.context):
        raise ValueError(f"kind={kind!r} but the model was built with context={model.cfg.context}; use "
                         f"kind={'contextwm' if model.cfg.context else 'apv'!r}.")
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    trainer_file = path / TRAINER_FILE
    if trainer_state is None and trainer_file.exists():
        trainer_file.unlink()  # a trainer state of other weights must not be resumed from
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path / WEIGHTS_FILE) as tmp:
        save_file(tensors, str(tmp), metadata={"step": str(int(step)), "kind": kind})
    if trainer_state is not None:
        with atomic_path(trainer_file) as tmp:
            torch.save({**trainer_state, "step": int(step)}, tmp)
    config = {**config_to_dict(model.cfg), "image_shape": list(model.image_shape), "kind": kind, "step": int(step)}
    with atomic_path(path / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return path


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of checkpoint directory ``path``, checked against the weights' step and kind.

    :raises FileNotFoundError: the directory, its ``config.json`` or its ``model.safetensors`` is missing.
    :raises ValueError: the files come from two different saves (an interrupted save).
    """
    path = Path(path)
    expected = f"a checkpoint directory holding {CONFIG_FILE} and {WEIGHTS_FILE} (written by `sb3wm pretrain`)"
    if not path.is_dir():
        raise FileNotFoundError(f"Pre-trained checkpoint {path} does not exist or is not a directory; expected "
                                f"{expected}.")
    missing = [name for name in (CONFIG_FILE, WEIGHTS_FILE) if not (path / name).is_file()]
    if missing:
        raise FileNotFoundError(f"{path} lacks {missing}; expected {expected}.")
    config = json.loads((path / CONFIG_FILE).read_text())
    with safe_open(str(path / WEIGHTS_FILE), framework="pt") as f:
        meta = f.metadata() or {}
    if "step" in meta and int(meta["step"]) != int(config.get("step", -1)):
        raise ValueError(f"{path}: {WEIGHTS_FILE} is from step {meta['step']} but {CONFIG_FILE} from step "
                         f"{config.get('step')}: a save was interrupted. Save again (or resume pre-training).")
    if config.get("kind") not in KINDS:
        raise ValueError(f"{path / CONFIG_FILE} has kind {config.get('kind')!r}; expected one of {KINDS}.")
    return config


def load_trainer_state(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The ``trainer.pt`` of checkpoint ``path`` (``None`` when there is none), checked against ``config.json``."""
    path = Path(path)
    if not (path / TRAINER_FILE).is_file():
        return None
    config = read_config(path)
    state = torch.load(path / TRAINER_FILE, map_location="cpu", weights_only=True)
    if int(state.get("step", -1)) != int(config["step"]):
        raise ValueError(f"{path}: {TRAINER_FILE} is from step {state.get('step')} but {CONFIG_FILE} from step "
                         f"{config['step']}: a save was interrupted. Delete {path / TRAINER_FILE} to start the "
                         "optimizer afresh from these weights, or pre-train into a new directory.")
    return state


def _config_from_dict(config: dict[str, Any]) -> Any:
    """Rebuild the :class:`ContextWMConfig` of a ``config.json``."""
    fields = {k: v for k, v in config.items() if k not in ("image_shape", "kind", "step")}
    return make_contextwm_config(fields.pop("version", "v2"), fields.pop("model_size", None), **fields)


def _architecture_diff(config: dict[str, Any], cfg: Any) -> str:
    """The architecture fields whose checkpoint value differs from ``cfg``'s, as ``name=value`` overrides."""
    diffs = []
    for name in ARCHITECTURE_FIELDS:
        ours = getattr(cfg, name, None)
        ours = list(ours) if isinstance(ours, tuple) else ours
        if name in config and config[name] != ours:
            diffs.append(f"{name}={config[name]!r} (yours: {ours!r})")
    return ", ".join(diffs)


def _fix_hint(path: Path, config: dict[str, Any], target: nn.Module) -> str:
    cfg = getattr(target, "cfg", None)
    diff = _architecture_diff(config, cfg) if cfg is not None else ""
    if diff:
        return (f"Build the model with the checkpoint's settings (policy_kwargs / config overrides from "
                f"{path / CONFIG_FILE}): {diff}.")
    return (f"Build the model with the settings in {path / CONFIG_FILE} (model_size={config.get('model_size')!r}, "
            f"image_shape={config.get('image_shape')}).")


def load_pretrained(
    target: nn.Module, path: str | os.PathLike[str], modules: Sequence[str] = PRETRAINED_MODULES
) -> dict[str, Any]:
    """Load the pre-trained modules of checkpoint ``path`` strictly into ``target``.

    Every name of ``modules`` that ``target`` has (an attribute that is not ``None``) is loaded into
    ``target.<name>``; all its parameters and buffers must be in the checkpoint with the same shapes. Modules the
    target lacks (``context_encoder`` of an APV model) are skipped.

    :param target: a :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` or
        :class:`~sb3_worldmodels.contextwm.world_model.StackedWorldModel` (any module with these attributes).
    :param path: the checkpoint directory.
    :param modules: names of the modules to load.
    :return: the checkpoint's ``config.json``.
    :raises FileNotFoundError: ``path`` is not a checkpoint directory.
    :raises ValueError: the target has a module the checkpoint lacks, or a key or shape differs (the message
        names the module, the parameter, both shapes and the settings to build the model with).
    """
    path = Path(path)
    config = read_config(path)
    weights = load_file(str(path / WEIGHTS_FILE), device="cpu")
    wanted = {}
    for name in modules:
        module = getattr(target, name, None)
        if module is None:
            continue
        if not isinstance(module, nn.Module):
            raise TypeError(f"target.{name} is a {type(module).__name__}, not a torch module.")
        prefix = f"{name}."
        wanted[name] = (module, {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
    if not wanted:
        raise ValueError(f"The target {type(target).__name__} has none of the modules {tuple(modules)}; pass a "
                         "VideoWorldModel or StackedWorldModel.")
    absent = [name for name, (_, state) in wanted.items() if not state]
    if absent:  # checked first: a whole missing module says more than the key mismatches it causes elsewhere
        hint = (" An APV checkpoint has no context encoder: load it into APV(..., pretrained=...), or pre-train "
                "with `sb3wm pretrain contextwm` for ContextDreamer." if "context_encoder" in absent else "")
        raise ValueError(f"The checkpoint {path} (kind {config['kind']!r}) has no {absent} but the model has "
                         f"{'it' if len(absent) == 1 else 'them'}.{hint}")
    hint = _fix_hint(path, config, target)
    for name, (module, state) in wanted.items():  # every module is checked before any is loaded
        own = module.state_dict()
        missing = sorted(set(own) - set(state))
        unexpected = sorted(set(state) - set(own))
        if missing or unexpected:
            more = " (and more)" if len(missing) > 5 or len(unexpected) > 5 else ""
            raise ValueError(f"Module {name!r} does not match the checkpoint {path}: missing keys {missing[:5]}, "
                             f"unexpected keys {unexpected[:5]}{more}. {hint}")
        for key, value in own.items():
            if value.shape != state[key].shape:
                raise ValueError(f"Module {name!r}, parameter {key!r}: the checkpoint {path} has shape "
                                 f"{tuple(state[key].shape)}, the model {tuple(value.shape)}. {hint}")
    for module, state in wanted.values():
        module.load_state_dict(state, strict=True)
    return config


def load_video_model(path: str | os.PathLike[str], device: torch.device | str = "cpu") -> VideoWorldModel:
    """Rebuild the :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` of checkpoint ``path``.

    Its config comes from ``config.json``; every weight and BatchNorm statistic is loaded strictly. The model is
    returned in eval mode on ``device`` (call ``.train()`` to go on training it).
    """
    path = Path(path)
    config = read_config(path)
    model = VideoWorldModel(tuple(config["image_shape"]), _config_from_dict(config))  # type: ignore[arg-type]
    load_pretrained(model, path)
    return model.to(device).eval()
