"""APV and ContextDreamer (ContextWM) as Stable-Baselines3 algorithms: fine-tune a video-pre-trained world model."""

from __future__ import annotations

from typing import Any, ClassVar

from stable_baselines3.common.policies import BasePolicy
from stable_baselines3.common.type_aliases import GymEnv

from sb3_worldmodels.common.video import log_video
from sb3_worldmodels.contextwm.checkpoint import pretrained_policy_kwargs
from sb3_worldmodels.contextwm.config import ContextWMConfig
from sb3_worldmodels.contextwm.policies import APVPolicy
from sb3_worldmodels.dreamer.dreamer import Dreamer

__all__ = ["APV", "ContextDreamer"]


class APV(Dreamer):
    """APV (Seo et al., ICML 2022): a world model pre-trained action-free on videos, fine-tuned with Dreamer.

    The pre-trained action-free RSSM is stacked under a new action-conditional RSSM; the encoder and the
    action-free RSSM are frozen (learning rate 0) for the first ``warmup_updates`` updates; the behaviour learns
    from ``r + intrinsic_scale * r_int`` with APV's video-based intrinsic bonus. DreamerV2 is the base by default
    (``version="v3"`` gives DreamerV3's losses and heads); ``harmony=True`` adds HarmonyDream's harmonizers.

    :param policy: ``"CnnPolicy"`` (a single image observation).
    :param env: environment or its gymnasium id.
    :param pretrained: directory written by ``sb3wm pretrain apv``, or an official APV pre-training checkpoint (the
        logdir of thuml/ContextWM's ``train_apv_pretraining.py`` holding ``variables.pt`` and / or the three
        ``*_variables.pt`` files, or ``variables.pt`` itself); ``None`` trains from scratch. The network sizes of the
        pre-trained modules are read from the checkpoint (its ``config.json``, or an official checkpoint's tensor
        shapes); ``policy_kwargs`` that contradict them are an error listing each field with both values.
    :param version: ``"v2"`` (default, as the papers) or ``"v3"``.
    :param kwargs: every other :class:`~sb3_worldmodels.dreamer.dreamer.Dreamer` parameter; ``policy_kwargs``
        takes ``model_size`` and any :class:`~sb3_worldmodels.contextwm.config.ContextWMConfig` field
        (``concat_embed``, ``intrinsic_scale``, ``warmup_updates``, ...).
    """

    policy_aliases: ClassVar[dict[str, type[BasePolicy]]] = {"CnnPolicy": APVPolicy}
    policy: APVPolicy
    #: whether the world model has ContextWM's context encoder and cross-attention decoder
    use_context: ClassVar[bool] = False

    def __init__(
        self,
        policy: str | type[APVPolicy],
        env: GymEnv | str,
        pretrained: str | None = None,
        version: str = "v2",
        **kwargs: Any,
    ) -> None:
        self.pretrained = None if pretrained is None else str(pretrained)
        self._pretrained_to_load = self.pretrained  # consumed by _setup_model: a reloaded model never re-reads it
        super().__init__(policy, env, version=version, **kwargs)

    @classmethod
    def _config_class(cls) -> type[ContextWMConfig]:
        return ContextWMConfig

    def _get_policy_from_name(self, policy_name: str) -> type[BasePolicy]:
        if policy_name not in self.policy_aliases:
            raise ValueError(
                f"{type(self).__name__} learns from a single image observation: use 'CnnPolicy', not "
                f"{policy_name!r} (for vector observations use DreamerV3 / DreamerV2 with 'MlpPolicy')."
            )
        return self.policy_aliases[policy_name]

    def _setup_model(self) -> None:
        self.policy_kwargs = {"context": self.use_context, **self.policy_kwargs}
        path = self.__dict__.pop("_pretrained_to_load", None)
        if path is not None:
            # build the pre-trained modules as the checkpoint was built (ours or an official one)
            explicit = {k: v for k, v in self.policy_kwargs.items() if k != "context"}
            kwargs = pretrained_policy_kwargs(path, explicit, context=self.use_context)
            self.policy_kwargs = {**kwargs, "context": self.use_context, "pretrained": path}
        super()._setup_model()
        self.policy_kwargs.pop("pretrained", None)


    def _log_openloop_video(self, batch: Any) -> None:
        super()._log_openloop_video(batch)
        if self.use_context:
            from sb3_worldmodels.contextwm.qualitative import attention_video

            wm = self.policy.world_model
            frames = attention_video(wm, batch.observations, batch.is_first, batch.prev_actions)
            wm.train()
            log_video(self.logger, "world_model/context_attention", frames.cpu().numpy())


class ContextDreamer(APV):
    """ContextWM (Wu et al., NeurIPS 2023): APV plus a context encoder and a cross-attention decoder.

    One context frame per replayed sequence (``context_mode`` "random", "first" or "last") is encoded by a
    ResNet branch whose multi-scale maps reach the decoder through cross-attention at the 8x8 and 16x16 stages;
    the latent dynamics never see it. A second, representative reward head learns the task reward alone
    (``rep_reward_scale``) while the behavioural head learns ``r + intrinsic_scale * r_int``.

    :param policy: ``"CnnPolicy"``.
    :param env: environment or its gymnasium id.
    :param pretrained: directory written by ``sb3wm pretrain contextwm``, or an official ContextWM pre-training
        checkpoint (see :class:`APV`; e.g. the Something-Something-V2 model of the ContextWM README); ``None``
        trains from scratch.
    :param kwargs: as :class:`APV`.
    """

    use_context: ClassVar[bool] = True
