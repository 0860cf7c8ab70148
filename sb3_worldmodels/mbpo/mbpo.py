"""MBPO with iVideoGPT: DrQ-v2 trained on real transitions and on rollouts imagined by a video world model.

The loop, on top of :class:`~sb3_worldmodels.drqv2.DrQv2` (``specs/ivideogpt.md``, "MBPO with iVideoGPT"):

1. random actions for ``learning_starts`` env steps (2000 = the spec's 4000 frames at action repeat 2);
2. then ``model_warmup_updates`` (1000) world-model updates at once, and from there one transformer update every
   ``model_train_every`` (5) env steps and one tokenizer update every ``tokenizer_train_every`` (20), on batches of
   ``model_batch_size`` (16) segments of ``segment_length`` (12) frames of one episode from the real replay;
3. every ``rollout_every`` (100) env steps, ``rollout_batch`` (32) imagined rollouts of ``rollout_horizon`` (10)
   steps, starting from real frames and with the current policy (with its exploration noise) acting on the decoded
   frames, go to a separate buffer of stacked frames;
4. ``gradient_steps`` (2) DrQ-v2 updates per env step on batches of ``batch_size`` (256) drawn ``real_ratio`` (50%)
   from the real replay (n-step) and the rest from the imagined buffer (one-step).
"""

from __future__ import annotations

import io
import os
import pathlib
import time
import warnings
from collections import defaultdict
from typing import Any, ClassVar, TypeVar

import torch as th
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.save_util import load_from_pkl, save_to_pkl
from stable_baselines3.common.type_aliases import GymEnv, MaybeCallback

from sb3_worldmodels.common.algorithm import write_atomically
from sb3_worldmodels.drqv2.buffers import Samples, sample_mixed
from sb3_worldmodels.drqv2.drqv2 import DrQv2, linear_schedule
from sb3_worldmodels.drqv2.policies import CnnPolicy
from sb3_worldmodels.ivideogpt.config import config_dict, make_tokenizer_config, make_transformer_config
from sb3_worldmodels.ivideogpt.model import IVideoGPT
from sb3_worldmodels.mbpo.imagination import add_imagined, fill_episode_starts, imagine, sample_segments

__all__ = ["MBPO"]

SelfMBPO = TypeVar("SelfMBPO", bound="MBPO")


class MBPO(DrQv2):
    """Model-based policy optimisation: a DrQ-v2 agent trained on real and world-model-imagined transitions.

    :param policy: ``"CnnPolicy"`` (one image observation, which the world model predicts).
    :param env: environment or gymnasium id; Box actions, square images of the tokenizer's size (64x64 by default).
    :param world_model: the world model: ``None`` (iVideoGPT with the spec's ``"64"`` tokenizer and ``"138M"``
        transformer), a directory written by :meth:`IVideoGPT.save_pretrained` (e.g. pre-trained action-free on
        videos: it gets a zero-initialised action projection), a dict of :class:`IVideoGPT` arguments (e.g.
        ``dict(tokenizer="tiny", transformer="tiny")``), or an :class:`IVideoGPT` instance.
    :param real_ratio: fraction of real transitions in each agent batch (0.5).
    :param model_lr: learning rate of the world model's AdamW optimizers (1e-4).
    :param model_grad_clip: gradient-norm clip of the world-model updates (1.0).
    :param model_batch_size: segments per world-model update (16).
    :param segment_length: frames per segment: the context frames and the predicted ones (12 = 2 + 10).
    :param model_warmup_updates: world-model updates at once when random seeding ends (1000).
    :param model_train_every: env steps per transformer update after the warm-up (5).
    :param tokenizer_train_every: env steps per tokenizer update after the warm-up (20; 0 never).
    :param freeze_codebooks: keep the tokenizer's codebooks fixed in its updates (the spec, for a pre-trained
        tokenizer; default: frozen when ``world_model`` is a checkpoint directory or an instance).
    :param rollout_every: env steps between imagination rounds (100).
    :param rollout_batch: imagined rollouts per round, from start states sampled from the real replay (32).
    :param rollout_horizon: steps per imagined rollout (10).
    :param imagined_buffer_size: capacity of the imagined buffer in transitions (stacked frames, observation and
        next observation: about 74 KB each at 64x64x3 and a stack of 3).
    :param kwargs: :class:`~sb3_worldmodels.drqv2.DrQv2` arguments; MBPO's defaults differ in
        ``update_every_steps=1`` and ``gradient_steps=2`` (2 agent updates per env step) and in the exploration
        ``std_schedule``: ``linear_schedule(1.0, 0.1, 50_000)``, the spec's 100k frames of the iVideoGPT Meta-World
        configuration at action repeat 2.
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": CnnPolicy}

    def __init__(
        self,
        policy: str | type[CnnPolicy],
        env: GymEnv | str,
        world_model: IVideoGPT | str | os.PathLike[str] | dict[str, Any] | None = None,
        real_ratio: float = 0.5,
        model_lr: float = 1e-4,
        model_grad_clip: float = 1.0,
        model_batch_size: int = 16,
        segment_length: int = 12,
        model_warmup_updates: int = 1000,
        model_train_every: int = 5,
        tokenizer_train_every: int = 20,
        freeze_codebooks: bool | None = None,
        rollout_every: int = 100,
        rollout_batch: int = 32,
        rollout_horizon: int = 10,
        imagined_buffer_size: int = 10_000,
        update_every_steps: int = 1,
        gradient_steps: int = 2,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if isinstance(policy, str) and policy not in self.policy_aliases:
            raise ValueError(f"MBPO takes 'CnnPolicy' (its world model predicts image observations), got {policy!r}; "
                             "for vector observations use DrQv2('MlpPolicy', ...) or a Dreamer agent.")
        if not 0.0 <= real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {real_ratio}.")
        for name, value in (("model_batch_size", model_batch_size), ("model_train_every", model_train_every),
                            ("rollout_every", rollout_every), ("rollout_batch", rollout_batch),
                            ("rollout_horizon", rollout_horizon)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}.")
        kwargs.setdefault("std_schedule", linear_schedule(1.0, 0.1, 50_000))  # iVideoGPT's 100k frames at repeat 2
        super().__init__(policy, env, update_every_steps=update_every_steps, gradient_steps=gradient_steps,
                         _init_setup_model=False, **kwargs)
        self.real_ratio, self.model_lr, self.model_grad_clip = real_ratio, model_lr, model_grad_clip
        self.model_batch_size, self.segment_length = model_batch_size, segment_length
        self.model_warmup_updates, self.model_train_every = model_warmup_updates, model_train_every
        self.tokenizer_train_every = tokenizer_train_every
        self.rollout_every, self.rollout_batch, self.rollout_horizon = rollout_every, rollout_batch, rollout_horizon
        self.imagined_buffer_size = imagined_buffer_size
        self._world_model_source: Any = world_model  # consumed by _setup_model; the saved form is world_model_spec
        self.world_model_spec: dict[str, Any] = {}
        self.freeze_codebooks = (
            freeze_codebooks if freeze_codebooks is not None
            else isinstance(world_model, (IVideoGPT, str, os.PathLike))
        )
        self._warmed_up = False
        self._last_model_step: int | None = None
        self._last_tokenizer_step: int | None = None
        self._last_rollout_step = 0
        self._model_updates = self._tokenizer_updates = 0
        if _init_setup_model:
            self._setup_model()

    # ------------------------------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        super()._setup_model()
        if self.policy.encoder.vector_keys or len(self.policy.image_keys) != 1:
            raise ValueError("MBPO's world model predicts one image observation: use 'CnnPolicy' on an image env.")
        action_dim = int(self.action_space.shape[0])  # type: ignore[index]
        self.world_model = self._build_world_model(action_dim).to(self.device)
        tc = self.world_model.tokenizer_config
        shape = self.observation_space.shape
        if tuple(shape) != (tc.channels, tc.image_size, tc.image_size):  # type: ignore[arg-type]
            raise ValueError(
                f"The world model's tokenizer takes {tc.channels}x{tc.image_size}x{tc.image_size} frames but the env "
                f"gives {shape}: make the env at size={tc.image_size} or give a world model of the env's size."
            )
        if self.segment_length <= tc.context_frames:
            raise ValueError(f"segment_length ({self.segment_length}) must exceed the world model's "
                             f"{tc.context_frames} context frames.")
        self.world_model_spec = {
            "tokenizer": config_dict(tc), "transformer": config_dict(self.world_model.transformer_config),
            "temperature": self.world_model.temperature, "top_k": self.world_model.top_k,
            "precision": self.world_model.precision,
        }
        tokenizer_params = [p for n, p in self.world_model.tokenizer.named_parameters()
                            if not (self.freeze_codebooks and n.endswith("codebook.weight"))]
        gpt_params = self.world_model.transformer_parameters()
        self.tokenizer_optimizer = th.optim.AdamW(tokenizer_params, lr=self.model_lr, weight_decay=0.0)
        decay = [p for p in gpt_params if p.dim() >= 2]
        no_decay = [p for p in gpt_params if p.dim() < 2]
        embeddings = {id(self.world_model.transformer.embed.weight)}
        self.wm_optimizer = th.optim.AdamW(
            [{"params": [p for p in decay if id(p) not in embeddings], "weight_decay": 0.01},
             {"params": no_decay + [self.world_model.transformer.embed.weight], "weight_decay": 0.0}],
            lr=self.model_lr,
        )
        stacked = self.replay_buffer.stacked_observation_space
        self.imagined_buffer = ReplayBuffer(
            max(self.imagined_buffer_size, self.rollout_batch), stacked, self.action_space, self.device,
            n_envs=self.rollout_batch, handle_timeout_termination=False,
        )

    def _build_world_model(self, action_dim: int) -> IVideoGPT:
        source, self._world_model_source = self._world_model_source, None
        if self.world_model_spec:  # loading a saved agent: rebuild the architecture, set_parameters fills it
            spec = self.world_model_spec
            return IVideoGPT(make_tokenizer_config("64", **spec["tokenizer"]),
                             make_transformer_config("138M", **spec["transformer"]), action_dim=action_dim,
                             temperature=spec["temperature"], top_k=spec["top_k"],
                             precision=spec.get("precision", "fp32"))
        if isinstance(source, IVideoGPT):
            if source.action_dim != action_dim:
                raise ValueError(f"The world model takes {source.action_dim}-d actions, the env {action_dim}-d; build "
                                 f"it with IVideoGPT(..., action_dim={action_dim}).")
            return source
        if isinstance(source, (str, os.PathLike)):
            return IVideoGPT.from_pretrained(source, action_dim=action_dim)
        if source is None or isinstance(source, dict):
            return IVideoGPT(**{**(source or {}), "action_dim": action_dim})
        raise TypeError(f"world_model must be None, a checkpoint directory, a dict of IVideoGPT arguments or an "
                        f"IVideoGPT, got {type(source).__name__}.")

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "world_model", "wm_optimizer", "tokenizer_optimizer",
                "imagined_buffer", "_world_model_source"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names, others = super()._get_torch_save_params()
        return [*names, "world_model", "wm_optimizer", "tokenizer_optimizer"], others

    # ------------------------------------------------------------------------------------------ world model
    def _model_step(self, tokenizer: bool) -> dict[str, float]:
        """One update of the transformer (or of the tokenizer) on clean real segments."""
        batch = sample_segments(self.replay_buffer, self.model_batch_size, self.segment_length)
        wm = self.world_model
        wm.train()
        if tokenizer:
            loss, metrics = wm.tokenizer_loss(batch.observations)  # type: ignore[arg-type]
            optimizer, params = self.tokenizer_optimizer, list(wm.tokenizer.parameters())
        else:
            loss, metrics = wm.transformer_loss(batch.observations, batch.prev_actions[:, 1:],  # type: ignore[arg-type]
                                                batch.rewards[:, 1:])
            params = wm.transformer_parameters()
            optimizer = self.wm_optimizer
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        th.nn.utils.clip_grad_norm_(params, self.model_grad_clip)
        optimizer.step()
        return {k: float(v) for k, v in metrics.items()}

    def train_world_model(self) -> None:
        """The world-model updates owed at ``num_timesteps``: the warm-up once, then one per ``model_train_every``
        env steps (and a tokenizer update per ``tokenizer_train_every``)."""
        sums: dict[str, float] = defaultdict(float)
        counts: dict[str, int] = defaultdict(int)

        def run(tokenizer: bool) -> None:
            for key, value in self._model_step(tokenizer).items():
                sums[key] += value
                counts[key] += 1
            if tokenizer:
                self._tokenizer_updates += 1
            else:
                self._model_updates += 1

        start = time.perf_counter()
        if not self._warmed_up:
            for i in range(self.model_warmup_updates):
                run(False)
                if self.tokenizer_train_every and i % max(self.tokenizer_train_every // self.model_train_every, 1) == 0:
                    run(True)
            self._warmed_up = True
        if self._last_model_step is None or self._last_tokenizer_step is None:  # the first update of a run
            self._last_model_step = self._last_tokenizer_step = self.num_timesteps
        for _ in range((self.num_timesteps - self._last_model_step) // self.model_train_every):
            run(False)
            self._last_model_step += self.model_train_every
        if self.tokenizer_train_every:
            for _ in range((self.num_timesteps - self._last_tokenizer_step) // self.tokenizer_train_every):
                run(True)
                self._last_tokenizer_step += self.tokenizer_train_every
        if sums:
            for key, total in sums.items():
                self.logger.record(f"world_model/{key}", total / counts[key])
            self.logger.record("world_model/updates", self._model_updates)
            self.logger.record("world_model/tokenizer_updates", self._tokenizer_updates)
            self.logger.record("world_model/seconds", time.perf_counter() - start)

    # ------------------------------------------------------------------------------------------ imagination
    def _act(self, stacked: th.Tensor) -> th.Tensor:
        """The current policy with its exploration noise on stacked imagined frames, in [-1, 1]."""
        policy = self.policy
        with th.no_grad(), policy.autocast():
            mean = policy.actor(policy.encoder(stacked)).float()
        return (mean + self.current_std() * th.randn_like(mean)).clamp(-1.0, 1.0)

    def imagine_rollouts(self) -> None:
        """One round of ``rollout_batch`` imagined rollouts from real start states into the imagined buffer."""
        tc = self.world_model.tokenizer_config.context_frames
        length = max(tc, self.frame_stack)
        batch = self.replay_buffer.sample_sequences(self.rollout_batch, length)
        history = fill_episode_starts(batch.observations, batch.is_first)  # type: ignore[arg-type]
        self.policy.set_training_mode(False)
        obs, actions, rewards, next_obs = imagine(self.world_model.rollout, history, self._act, tc,
                                                  self.frame_stack, self.rollout_horizon)
        add_imagined(self.imagined_buffer, obs, actions, rewards, next_obs)
        self.logger.record("imagination/reward_mean", float(rewards.mean()))
        self.logger.record("imagination/buffer_size", self.imagined_buffer.size() * self.rollout_batch)

    # ------------------------------------------------------------------------------------------ replay
    def save_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase) -> None:
        """Save the real replay and the imagined buffer in one pickle (written atomically), so that a resumed run
        draws its mixed batches from the same data; :meth:`load_replay_buffer` reads it back."""
        assert self.replay_buffer is not None, "The replay buffer is not defined"
        buffers = {"real": self.replay_buffer, "imagined": self.imagined_buffer}
        write_atomically(save_to_pkl, path, ".pkl", buffers, self.verbose)

    def load_replay_buffer(self, path: str | pathlib.Path | io.BufferedIOBase, truncate_last_traj: bool = True) -> None:
        """Load what :meth:`save_replay_buffer` saved. A plain replay buffer (DrQv2's, say) becomes the real replay
        and leaves the imagined buffer as it is; so does a saved imagined buffer of another ``rollout_batch``
        (with a warning). ``truncate_last_traj`` is SB3's argument, unused here (no HER)."""
        data = load_from_pkl(path, self.verbose)
        real, imagined = (data.get("real"), data.get("imagined")) if isinstance(data, dict) else (data, None)
        if not isinstance(real, ReplayBuffer):
            raise TypeError(f"{path} holds a {type(real).__name__}, not a replay buffer: pass a file written by "
                            "save_replay_buffer.")
        self.replay_buffer = real
        real.device = self.device
        if imagined is not None and imagined.n_envs != self.rollout_batch:
            warnings.warn(f"The saved imagined buffer holds rollouts of {imagined.n_envs}, this agent makes "
                          f"{self.rollout_batch}: it is not loaded (the agent fills its own).", stacklevel=2)
        elif imagined is not None:
            imagined.device = self.device
            self.imagined_buffer = imagined

    # ------------------------------------------------------------------------------------------ training
    def sample_batch(self, batch_size: int) -> Samples:
        """``real_ratio`` of the batch from the real replay (n-step), the rest from the imagined buffer."""
        if self.real_ratio >= 1.0 or self.imagined_buffer.size() == 0:
            return super().sample_batch(batch_size)
        return sample_mixed([self.replay_buffer, self.imagined_buffer], [self.real_ratio, 1.0 - self.real_ratio],
                            batch_size, env=self._vec_normalize_env, gamma=self.gamma)

    def train(self, gradient_steps: int, batch_size: int = 256) -> None:
        """World-model updates owed, an imagination round when due, then ``gradient_steps`` agent updates."""
        self.train_world_model()
        if self.num_timesteps - self._last_rollout_step >= self.rollout_every or self._last_rollout_step == 0:
            self.imagine_rollouts()
            self._last_rollout_step = self.num_timesteps
        super().train(gradient_steps, batch_size)

    def learn(
        self: SelfMBPO,
        total_timesteps: int,
        callback: MaybeCallback = None,
        log_interval: int = 4,
        tb_log_name: str = "MBPO",
        reset_num_timesteps: bool = True,
        progress_bar: bool = False,
    ) -> SelfMBPO:
        """Train for ``total_timesteps`` env steps (see SB3's ``learn``); the world-model and imagination schedules
        restart with the step count when ``reset_num_timesteps`` (a trained world model is not warmed up again)."""
        if reset_num_timesteps:
            self._last_model_step = self._last_tokenizer_step = None  # set at the first update of this run
            self._last_rollout_step = 0
        return super().learn(total_timesteps, callback, log_interval, tb_log_name, reset_num_timesteps, progress_bar)
