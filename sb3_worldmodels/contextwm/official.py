"""The official APV / ContextWM pre-training checkpoints (thuml/ContextWM) in our modules.

The official pre-training (``examples/train_apv_pretraining.py``, ``APV_Pretrain.save_model``,
``wmlib/agents/apv_pretrain.py:75-79`` at commit 3a8bca8) writes, into its ``--logdir``:

* ``variables.pt``: the whole agent's ``state_dict()`` (keys ``wm.encoder.*``, ``wm.rssm.*``,
  ``wm.heads.decoder.*``);
* ``rssm_variables.pt``, ``encoder_variables.pt``, ``decoder_variables.pt``: the same modules' state dicts without
  the prefix, which the official fine-tuning reads (``examples/train_apv_finetuning.py:235-246``, ``--load_logdir``);
* ``config.yaml`` (not read here) and, with ``--save_all_models``, the same files with a ``_s<step>`` suffix.

These are the files of the pre-trained models the ContextWM README links (Something-Something-V2, Human3.6M,
YouTube driving, their mixture, RLBench; ContextWM and the plain APV model). :func:`load_official_state` reads
either layout (a logdir, ``variables.pt`` itself, or one of the three files, whose siblings with the same suffix are
read with it), :func:`official_architecture` infers the model's sizes from the tensor shapes (the files hold no
configuration) and :func:`video_state_from_official` maps the weights, BatchNorm statistics included, into the
pre-trained modules of our :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` /
:class:`~sb3_worldmodels.contextwm.world_model.StackedWorldModel`. Our modules compute what the official ones do
(``tests/test_conformance_contextwm_pretrain.py``); only the names and two layouts differ:

Official key (``variables.pt``) -> ours:

* ``wm.encoder.convin.{weight,bias}`` -> ``encoder.stem.0.{weight,bias}``
* ``wm.encoder.res{i}.stack.{j}.identity.{0,1}.*`` -> ``encoder.stages.{i}.{j}.identity.{0,1}.*``
* ``wm.encoder.res{i}.stack.{j}.res_block.{k}.*`` (convolutions; BatchNorm weights, biases, ``running_mean``,
  ``running_var``, ``num_batches_tracked``) -> ``encoder.stages.{i}.{j}.res_block.{k}.*``
* ``wm.encoder.cond_convin.*``, ``wm.encoder.cond_res{i}.stack.{j}.*`` (ContextWM) -> ``context_encoder.stem.0.*``,
  ``context_encoder.stages.{i}.{j}.*``
* ``wm.rssm.*`` (the action-free ``EnsembleRSSM``) -> ``af_rssm.*``, by
  :func:`~sb3_worldmodels.common.wmlib.rssm_from_wmlib` (the 50 zero ``fill_action`` columns of ``img_in`` dropped)
* ``wm.heads.decoder.convin.{weight,bias}`` -> ``decoder.linear.{weight,bias}``, the input columns reordered from
  the official features ``[stoch, deter]`` to ours, ``[deter, stoch]``
* ``wm.heads.decoder.res{i}.stack.{j}.identity.*`` / ``res_block.*`` -> ``decoder.stages.{i}.{j}.identity.*`` /
  ``res_block.*``
* ``wm.heads.decoder.res{i}.stack.{j}.cross_attention.att.{in_proj_weight,in_proj_bias,out_proj.*}`` ->
  ``decoder.stages.{i}.{j}.cross_attention.attn.*``
* ``wm.heads.decoder.res{i}.stack.{j}.norm_cross_att.*`` -> ``decoder.stages.{i}.{j}.cross_attention.norm.*``
* ``wm.heads.decoder.res{i}.stack.{j}.q_pos_emb`` / ``kv_pos_emb`` (each ``[HW, C]``) ->
  ``decoder.stages.{i}.{j}.cross_attention.q_pos_emb`` / ``kv_pos_emb``
* ``wm.heads.decoder.convout.{weight,bias}`` -> ``decoder.out.{weight,bias}``

The part files hold the same keys without ``wm.encoder.`` / ``wm.rssm.`` / ``wm.heads.decoder.``. Pooling,
upsampling, ``cond_aug`` and dropout have no parameters. The sizes read from the shapes: ``deter`` (GRU norm / 3),
``hidden`` (``img_in`` rows), ``stoch x classes`` (``obs_dist`` rows; the files cannot tell 32 x 32 from 16 x 64:
a square is assumed unless ``stoch`` and ``classes`` are given), the ResNet widths (``convin`` / ``res{i}`` rows),
residual layers per stage (``res0.stack`` length), BatchNorm or no norm (``running_mean``), the context encoder
(``cond_convin``) and the attending decoder stages (``cross_attention`` keys). The official decoder is built for
64x64 images (``decoder/resnet.py:35``), the activation is ELU and the attention has 4 heads (fixed in the official
code). Not supported, with an error saying so: an ensemble of prior heads (``ensemble > 1``), a Gaussian stochastic
state, LayerNorm in the RSSM (``rssm.norm: layer``), ``res_norm`` ``layer`` / ``group``, and a context branch whose
widths or depth differ from the main encoder's (``ctx_cnn_depth`` / ``ctx_res_layers``).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.common.resnet import ResNetDecoder, ResNetEncoder
from sb3_worldmodels.common.wmlib import (
    StateFiller,
    feature_columns,
    mlp_from_wmlib,
    rssm_from_wmlib,
    rssm_to_wmlib,
    take,
)
from sb3_worldmodels.dreamer.official import (
    WMLIB_REQUIRED,
    check_settings,
    heads_from_wmlib,
    v2_settings_from_wmlib,
)

__all__ = [
    "OFFICIAL_FILES",
    "PART_FILES",
    "finetune_config_from_official",
    "finetune_state_from_official",
    "is_official_checkpoint",
    "load_official_state",
    "official_architecture",
    "official_files",
    "resnet_decoder_from_official",
    "resnet_encoder_from_official",
    "save_official",
    "video_state_from_official",
    "video_state_to_official",
]

#: the whole agent's state dict (``APV_Pretrain.state_dict()``)
OFFICIAL_FILES = ("variables.pt",)
#: our module -> (official part file, the prefix its keys have in ``variables.pt``)
PART_FILES: dict[str, tuple[str, str]] = {
    "encoder": ("encoder_variables.pt", "wm.encoder."),
    "af_rssm": ("rssm_variables.pt", "wm.rssm."),
    "decoder": ("decoder_variables.pt", "wm.heads.decoder."),
}
ENCODER, RSSM_, DECODER = "wm.encoder.", "wm.rssm.", "wm.heads.decoder."
#: what the official code fixes, not stored in the files (``configs/apv_pretraining.yaml``, ``modules.py:145``)
OFFICIAL_FIXED: dict[str, Any] = {"act": "elu", "norm": False, "learned_initial": False, "attention_heads": 4}
_PART = re.compile(r"^(rssm|encoder|decoder)_variables(.*)\.pt$")


def official_files(path: str | os.PathLike[str]) -> dict[str, Path] | None:
    """The official files of ``path`` (``{"variables": ...}`` or the three parts), ``None`` if it holds none.

    ``path`` is an official logdir, its ``variables.pt`` (any ``*.pt`` file: ``variables_s100001.pt`` too), or one of
    ``rssm_variables*.pt`` / ``encoder_variables*.pt`` / ``decoder_variables*.pt`` (its siblings of the same suffix
    come with it). In a logdir holding both layouts, the three parts are read (what the official fine-tuning reads).
    """
    path = Path(path)
    if path.is_file():
        match = _PART.match(path.name)
        if match:
            suffix = match.group(2)
            return {name: path.parent / f"{file[: -len('.pt')]}{suffix}.pt" for name, (file, _) in PART_FILES.items()}
        return {"variables": path} if path.suffix == ".pt" else None
    if not path.is_dir():
        return None
    parts = {name: path / file for name, (file, _) in PART_FILES.items()}
    if any(p.is_file() for p in parts.values()) and (
        all(p.is_file() for p in parts.values()) or not (path / OFFICIAL_FILES[0]).is_file()
    ):
        return parts
    if (path / OFFICIAL_FILES[0]).is_file():
        return {"variables": path / OFFICIAL_FILES[0]}
    return None


def is_official_checkpoint(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` holds (or is) an official pre-training checkpoint (see :func:`official_files`)."""
    return official_files(path) is not None


def _read(file: Path) -> dict[str, Tensor]:
    if not file.is_file():
        raise FileNotFoundError(file)
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - any unpickling error: the message says what was expected
        raise ValueError(f"{file} is not a PyTorch state dict that torch.load(weights_only=True) reads ({err}); "
                         "expected a file written by the official APV / ContextWM pre-training "
                         "(APV_Pretrain.save_model).") from err
    if not isinstance(state, Mapping) or not all(isinstance(v, Tensor) for v in state.values()):
        raise ValueError(f"{file} holds a {type(state).__name__}, not a state dict of tensors; expected a file "
                         "written by the official APV / ContextWM pre-training (APV_Pretrain.save_model).")
    return dict(state)


def load_official_state(path: str | os.PathLike[str]) -> tuple[dict[str, Tensor], list[Path]]:
    """The official state dict of ``path`` with the ``variables.pt`` keys (``wm.encoder.*``, ``wm.rssm.*``,
    ``wm.heads.decoder.*``), whichever layout it is in, and the files read.

    :raises FileNotFoundError: no official file, or only some of the three parts (naming the missing ones).
    :raises ValueError: a file that is not a state dict, or a fine-tuning (``APV_Finetune``) checkpoint.
    """
    path = Path(path)
    files = official_files(path)
    if files is None:
        raise FileNotFoundError(
            f"{path} is not an official APV / ContextWM checkpoint: expected a logdir of the official pre-training "
            f"holding {OFFICIAL_FILES[0]} or {[f for f, _ in PART_FILES.values()]}, or one of these files.")
    if "variables" in files:
        state = _read(files["variables"])
        if any(k.startswith("wm.af_rssm.") for k in state):
            raise ValueError(f"{files['variables']} is an official fine-tuning checkpoint (APV_Finetune: wm.af_rssm "
                             "and an action-conditional wm.rssm); pretrained= takes the pre-training checkpoint "
                             "(APV_Pretrain: variables.pt with wm.rssm only, or the three *_variables.pt files).")
        if not any(k.startswith(("wm.encoder.", "wm.rssm.", "wm.heads.decoder.")) for k in state):
            raise ValueError(f"{files['variables']} has none of the keys wm.encoder.*, wm.rssm.*, wm.heads.decoder.* "
                             f"of an official APV_Pretrain agent (its first keys: {sorted(state)[:5]}).")
        return state, [files["variables"]]
    missing = [str(p) for p in files.values() if not p.is_file()]
    if missing:
        raise FileNotFoundError(f"The official checkpoint {path} lacks {missing}: the official pre-training saves "
                                f"the three files {[f for f, _ in PART_FILES.values()]} together (or give its "
                                f"{OFFICIAL_FILES[0]}).")
    state: dict[str, Tensor] = {}
    for name, file in files.items():
        part = _read(file)
        if any(k.startswith("wm.") for k in part):
            raise ValueError(f"{file} holds a whole agent's keys (wm.*), not the {name} part; give it as "
                             "pretrained=<that file> instead.")
        state.update({f"{PART_FILES[name][1]}{k}": v for k, v in part.items()})
    return state, list(files.values())


# ------------------------------------------------------------------------------------------------ architecture
def _count(sd: Mapping[str, Tensor], pattern: str) -> int:
    n = 0
    while pattern.format(n) in sd:
        n += 1
    return n


def _stage_layout(sd: Mapping[str, Tensor], prefix: str, what: str) -> tuple[list[int], int, str]:
    """Widths, residual layers per stage and norm of an official encoder branch (``prefix`` + ``res{i}``)."""
    stages = _count(sd, prefix + "res{}.stack.0.res_block.0.weight")
    if stages == 0:
        raise ValueError(f"The official checkpoint has no {prefix}res0.stack.0.res_block.0.weight: its {what} is "
                         "not the ResNet of APV / ContextWM (encoder_type resnet / ctx_resnet; plaincnn is not "
                         "supported).")
    blocks = _count(sd, prefix + "res0.stack.{}.res_block.0.weight")
    widths = [int(sd[f"{prefix}res{i}.stack.0.res_block.0.weight"].shape[0]) for i in range(stages)]
    if f"{prefix}res0.stack.0.res_block.1.running_mean" in sd:
        norm = "batch"
    elif f"{prefix}res0.stack.0.res_block.1.weight" in sd:
        raise ValueError(f"The official {what} normalises with LayerNorm or GroupNorm (res_norm: layer / group), "
                         "which ours does not have; res_norm batch (the default) and none are supported.")
    else:
        norm = "none"
    return widths, blocks, norm


def official_architecture(
    sd: Mapping[str, Tensor], stoch: int | None = None, classes: int | None = None
) -> dict[str, Any]:
    """The :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` fields of the official model ``sd`` (with
    ``variables.pt`` keys), read from its shapes, plus ``image_shape`` and ``kind`` (``"contextwm"``/``"apv"``).

    :param stoch: number of categorical latents, when not the square root of ``stoch * classes``.
    :param classes: classes per latent (with ``stoch``).
    :raises ValueError: for a layout ours cannot represent (the message names it).
    """
    for key in (f"{ENCODER}convin.weight", f"{RSSM_}img_in.weight", f"{RSSM_}obs_dist.weight",
                f"{RSSM_}_cell._norm.weight", f"{DECODER}convin.weight", f"{DECODER}convout.weight"):
        take(sd, key, None, "architecture")  # a clear error for a partial file
    if f"{RSSM_}img_out_1.weight" in sd:
        raise ValueError("The official RSSM has an ensemble of prior heads (ensemble > 1); ours has one.")
    if f"{RSSM_}img_in_norm._layer.weight" in sd:
        raise ValueError("The official RSSM has LayerNorm in its hidden layers (rssm.norm: layer), with biases; ours "
                         "has no such layout (the official configurations use norm: none).")
    widths, blocks, norm = _stage_layout(sd, ENCODER, "encoder")
    channels = int(sd[f"{ENCODER}convin.weight"].shape[1])
    if int(sd[f"{ENCODER}convin.weight"].shape[0]) != widths[0]:
        raise ValueError(f"The official encoder's stem has {sd[f'{ENCODER}convin.weight'].shape[0]} channels and its "
                         f"first stage {widths[0]}; ours ties them.")
    size = 64  # the official decoder's map side is 64 // 2 ** (res_depth + 1) (decoder/resnet.py:35)
    side = size // 2 ** (len(widths) + 1)
    deter = int(sd[f"{RSSM_}_cell._norm.weight"].shape[0]) // 3
    hidden = int(sd[f"{RSSM_}img_in.weight"].shape[0])
    flat = int(sd[f"{RSSM_}obs_dist.weight"].shape[0])
    embed = int(sd[f"{RSSM_}obs_out.weight"].shape[1]) - deter if f"{RSSM_}obs_out.weight" in sd else -1
    if embed != widths[-1] * side * side:
        raise ValueError(f"The official RSSM reads a {embed}-wide embedding, but the encoder's widths {widths} give "
                         f"{widths[-1] * side * side} at 64x64: not a pre-training checkpoint of one model.")
    if int(sd[f"{RSSM_}img_in.weight"].shape[1]) < flat:
        raise ValueError("The official RSSM has a Gaussian stochastic state (rssm.discrete: False), which is not "
                         "supported; the APV / ContextWM configurations use 32 x 32 categoricals.")
    if stoch is None and classes is None:
        root = math.isqrt(flat)
        if root * root != flat:
            raise ValueError(f"The official RSSM's stochastic state has {flat} = stoch x classes entries, not a "
                             "square: give stoch and classes (policy_kwargs) with that product.")
        stoch = classes = root
    elif stoch is None or classes is None or int(stoch) * int(classes) != flat:
        raise ValueError(f"stoch={stoch} x classes={classes} must multiply to the official RSSM's {flat} "
                         "stochastic entries.")
    decoder_in = int(sd[f"{DECODER}convin.weight"].shape[0])
    if decoder_in != widths[-1] * side * side or int(sd[f"{DECODER}convout.weight"].shape[1]) != channels:
        raise ValueError(f"The official decoder ({tuple(sd[f'{DECODER}convin.weight'].shape)} -> ... -> "
                         f"{sd[f'{DECODER}convout.weight'].shape[1]} channels) does not mirror the encoder (widths "
                         f"{widths}, {channels} channels); ours mirrors the encoder (decoder.cnn_depth = "
                         "encoder.cnn_depth).")
    if int(sd[f"{DECODER}convin.weight"].shape[1]) != deter + flat:
        raise ValueError(f"The official decoder reads {sd[f'{DECODER}convin.weight'].shape[1]} features, the RSSM "
                         f"gives {deter + flat}.")
    context = f"{ENCODER}cond_convin.weight" in sd
    arch: dict[str, Any] = {
        "deter": deter, "hidden": hidden, "stoch": int(stoch), "classes": int(classes), **OFFICIAL_FIXED,
        "cnn_depth": widths[0], "resnet_depths": tuple(widths), "resnet_blocks": blocks, "resnet_norm": norm,
        "context": context,
    }  # fmt: skip
    attending = [i for i in range(len(widths)) if f"{DECODER}res{i}.stack.0.cross_attention.att.in_proj_weight" in sd]
    if context:
        cond_widths, cond_blocks, cond_norm = _stage_layout(sd, f"{ENCODER}cond_", "context encoder")
        if (cond_widths, cond_blocks, cond_norm) != (widths, blocks, norm):
            raise ValueError(f"The official context encoder (widths {cond_widths}, {cond_blocks} layers per stage, "
                             f"norm {cond_norm}) differs from the encoder (widths {widths}, {blocks}, {norm}): ours "
                             "builds both alike (ctx_cnn_depth = cnn_depth, ctx_res_layers = res_layers).")
        if not attending:
            raise ValueError("The official checkpoint has a context encoder but its decoder has no cross-attention.")
        arch["cross_attention_scales"] = tuple(side * 2 ** (i + 1) for i in attending)
    elif attending:
        raise ValueError("The official decoder has cross-attention but the checkpoint has no context encoder "
                         "(wm.encoder.cond_*): a partial ContextWM checkpoint?")
    arch["image_shape"] = (channels, size, size)
    arch["kind"] = "contextwm" if context else "apv"
    return arch


# ------------------------------------------------------------------------------------------------ weights
def _map_module(sd: Mapping[str, Tensor], module: nn.Module, ours: str, official_key: Any,
                special: Mapping[str, Tensor] | None = None) -> dict[str, Tensor]:
    """Our ``module``'s state dict from ``sd``: each of our keys through ``official_key`` (shapes checked)."""
    state: dict[str, Tensor] = {}
    for key, value in module.state_dict().items():
        if special and key in special:
            state[key] = take({"w": special[key]}, "w", value.shape, f"{ours}.{key}")
        else:
            state[key] = take(sd, official_key(key), value.shape, f"{ours}.{key}")
    return state


def _check_used(sd: Mapping[str, Tensor], prefixes: Iterable[str], used: Iterable[str], ours: str,
                ignore: tuple[str, ...] = ()) -> None:
    used = set(used)
    extra = sorted(k for k in sd if k.startswith(tuple(prefixes)) and k not in used and not k.startswith(ignore))
    if extra:
        more = f" (and {len(extra) - 5} more)" if len(extra) > 5 else ""
        raise ValueError(f"The official checkpoint has weights our {ours} does not have: {extra[:5]}{more}. Build the "
                         "model with the checkpoint's architecture (context on for a ContextWM checkpoint, the "
                         "same number of stages and layers).")


def _stage_key(key: str, prefix: str) -> str:
    """``stages.{i}.{j}.rest`` -> ``{prefix}res{i}.stack.{j}.rest`` and ``stem.0.x`` -> ``{prefix}convin.x``."""
    if key.startswith("stem.0."):
        return f"{prefix}convin.{key[len('stem.0.'):]}"
    _, i, j, rest = key.split(".", 3)
    rest = (rest.replace("cross_attention.attn.", "cross_attention.att.")
                .replace("cross_attention.norm.", "norm_cross_att.")
                .replace("cross_attention.q_pos_emb", "q_pos_emb")
                .replace("cross_attention.kv_pos_emb", "kv_pos_emb"))
    return f"{prefix}res{i}.stack.{j}.{rest}"


def resnet_encoder_from_official(sd: Mapping[str, Tensor], encoder: ResNetEncoder, ours: str = "encoder",
                                 context: bool = False) -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.common.resnet.ResNetEncoder` (or ``ContextEncoder`` with ``context``) from the
    official ``wm.encoder.convin`` / ``res{i}`` (``cond_convin`` / ``cond_res{i}``)."""
    prefix = f"{ENCODER}cond_" if context else ENCODER
    state = _map_module(sd, encoder, ours, lambda k: _stage_key(k, prefix))
    ignore = () if context else (f"{ENCODER}cond_",)
    _check_used(sd, (prefix,), [_stage_key(k, prefix) for k in state], ours, ignore)
    return state


def _decoder_key(k: str) -> str:
    """Our decoder's ``linear.*`` / ``out.*`` / ``stages.*`` key -> the official ``wm.heads.decoder`` key."""
    if k.startswith("linear."):
        return f"{DECODER}convin.{k[len('linear.'):]}"
    if k.startswith("out."):
        return f"{DECODER}convout.{k[len('out.'):]}"
    return _stage_key(k, DECODER)


def resnet_decoder_from_official(sd: Mapping[str, Tensor], decoder: ResNetDecoder, deter: int, stoch_flat: int,
                                 ours: str = "decoder") -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.common.resnet.ResNetDecoder` from the official ``wm.heads.decoder``; the
    input columns of ``linear`` reordered from the official features ``[stoch, deter]`` to ours."""

    key = _decoder_key
    weight = take(sd, f"{DECODER}convin.weight", None, f"{ours}.linear.weight")
    if weight.shape[1] != deter + stoch_flat:
        raise ValueError(f"Official {DECODER}convin.weight reads {weight.shape[1]} features but our {ours} reads "
                         f"{deter + stoch_flat} (deter {deter} + stoch {stoch_flat}): build the model with the "
                         "checkpoint's RSSM sizes.")
    state = _map_module(sd, decoder, ours, key, {"linear.weight": weight[:, feature_columns(deter, stoch_flat)]})
    _check_used(sd, (DECODER,), [key(k) for k in state], ours)
    return state


def video_state_from_official(sd: Mapping[str, Tensor], model: nn.Module,
                              modules: Iterable[str] = ("encoder", "af_rssm", "decoder", "context_encoder"),
                              ) -> dict[str, dict[str, Tensor]]:
    """Our state dicts of ``model``'s pre-trained ``modules`` (those it has) from an official ``variables.pt``
    state dict: ``{module name: state dict}``.

    :param model: a :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` or ``StackedWorldModel``.
    :raises ValueError: a key missing or a shape that differs (naming the official key, our parameter and both
        shapes), or official weights our module has no place for.
    """
    out: dict[str, dict[str, Tensor]] = {}
    for name in modules:
        module = getattr(model, name, None)
        if module is None:
            continue
        if name == "encoder":
            out[name] = resnet_encoder_from_official(sd, module, name)
        elif name == "context_encoder":
            if f"{ENCODER}cond_convin.weight" not in sd:
                raise ValueError("The official checkpoint has no context encoder (wm.encoder.cond_*): it is a plain "
                                 "APV model (encoder_type resnet); load it into APV(..., pretrained=...), not "
                                 "ContextDreamer.")
            out[name] = resnet_encoder_from_official(sd, module, name, context=True)
        elif name == "af_rssm":
            out[name] = rssm_from_wmlib(sd, RSSM_, module, name)
        elif name == "decoder":
            rssm = model.af_rssm
            out[name] = resnet_decoder_from_official(sd, module, rssm.deter_size, rssm.stoch_flat, name)
        else:
            raise ValueError(f"No official counterpart for module {name!r}; choose among encoder, af_rssm, decoder, "
                             "context_encoder.")
    return out


def video_state_to_official(model: nn.Module, fill_action: int = 50) -> dict[str, Tensor]:
    """The official ``APV_Pretrain`` state dict (what ``variables.pt`` holds: ``wm.encoder.*``, ``wm.rssm.*``,
    ``wm.heads.decoder.*``) of our :class:`~sb3_worldmodels.contextwm.world_model.VideoWorldModel` (or a
    ``StackedWorldModel``'s pre-trained modules): the inverse of :func:`video_state_from_official`, BatchNorm
    statistics included; the action-free RSSM's ``img_in`` gets the official ``fill_action`` zero-action columns
    (zero weights: the official code feeds them zeros)."""
    sd: dict[str, Tensor] = {}
    sd.update({_stage_key(k, ENCODER): v for k, v in model.encoder.state_dict().items()})
    if getattr(model, "context_encoder", None) is not None:
        sd.update({_stage_key(k, f"{ENCODER}cond_"): v for k, v in model.context_encoder.state_dict().items()})
    rssm = model.af_rssm
    sd.update(rssm_to_wmlib(rssm, RSSM_, fill_action))
    order = torch.argsort(feature_columns(rssm.deter_size, rssm.stoch_flat))  # ours [deter, stoch] -> [stoch, deter]
    for k, v in model.decoder.state_dict().items():
        sd[_decoder_key(k)] = v[:, order] if k == "linear.weight" else v
    return {k: v.detach().cpu().clone() for k, v in sd.items()}


def save_official(model: nn.Module, logdir: str | os.PathLike[str], fill_action: int = 50) -> Path:
    """Write ``model``'s pre-trained modules as the official pre-training writes them
    (``APV_Pretrain.save_model``): ``variables.pt`` and the ``rssm_variables.pt``, ``encoder_variables.pt`` and
    ``decoder_variables.pt`` the official fine-tuning reads (``examples/train_apv_finetuning.py:235-246``), so a
    world model pre-trained here fine-tunes in thuml/ContextWM's code. Each file is written atomically.

    :return: ``logdir``.
    """
    logdir = Path(logdir)
    logdir.mkdir(parents=True, exist_ok=True)
    sd = video_state_to_official(model, fill_action)
    files = {"variables.pt": sd}
    for _, (name, prefix) in PART_FILES.items():
        files[name] = {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}
    for name, state in files.items():
        with atomic_path(logdir / name) as tmp:
            torch.save(state, tmp)
    return logdir


# ------------------------------------------------------------------------------------------------ fine-tuning
#: official fine-tuning settings that must have these values, with our reason
_FINETUNE_REQUIRED: dict[str, tuple[Any, str]] = {
    **WMLIB_REQUIRED,
    "af_rssm.ensemble": (1, "one prior head"),
    "beta_type": ("abs", "the bonus added at scale beta"),
    "decoder_ctx.ctx_attmaskwarmup": (-1, "a constant key/value mask ratio"),
}


def finetune_config_from_official(flat: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Our settings for the official ``config.yaml`` of an APV / ContextWM fine-tuning run
    (``configs/apv_finetuning.yaml`` sections; its flat ``Config``).

    :return: ``(policy_kwargs, algorithm_kwargs)`` for :class:`~sb3_worldmodels.contextwm.APV` /
        :class:`~sb3_worldmodels.contextwm.ContextDreamer` (``policy_kwargs["context"]`` says which).
    :raises ValueError: for a setting the papers' runs do not use, naming it.
    """
    check_settings(flat, _FINETUNE_REQUIRED)
    if flat["encoder_type"] not in ("resnet", "ctx_resnet") or flat["decoder_type"] != flat["encoder_type"]:
        raise ValueError(f"encoder_type / decoder_type {flat['encoder_type']!r} / {flat['decoder_type']!r}: APV uses "
                         "'resnet', ContextWM 'ctx_resnet' (both sides).")
    if flat["af_rssm.deter"] != flat["rssm.deter"] or flat["af_rssm.hidden"] != flat["rssm.hidden"]:
        raise ValueError("Our stacked model's two RSSMs share their sizes (the official configurations do too).")
    if flat["enc_lr_type"] not in ("no_pretrain", "none"):
        raise ValueError(f"enc_lr_type {flat['enc_lr_type']!r}: 'no_pretrain' (our warm-up) or 'none'.")
    policy, algorithm = v2_settings_from_wmlib(flat)
    context = flat["encoder_type"] == "ctx_resnet"
    policy.update(
        context=context, resnet_blocks=int(flat["encoder.res_layers"]), resnet_norm=str(flat["encoder.res_norm"]),
        concat_embed=bool(flat["concat_embed"]), action_pad=int(flat["rssm.fill_action"]),
        af_kl_scale=float(flat["loss_scales.af_kl"]),
        warmup_updates=int(flat["pretrain"]) if flat["enc_lr_type"] == "no_pretrain" else 0,
        intrinsic_scale=float(flat["beta"]), intrinsic_window=int(flat["intr_seq_length"]),
        intrinsic_proj=int(flat["queue_dim"]), intrinsic_queue=int(flat["queue_size"]), intrinsic_k=int(flat["k"]),
        rep_reward_scale=float(flat.get("loss_scales.aux_reward", 0.0)) if context else 0.0,
    )
    if context:
        policy.update(kv_mask_ratio=float(flat["decoder_ctx.ctx_attmask"]),
                      context_augment=str(flat["encoder_ctx.ctx_aug"]))
    return policy, algorithm


def finetune_state_from_official(sd: Mapping[str, Tensor], policy: Any) -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.contextwm.policies.APVPolicy` state dict from an official fine-tuning agent's
    (``APV_Finetune.state_dict()``, a fine-tuning run's ``variables.pt``).

    Beyond the pre-trained modules (:func:`video_state_from_official`, the action-free RSSM under ``wm.af_rssm``):
    ``wm.rssm`` -> ``world_model.rssm`` (its posterior reads the official ``[embedding, af features]`` or
    ``[af features]``, ours ``[af features(, embedding)]``), ``wm.heads.aux_reward`` -> ``world_model.rep_reward``,
    ``wm.intr_bonus.{random_projection_matrix, queue, intr_rewnorm.mag}`` -> ``world_model.bonus.{projection,
    queue, mag}`` (the projection's rows and the queue reordered; the official queue holds its newest points first
    and its fill count in Python, ``bonus_queue_fill``), and the heads and actor-critic as DreamerV2's
    (:func:`~sb3_worldmodels.dreamer.official.heads_from_wmlib`).
    """
    wm = policy.world_model
    filler = StateFiller(policy)
    put, state = filler.put, filler.state

    put("world_model.encoder.", resnet_encoder_from_official(sd, wm.encoder, "encoder"))
    if wm.context_encoder is not None:
        put("world_model.context_encoder.",
            resnet_encoder_from_official(sd, wm.context_encoder, "context_encoder", context=True))
    af, rssm = wm.af_rssm, wm.rssm
    put("world_model.af_rssm.", rssm_from_wmlib(sd, "wm.af_rssm.", af, "af_rssm"))
    embed = wm.encoder.out_dim
    af_cols = (feature_columns(af.deter_size, af.stoch_flat) + (embed if wm.cfg.concat_embed else 0))
    cols = torch.cat([af_cols, torch.arange(embed)]) if wm.cfg.concat_embed else af_cols
    put("world_model.rssm.", rssm_from_wmlib(sd, "wm.rssm.", rssm, "rssm", embed_columns=cols))
    put("world_model.decoder.",
        resnet_decoder_from_official(sd, wm.decoder, rssm.deter_size, rssm.stoch_flat, "decoder"))
    put("", heads_from_wmlib(sd, policy))
    if wm.rep_reward is not None:
        put("world_model.rep_reward.", mlp_from_wmlib(sd, "wm.heads.aux_reward.", wm.rep_reward, "rep_reward",
                                                      feature_columns(rssm.deter_size, rssm.stoch_flat)))
    if wm.bonus is not None:
        projection = take(sd, "wm.intr_bonus.random_projection_matrix", None, "bonus.projection")
        put("world_model.bonus.", {"projection": take(
            {"p": projection[feature_columns(af.deter_size, af.stoch_flat)]}, "p", wm.bonus.projection.shape,
            "bonus.projection")})
        queue = take(sd, "wm.intr_bonus.queue", wm.bonus.queue.shape, "bonus.queue")
        fill = int(sd.get("bonus_queue_fill", torch.tensor(0)))
        # ours fills slots 0.. in order and overwrites the oldest: the official newest-first queue, oldest first
        put("world_model.bonus.", {"queue": torch.cat([queue[:fill].flip(0), queue[fill:]]),
                                   "count": torch.tensor(fill), "ptr": torch.tensor(fill % queue.shape[0]),
                                   "mag": take(sd, "wm.intr_bonus.intr_rewnorm.mag", (), "bonus.mag").float()})
    return state
