"""Weights of the official PyTorch ``wmlib`` (thuml/HarmonyDream ``wmlib-torch``, thuml/ContextWM ``wmlib``) in our
modules: the mapping of names and layouts shared by every family built on it (DreamerV2, Harmony-DreamerV2, APV,
ContextWM).

``wmlib`` creates its layers lazily under names such as ``img_in``, ``dense0`` or ``conv2``; ours are
``nn.Sequential`` stacks. Two layouts differ besides the names:

* model features are ``[stoch, deter]`` in ``wmlib`` and ``[deter, stoch]`` here, so the input columns of every
  layer that reads features are swapped (:func:`feature_columns`);
* the action-free RSSM of APV reads a zero "action" of ``fill_action`` (50) entries that ours does not have: those
  input columns multiply zeros and are dropped; an action-conditional RSSM keeps them (``action_pad=50``).

Every function here returns a state dict in our names for one module, from the official state dict ``sd`` and the
official module's key ``prefix``; a missing key or a shape that does not fit raises a ``ValueError`` naming the
official key, our parameter and both shapes.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from sb3_worldmodels.common.rssm import RSSM

__all__ = [
    "StateFiller",
    "feature_columns",
    "linear_from_wmlib",
    "mlp_from_wmlib",
    "rssm_from_wmlib",
    "rssm_to_wmlib",
    "take",
]


class StateFiller:
    """A copy of ``module``'s state dict whose entries the mappings replace, prefix by prefix (an unknown key is an
    error: a mapping that names a parameter our module does not have); entries no mapping fills keep the module's
    own values (e.g. counters and normalisers the official state dict does not hold)."""

    def __init__(self, module: nn.Module) -> None:
        self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}

    def put(self, prefix: str, part: Mapping[str, Tensor]) -> None:
        """Set ``prefix + key`` to each value of ``part``."""
        for key, value in part.items():
            if f"{prefix}{key}" not in self.state:
                raise KeyError(f"{prefix}{key}")
            self.state[f"{prefix}{key}"] = value


def take(sd: Mapping[str, Tensor], key: str, shape: tuple[int, ...] | torch.Size | None = None,
         ours: str = "") -> Tensor:
    """``sd[key]`` as a float tensor, checked against ``shape`` (the shape of our parameter ``ours``)."""
    if key not in sd:
        near = sorted(k for k in sd if k.rsplit(".", 2)[0] == key.rsplit(".", 2)[0])[:5]
        raise ValueError(f"The official state dict has no {key!r} (for our {ours or 'parameter'}); keys nearby: "
                         f"{near}. Was it written by the same kind of model and configuration?")
    value = torch.as_tensor(sd[key])
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(f"Official {key!r} has shape {tuple(value.shape)} but our {ours or 'parameter'} has shape "
                         f"{tuple(shape)}: build the model with the checkpoint's sizes.")
    return value.detach().clone()


def feature_columns(deter: int, stoch_flat: int, extra: int = 0) -> Tensor:
    """Indices that reorder the input columns of a layer reading ``wmlib`` features ``[stoch, deter, extra...]`` into
    ours, ``[deter, stoch, extra...]`` (``weight[:, feature_columns(...)]``)."""
    return torch.cat([torch.arange(stoch_flat, stoch_flat + deter), torch.arange(stoch_flat),
                      torch.arange(stoch_flat + deter, stoch_flat + deter + extra)])


def linear_from_wmlib(sd: Mapping[str, Tensor], key: str, layer: nn.Linear, ours: str,
                      columns: Tensor | None = None) -> dict[str, Tensor]:
    """``{"weight", "bias"}`` of our ``layer`` from the official Linear ``key`` (its input columns reordered by
    ``columns`` when given)."""
    weight = take(sd, f"{key}.weight", None, ours)
    if columns is not None:
        weight = weight[:, columns]
    out = {"weight": take({"w": weight}, "w", layer.weight.shape, f"{ours}.weight")}
    if layer.bias is not None:
        out["bias"] = take(sd, f"{key}.bias", layer.bias.shape, f"{ours}.bias")
    return out


def _prefixed(prefix: str, state: Mapping[str, Tensor]) -> dict[str, Tensor]:
    return {f"{prefix}{k}": v for k, v in state.items()}


def mlp_from_wmlib(sd: Mapping[str, Tensor], prefix: str, mlp: nn.Sequential, ours: str,
                   columns: Tensor | None = None, out_keys: tuple[str, ...] = ("out.out",)) -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.common.nets.MLP` from a ``wmlib`` ``nets.MLP`` (``dense{i}``, ``norm{i}``,
    ``out.out``) or an encoder's dense stack.

    :param columns: input-column order of the first layer (see :func:`feature_columns`).
    :param out_keys: official Linear layers whose outputs are concatenated into our output layer (an actor's
        ``("out.out", "out.std")``); empty when our MLP ends on its last hidden layer.
    """
    linears = [i for i, m in enumerate(mlp) if isinstance(m, nn.Linear)]
    hidden = linears[: len(linears) - (1 if out_keys else 0)]
    state: dict[str, Tensor] = {}
    for n, i in enumerate(hidden):
        state.update(_prefixed(f"{i}.", linear_from_wmlib(sd, f"{prefix}dense{n}", mlp[i], f"{ours}.{i}",
                                                          columns if n == 0 else None)))
        if isinstance(mlp[i + 1], nn.LayerNorm):
            norm = mlp[i + 1]
            state[f"{i + 1}.weight"] = take(sd, f"{prefix}norm{n}._layer.weight", norm.weight.shape, f"{ours}.{i + 1}")
            state[f"{i + 1}.bias"] = take(sd, f"{prefix}norm{n}._layer.bias", norm.bias.shape, f"{ours}.{i + 1}")
    if out_keys:
        i = linears[-1]
        layer = mlp[i]
        weights = [take(sd, f"{prefix}{k}.weight", None, f"{ours}.{i}") for k in out_keys]
        biases = [take(sd, f"{prefix}{k}.bias", None, f"{ours}.{i}") for k in out_keys]
        weight = torch.cat(weights, 0)
        if columns is not None and not hidden:
            weight = weight[:, columns]
        state[f"{i}.weight"] = take({"w": weight}, "w", layer.weight.shape, f"{ours}.{i}.weight")
        state[f"{i}.bias"] = take({"b": torch.cat(biases, 0)}, "b", layer.bias.shape, f"{ours}.{i}.bias")
    return state


def rssm_from_wmlib(sd: Mapping[str, Tensor], prefix: str, rssm: RSSM, ours: str = "rssm",
                    embed_columns: Tensor | None = None) -> dict[str, Tensor]:
    """Our :class:`~sb3_worldmodels.common.rssm.RSSM` from a ``wmlib`` ``EnsembleRSSM`` (one ensemble member).

    ``img_in`` keeps the first ``stoch * classes + action_dim`` input columns: an action-free RSSM's zero-filled
    action columns (APV's ``fill_action``) are dropped, an action-conditional one keeps its padded action width.

    :param embed_columns: the order of the official posterior's embedding columns that gives ours (``obs_out`` reads
        ``[deter, embedding]``), when the embeddings differ in layout (APV's stacked RSSM reads features).
    """
    if f"{prefix}img_out_1.weight" in sd:
        raise ValueError(f"The official RSSM at {prefix!r} has an ensemble of prior heads; ours has one "
                         "(ensemble: 1, as every configuration of the papers).")
    state: dict[str, Tensor] = {}
    img_in = take(sd, f"{prefix}img_in.weight", None, f"{ours}.img_in")
    width = rssm.stoch_flat + rssm.action_dim
    if img_in.shape[1] < width:
        raise ValueError(f"Official {prefix}img_in.weight has {img_in.shape[1]} input columns but our RSSM reads "
                         f"{width} (stoch {rssm.stoch_flat} + actions {rssm.action_dim}): set action_pad to the "
                         "official fill_action (50).")
    blocks = {"img_in": rssm.img_in, "img_out.0": rssm.img_out[0], "obs_out.0": rssm.obs_out[0]}
    names = {"img_in": "img_in", "img_out.0": "img_out_0", "obs_out.0": "obs_out"}
    for our_name, block in blocks.items():
        theirs = f"{prefix}{names[our_name]}"
        cols = torch.arange(width) if our_name == "img_in" else None
        if our_name == "obs_out.0" and embed_columns is not None:
            cols = torch.cat([torch.arange(rssm.deter_size), rssm.deter_size + embed_columns])
        state.update(_prefixed(f"{our_name}.0.", linear_from_wmlib(sd, theirs, block[0], f"{ours}.{our_name}.0",
                                                                   cols)))
        if isinstance(block[1], nn.LayerNorm):
            state[f"{our_name}.1.weight"] = take(sd, f"{theirs}_norm._layer.weight", block[1].weight.shape)
            state[f"{our_name}.1.bias"] = take(sd, f"{theirs}_norm._layer.bias", block[1].bias.shape)
    for our_name, theirs in (("img_out.1", "img_dist_0"), ("obs_out.1", "obs_dist")):
        layer = rssm.img_out[1] if our_name == "img_out.1" else rssm.obs_out[1]
        state.update(_prefixed(f"{our_name}.", linear_from_wmlib(sd, f"{prefix}{theirs}", layer, f"{ours}.{our_name}")))
    gru = rssm.gru
    state.update(_prefixed("gru.linear.", linear_from_wmlib(sd, f"{prefix}_cell._layer", gru.linear, f"{ours}.gru")))
    if isinstance(gru.norm, nn.LayerNorm):
        state["gru.norm.weight"] = take(sd, f"{prefix}_cell._norm.weight", gru.norm.weight.shape, f"{ours}.gru.norm")
        state["gru.norm.bias"] = take(sd, f"{prefix}_cell._norm.bias", gru.norm.bias.shape, f"{ours}.gru.norm")
    state["initial_deter"] = rssm.initial_deter.detach().clone()  # wmlib starts from zeros, as ours without learning
    return state


def rssm_to_wmlib(rssm: RSSM, prefix: str, fill_action: int = 0) -> dict[str, Tensor]:
    """The inverse of :func:`rssm_from_wmlib`: a ``wmlib`` ``EnsembleRSSM`` state dict (keys under ``prefix``) from
    ours, with ``img_in`` read ``fill_action`` zero-action columns wide when ours reads fewer (APV's action-free
    RSSM: 50, which multiply the zero "action" there)."""
    if isinstance(rssm.img_in[1], nn.LayerNorm) or not isinstance(rssm.gru.norm, nn.LayerNorm):
        raise ValueError("The official DreamerV2-family RSSM has no norm outside its LayerNorm GRU.")
    state = {k: v.detach().clone() for k, v in rssm.state_dict().items()}
    img_in = state["img_in.0.weight"]
    missing = max(0, rssm.stoch_flat + fill_action - img_in.shape[1])
    out = {
        "img_in.weight": torch.cat([img_in, img_in.new_zeros(img_in.shape[0], missing)], 1),
        "img_in.bias": state["img_in.0.bias"],
        "_cell._layer.weight": state["gru.linear.weight"], "_cell._layer.bias": state["gru.linear.bias"],
        "_cell._norm.weight": state["gru.norm.weight"], "_cell._norm.bias": state["gru.norm.bias"],
    }
    for ours, theirs in (("img_out.0.0", "img_out_0"), ("img_out.1", "img_dist_0"), ("obs_out.0.0", "obs_out"),
                         ("obs_out.1", "obs_dist")):
        out[f"{theirs}.weight"], out[f"{theirs}.bias"] = state[f"{ours}.weight"], state[f"{ours}.bias"]
    return {f"{prefix}{k}": v for k, v in out.items()}
