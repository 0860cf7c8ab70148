"""Dreamer policies: the world model, actor-critic and their optimizers, with a recurrent ``predict``."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor

from sb3_worldmodels.common.precision import autocast
from sb3_worldmodels.common.spaces import check_policy_alias
from sb3_worldmodels.dreamer.behavior import ActorCritic
from sb3_worldmodels.dreamer.config import DreamerConfig, make_config
from sb3_worldmodels.dreamer.world_model import WorldModel, split_spaces

__all__ = ["DreamerPolicy", "CnnPolicy", "MlpPolicy", "MultiInputPolicy", "RecurrentState"]

# (deter, stoch, prev_action) per env, as numpy arrays: what ``predict`` returns as ``state``.
RecurrentState = tuple[np.ndarray, np.ndarray, np.ndarray]


def _optimizer(params: Any, lr: float, eps: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam; a ``weight_decay`` > 0 (DreamerV2: 1e-6) is Adam's own L2 term, added to the gradient after clipping,
    as in the official PyTorch code (thuml/HarmonyDream ``wmlib/core/torch_utils.py:80``: ``optim.Adam(p, lr,
    eps=eps, weight_decay=wd)``)."""
    return torch.optim.Adam(params, lr=lr, eps=eps, weight_decay=weight_decay)


def _batch_size(obs: PyTorchObs) -> int:
    """Number of envs in a batched observation tensor (or dict of tensors)."""
    return int(next(iter(obs.values())).shape[0] if isinstance(obs, dict) else obs.shape[0])


class DreamerPolicy(BasePolicy):
    """World model + actor-critic of a Dreamer agent.

    ``predict(obs, state, episode_start, deterministic)`` filters the observation into the latent state
    (reset where ``episode_start``) and returns the action and the new state, so SB3's ``evaluate_policy``
    and ``EvalCallback`` work unchanged.

    :param observation_space: observation space (images channels-first, as SB3 wraps them).
    :param action_space: Box or Discrete.
    :param lr_schedule: SB3 schedule of the world-model learning rate (its initial value is used).
    :param version: "v3" or "v2".
    :param model_size: size preset ("tiny", "XS", "S", "M", "L", "XL"; "default" for V2).
    :param config_overrides: any other :class:`DreamerConfig` field.
    """

    #: configuration dataclass and world-model class; subclasses (APV, ContextWM) swap them
    config_class: type[DreamerConfig] = DreamerConfig
    world_model_class: type[WorldModel] = WorldModel

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        lr_schedule: Schedule,
        version: str = "v3",
        model_size: str | None = None,
        **config_overrides: Any,
    ) -> None:
        self._check_observation_space(observation_space)
        super().__init__(observation_space, action_space, squash_output=isinstance(action_space, spaces.Box))
        if isinstance(action_space, spaces.Box) and len(action_space.shape) != 1:
            raise ValueError(f"Box actions must be flat, got shape {action_space.shape}; flatten the action space.")
        config_overrides.setdefault("model_lr", float(lr_schedule(1.0)))
        self._config_overrides = dict(config_overrides)
        self.cfg: DreamerConfig = self._make_config(version, model_size, **config_overrides)
        self.world_model = self.world_model_class(observation_space, action_space, self.cfg)
        self.behavior = ActorCritic(self.world_model.rssm.feat_dim, action_space, self.cfg)
        cfg = self.cfg
        self.wm_optimizer = _optimizer(self.world_model.parameters(), cfg.model_lr, cfg.model_eps, cfg.weight_decay)
        self.actor_optimizer = _optimizer(self.behavior.actor.parameters(), cfg.actor_lr, cfg.ac_eps, cfg.weight_decay)
        self.critic_optimizer = _optimizer(
            self.behavior.critic.parameters(), cfg.critic_lr, cfg.ac_eps, cfg.weight_decay
        )
        self.optimizer = self.wm_optimizer  # SB3 expects `policy.optimizer`

    @classmethod
    def _make_config(cls, version: str, model_size: str | None, **overrides: Any) -> DreamerConfig:
        """Build and validate the configuration (subclasses with their own config class override this)."""
        return make_config(version, model_size, cls.config_class, **overrides)

    # ----------------------------------------------------------------------------------- checks
    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        split_spaces(observation_space)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        return dict(observation_space=self.observation_space, action_space=self.action_space,
                    lr_schedule=self._dummy_schedule, version=self.cfg.version, model_size=self.cfg.model_size,
                    **self._config_overrides)

    # ----------------------------------------------------------------------------------- acting
    def initial_state(self, n: int) -> RecurrentState:
        """Zero recurrent state for ``n`` envs (replaced by the model's initial state at episode start)."""
        rssm = self.world_model.rssm
        return (
            np.zeros((n, rssm.deter_size), np.float32),
            np.zeros((n, rssm.stoch_flat), np.float32),
            np.zeros((n, self.world_model.action_width), np.float32),
        )

    def step(
        self, obs: PyTorchObs, state: tuple[Tensor, Tensor, Tensor], episode_start: Tensor, deterministic: bool
    ) -> tuple[Tensor, tuple[Tensor, Tensor, Tensor]]:
        """One acting step on a batch of ``n`` envs: filter ``obs`` into the state, then act.

        :return: actions in [-1, 1] (Box) or indices (Discrete), and the new (deter, stoch, action) state.
        """
        wm = self.world_model
        deter, stoch, prev_action = state
        embed = wm.encode(wm.preprocess(obs))
        post, _ = wm.rssm.obs_step(
            {"deter": deter, "stoch": stoch}, prev_action, embed, episode_start, sample=not deterministic
        )
        dist = self.behavior.actor_dist(wm.rssm.feat(post))
        action = dist.mode if deterministic else dist.sample()
        model_action = wm.pad_action(action.detach())
        out = action.argmax(-1) if self.behavior.discrete else action
        return out, (post["deter"], post["stoch"], model_action)

    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> Tensor:
        n = _batch_size(observation)
        state = tuple(torch.as_tensor(s, device=self.device) for s in self.initial_state(n))
        action, _ = self.step(observation, state, torch.ones(n, device=self.device), deterministic)  # type: ignore[arg-type]
        return action

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: RecurrentState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, RecurrentState]:
        """Recurrent prediction for one step of ``n`` envs (or a single unbatched observation).

        :param observation: observations as given by the env / VecEnv.
        :param state: the state returned by the previous call, or ``None`` to start fresh.
        :param episode_start: (n,) flags; the latent state is reset where True (all True when state is None).
        :param deterministic: use the actor's mode instead of a sample.
        :return: actions (in the env's action space) and the new state.
        """
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        n = _batch_size(obs_tensor)
        if state is None:
            state = self.initial_state(n)
            episode_start = np.ones(n, dtype=bool)
        if episode_start is None:
            episode_start = np.zeros(n, dtype=bool)
        th_state = tuple(torch.as_tensor(s, device=self.device, dtype=torch.float32) for s in state)
        starts = torch.as_tensor(np.asarray(episode_start, dtype=np.float32).reshape(n), device=self.device)
        with torch.no_grad():
            action, new_state = self.step(obs_tensor, th_state, starts, deterministic)  # type: ignore[arg-type]
        actions = action.cpu().numpy()
        if isinstance(self.action_space, spaces.Box):
            actions = self.unscale_action(np.clip(actions, -1.0, 1.0))
        else:
            actions = actions.astype(np.int64)
        if not vectorized:
            actions = actions.squeeze(axis=0)
        np_state: RecurrentState = tuple(s.cpu().numpy() for s in new_state)  # type: ignore[assignment]
        return actions, np_state

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> Tensor:
        """Stateless action from the initial state (use :meth:`predict` with ``state`` for control)."""
        return self._predict(obs, deterministic)

    # ----------------------------------------------------------------------------------- learning
    def _autocast(self) -> torch.autocast:
        """bf16 autocast of the forward passes when ``precision="bf16"`` (distributions stay in fp32)."""
        return autocast(self.device.type, self.cfg.precision)

    def _clip_world_model_grads(self) -> dict[str, Tensor]:
        """Clip the world model's gradient norm at ``model_grad_clip`` (one norm over all its parameters, as the
        official optimizer clips its parameter group); returns the norm before clipping as a metric."""
        norm = torch.nn.utils.clip_grad_norm_(self.world_model.parameters(), self.cfg.model_grad_clip)
        return {"model_grad_norm": norm}

    def train_step(self, batch: Any, horizon: int, gamma: float) -> dict[str, Any]:
        """One full update: world model, then actor and critic in imagination from the posteriors.

        :param batch: a ``SequenceSamples`` from :class:`~sb3_worldmodels.common.buffers.SequenceReplayBuffer`.
        :return: metrics of the update (tensors and floats).
        """
        cfg = self.cfg
        start_time = time.perf_counter()
        self.set_training_mode(True)
        with self._autocast():
            model_loss, post, metrics = self.world_model.loss(
                batch.observations, batch.prev_actions, batch.rewards, batch.is_first, batch.is_terminal, gamma
            )
        self.wm_optimizer.zero_grad(set_to_none=True)
        model_loss.backward()
        metrics.update(self._clip_world_model_grads())
        self.wm_optimizer.step()

        post = {k: v.detach() for k, v in post.items()}
        with self._autocast():
            actor_loss, critic_loss, ac_metrics = self.behavior.losses(
                self.world_model, post, batch.is_terminal, horizon, gamma, batch.rewards, batch.is_last
            )
        metrics.update(ac_metrics)
        # the losses share one graph (one critic forward): each goes into its own network's parameters only
        actor_params, critic_params = list(self.behavior.actor.parameters()), list(self.behavior.critic.parameters())
        self.actor_optimizer.zero_grad(set_to_none=True)
        self.critic_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=actor_params, retain_graph=True)
        critic_loss.backward(inputs=critic_params)
        metrics["actor_grad_norm"] = torch.nn.utils.clip_grad_norm_(actor_params, cfg.ac_grad_clip)
        self.actor_optimizer.step()
        metrics["critic_grad_norm"] = torch.nn.utils.clip_grad_norm_(critic_params, cfg.ac_grad_clip)
        self.critic_optimizer.step()
        self.behavior.update_slow_critic()
        metrics["update_seconds"] = time.perf_counter() - start_time
        return metrics


class CnnPolicy(DreamerPolicy):
    """Dreamer policy for image observations (a uint8 image Box)."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("CnnPolicy", observation_space, split_spaces)

class MlpPolicy(DreamerPolicy):
    """Dreamer policy for flat vector observations (a 1-d Box)."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("MlpPolicy", observation_space, split_spaces)

class MultiInputPolicy(DreamerPolicy):
    """Dreamer policy for Dict observations of images and vectors."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("MultiInputPolicy", observation_space, split_spaces)
