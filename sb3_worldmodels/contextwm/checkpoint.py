"""Pre-training checkpoints: ours (a directory with a JSON config, safetensors weights and the trainer state) and the
official APV / ContextWM ones.

A checkpoint directory (what ``sb3wm pretrain ... --out DIR`` writes, and ``pretrained=DIR`` of
:class:`~sb3_worldmodels.contextwm.ContextDreamer` / :class:`~sb3_worldmodels.contextwm.APV` reads) holds:

* ``config.json``: every :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field, plus ``image_shape``
  (C, H, W), ``kind`` (``"contextwm"`` or ``"apv"``), ``step`` and ``architecture`` (the version of the networks'
  layout, :data:`ARCHITECTURE_VERSION`; a checkpoint without it was written before the networks were made the
  official ones and is refused, since its weights compute something else);
* ``model.safetensors``: the :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` state dict (modules
  ``encoder``, ``af_rssm``, ``decoder`` and, for ContextWM, ``context_encoder``; BatchNorm statistics included);
* ``trainer.pt`` (optional): optimizer state, step and RNG states of every process, to resume pre-training.

Every file is written to a temporary name and renamed into place, ``config.json`` last, and each carries the step:
a reader never sees a half-written file, and a save interrupted between two renames is detected (the steps differ)
instead of mixing two checkpoints silently.

The checkpoints of the official pre-training (thuml/ContextWM ``examples/train_apv_pretraining.py``, the models the
ContextWM README links) load too, wherever a path is taken: the logdir holding ``variables.pt`` and / or
``rssm_variables.pt``, ``encoder_variables.pt``, ``decoder_variables.pt``, or ``variables.pt`` itself. They hold no
configuration: the sizes are read from the tensor shapes (:mod:`sb3_worldmodels.contextwm.official`, which also
documents the mapping of the names). :func:`checkpoint_format` tells the two apart.
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
from sb3_worldmodels.contextwm import official
from sb3_worldmodels.contextwm.config import ARCHITECTURE_FIELDS, config_to_dict, make_contextwm_config
from sb3_worldmodels.contextwm.world_model import PRETRAINED_MODULES, VideoWorldModel

__all__ = [
    "ARCHITECTURE_VERSION",
    "CONFIG_FILE",
    "KINDS",
    "OFFICIAL_PRETRAINING",
    "TRAINER_FILE",
    "WEIGHTS_FILE",
    "checkpoint_format",
    "load_pretrained",
    "load_trainer_state",
    "load_video_model",
    "pretrained_config",
    "pretrained_policy_kwargs",
    "read_config",
    "save_pretrained",
]

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
TRAINER_FILE = "trainer.pt"
#: what a checkpoint can hold: ContextWM (with context encoder) or APV's plain action-free model
KINDS: tuple[str, ...] = ("contextwm", "apv")
#: layout of the networks a checkpoint was written with: 2 = the official APV / ContextWM networks (GRU with
#: LayerNorm, the official ResNet and cross-attention); checkpoints without the stamp are refused
ARCHITECTURE_VERSION = 2
#: settings of a model rebuilt from an official checkpoint: the pre-training preset, as ``sb3wm pretrain`` uses
#: (``configs/apv_pretraining.yaml``: ``kl: {free: 0.0}``)
OFFICIAL_PRETRAINING: dict[str, Any] = {"preset": "pretrain"}


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
    config = {**config_to_dict(model.cfg), "image_shape": list(model.image_shape), "kind": kind, "step": int(step),
              "architecture": ARCHITECTURE_VERSION}
    with atomic_path(path / CONFIG_FILE) as tmp:
        tmp.write_text(json.dumps(config, indent=2))
    return path


def read_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``config.json`` of checkpoint directory ``path``, checked against the weights' step and kind.

    :raises FileNotFoundError: the directory, its ``config.json`` or its ``model.safetensors`` is missing.
    :raises ValueError: the files come from two different saves (an interrupted save), or from the networks of an
        earlier version (no ``architecture`` stamp).
    """
    path = Path(path)
    expected = (f"a checkpoint directory holding {CONFIG_FILE} and {WEIGHTS_FILE} (written by `sb3wm pretrain`), or "
                "an official APV / ContextWM pre-training logdir (variables.pt or the three *_variables.pt files)")
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
    if config.get("architecture") != ARCHITECTURE_VERSION:
        raise ValueError(
            f"{path} was written with a different architecture (networks version {config.get('architecture', 1)}; "
            f"this version reads {ARCHITECTURE_VERSION}): its RSSM's GRU has no LayerNorm and its ResNets follow the "
            "earlier layout, while the networks now compute what the official APV / ContextWM code does. Those "
            "weights cannot be converted: pre-train again with this version (into a new --out), or load an official "
            "checkpoint."
        )
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
    fields = {k: v for k, v in config.items() if k not in ("image_shape", "kind", "step", "architecture")}
    return make_contextwm_config(fields.pop("version", "v2"), fields.pop("model_size", None), **fields)


# ------------------------------------------------------------------------------------------------ formats
def checkpoint_format(path: str | os.PathLike[str]) -> str:
    """``"sb3wm"`` for a directory of ours (``config.json``), ``"official"`` for an official pre-training checkpoint
    (see :func:`~sb3_worldmodels.contextwm.official.official_files`).

    :raises FileNotFoundError: neither (the message says what each holds).
    """
    path = Path(path)
    if path.is_dir() and (path / CONFIG_FILE).is_file():
        return "sb3wm"
    if official.is_official_checkpoint(path):
        return "official"
    what = "does not exist" if not path.exists() else "holds neither"
    raise FileNotFoundError(
        f"Pre-trained checkpoint {path} {what}: expected a checkpoint directory holding {CONFIG_FILE} and "
        f"{WEIGHTS_FILE} (written by `sb3wm pretrain`), or an official APV / ContextWM pre-training logdir holding "
        "variables.pt and / or rssm_variables.pt, encoder_variables.pt, decoder_variables.pt (or one of these files).")


def _official_config(path: Path, stoch: int | None = None, classes: int | None = None,
                     loaded: tuple[dict[str, Any], list[Path]] | None = None) -> dict[str, Any]:
    sd, files = loaded or official.load_official_state(path)
    arch = official.official_architecture(sd, stoch, classes)
    return {**arch, "format": "official", "files": [str(f) for f in files]}


def pretrained_config(path: str | os.PathLike[str], stoch: int | None = None,
                      classes: int | None = None) -> dict[str, Any]:
    """What a checkpoint of either format says about its model: ``kind``, ``image_shape`` and the architecture
    fields (``config.json`` for ours, read from the shapes for an official one), plus ``format``.

    :param stoch: for an official checkpoint, the number of categorical latents when ``stoch x classes`` is not
        square (the files store only the product; 32 x 32 in every official configuration).
    :param classes: classes per latent, with ``stoch``.
    """
    path = Path(path)
    if checkpoint_format(path) == "official":
        return _official_config(path, stoch, classes)
    return {**read_config(path), "format": "sb3wm"}


def _as_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _depths(fields: dict[str, Any]) -> list[int] | None:
    if fields.get("resnet_depths"):
        return [int(v) for v in fields["resnet_depths"]]
    if fields.get("cnn_depth") is not None:
        d = int(fields["cnn_depth"])
        return [d, 2 * d, 4 * d]
    return None


def _conflicts(fields: dict[str, Any], explicit: dict[str, Any]) -> list[str]:
    """``name: yours X, checkpoint Y`` for every explicit setting that contradicts the checkpoint's."""
    out = []
    for key, value in fields.items():
        if key not in explicit or key in ("context", "model_size"):
            continue
        if key == "resnet_depths":
            mine = _depths({"resnet_depths": explicit[key], "cnn_depth": explicit.get("cnn_depth")})
            theirs = _depths(fields)
        else:
            mine, theirs = _as_value(explicit[key]), _as_value(value)
        if mine is not None and mine != theirs:
            out.append(f"{key}: yours {_as_value(explicit[key])!r}, checkpoint {_as_value(value)!r}")
    return out


def pretrained_policy_kwargs(path: str | os.PathLike[str], explicit: dict[str, Any],
                             context: bool | None = None) -> dict[str, Any]:
    """The ``policy_kwargs`` that build the pre-trained modules as checkpoint ``path`` holds them.

    Explicit settings that contradict the checkpoint are an error listing each field with both values (they could
    only fail to load, or compute something else). For one of our checkpoints the architecture fields come from its
    ``config.json`` (and its ``model_size`` unless ``explicit`` has one); for an official one from its shapes.

    :param explicit: the user's ``policy_kwargs``.
    :param context: whether the model has a context encoder (ContextDreamer) or not (APV); checked against the
        checkpoint's kind.
    :return: ``explicit`` updated with the checkpoint's architecture.
    """
    path = Path(path)
    config = pretrained_config(path, explicit.get("stoch"), explicit.get("classes"))
    return _settings(path, config, explicit, context)


def _settings(path: Path, config: dict[str, Any], explicit: dict[str, Any], context: bool | None) -> dict[str, Any]:
    if config["format"] == "official":
        fields = {k: v for k, v in config.items() if k not in ("image_shape", "kind", "format", "files")}
    else:
        fields = {k: config[k] for k in ARCHITECTURE_FIELDS if k in config}
    if context is not None and bool(config["kind"] == "contextwm") != bool(context):
        which = "ContextWM (with a context encoder)" if config["kind"] == "contextwm" else "APV (no context encoder)"
        use = "ContextDreamer" if config["kind"] == "contextwm" else "APV"
        raise ValueError(f"The checkpoint {path} is a {which} model: fine-tune it with {use}(..., pretrained=...).")
    conflicts = _conflicts(fields, explicit)
    if conflicts:
        raise ValueError(f"policy_kwargs contradict the pre-trained checkpoint {path} "
                         f"({config['format']} format): {'; '.join(conflicts)}. Leave these out (they are read from "
                         "the checkpoint) or give the checkpoint's values.")
    out = dict(explicit)
    for key, value in fields.items():
        if key == "context":
            continue
        out[key] = tuple(value) if isinstance(value, list) else value
    if config["format"] == "sb3wm" and "model_size" in config:
        out.setdefault("model_size", config["model_size"])
    return out


# ------------------------------------------------------------------------------------------------ loading
def _architecture_diff(config: dict[str, Any], cfg: Any) -> str:
    """The architecture fields whose checkpoint value differs from ``cfg``'s, as ``name=value`` overrides."""
    diffs = []
    for name in ARCHITECTURE_FIELDS:
        ours = getattr(cfg, name, None)
        ours = list(ours) if isinstance(ours, tuple) else ours
        if name in config and _as_value(config[name]) != ours:
            if name == "resnet_depths" and _depths(config) == list(getattr(cfg, "depths", ())):
                continue
            diffs.append(f"{name}={_as_value(config[name])!r} (yours: {ours!r})")
    return ", ".join(diffs)


def _fix_hint(path: Path, config: dict[str, Any], target: nn.Module) -> str:
    cfg = getattr(target, "cfg", None)
    diff = _architecture_diff(config, cfg) if cfg is not None else ""
    source = "its tensor shapes" if config.get("format") == "official" else str(path / CONFIG_FILE)
    if diff:
        return (f"Build the model with the checkpoint's settings (policy_kwargs / config overrides from {source}): "
                f"{diff}.")
    if config.get("format") == "official":
        return (f"Build the model with the checkpoint's settings (read from its tensor shapes: image_shape "
                f"{list(config.get('image_shape', ()))}).")
    return (f"Build the model with the settings in {path / CONFIG_FILE} (model_size={config.get('model_size')!r}, "
            f"image_shape={config.get('image_shape')}).")


def _wanted(target: nn.Module, modules: Sequence[str]) -> dict[str, nn.Module]:
    wanted = {}
    for name in modules:
        module = getattr(target, name, None)
        if module is None:
            continue
        if not isinstance(module, nn.Module):
            raise TypeError(f"target.{name} is a {type(module).__name__}, not a torch module.")
        wanted[name] = module
    if not wanted:
        raise ValueError(f"The target {type(target).__name__} has none of the modules {tuple(modules)}; pass a "
                         "VideoWorldModel or StackedWorldModel.")
    return wanted


def _load_official(target: nn.Module, path: Path, modules: Sequence[str],
                   loaded: tuple[dict[str, Any], list[Path]] | None = None) -> dict[str, Any]:
    sd, files = loaded or official.load_official_state(path)
    wanted = _wanted(target, modules)
    rssm = getattr(target, "af_rssm", None)
    flat = int(sd["wm.rssm.obs_dist.weight"].shape[0]) if "wm.rssm.obs_dist.weight" in sd else None
    fits = rssm is not None and rssm.discrete and rssm.stoch_flat == flat
    split = (rssm.stoch, rssm.classes) if fits else (None, None)
    config = {**official.official_architecture(sd, *split), "format": "official", "files": [str(f) for f in files]}
    if "context_encoder" in wanted and config["kind"] != "contextwm":
        raise ValueError(f"The official checkpoint {path} (kind 'apv') has no ['context_encoder'] (wm.encoder.cond_*) "
                         "but the model has it. A plain APV checkpoint has no context encoder: load it into "
                         "APV(..., pretrained=...).")
    hint = _fix_hint(path, config, target)
    try:
        states = official.video_state_from_official(sd, target, list(wanted))
    except ValueError as err:
        raise ValueError(f"{err} {hint}") from err
    for name, module in wanted.items():  # every module is checked before any is loaded
        _check_state(name, module, states[name], path, hint)
    for name, module in wanted.items():
        module.load_state_dict(states[name], strict=True)
    return config


def _check_state(name: str, module: nn.Module, state: dict[str, Any], path: Path, hint: str) -> None:
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


def load_pretrained(
    target: nn.Module, path: str | os.PathLike[str], modules: Sequence[str] = PRETRAINED_MODULES
) -> dict[str, Any]:
    """Load the pre-trained modules of checkpoint ``path`` (ours or an official one) strictly into ``target``.

    Every name of ``modules`` that ``target`` has (an attribute that is not ``None``) is loaded into
    ``target.<name>``; all its parameters and buffers must be in the checkpoint with the same shapes. Modules the
    target lacks (``context_encoder`` of an APV model) are skipped. An official checkpoint (``variables.pt`` and / or
    the three ``*_variables.pt`` of the official pre-training) goes through the documented mapping of
    :mod:`sb3_worldmodels.contextwm.official`.

    :param target: a :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` or
        :class:`~sb3_worldmodels.contextwm.world_model.StackedWorldModel` (any module with these attributes).
    :param path: the checkpoint directory (ours or an official logdir), or an official ``variables.pt``.
    :param modules: names of the modules to load.
    :return: the checkpoint's ``config.json`` (an official checkpoint: what :func:`pretrained_config` says).
    :raises FileNotFoundError: ``path`` is not a checkpoint, or an official one lacks some of its three files.
    :raises ValueError: the target has a module the checkpoint lacks, or a key or shape differs (the message
        names the module, the parameter, both shapes and the settings to build the model with).
    """
    path = Path(path)
    if checkpoint_format(path) == "official":
        return _load_official(target, path, modules)
    config = read_config(path)
    weights = load_file(str(path / WEIGHTS_FILE), device="cpu")
    wanted = {}
    for name, module in _wanted(target, modules).items():
        prefix = f"{name}."
        wanted[name] = (module, {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)})
    absent = [name for name, (_, state) in wanted.items() if not state]
    if absent:  # checked first: a whole missing module says more than the key mismatches it causes elsewhere
        hint = (" An APV checkpoint has no context encoder: load it into APV(..., pretrained=...), or pre-train "
                "with `sb3wm pretrain contextwm` for ContextDreamer." if "context_encoder" in absent else "")
        raise ValueError(f"The checkpoint {path} (kind {config['kind']!r}) has no {absent} but the model has "
                         f"{'it' if len(absent) == 1 else 'them'}.{hint}")
    hint = _fix_hint(path, config, target)
    for name, (module, state) in wanted.items():  # every module is checked before any is loaded
        _check_state(name, module, state, path, hint)
    for module, state in wanted.values():
        module.load_state_dict(state, strict=True)
    return config


def load_video_model(path: str | os.PathLike[str], device: torch.device | str = "cpu",
                     **config_overrides: Any) -> VideoWorldModel:
    """Rebuild the :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` of checkpoint ``path``.

    For one of ours the config comes from ``config.json``; for an official checkpoint the architecture is read from
    the shapes and the rest is our DreamerV2 default with the pre-training preset (:data:`OFFICIAL_PRETRAINING`: no
    free nats, as the official pre-training). Every weight and BatchNorm statistic is loaded strictly. The model
    is returned in eval mode on ``device`` (call ``.train()`` to go on training it).

    :param config_overrides: other :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` fields (e.g.
        ``kl_free``); architecture fields must agree with the checkpoint's.
    """
    path = Path(path)
    if checkpoint_format(path) == "official":
        loaded = official.load_official_state(path)
        explicit = {**OFFICIAL_PRETRAINING, **config_overrides}
        config = _official_config(path, explicit.get("stoch"), explicit.get("classes"), loaded)
        kwargs = _settings(path, config, explicit, None)
        cfg = make_contextwm_config(kwargs.pop("version", "v2"), kwargs.pop("model_size", None),
                                    **{**kwargs, "context": config["kind"] == "contextwm"})
        model = VideoWorldModel(tuple(config["image_shape"]), cfg)  # type: ignore[arg-type]
        _load_official(model, path, PRETRAINED_MODULES, loaded)
        return model.to(device).eval()
    else:
        config = read_config(path)
        if config_overrides:
            bad = _conflicts({k: config[k] for k in ARCHITECTURE_FIELDS if k in config}, config_overrides)
            if bad:
                raise ValueError(f"Overrides contradict the checkpoint {path}: {'; '.join(bad)}.")
            config = {**config, **config_overrides}
        model = VideoWorldModel(tuple(config["image_shape"]), _config_from_dict(config))  # type: ignore[arg-type]
    load_pretrained(model, path)
    return model.to(device).eval()
