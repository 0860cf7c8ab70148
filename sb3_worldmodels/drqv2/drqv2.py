"""DrQ-v2 (Yarats et al., 2021) as a Stable-Baselines3 off-policy algorithm."""

from __future__ import annotations

import time
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.noise import ActionNoise
from stable_baselines3.common.off_policy_algorithm import OffPolicyAlgorithm
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback, Schedule
from stable_baselines3.common.utils import LinearSchedule, polyak_update
from torch import Tensor

from sb3_worldmodels.common.algorithm import AtomicSaveMixin
from sb3_worldmodels.common.allocator import tune_cpu_allocator
from sb3_worldmodels.common.augment import random_shift
from sb3_worldmodels.drqv2.buffers import NStepFrameStackReplayBuffer, Samples
from sb3_worldmodels.drqv2.policies import (
    CnnPolicy,
    DrQv2Policy,
    FrameStack,
    MlpPolicy,
    MultiInputPolicy,
    clipped_gaussian_sample,
)

__all__ = ["DrQv2", "LinearStepSchedule", "linear_schedule"]

SelfDrQv2 = TypeVar("SelfDrQv2", bound="DrQv2")


class LinearStepSchedule:
    """DrQ-v2's ``linear(init, final, duration)``: ``init`` at env step 0, ``final`` from ``duration`` on.

    Unlike an SB3 schedule (a function of the remaining progress of one ``learn`` call), it is a function of
    the env steps taken so far (``model.num_timesteps``), so it does not depend on the ``total_timesteps`` of
    a call and carries on across calls. Built on SB3's
    :class:`~stable_baselines3.common.utils.LinearSchedule`.

    :param init: value at step 0.
    :param final: value from step ``duration`` on.
    :param duration: env steps of the ramp (agent steps, i.e. frames / action repeat, as DrQ-v2 counts them).
    """

    def __init__(self, init: float, final: float, duration: int) -> None:
        if duration <= 0:
            raise ValueError(f"duration must be > 0 env steps, got {duration}.")
        self.init, self.final, self.duration = float(init), float(final), int(duration)
        self._linear = LinearSchedule(self.init, self.final, end_fraction=1.0)

    def value(self, step: int) -> float:
        """The value after ``step`` env steps."""
        return float(self._linear(1.0 - min(max(step, 0) / self.duration, 1.0)))

    def __repr__(self) -> str:
        return f"linear_schedule({self.init:g}, {self.final:g}, {self.duration})"


def linear_schedule(init: float, final: float, duration: int) -> LinearStepSchedule:
    """DrQ-v2's ``linear(init, final, duration)`` exploration-std schedule over env steps.

    :param init: value at step 0.
    :param final: value from step ``duration`` on.
    :param duration: env steps of the ramp.
    :return: a :class:`LinearStepSchedule` (pass it as ``DrQv2(std_schedule=...)``).
    """
    return LinearStepSchedule(init, final, duration)


class DrQv2(AtomicSaveMixin, OffPolicyAlgorithm):
    """DrQ-v2: DDPG with n-step returns, twin critics and random-shift augmentation, from stacked frames.

    Each update augments ``obs`` and ``next_obs`` with :func:`~sb3_worldmodels.common.augment.random_shift`,
    trains encoder and critics on the n-step TD target ``r + (1 - done) * gamma^k * min_i Q'_i(s', a')`` with
    ``a' = clip(pi(s') + clip(std * noise, +-std_clip))``, then the actor on ``-min_i Q_i(s, a)`` from
    detached encoder features (the encoder learns through the critic only), then moves the target critics by
    ``tau``. Exploration adds unclipped Gaussian noise of the scheduled std to the actor's mean.

    The env is expected to repeat actions itself (the ``sb3wm/dmc-*`` ids use ``action_repeat=2``): all step
    counts here (``learning_starts``, ``update_every_steps``, the ``duration`` of the std schedule) are env
    steps, i.e. DrQ-v2's agent steps, frames divided by the action repeat.

    :param policy: "CnnPolicy", "MultiInputPolicy", "MlpPolicy" or a :class:`DrQv2Policy` subclass.
    :param env: environment or its gymnasium id; Box actions only.
    :param learning_rate: Adam learning rate of encoder, actor and critic (1e-4), or an SB3 schedule.
    :param buffer_size: replay capacity in steps (all envs together).
    :param learning_starts: env steps of uniformly random actions before the first update: 2000 steps,
        DrQ-v2's 4000 seed frames at action repeat 2.
    :param batch_size: transitions per update (256).
    :param tau: target-critic update rate (0.01).
    :param gamma: discount (0.99).
    :param n_steps: steps of the n-step return (3).
    :param frame_stack: frames stacked per image observation (3).
    :param std_schedule: exploration std: a float, a :func:`linear_schedule` over env steps (default
        ``linear_schedule(1.0, 0.1, 500_000)``, DrQ-v2's medium/hard tasks; its easy tasks use 100_000) or any
        SB3 schedule of the remaining progress.
    :param std_clip: clip of the target-policy and actor-loss noise (0.3).
    :param update_every_steps: env steps (of each env) between updates (2); SB3's ``train_freq``.
    :param gradient_steps: updates each time (1; with ``n_envs > 1`` use ``n_envs`` to keep one update per
        ``update_every_steps`` steps of every env).
    :param augment_pad: pad (largest shift) of the random-shift augmentation (4; 0 turns it off).
    :param action_noise: optional SB3 action noise added on top of the exploration noise (none in DrQ-v2).
    :param replay_buffer_kwargs: extra arguments of :class:`NStepFrameStackReplayBuffer` (e.g.
        ``memmap_dir``); ``n_steps``, ``gamma`` and ``frame_stack`` come from the parameters above.
    :param policy_kwargs: :class:`DrQv2Policy` arguments (``feature_dim=50``, ``hidden_dim=1024``, ...).
    :param stats_window_size: episodes averaged in the rollout logs.
    :param tensorboard_log: tensorboard log folder (``None``: no tensorboard).
    :param verbose: 0 silent, 1 info, 2 debug.
    :param seed: seed of the random generators.
    :param device: torch device ("auto": CUDA when available).
    :param _init_setup_model: build the networks and buffer now (SB3's ``load`` passes ``False``).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {
        "CnnPolicy": CnnPolicy,
        "MlpPolicy": MlpPolicy,
        "MultiInputPolicy": MultiInputPolicy,
    }
    policy: DrQv2Policy
    replay_buffer: NStepFrameStackReplayBuffer

    def __init__(
        self,
        policy: str | type[DrQv2Policy],
        env: GymEnv | str,
        learning_rate: float | Schedule = 1e-4,
        buffer_size: int = 1_000_000,
        learning_starts: int = 2_000,
        batch_size: int = 256,
        tau: float = 0.01,
        gamma: float = 0.99,
        n_steps: int = 3,
        frame_stack: int = 3,
        std_schedule: float | Schedule | LinearStepSchedule | None = None,
        std_clip: float = 0.3,
        update_every_steps: int = 2,
        gradient_steps: int = 1,
        augment_pad: int = 4,
        action_noise: ActionNoise | None = None,
        replay_buffer_kwargs: dict[str, Any] | None = None,
        policy_kwargs: dict[str, Any] | None = None,
        stats_window_size: int = 100,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "auto",
        _init_setup_model: bool = True,
    ) -> None:
        if not isinstance(update_every_steps, (int, np.integer)) or update_every_steps < 1:
            raise ValueError(f"update_every_steps must be an integer >= 1, got {update_every_steps!r}.")
        super().__init__(
            policy,
            env,
            learning_rate,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=(int(update_every_steps), "step"),
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            replay_buffer_class=NStepFrameStackReplayBuffer,
            replay_buffer_kwargs=replay_buffer_kwargs,
            policy_kwargs=policy_kwargs,
            stats_window_size=stats_window_size,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            device=device,
            support_multi_env=True,
            seed=seed,
            sde_support=False,
            supported_action_spaces=None,  # checked in _setup_model, with an error that names the fix
        )
        self.n_steps = n_steps
        self.frame_stack = frame_stack
        self.std_schedule = linear_schedule(1.0, 0.1, 500_000) if std_schedule is None else std_schedule
        self.std_clip = std_clip
        self.update_every_steps = int(update_every_steps)
        self.augment_pad = augment_pad
        self._rollout_state: FrameStack = None
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        tune_cpu_allocator(self.device)  # large update temporaries reuse heap memory on CPU
        if not isinstance(self.action_space, spaces.Box):
            raise ValueError(
                f"DrQv2 needs continuous (Box) actions, got {self.action_space!r}. For discrete actions use "
                "SB3's DQN or a Dreamer agent (DreamerV3 takes Discrete actions)."
            )
        self.policy_class._check_observation_space(self.observation_space)  # type: ignore[attr-defined]
        if self.policy_kwargs.get("frame_stack", self.frame_stack) != self.frame_stack:
            raise ValueError("Set frame_stack with DrQv2(frame_stack=...), not in policy_kwargs.")
        # copies: the user's dicts stay as they were given
        self.policy_kwargs = {**self.policy_kwargs, "frame_stack": self.frame_stack}
        self.replay_buffer_kwargs = {
            **self.replay_buffer_kwargs, "n_steps": self.n_steps, "gamma": self.gamma,
            "frame_stack": self.frame_stack,
        }
        # SB3 warns that its own n_steps is ignored with a custom buffer class: ours gets it in
        # replay_buffer_kwargs.
        n_steps, self.n_steps = self.n_steps, 1
        try:
            super()._setup_model()
        finally:
            self.n_steps = n_steps
        self.policy.exploration_std = self.current_std()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "_rollout_state"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return ["policy", "policy.actor_optimizer", "policy.critic_optimizer"], []

    # ------------------------------------------------------------------------------------------ exploration
    def current_std(self) -> float:
        """Exploration std now: ``std_schedule`` at ``num_timesteps`` (an SB3 schedule: at the progress)."""
        schedule = self.std_schedule
        if isinstance(schedule, LinearStepSchedule):
            return schedule.value(self.num_timesteps)
        if callable(schedule):
            return float(schedule(self._current_progress_remaining))
        return float(schedule)

    def _sample_action(
        self, learning_starts: int, action_noise: ActionNoise | None = None, n_envs: int = 1
    ) -> tuple[np.ndarray, np.ndarray]:
        policy = self.policy
        policy.exploration_std = self.current_std()
        starts = self._last_episode_starts
        if self.num_timesteps < learning_starts:
            # random actions, but keep the frame stacks up to date for the first policy step
            with th.no_grad():
                obs_tensor, _ = policy.obs_to_tensor(self._last_obs)  # type: ignore[arg-type]
                _, self._rollout_state = policy.stack_frames(obs_tensor, self._rollout_state, starts)
            unscaled = np.array([self.action_space.sample() for _ in range(n_envs)])
        else:
            unscaled, self._rollout_state = policy.predict(
                self._last_obs, self._rollout_state, starts, deterministic=False  # type: ignore[arg-type]
            )
        scaled = policy.scale_action(unscaled)
        if action_noise is not None:
            scaled = np.clip(scaled + action_noise(), -1, 1)
        return policy.unscale_action(scaled), scaled

    # ------------------------------------------------------------------------------------------ training
    def sample_batch(self, batch_size: int) -> Samples:
        """The batch of one update: ``batch_size`` n-step transitions from the replay buffer.

        Override it to train on other data, e.g. real and imagined transitions mixed with
        :func:`~sb3_worldmodels.drqv2.buffers.sample_mixed` (MBPO).
        """
        return self.replay_buffer.sample(batch_size, env=self._vec_normalize_env)

    def _augment(self, batch: Samples) -> tuple[Any, Any]:
        """Random-shift the images of ``observations`` and ``next_observations`` (one call per entry)."""
        obs, next_obs = batch.observations, batch.next_observations
        keys = self.policy.image_keys
        if self.augment_pad == 0 or not keys:
            return obs, next_obs
        obs_d = dict(obs) if isinstance(obs, dict) else {keys[0]: obs}
        next_d = dict(next_obs) if isinstance(next_obs, dict) else {keys[0]: next_obs}
        for key in keys:
            n = obs_d[key].shape[0]
            both = random_shift(th.cat([obs_d[key], next_d[key]]), self.augment_pad)  # uint8: crop, then convert
            obs_d[key], next_d[key] = both[:n], both[n:]
        if isinstance(obs, dict):
            return obs_d, next_d
        return obs_d[keys[0]], next_d[keys[0]]

    def td_target(self, next_obs: Any, rewards: Tensor, dones: Tensor, discounts: Tensor | float,
                  std: float) -> Tensor:
        """The n-step TD target ``rewards + (1 - dones) * discounts * min_i Q'_i(s', a')``, ``(B, 1)``.

        ``Q'`` are the target critics, ``a' = clip(pi(s') + clip(std * noise, +-std_clip))`` (the noise from
        :func:`~sb3_worldmodels.common.distributions.normal_like`); ``next_obs`` are the (augmented) stacked
        observations. No gradient flows into the target.
        """
        policy = self.policy
        with th.no_grad(), policy.autocast():
            next_features = policy.encoder(next_obs)
            next_mean = policy.actor(next_features).float()
            next_actions = clipped_gaussian_sample(next_mean, std, self.std_clip)
            target_q_values = policy.critic_target(next_features, next_actions).float()
        target_v = target_q_values.min(dim=1, keepdim=True).values
        return rewards + (1.0 - dones) * discounts * target_v

    def train_on_batch(self, batch: Samples, std: float | None = None) -> dict[str, Tensor]:
        """One DrQ-v2 update (encoder + critics, actor, target critics) on ``batch``.

        :param batch: SB3 ``ReplayBufferSamples`` (or the Dict variant) of *stacked* observations, from
            :meth:`sample_batch` or any buffer; ``discounts`` ``None`` means ``gamma`` (one-step transitions).
        :param std: std of the target-policy and actor-loss noise; default :meth:`current_std`.
        :return: detached scalar tensors: ``critic_loss``, ``actor_loss``, ``q1``, ``q2`` (mean Q of the first
            two critics), ``target_q``, ``batch_reward``.
        """
        policy = self.policy
        std = self.current_std() if std is None else std
        obs, next_obs = self._augment(batch)
        discounts = self.gamma if batch.discounts is None else batch.discounts

        with policy.autocast():
            features = policy.encoder(obs)
        target_q = self.td_target(next_obs, batch.rewards, batch.dones, discounts, std)
        with policy.autocast():
            q_values = policy.critic(features, batch.actions).float()
        critic_loss = (q_values - target_q).square().mean(dim=0).sum()  # the sum of the critics' MSEs
        policy.critic_optimizer.zero_grad(set_to_none=True)  # encoder and critic
        critic_loss.backward()
        policy.critic_optimizer.step()

        # actor: detached features (no encoder gradient) and no critic weight gradients
        detached = features.detach()
        with policy.autocast():
            actions = clipped_gaussian_sample(policy.actor(detached).float(), std, self.std_clip)
            actor_loss = -policy.critic(detached, actions).float().min(dim=1).values.mean()
        policy.actor_optimizer.zero_grad(set_to_none=True)
        actor_loss.backward(inputs=list(policy.actor.parameters()))
        policy.actor_optimizer.step()

        polyak_update(policy.critic.parameters(), policy.critic_target.parameters(), self.tau)
        q = q_values.detach()
        return {
            "critic_loss": critic_loss.detach(),
            "actor_loss": actor_loss.detach(),
            "q1": q[:, 0].mean(),
            "q2": q[:, min(1, q.shape[1] - 1)].mean(),
            "target_q": target_q.mean(),
            "batch_reward": batch.rewards.mean(),
        }

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """Run ``gradient_steps`` updates on batches from :meth:`sample_batch` and log their mean metrics."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.policy.actor_optimizer, self.policy.critic_optimizer])
        std = self.current_std()
        sums: dict[str, Tensor] = defaultdict(lambda: th.zeros((), device=self.device))
        start = time.perf_counter()
        for _ in range(gradient_steps):
            for key, value in self.train_on_batch(self.sample_batch(batch_size), std).items():
                sums[key] = sums[key] + value
        self._n_updates += gradient_steps
        elapsed = time.perf_counter() - start
        for key, total in sums.items():
            self.logger.record(f"train/{key}", float(total) / gradient_steps)
        self.logger.record("train/exploration_std", std)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/updates_per_second", gradient_steps / max(elapsed, 1e-9))

    def learn(
        self: SelfDrQv2,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "DrQv2",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfDrQv2:
        """Train for ``total_timesteps`` env steps (see SB3's ``learn``)."""
        if reset_num_timesteps:
            self._rollout_state = None
        return super().learn(
            total_timesteps=total_timesteps,
            callback=callback,
            log_interval=log_interval,
            tb_log_name=tb_log_name,
            reset_num_timesteps=reset_num_timesteps,
            progress_bar=progress_bar,
        )
