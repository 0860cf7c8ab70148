"""Dreamer world model: multi-modal encoder, RSSM, decoders, reward and continue heads, losses."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from stable_baselines3.common.preprocessing import is_image_space
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import BernoulliDist, MSEDist, TwoHotDist, symlog
from sb3_worldmodels.common.harmony import Harmonizer
from sb3_worldmodels.common.init import dreamer_init
from sb3_worldmodels.common.nets import MLP, ConvDecoder, ConvEncoder, ScalarHead
from sb3_worldmodels.common.rssm import RSSM, State
from sb3_worldmodels.dreamer.config import DreamerConfig

__all__ = [
    "WorldModel", "kl_loss_terms", "obs_to_dict", "action_to_model", "openloop_features", "openloop_grid",
    "split_spaces",
]

SINGLE_KEY = "obs"


def split_spaces(observation_space: spaces.Space) -> tuple[dict[str, spaces.Box], dict[str, spaces.Box]]:
    """Split an observation space into image and vector Boxes by key (a plain Box gets the key ``"obs"``).

    Raises a ``ValueError`` naming the fix for anything else (Tuple, Discrete, nested Dict, ...).
    """
    items = observation_space.spaces.items() if isinstance(observation_space, spaces.Dict) else [
        (SINGLE_KEY, observation_space)
    ]
    images: dict[str, spaces.Box] = {}
    vectors: dict[str, spaces.Box] = {}
    for key, space in items:
        if not isinstance(space, spaces.Box):
            raise ValueError(
                f"Dreamer supports Box observations (images or vectors) and Dict of Boxes; got {space!r} "
                f"for key {key!r} in {observation_space!r}. Flatten it (gymnasium.wrappers.FlattenObservation) "
                "or convert it to a Box / Dict of Boxes."
            )
        if is_image_space(space, check_channels=False, normalized_image=False) and len(space.shape) == 3:
            images[key] = space
        elif len(space.shape) == 1:
            vectors[key] = space
        else:
            raise ValueError(
                f"Observation {key!r} has shape {space.shape} and dtype {space.dtype}: Dreamer takes uint8 images "
                "(C, H, W) or (H, W, C), or flat vectors. Flatten it (gymnasium.wrappers.FlattenObservation) or "
                "cast images to uint8."
            )
    return images, vectors


def kl_loss_terms(cfg: DreamerConfig, dyn: Tensor, rep: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
    """KL loss from per-step (B, T) dynamics / representation KLs, as the config's Dreamer version does it.

    V3: free bits per step, ``kl_dyn * dyn + kl_rep * rep``; V2: free nats on the mean, KL balancing
    ``kl_scale * (kl_balance * dyn + (1 - kl_balance) * rep)``.

    :return: the loss and its metrics (``dyn_loss``, ``rep_loss``, ``kl``).
    """
    if cfg.version == "v3":
        dyn_loss = torch.clamp(dyn, min=cfg.kl_free).mean()
        rep_loss = torch.clamp(rep, min=cfg.kl_free).mean()
        kl_loss = cfg.kl_dyn * dyn_loss + cfg.kl_rep * rep_loss
    else:
        dyn_loss = torch.clamp(dyn.mean(), min=cfg.kl_free)
        rep_loss = torch.clamp(rep.mean(), min=cfg.kl_free)
        kl_loss = cfg.kl_scale * (cfg.kl_balance * dyn_loss + (1 - cfg.kl_balance) * rep_loss)
    return kl_loss, {"dyn_loss": dyn_loss.detach(), "rep_loss": rep_loss.detach(), "kl": dyn.detach().mean()}


def openloop_features(rssm: RSSM, post: State, actions: Tensor | None, length: int) -> Tensor:
    """Features (B, length, F): the ``post`` states of the observed steps, then the prior rolled forward.

    :param post: posteriors (B, context, ...) of the first ``context`` steps.
    :param actions: (B, length, A) model actions (action t leads to step t), or ``None`` for an action-free RSSM.
    """
    context = post["deter"].shape[1]
    state = {k: v[:, -1] for k, v in post.items()}
    feats = [rssm.feat(post)]
    for t in range(context, length):
        state = rssm.img_step(state, None if actions is None else actions[:, t])
        feats.append(rssm.feat(state)[:, None])
    return torch.cat(feats, 1)


def openloop_grid(truth: Tensor, recon: Tensor, offset: float) -> Tensor:
    """uint8 (..., C, H, 3W) frames real | predicted | error from preprocessed images (``offset`` added on input)."""
    recon = (recon - offset).clamp(0, 1)
    truth = (truth - offset).clamp(0, 1)
    video = torch.cat([truth, recon, (recon - truth + 1) / 2], -1)
    return (video * 255).round().to(torch.uint8)


def obs_to_dict(obs: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
    """Wrap a single-tensor observation as ``{"obs": tensor}``; dicts pass through."""
    return obs if isinstance(obs, dict) else {SINGLE_KEY: obs}


def action_to_model(action: Tensor, action_space: spaces.Space, width: int) -> Tensor:
    """Convert SB3 buffer actions (Box in [-1, 1], Discrete index) to the model's padded action vector."""
    if isinstance(action_space, spaces.Discrete):
        vec = F.one_hot(action.reshape(action.shape[:-1]).long(), int(action_space.n)).to(torch.get_default_dtype())
    else:
        vec = action.to(torch.get_default_dtype())
    if vec.shape[-1] < width:
        vec = F.pad(vec, (0, width - vec.shape[-1]))
    return vec


class WorldModel(nn.Module):
    """RSSM world model over image and vector observations.

    :param observation_space: the (channels-first) observation space of the algorithm.
    :param action_space: Box or Discrete action space.
    :param cfg: Dreamer configuration.
    """

    def __init__(self, observation_space: spaces.Space, action_space: spaces.Space, cfg: DreamerConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.action_space = action_space
        self.images, self.vectors = split_spaces(observation_space)
        for key, space in self.images.items():
            if space.shape[0] not in (1, 3, 4) and space.shape[-1] in (1, 3, 4):
                raise ValueError(
                    f"Image {key!r} of shape {space.shape} is channels-last; Dreamer expects channels-first "
                    "images. Wrap the env with stable_baselines3.common.vec_env.VecTransposeImage (SB3 does this "
                    "automatically for image observations)."
                )
        self.action_dim = int(action_space.n) if isinstance(action_space, spaces.Discrete) else int(
            np.prod(action_space.shape)
        )
        self.action_width = max(self.action_dim, cfg.action_pad)
        feat = self._build_networks()
        self.reward = ScalarHead(feat, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm, cfg.reward_head == "twohot",
                                 cfg.bins)
        self.cont = MLP(feat, 1, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm) if cfg.cont_head else None
        self.harmonizer = Harmonizer(["obs", "reward", "dyn"]) if cfg.harmony else None
        self.init_weights()

    def init_weights(self) -> None:
        """Initialise the Dreamer networks as the official code of the version does (:func:`dreamer_init`)."""
        rssms = [m for m in self.modules() if isinstance(m, RSSM)]
        keep = [r.gru.linear for r in rssms] if self.cfg.version == "v2" else []
        dreamer_init(self.dreamer_modules(), self.cfg.version, keep)

    def dreamer_modules(self) -> list[nn.Module]:
        """The networks :meth:`init_weights` initialises (subclasses leave out networks with their own scheme)."""
        return [m for name, m in self.named_children() if name != "harmonizer"]

    def _build_networks(self) -> int:
        """Build the encoders, the RSSM and the decoders; return the feature size the heads read."""
        cfg = self.cfg
        style = cfg.version
        self.encoders = nn.ModuleDict(
            {k: ConvEncoder(s.shape, cfg.cnn_depth, 4, cfg.act, cfg.norm, style) for k, s in self.images.items()}
        )
        self.vec_dim = sum(int(s.shape[0]) for s in self.vectors.values())
        self.vec_encoder = (
            MLP(self.vec_dim, None, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm) if self.vectors else None
        )
        embed_dim = sum(e.out_dim for e in self.encoders.values()) + (
            self.vec_encoder.out_dim if self.vec_encoder else 0
        )
        self.rssm = RSSM(
            embed_dim, self.action_width, cfg.deter, cfg.hidden, cfg.stoch, cfg.classes, cfg.unimix, cfg.act,
            cfg.norm, cfg.learned_initial,
        )
        feat = self.rssm.feat_dim
        self.decoders = nn.ModuleDict(
            {k: ConvDecoder(feat, s.shape, cfg.cnn_depth, 4, cfg.act, cfg.norm, style) for k, s in self.images.items()}
        )
        self.vec_decoder = MLP(feat, self.vec_dim, cfg.mlp_layers, cfg.units, cfg.act, cfg.norm) if self.vectors else None
        return feat

    # ---------------------------------------------------------------------------------------- inputs
    def preprocess(self, obs: Tensor | dict[str, Tensor]) -> dict[str, Tensor]:
        """uint8 images -> float in [0, 1] (+ offset, -0.5 in V2); vectors -> float (symlog in V3)."""
        obs = obs_to_dict(obs)
        out: dict[str, Tensor] = {}
        for key in self.images:
            x = obs[key]
            if x.dtype != torch.uint8:
                raise ValueError(f"Image observation {key!r} must be uint8 (0..255), got {x.dtype}.")
            out[key] = x.to(torch.get_default_dtype()) / 255.0 + self.cfg.image_offset
        if self.vectors:
            vec = torch.cat([obs[k].to(torch.get_default_dtype()) for k in self.vectors], -1)
            out["_vector"] = symlog(vec) if self.cfg.symlog_inputs else vec
        return out

    def encode(self, obs: dict[str, Tensor]) -> Tensor:
        """Embedding of preprocessed observations, shape (..., embed_dim)."""
        parts = [enc(obs[k]) for k, enc in self.encoders.items()]
        if self.vec_encoder is not None:
            parts.append(self.vec_encoder(obs["_vector"]))
        return torch.cat(parts, -1)

    def pad_action(self, action: Tensor) -> Tensor:
        """Zero-pad an actor action (..., action_dim) to the model's action width (``action_pad``)."""
        if action.shape[-1] < self.action_width:
            action = F.pad(action, (0, self.action_width - action.shape[-1]))
        return action

    def model_actions(self, actions: Tensor) -> Tensor:
        """SB3 buffer actions -> padded model action vectors."""
        return action_to_model(actions, self.action_space, self.action_width)

    # ---------------------------------------------------------------------------------------- heads
    def reward_dist(self, feat: Tensor) -> TwoHotDist | MSEDist:
        """Predicted reward distribution (two-hot in V3, unit Gaussian in V2)."""
        return self.reward.dist(self.reward(feat))

    def cont_dist(self, feat: Tensor) -> BernoulliDist:
        """Predicted continuation (1 - terminal) distribution (the model must have a continue head)."""
        if self.cont is None:
            raise ValueError("This world model has no continue head (cont_head=False).")
        return BernoulliDist(self.cont(feat)[..., 0])

    def cont_loss(self, feat: Tensor, is_terminal: Tensor, gamma: float | None = None) -> Tensor:
        """Negative log-likelihood of the continue flags; a zero without a continue head.

        With ``cont_is_discount`` (DreamerV2) the head learns the discount ``gamma * (1 - terminal)`` instead, as the
        official code's ``discount`` head (thuml/HarmonyDream ``wmlib/agents/base.py:123-124``), so ``gamma`` is needed.
        """
        if self.cont is None:
            return torch.zeros((), device=feat.device)
        target = 1.0 - is_terminal.to(feat.dtype)
        if self.cfg.cont_is_discount:
            if gamma is None:
                raise ValueError("This world model's continue head learns gamma * (1 - terminal) (cont_is_discount, "
                                 "DreamerV2): pass loss(..., gamma=the algorithm's gamma).")
            target = gamma * target
        return -self.cont_dist(feat).log_prob(target).mean()

    def decode(self, feat: Tensor) -> dict[str, MSEDist]:
        """Observation distributions per key, over preprocessed targets (vectors in symlog space in V3)."""
        dists: dict[str, MSEDist] = {
            k: MSEDist(dec(feat), dims=3, coef=self.cfg.image_loss_coef) for k, dec in self.decoders.items()
        }
        if self.vec_decoder is not None:
            dists["_vector"] = MSEDist(self.vec_decoder(feat), dims=1, coef=self.cfg.image_loss_coef)
        return dists

    # ---------------------------------------------------------------------------------------- loss
    def loss(
        self,
        observations: Tensor | dict[str, Tensor],
        prev_actions: Tensor,
        rewards: Tensor,
        is_first: Tensor,
        is_terminal: Tensor,
        gamma: float | None = None,
    ) -> tuple[Tensor, State, dict[str, Any]]:
        """World-model loss on a (B, T) batch of sequences.

        :param gamma: the discount, which a DreamerV2 continue head learns (see :meth:`cont_loss`).
        :return: the total loss, the posterior states (B, T, ...) and a dict of metrics (floats / tensors).
        """
        cfg = self.cfg
        obs = self.preprocess(observations)
        embed = self.encode(obs)
        post, prior = self.rssm.observe(embed, self.model_actions(prev_actions), is_first)
        feat = self.rssm.feat(post)
        obs_loss = sum(-dist.log_prob(obs[k]).mean() for k, dist in self.decode(feat).items())
        reward_loss = -self.reward_dist(feat).log_prob(rewards).mean()
        cont_loss = self.cont_loss(feat, is_terminal, gamma)
        dyn, rep = self.rssm.kl(post, prior)
        kl_loss, kl_metrics = kl_loss_terms(cfg, dyn, rep)
        total, metrics = self.combine_losses(obs_loss, reward_loss, kl_loss, cont_loss)
        metrics.update(kl_metrics)
        return total, post, metrics

    def combine_losses(
        self, obs_loss: Tensor, reward_loss: Tensor, kl_loss: Tensor, cont_loss: Tensor
    ) -> tuple[Tensor, dict[str, Any]]:
        """Total world-model loss (harmonized when HarmonyDream is on) and the loss metrics."""
        cfg = self.cfg
        losses = {"obs": obs_loss, "reward": reward_loss, "dyn": kl_loss}
        if self.harmonizer is not None:
            reg_weights = None
            if cfg.version == "v3" and cfg.kl_dyn + cfg.kl_rep > 0:
                # HarmonyDream-V3 (thuml/HarmonyDream dreamerv3-jax/dreamerv3/agent.py WorldModel.loss) harmonizes
                # both KL terms with one s at their relative weights 0.5 / 0.6 and 0.1 / 0.6, the regulariser
                # coming with the dynamics term only: (kl_dyn dyn + kl_rep rep) / (kl_dyn + kl_rep) e^{-s}
                # + kl_dyn / (kl_dyn + kl_rep) log(1 + e^s). V2 harmonizes the balanced KL itself (wmlib-torch
                # dreamerv2.py WorldModel.loss).
                losses["dyn"] = kl_loss / (cfg.kl_dyn + cfg.kl_rep)
                reg_weights = {"dyn": cfg.kl_dyn / (cfg.kl_dyn + cfg.kl_rep)}
            total = self.harmonizer(losses, reg_weights=reg_weights) + cfg.cont_scale * cont_loss
        else:
            total = obs_loss + reward_loss + kl_loss + cfg.cont_scale * cont_loss
        metrics: dict[str, Any] = {
            "obs_loss": obs_loss.detach(),
            "reward_loss": reward_loss.detach(),
            "cont_loss": cont_loss.detach(),
            "kl_loss": kl_loss.detach(),
            "model_loss": total.detach(),
        }
        if self.harmonizer is not None:
            # tensors, not floats: no host sync inside the update (read after it, e.g. by Dreamer.train's logging)
            for name, coef in self.harmonizer.coefficient_tensors().items():
                metrics[f"harmony_coef_{name}"] = coef
            for name, s in self.harmonizer.log_sigma_tensors().items():
                metrics[f"harmony_s_{name}"] = s
        return total, metrics

    # ---------------------------------------------------------------------------------------- video prediction
    @torch.no_grad()
    def predict(
        self, context_frames: Tensor, actions: Tensor, context_actions: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Imagined frames and rewards after ``actions``: the planners' video-predictor interface.

        The context frames are filtered (posterior), then the prior is rolled forward under ``actions`` and decoded;
        the model runs in eval mode (its previous mode is restored).

        :param context_frames: uint8 (B, Tc, C, H, W), the most recent last; the first starts an episode.
        :param actions: (B, T, A) actions after the last context frame, as the replay buffer stores them (Box
            scaled to [-1, 1], Discrete as indices (B, T, 1)).
        :param context_actions: (B, Tc - 1, A) actions between the context frames (zeros when ``None``).
        :return: uint8 frames (B, T, C, H, W) and predicted rewards (B, T) of reaching each frame.
        """
        key = self._video_key()
        if context_frames.dim() != 5 or context_frames.dtype != torch.uint8:
            raise ValueError(
                f"context_frames must be uint8 (B, Tc, C, H, W), got shape {tuple(context_frames.shape)} and dtype "
                f"{context_frames.dtype}."
            )
        b, tc = context_frames.shape[:2]
        if actions.dim() != 3 or actions.shape[0] != b:
            raise ValueError(f"actions must be (B={b}, T, A), got shape {tuple(actions.shape)}.")
        prev = actions.new_zeros(b, tc, actions.shape[-1])
        if context_actions is not None:
            prev[:, 1:] = context_actions
        is_first = torch.zeros(b, tc, device=context_frames.device)
        is_first[:, 0] = 1.0
        was_training = self.training
        self.eval()
        try:
            x = self.preprocess({key: context_frames})[key]
            state = self._context_state(x, self.model_actions(prev), is_first)
            acts = self.model_actions(actions)
            feats = []
            for t in range(acts.shape[1]):
                state = self.rssm.img_step(state, acts[:, t])
                feats.append(self.rssm.feat(state))
            feat = torch.stack(feats, 1)
            frames = self._decode_image(feat, x)
            rewards = self.reward_dist(feat).mean
        finally:
            self.train(was_training)
        return ((frames - self.cfg.image_offset).clamp(0, 1) * 255).round().to(torch.uint8), rewards

    def _video_key(self) -> str:
        """The image key of a world model of one image observation (what :meth:`predict` needs)."""
        if len(self.images) != 1 or self.vectors:
            raise ValueError(
                "predict() imagines the frames of a world model of one image observation (CnnPolicy); this one has "
                f"images {list(self.images)} and vectors {list(self.vectors)}."
            )
        return next(iter(self.images))

    def _context_state(self, x: Tensor, actions: Tensor, is_first: Tensor) -> dict[str, Tensor]:
        """The latent state after filtering preprocessed frames ``x`` (B, Tc, ...) under model ``actions``."""
        post, _ = self.rssm.observe(self.encoders[self._video_key()](x), actions, is_first)
        return {k: v[:, -1] for k, v in post.items()}

    def _decode_image(self, feat: Tensor, context: Tensor) -> Tensor:
        """Mean preprocessed image (B, T, C, H, W) of features; ``context``: the preprocessed context frames."""
        return self.decoders[self._video_key()](feat)

    def openloop(
        self,
        observations: Tensor | dict[str, Tensor],
        prev_actions: Tensor,
        is_first: Tensor,
        context: int = 5,
        key: str | None = None,
    ) -> Tensor:
        """Open-loop prediction video: ``context`` observed frames, then imagination under the real actions.

        :return: uint8 (B, T, C, H, 3 * W) frames: real | predicted | error, side by side.
        """
        if not self.images:
            raise ValueError("Open-loop video needs image observations; this world model has none.")
        key = key or next(iter(self.images))
        obs = self.preprocess(observations)
        actions = self.model_actions(prev_actions)
        embed = self.encode(obs)
        post, _ = self.rssm.observe(embed[:, :context], actions[:, :context], is_first[:, :context])
        feat = openloop_features(self.rssm, post, actions, embed.shape[1])
        return openloop_grid(obs[key], self.decoders[key](feat), self.cfg.image_offset)
