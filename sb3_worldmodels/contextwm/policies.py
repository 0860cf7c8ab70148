"""APV / ContextDreamer policy: the stacked world model, a pre-trained checkpoint, and the encoder warm-up."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor

from sb3_worldmodels.contextwm.config import ContextWMConfig, make_contextwm_config
from sb3_worldmodels.contextwm.world_model import StackedWorldModel
from sb3_worldmodels.dreamer.policies import CnnPolicy, _optimizer

__all__ = ["APVPolicy", "StackedState"]

# (af_deter, af_stoch, deter, stoch, prev_action) per env: what ``predict`` returns as ``state``.
StackedState = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class APVPolicy(CnnPolicy):
    """Policy of :class:`~sb3_worldmodels.contextwm.APV` and :class:`~sb3_worldmodels.contextwm.ContextDreamer`.

    A Dreamer ``CnnPolicy`` whose world model is the :class:`StackedWorldModel`. The encoder and the
    action-free RSSM form their own optimizer group, held at learning rate 0 for the first ``warmup_updates``
    updates (APV's warm-up), then at the model learning rate.

    :param pretrained: directory of a pre-training checkpoint (``sb3wm pretrain``); its encoder, action-free RSSM,
        decoder (and context encoder) are loaded strictly. ``None`` trains from scratch.
    :param config_overrides: any :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field.
    """

    config_class = ContextWMConfig
    world_model_class = StackedWorldModel
    world_model: StackedWorldModel
    cfg: ContextWMConfig

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        version: str = "v2",
        model_size: str | None = None,
        pretrained: str | None = None,
        **config_overrides: Any,
    ) -> None:
        super().__init__(observation_space, action_space, lr_schedule, version, model_size, **config_overrides)
        wm = self.world_model
        if pretrained is not None:
            from sb3_worldmodels.contextwm.checkpoint import load_pretrained

            load_pretrained(wm, pretrained)
        self.pretrained = pretrained
        # the official fine-tuning's two optimizers (thuml/ContextWM wmlib/agents/apv_finetune.py:63-67): the encoder
        # (ContextWM's holds the context branch) and the action-free RSSM, and the rest (RSSM, decoder, heads), each
        # clipped on its own; here two parameter groups of one Adam (same updates)
        early_modules = [m for m in (wm.encoder, wm.context_encoder, wm.af_rssm) if m is not None]
        early = [p for m in early_modules for p in m.parameters()]
        early_ids = {id(p) for p in early}
        rest = [p for p in wm.parameters() if id(p) not in early_ids]
        cfg = self.cfg
        self.wm_optimizer = _optimizer(
            [{"params": early, "name": "pretrained"}, {"params": rest, "name": "rest"}],
            cfg.model_lr, cfg.model_eps, cfg.weight_decay,
        )
        self.optimizer = self.wm_optimizer

    @classmethod
    def _make_config(cls, version: str, model_size: str | None, **overrides: Any) -> ContextWMConfig:
        return make_contextwm_config(version, model_size, **overrides)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        # the weights (pre-trained ones included) are saved with the model: a reload must not read the checkpoint
        return {**super()._get_constructor_parameters(), "pretrained": None}

    # ----------------------------------------------------------------------------------- acting
    def initial_state(self, n: int) -> StackedState:  # type: ignore[override]
        """Zero recurrent state of both RSSMs for ``n`` envs (reset to the initial states at episode start)."""
        wm = self.world_model
        zeros = lambda d: np.zeros((n, d), np.float32)  # noqa: E731
        return (zeros(wm.af_rssm.deter_size), zeros(wm.af_rssm.stoch_flat), zeros(wm.rssm.deter_size),
                zeros(wm.rssm.stoch_flat), zeros(wm.action_width))

    def step(  # type: ignore[override]
        self, obs: PyTorchObs, state: tuple[Tensor, ...], episode_start: Tensor, deterministic: bool
    ) -> tuple[Tensor, tuple[Tensor, ...]]:
        """One acting step: filter ``obs`` through the action-free, then the action-conditional RSSM, then act."""
        wm = self.world_model
        af_deter, af_stoch, deter, stoch, prev_action = state
        embed = wm.encode(wm.preprocess(obs))
        af_post, _ = wm.af_rssm.obs_step(
            {"deter": af_deter, "stoch": af_stoch}, None, embed, episode_start, sample=not deterministic
        )
        post, _ = wm.rssm.obs_step(
            {"deter": deter, "stoch": stoch}, prev_action, wm.stack_input(af_post, embed), episode_start,
            sample=not deterministic,
        )
        dist = self.behavior.actor_dist(wm.rssm.feat(post))
        action = dist.mode if deterministic else dist.sample()
        out = action.argmax(-1) if self.behavior.discrete else action
        return out, (af_post["deter"], af_post["stoch"], post["deter"], post["stoch"], wm.pad_action(action.detach()))

    # ----------------------------------------------------------------------------------- learning
    def _clip_world_model_grads(self) -> dict[str, Tensor]:
        """Clip the two parameter groups separately, as the official fine-tuning clips each of its optimizers."""
        clip = self.cfg.model_grad_clip
        early, rest = (group["params"] for group in self.wm_optimizer.param_groups)
        return {"pretrained_grad_norm": torch.nn.utils.clip_grad_norm_(early, clip),
                "model_grad_norm": torch.nn.utils.clip_grad_norm_(rest, clip)}

    def train_step(self, batch: Any, horizon: int, gamma: float) -> dict[str, Any]:
        """A Dreamer update, with the encoder / action-free RSSM learning rate 0 during the warm-up."""
        warm = int(self.behavior.updates) < self.cfg.warmup_updates
        self.wm_optimizer.param_groups[0]["lr"] = 0.0 if warm else self.cfg.model_lr
        metrics = super().train_step(batch, horizon, gamma)
        metrics["pretrained_lr"] = self.wm_optimizer.param_groups[0]["lr"]
        return metrics
