"""DrQ-v2 policies: conv encoder, actor and twin critics (with targets) and their optimizers, stacking frames.

The networks follow DrQ-v2 (Yarats et al., 2021) and its reference code: an encoder of 4 convs x 32 channels
(3x3, the first with stride 2, ReLU) on ``obs / 255 - 0.5``; an actor and two critics, each with its own trunk
``Linear -> feature_dim`` + LayerNorm + tanh and an MLP of two ``hidden_dim`` ReLU layers; orthogonal
initialisation. The encoder is shared and trained through the critic loss only.

The policy acts on stacks of the last ``frame_stack`` frames. It receives single frames (what the env gives
and the replay buffer stores) and keeps the stack as the ``state`` of :meth:`DrQv2Policy.predict`, like a
recurrent policy: pass the returned state back with ``episode_start``; SB3's ``evaluate_policy`` and
``EvalCallback`` do. At an episode start (or without a state) the first frame is repeated, as in DrQ-v2's
``FrameStackWrapper``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import PyTorchObs, Schedule
from torch import Tensor, nn

from sb3_worldmodels.common import distributions
from sb3_worldmodels.common.nets import MLP
from sb3_worldmodels.common.precision import autocast, check_precision
from sb3_worldmodels.common.spaces import check_policy_alias
from sb3_worldmodels.drqv2.buffers import stacked_space

__all__ = [
    "DrQv2Policy", "CnnPolicy", "MlpPolicy", "MultiInputPolicy", "DrQv2Encoder", "DrQv2Actor", "DrQv2Critic",
    "FrameStack", "check_observation_space", "clipped_gaussian_sample", "weight_init",
]

#: What ``predict`` returns as ``state``: the stacked images per env (uint8, channels-first), an array for a
#: Box observation space, a dict keyed like the observation for a Dict space, ``None`` without images.
FrameStack = np.ndarray | dict[str, np.ndarray] | None

_SINGLE = "obs"  # key of a plain Box observation in the internal dicts


def _as_dict(obs: Any) -> dict[str, Any]:
    return obs if isinstance(obs, dict) else {_SINGLE: obs}


def _space_items(observation_space: spaces.Space) -> dict[str, spaces.Space]:
    """The sub-spaces of a Dict space, or ``{"obs": space}``."""
    if isinstance(observation_space, spaces.Dict):
        return dict(observation_space.spaces)
    return {_SINGLE: observation_space}


def _like(template: Any, values: dict[str, Any]) -> Any:
    """``values`` as a dict when ``template`` is one, else its single entry."""
    return values if isinstance(template, dict) else values[_SINGLE]


def weight_init(module: nn.Module) -> None:
    """DrQ-v2's initialisation: orthogonal weights (gain ``sqrt(2)`` for convs) and zero biases."""
    if isinstance(module, nn.Linear):
        nn.init.orthogonal_(module.weight)
    elif isinstance(module, nn.Conv2d):
        nn.init.orthogonal_(module.weight, nn.init.calculate_gain("relu"))
    else:
        return
    if module.bias is not None:
        nn.init.zeros_(module.bias)


def clipped_gaussian_sample(
    mean: Tensor, std: float, noise_clip: float | None = None, eps: float = 1e-6
) -> Tensor:
    """DrQ-v2's action sample ``clamp(mean + clip(std * N(0, 1), +-noise_clip), -1 + eps, 1 - eps)``.

    The clamp to the action bounds passes gradients straight through (as DrQ-v2's ``TruncatedNormal``), so the
    DDPG actor loss reaches the mean even where the sample is clamped.

    :param mean: action means in [-1, 1].
    :param std: noise standard deviation.
    :param noise_clip: clip of the noise (DrQ-v2's ``stddev_clip``), ``None`` for unclipped noise (acting).
    :param eps: margin kept from the bounds.
    """
    noise = distributions.normal_like(mean) * std  # the noise seam of the conformance tests
    if noise_clip is not None:
        noise = noise.clamp(-noise_clip, noise_clip)
    x = mean + noise
    return x - x.detach() + x.detach().clamp(-1.0 + eps, 1.0 - eps)


def _trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    """``Linear -> feature_dim``, LayerNorm, tanh (the trunk of DrQ-v2's actor and critic)."""
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


class DrQv2Encoder(nn.Module):
    """DrQ-v2's conv encoder for every image entry, flattened and concatenated with the vector entries.

    :param observation_space: the stacked observation space (images channels-first, see
        :func:`~sb3_worldmodels.drqv2.buffers.stacked_space`): an image ``Box``, a vector ``Box`` or a
        ``Dict``.
    :param n_filters: channels of every conv (32 in DrQ-v2).
    :param n_convs: number of 3x3 convs; the first has stride 2 (4 in DrQ-v2).
    :param channels_last: keep the conv weights and inputs in channels-last memory format.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        n_filters: int = 32,
        n_convs: int = 4,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        self.convs = nn.ModuleDict()
        self.vector_keys: list[str] = []
        repr_dim = 0
        for key, space in _space_items(observation_space).items():
            if is_image_space(space, check_channels=False):
                layers: list[nn.Module] = []
                channels = space.shape[0]
                for i in range(n_convs):
                    conv_i = nn.Conv2d(channels, n_filters, 3, stride=2 if i == 0 else 1)
                    layers += [conv_i, nn.ReLU(inplace=True)]
                    channels = n_filters
                conv = nn.Sequential(*layers, nn.Flatten())
                side = min(space.shape[1:])
                if (side - 3) // 2 + 1 - 2 * (n_convs - 1) < 1:
                    raise ValueError(
                        f"Images of shape {space.shape} (channels first) are too small for DrQ-v2's "
                        f"encoder of {n_convs} 3x3 convs; use frames of at least {4 * n_convs - 1} pixels "
                        "a side (e.g. the env's size=64 option or gymnasium.wrappers.ResizeObservation)."
                    )
                with th.no_grad():
                    repr_dim += int(conv(th.zeros(1, *space.shape)).shape[1])
                self.convs[key] = conv
            else:
                self.vector_keys.append(key)
                repr_dim += int(np.prod(space.shape))
        self.repr_dim = repr_dim
        self.apply(weight_init)
        if channels_last:
            self.to(memory_format=th.channels_last)

    def forward(self, obs: PyTorchObs) -> Tensor:
        """Features ``(B, repr_dim)`` of a batch of stacked observations (images uint8 or float in 0..255)."""
        obs_d = _as_dict(obs)
        layout = th.channels_last if self.channels_last else th.contiguous_format
        parts = []
        for key, conv in self.convs.items():
            x = obs_d[key].to(th.float32, memory_format=layout)  # dtype and layout in one pass (or none)
            parts.append(conv((x - 127.5).mul_(1.0 / 255.0)))  # obs / 255 - 0.5
        parts += [obs_d[key].float().flatten(1) for key in self.vector_keys]
        return parts[0] if len(parts) == 1 else th.cat(parts, dim=1)


class DrQv2Actor(nn.Module):
    """Deterministic actor: trunk, then an MLP to tanh action means.

    :param repr_dim: encoder features.
    :param action_dim: action dimensions.
    :param feature_dim: trunk output (50 in DrQ-v2).
    :param hidden_dim: MLP width (1024 in DrQ-v2).
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.policy = MLP(feature_dim, action_dim, layers=2, units=hidden_dim, act="relu", norm=False)
        self.apply(weight_init)

    def forward(self, features: Tensor) -> Tensor:
        """Action means in [-1, 1], ``(B, action_dim)``."""
        return th.tanh(self.policy(self.trunk(features)))


class DrQv2Critic(nn.Module):
    """Twin (or ``n_critics``) Q-functions on a shared trunk: ``Q_i(trunk(features), action)``.

    :param repr_dim: encoder features.
    :param action_dim: action dimensions.
    :param feature_dim: trunk output (50 in DrQ-v2).
    :param hidden_dim: MLP width (1024 in DrQ-v2).
    :param n_critics: number of Q-functions (2 in DrQ-v2).
    """

    def __init__(
        self,
        repr_dim: int,
        action_dim: int,
        feature_dim: int = 50,
        hidden_dim: int = 1024,
        n_critics: int = 2,
    ) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.q_nets = nn.ModuleList(
            [MLP(feature_dim + action_dim, 1, layers=2, units=hidden_dim, act="relu", norm=False)
             for _ in range(n_critics)]
        )
        self.apply(weight_init)

    def forward(self, features: Tensor, actions: Tensor) -> Tensor:
        """Q-values ``(B, n_critics)``."""
        h = th.cat([self.trunk(features), actions], dim=1)
        return th.cat([q(h) for q in self.q_nets], dim=1)


def check_observation_space(observation_space: spaces.Space) -> tuple[list[str], list[str]]:
    """Image and vector keys of an observation space DrQ-v2 takes; a ``ValueError`` naming the fix otherwise.

    Images are uint8 ``Box`` es (channels-first, as SB3 passes them to the policy), vectors flat ``Box`` es; a
    plain ``Box`` has the key ``"obs"``.
    """
    images, vectors = [], []
    for key, space in _space_items(observation_space).items():
        if isinstance(space, spaces.Box) and is_image_space(space, check_channels=False):
            images.append(key)
        elif isinstance(space, spaces.Box) and len(space.shape) == 1:
            vectors.append(key)
        else:
            raise ValueError(
                f"DrQv2 takes uint8 image Boxes and flat vector Boxes (or a flat Dict of them); got "
                f"{space!r} for {key!r}. Flatten other spaces (gymnasium.wrappers.FlattenObservation) and "
                "cast images to uint8."
            )
    return images, vectors


class DrQv2Policy(BasePolicy):
    """Encoder, actor, twin critics and target critics of DrQ-v2, acting on stacks of frames.

    :param observation_space: single-frame observation space (images channels-first, as SB3 passes them).
    :param action_space: a flat ``Box``.
    :param lr_schedule: learning-rate schedule (its initial value sets the three Adam optimizers).
    :param frame_stack: frames per stacked image (3 in DrQ-v2).
    :param feature_dim: trunk output of actor and critic (50).
    :param hidden_dim: width of the actor and critic MLPs (1024).
    :param n_filters: channels of the encoder convs (32).
    :param n_critics: number of Q-functions (2).
    :param channels_last: keep the encoder's conv weights and inputs in channels-last memory format (default:
        15-20% faster updates measured on a 2-core CPU; ``benchmarks/drqv2_speed.py --no-channels-last``
        times the other layout). The results are the same up to float rounding.
    :param precision: "fp32" (default) or "bf16": bf16 autocast of the forward passes of the updates (losses,
        targets and the weights stay fp32); fast on GPUs and on CPUs with bf16 matrix units.
    :param optimizer_class: optimizer of the actor and of encoder + critic (Adam).
    :param optimizer_kwargs: extra optimizer arguments.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Box,
        lr_schedule: Schedule,
        frame_stack: int = 3,
        feature_dim: int = 50,
        hidden_dim: int = 1024,
        n_filters: int = 32,
        n_critics: int = 2,
        channels_last: bool = True,
        precision: str = "fp32",
        optimizer_class: type[th.optim.Optimizer] = th.optim.Adam,
        optimizer_kwargs: dict[str, Any] | None = None,
    ) -> None:
        self._check_observation_space(observation_space)
        check_precision(precision)
        if not isinstance(action_space, spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"DrQv2 needs a flat Box action space, got {action_space!r}.")
        if not (np.all(np.isfinite(action_space.low)) and np.all(np.isfinite(action_space.high))):
            raise ValueError(
                f"DrQv2 needs bounded Box actions (it squashes them to [-1, 1]), got {action_space!r}; clip "
                "them with gymnasium.wrappers.ClipAction or rescale them with "
                "gymnasium.wrappers.RescaleAction."
            )
        super().__init__(
            observation_space,
            action_space,
            optimizer_class=optimizer_class,
            optimizer_kwargs=optimizer_kwargs,
            squash_output=True,
        )
        self.frame_stack = frame_stack
        self.feature_dim, self.hidden_dim = feature_dim, hidden_dim
        self.n_filters, self.n_critics = n_filters, n_critics
        self.channels_last = channels_last
        self.precision = precision
        self.image_keys, _ = check_observation_space(observation_space)
        self.stacked_observation_space = stacked_space(observation_space, frame_stack)
        #: std of the exploration noise of ``predict(deterministic=False)`` (set by the algorithm)
        self.exploration_std = 1.0
        self._build(lr_schedule)

    def _build(self, lr_schedule: Schedule) -> None:
        action_dim = int(self.action_space.shape[0])  # type: ignore[index]
        self.encoder = DrQv2Encoder(
            self.stacked_observation_space, self.n_filters, channels_last=self.channels_last
        )
        dims = (self.encoder.repr_dim, action_dim, self.feature_dim, self.hidden_dim)
        self.actor = DrQv2Actor(*dims)
        self.critic = DrQv2Critic(*dims, n_critics=self.n_critics)
        self.critic_target = DrQv2Critic(*dims, n_critics=self.n_critics)
        self.critic_target.load_state_dict(self.critic.state_dict())
        self.critic_target.requires_grad_(False)
        lr = lr_schedule(1.0)
        self.actor_optimizer = self.optimizer_class(self.actor.parameters(), lr=lr, **self.optimizer_kwargs)
        # encoder and critic minimise the same loss at the same rate: one Adam over both is DrQ-v2's two
        # (Adam keeps per-parameter moments), and a vector-only policy has no encoder parameters
        self.critic_optimizer = self.optimizer_class(
            [*self.encoder.parameters(), *self.critic.parameters()], lr=lr, **self.optimizer_kwargs
        )

    def autocast(self) -> th.autocast:
        """bf16 autocast on the policy's device when ``precision="bf16"`` (a no-op context otherwise)."""
        return autocast(self.device.type, self.precision)

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        """Raise a ``ValueError`` naming the fix if this policy class cannot take ``observation_space``."""
        check_observation_space(observation_space)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(
            lr_schedule=self._dummy_schedule, frame_stack=self.frame_stack, feature_dim=self.feature_dim,
            hidden_dim=self.hidden_dim, n_filters=self.n_filters, n_critics=self.n_critics,
            channels_last=self.channels_last, precision=self.precision, optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
        )
        return data

    def set_training_mode(self, mode: bool) -> None:
        """Train/eval mode of the online networks (the target critics stay as they are)."""
        self.encoder.train(mode)
        self.actor.train(mode)
        self.critic.train(mode)
        self.training = mode

    # ----------------------------------------------------------------------------------- frame stacking
    def stack_frames(
        self, obs: PyTorchObs, state: FrameStack, episode_start: np.ndarray | None
    ) -> tuple[PyTorchObs, FrameStack]:
        """Push the frames ``obs`` of ``n`` envs onto their stacks.

        :param obs: single-frame observations as tensors (from ``obs_to_tensor``), batch ``n``.
        :param state: the stacks returned for the previous step, or ``None`` to start every env afresh.
        :param episode_start: ``(n,)`` flags of envs whose episode starts now (stack = the frame repeated);
            ``None`` means no new episode (all new when ``state`` is ``None``).
        :return: the stacked observations (tensors, as the networks take them) and the new state (numpy).
        """
        obs_d = _as_dict(obs)
        if not self.image_keys:
            return obs, None
        n = obs_d[self.image_keys[0]].shape[0]
        if state is None:
            restart = np.ones(n, dtype=bool)
        elif episode_start is None:
            restart = np.zeros(n, dtype=bool)
        else:
            restart = np.asarray(episode_start, dtype=bool).reshape(n)
        restart_t = th.as_tensor(restart, device=self.device)[:, None, None, None]
        prev = None if state is None or restart.all() else _as_dict(state)
        stacked, new_state = dict(obs_d), {}
        for key in self.image_keys:
            frame = obs_d[key]
            fresh = frame.repeat(1, self.frame_stack, 1, 1)
            if prev is None:
                out = fresh
            else:
                before = th.as_tensor(prev[key], device=self.device)
                if before.shape != fresh.shape:
                    raise ValueError(
                        f"The state has shape {tuple(before.shape)} but the observations need stacks of "
                        f"{tuple(fresh.shape)}: pass the state returned by the previous predict call for the "
                        "same envs, or state=None to start new stacks."
                    )
                out = th.where(restart_t, fresh, th.cat([before[:, frame.shape[1]:], frame], dim=1))
            stacked[key] = out
            new_state[key] = out.cpu().numpy()
        return _like(obs, stacked), _like(obs, new_state)

    # ----------------------------------------------------------------------------------- acting
    def _predict(self, observation: PyTorchObs, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for a batch of *stacked* observations (noisy unless ``deterministic``)."""
        mean = self.actor(self.encoder(observation))
        return mean if deterministic else clipped_gaussian_sample(mean, self.exploration_std)

    def forward(self, obs: PyTorchObs, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for a batch of stacked observations."""
        return self._predict(obs, deterministic)

    def predict(  # type: ignore[override]
        self,
        observation: np.ndarray | dict[str, np.ndarray],
        state: FrameStack = None,
        episode_start: np.ndarray | None = None,
        deterministic: bool = False,
    ) -> tuple[np.ndarray, FrameStack]:
        """Actions for one step of ``n`` envs (or one unbatched observation), stacking frames in ``state``.

        :param observation: single-frame observations as the env gives them.
        :param state: the stacks returned by the previous call, or ``None`` to start new ones.
        :param episode_start: ``(n,)`` flags; the stack of an env restarts where True.
        :param deterministic: act with the actor's mean instead of adding exploration noise.
        :return: actions in the env's action space and the new frame stacks.
        """
        self.set_training_mode(False)
        obs_tensor, vectorized = self.obs_to_tensor(observation)
        with th.no_grad():
            stacked, new_state = self.stack_frames(obs_tensor, state, episode_start)
            actions = self._predict(stacked, deterministic).cpu().numpy()
        actions = self.unscale_action(np.clip(actions, -1.0, 1.0))
        if not vectorized:
            actions = actions.squeeze(axis=0)
        return actions, new_state


class CnnPolicy(DrQv2Policy):
    """DrQ-v2 policy for image observations (a uint8 image ``Box``)."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("CnnPolicy", observation_space, check_observation_space)


class MlpPolicy(DrQv2Policy):
    """DrQ-v2's actor-critic on flat vectors (no encoder, no frame stacking: DDPG with n-step returns)."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("MlpPolicy", observation_space, check_observation_space)


class MultiInputPolicy(DrQv2Policy):
    """DrQ-v2 policy for a ``Dict`` of image and vector observations (images stacked, vectors not)."""

    @classmethod
    def _check_observation_space(cls, observation_space: spaces.Space) -> None:
        check_policy_alias("MultiInputPolicy", observation_space, check_observation_space)
