"""DreamerV3, DreamerV2 and DreamerHarmony as Stable-Baselines3 off-policy algorithms."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.vec_env import VecEnv

from sb3_worldmodels.common.algorithm import AtomicSaveMixin
from sb3_worldmodels.common.allocator import tune_cpu_allocator
from sb3_worldmodels.common.buffers import SequenceReplayBuffer
from sb3_worldmodels.common.video import log_video, openloop_frames
from sb3_worldmodels.dreamer.config import DreamerConfig
from sb3_worldmodels.envs.base import env_family
from sb3_worldmodels.dreamer.policies import (
    CnnPolicy,
    DreamerPolicy,
    MlpPolicy,
    MultiInputPolicy,
    RecurrentState,
)

__all__ = ["Dreamer", "DreamerV3", "DreamerV2", "DreamerHarmony"]

SelfDreamer = TypeVar("SelfDreamer", bound="Dreamer")

# Spec defaults per version that no preset changes (the others come from the config's PRESETS).
VERSION_DEFAULTS: dict[str, dict[str, Any]] = {
    "v3": dict(learning_rate=1e-4, gamma=0.997),
    "v2": dict(learning_rate=3e-4, gamma=0.99),
}


class Dreamer(AtomicSaveMixin, OffPolicyAlgorithm):
    """Dreamer: learn an RSSM world model from replayed sequences and an actor-critic inside it.

    Training follows the replay ratio of DreamerV3: ``train_ratio`` replayed steps per environment step,
    i.e. ``train_ratio / (batch_size * sequence_length)`` updates per env step (fractions carry over).
    Every update trains the world model on ``batch_size`` sequences of ``sequence_length`` steps, then the
    actor and critic on ``imagination_horizon``-step rollouts from every posterior state.

    :param policy: "CnnPolicy", "MlpPolicy", "MultiInputPolicy" or a :class:`DreamerPolicy` subclass.
    :param env: environment or its gymnasium id.
    :param learning_rate: world-model learning rate (actor/critic rates are ``actor_lr``/``critic_lr`` in
        ``policy_kwargs``); default from the spec of the version.
    :param buffer_size: replay capacity in steps (all envs together).
    :param learning_starts: env steps of random prefill before training.
    :param batch_size: sequences per update.
    :param sequence_length: steps per replayed sequence.
    :param train_ratio: replayed steps per env step.
    :param imagination_horizon: imagination length for behaviour learning.
    :param gamma: discount.
    :param version: "v3" or "v2".
    :param harmony: turn on HarmonyDream's loss harmonizers.
    :param pretrain_updates: extra updates run once, right after the prefill (DreamerV2's official ``pretrain: 100``;
        DreamerV3: 0).
    :param video_interval: updates between open-loop prediction videos in the logger (0 disables).
    :param replay_buffer_kwargs: extra arguments of :class:`SequenceReplayBuffer` (e.g. ``memmap_dir``,
        ``prioritize_ends``).
    :param policy_kwargs: ``model_size``, ``preset`` and any :class:`~sb3_worldmodels.dreamer.config.DreamerConfig`
        field. ``preset`` (DreamerV2 family: ``"dmc"``, ``"dmcr"``, ``"metaworld"`` or ``"default"``, see
        :data:`~sb3_worldmodels.dreamer.config.V2_PRESETS`) defaults to the env's family; it also sets the defaults
        of ``batch_size``, ``sequence_length``, ``train_ratio``, ``learning_starts``, ``pretrain_updates`` and the
        replay's ``prioritize_ends`` that are not given.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "CnnPolicy": CnnPolicy,
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DreamerPolicy
    replay_buffer: SequenceReplayBuffer

    def __init__(
        self,
        policy: str | type[DreamerPolicy],
        env: GymEnv | str,
        learning_rate: float | Schedule | None = None,
        buffer_size: int = 1_000_000,
        learning_starts: int | None = None,
        batch_size: int | None = None,
        sequence_length: int | None = None,
        train_ratio: float | None = None,
        imagination_horizon: int = 15,
        gamma: float | None = None,
        version: str = "v3",
        harmony: bool = False,
        pretrain_updates: int | None = None,
        video_interval: int = 0,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: torch.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if version not in VERSION_DEFAULTS:
            raise ValueError(f"Unknown Dreamer version {version!r}; use 'v3' or 'v2'.")
        policy_kwargs = dict(policy_kwargs or {})
        preset = policy_kwargs.get("preset") or self._env_preset(env, version)
        policy_kwargs["preset"] = preset
        defaults = {**VERSION_DEFAULTS[version], **self._algorithm_presets(version, preset)}
        replay_buffer_kwargs = {"prioritize_ends": defaults["prioritize_ends"], **(replay_buffer_kwargs or {})}
        super().__init__(
            policy,
            env,
            defaults["learning_rate"] if learning_rate is None else learning_rate,
            buffer_size=buffer_size,
            learning_starts=defaults["learning_starts"] if learning_starts is None else learning_starts,
            batch_size=defaults["batch_size"] if batch_size is None else batch_size,
            tau=1.0,
            gamma=defaults["gamma"] if gamma is None else gamma,
            train_freq=(1, "step"),
            gradient_steps=-1,
            replay_buffer_class=SequenceReplayBuffer,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            sde_support=False,
            supported_action_spaces=(spaces.Box, spaces.Discrete),
        )
        self.sequence_length = defaults["sequence_length"] if sequence_length is None else sequence_length
        self.train_ratio = float(defaults["train_ratio"] if train_ratio is None else train_ratio)
        self.imagination_horizon = imagination_horizon
        self.version = version
        self.harmony = harmony
        self.pretrain_updates = int(defaults["pretrain_updates"] if pretrain_updates is None else pretrain_updates)
        self.video_interval = video_interval
        self._update_credit = 0.0
        self._rollout_state: RecurrentState | None = None
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------------------------------ setup
    @classmethod
    def _config_class(cls) -> type[DreamerConfig]:
        """The configuration dataclass of this algorithm's policies (its presets)."""
        return DreamerConfig

    @classmethod
    def _env_preset(cls, env: GymEnv | str, version: str) -> str:
        """The preset of ``env``'s family when this algorithm has one, else ``"default"``."""
        family = env_family(env)
        return family if family in cls._config_class().presets(version) else "default"

    @classmethod
    def _algorithm_presets(cls, version: str, preset: str) -> dict[str, Any]:
        presets = cls._config_class().presets(version)
        if preset not in presets:
            raise ValueError(f"Unknown preset {preset!r} for {cls.__name__} ({version}); choose one of "
                             f"{sorted(presets)}.")
        return presets[preset]["algorithm"]

    def _setup_model(self) -> None:
        tune_cpu_allocator(self.device)  # large update temporaries reuse heap memory on CPU
        self.policy_kwargs = {"version": self.version, **self.policy_kwargs}
        if self.harmony:
            self.policy_kwargs.setdefault("harmony", True)
        if self.batch_size < 1 or self.sequence_length < 2:
            raise ValueError(
                f"batch_size ({self.batch_size}) must be >= 1 and sequence_length ({self.sequence_length}) >= 2."
            )
        # check the spaces before SB3 allocates the replay buffer, so the error names the fix
        self.policy_class._check_observation_space(self.observation_space)  # type: ignore[attr-defined]
        super()._setup_model()

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.wm_optimizer", "policy.actor_optimizer", "policy.critic_optimizer"], []

    # ------------------------------------------------------------------------------------------ acting
    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: RecurrentState | None = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, RecurrentState]:
        """Action and new latent state; pass ``state`` and ``episode_start`` back on the next call."""
        return self.policy.predict(observation, state, episode_start, deterministic)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        if self.num_timesteps < learning_starts:
            unscaled = np.array([self.action_space.sample() for _ in range(n_envs)])
            self._rollout_state = None
        else:
            starts = getattr(self, "_last_episode_starts", np.ones(n_envs, dtype=bool))
            unscaled, self._rollout_state = self.policy.predict(
                self._last_obs, self._rollout_state, starts, deterministic=False  # type: ignore[arg-type]
            )
        if isinstance(self.action_space, spaces.Box):
            scaled = self.policy.scale_action(unscaled)
            if action_noise is not None:
                scaled = np.clip(scaled + action_noise(), -1, 1)
            return self.policy.unscale_action(scaled), scaled
        return unscaled, unscaled

    # ------------------------------------------------------------------------------------------ training
    def train(self, gradient_steps: int, batch_size: int = 16) -> None:
        """Run the updates owed for ``gradient_steps`` new env steps at ``train_ratio``."""
        self._update_credit += gradient_steps * self.train_ratio / (batch_size * self.sequence_length)
        if self._n_updates == 0 and self.pretrain_updates > 0:
            # once, right after the prefill: the official DreamerV2's ``pretrain`` updates
            self._update_credit += self.pretrain_updates
        n_updates = int(self._update_credit)
        if n_updates == 0:
            return
        self._update_credit -= n_updates
        sums: dict[str, float] = defaultdict(float)
        start = time.perf_counter()
        for _ in range(n_updates):
            batch = self.replay_buffer.sample_sequences(batch_size, self.sequence_length, env=self._vec_normalize_env)
            metrics = self.policy.train_step(batch, self.imagination_horizon, self.gamma)
            for key, value in metrics.items():
                sums[key] += float(value)
            self._n_updates += 1
            if self.video_interval and self._n_updates % self.video_interval == 0:
                self._log_openloop_video(batch)
        elapsed = time.perf_counter() - start
        groups = {"actor_", "critic_", "imag_", "value", "return_scale"}
        for key, total in sums.items():
            prefix = "behavior" if any(key.startswith(g) for g in groups) else "world_model"
            self.logger.record(f"{prefix}/{key}", total / n_updates)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/updates_per_second", n_updates / max(elapsed, 1e-9))

    def _log_openloop_video(self, batch: Any) -> None:
        if not self.policy.world_model.images:
            return
        log_video(self.logger, "world_model/openloop", openloop_frames(self.policy.world_model, batch))

    def learn(
        self: SelfDreamer,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str | None = None,
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDreamer:
        """Train for ``total_timesteps`` env steps (see SB3's ``learn``; ``tb_log_name`` defaults to the class name)."""
        if reset_num_timesteps:
            self._rollout_state = None
        if isinstance(self.env, VecEnv) and self.learning_starts < self.sequence_length * self.env.num_envs:
            raise ValueError(
                f"learning_starts ({self.learning_starts}) must be at least sequence_length x n_envs "
                f"({self.sequence_length} x {self.env.num_envs}) so that every env holds a whole sequence before the first update."
            )
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name or type(self).__name__,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )


class DreamerV3(Dreamer):
    """DreamerV3 (Hafner et al., 2023) with the spec defaults; ``policy_kwargs=dict(model_size="S")``.

    See :class:`Dreamer` for the parameters.
    """

    def __init__(self, policy: str | type[DreamerPolicy], env: GymEnv | str, **kwargs: Any) -> None:
        kwargs.setdefault("version", "v3")
        super().__init__(policy, env, **kwargs)


class DreamerV2(Dreamer):
    """DreamerV2 (Hafner et al., 2021) with the spec defaults (the ContextWM / HarmonyDream preset).

    See :class:`Dreamer` for the parameters.
    """

    def __init__(self, policy: str | type[DreamerPolicy], env: GymEnv | str, **kwargs: Any) -> None:
        kwargs.setdefault("version", "v2")
        super().__init__(policy, env, **kwargs)


class DreamerHarmony(Dreamer):
    """HarmonyDream (Ma et al., ICML 2024): Dreamer with learnable harmonizers on the world-model losses.

    :param base: "v3" (default) for Harmony-DreamerV3 or "v2" for Harmony-DreamerV2.

    See :class:`Dreamer` for the other parameters.
    """

    def __init__(self, policy: str | type[DreamerPolicy], env: GymEnv | str, base: str = "v3", **kwargs: Any) -> None:
        if "version" in kwargs and kwargs["version"] != base:
            raise ValueError("DreamerHarmony takes `base=` ('v3' or 'v2'), not `version=`.")
        kwargs["version"] = base
        kwargs.setdefault("harmony", True)
        self.base = base
        super().__init__(policy, env, **kwargs)
