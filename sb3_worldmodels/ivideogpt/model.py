"""IVideoGPT: the compressive tokenizer and a LLaMA-style transformer as an interactive world model.

Token layout of a clip with ``Tc`` context frames and ``F`` future frames (``specs/ivideogpt.md``)::

    [ctx_0 tokens] [sep] [ctx_1 tokens] ... [ctx_{Tc-1} tokens] ([slot] [dyn tokens of frame j]) for j < F

Context tokens take ids ``[0, context_codes)``, dynamics tokens ``[context_codes, context_codes + dynamics_codes)``,
then the separator and the slot token. The action that leads to future frame ``j`` is projected (a zero-initialised
``Linear(action_dim -> width)``) and added to the embedding of that frame's slot token. The transformer is trained
with cross-entropy on the future frames' tokens only (each predicted from the position before it, over the dynamics
codebook), and a reward head ``Linear(width -> 1)`` on the hidden state of each future frame's last token regresses
``symlog(reward)``. Generation feeds one token at a time through the key/value cache: a step of an interactive
rollout costs ``dynamics_tokens + 1`` forward tokens (17 at 64x64), not the whole sequence.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import symexp, symlog
from sb3_worldmodels.common.io import atomic_path
from sb3_worldmodels.common.precision import autocast, check_precision
from sb3_worldmodels.ivideogpt.config import (
    TokenizerConfig,
    TransformerConfig,
    config_dict,
    make_tokenizer_config,
    make_transformer_config,
)
from sb3_worldmodels.ivideogpt.tokenizer import CompressiveTokenizer
from sb3_worldmodels.ivideogpt.transformer import KVCache, LlamaTransformer

__all__ = ["IVideoGPT"]

CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"


class IVideoGPT(nn.Module):
    """Interactive video GPT: ``predict(context_frames, actions)`` imagines future frames and rewards.

    :param tokenizer: tokenizer configuration or preset name (``"64"``, ``"tiny"``).
    :param transformer: transformer configuration or preset name (``"138M"``, ``"436M"``, ``"tiny"``).
    :param action_dim: action size (0: action-free, e.g. for pre-training on videos).
    :param temperature: sampling temperature of :meth:`predict` (0: greedy).
    :param top_k: sampling restricted to the ``top_k`` most likely tokens (the spec's 100).
    :param precision: ``"fp32"``, or ``"bf16"`` for bf16 autocast of the losses and of generation (weights and
        optimizer states stay fp32; logits, losses and sampling are computed in fp32).
    """

    def __init__(
        self,
        tokenizer: TokenizerConfig | str = "64",
        transformer: TransformerConfig | str = "138M",
        action_dim: int = 0,
        temperature: float = 1.0,
        top_k: int = 100,
        precision: str = "fp32",
    ) -> None:
        super().__init__()
        self.precision = check_precision(precision)
        self.tokenizer_config = make_tokenizer_config(tokenizer) if isinstance(tokenizer, str) else tokenizer
        self.transformer_config = make_transformer_config(transformer) if isinstance(transformer, str) else transformer
        self.transformer_config.validate()
        tc = self.tokenizer_config
        self.action_dim, self.temperature, self.top_k = action_dim, temperature, top_k
        self.context_codes, self.dynamics_codes = tc.context_codes, tc.dynamics_codes
        self.sep_token = tc.context_codes + tc.dynamics_codes
        self.slot_token = self.sep_token + 1
        self.tokenizer = CompressiveTokenizer(tc)
        self.transformer = LlamaTransformer(self.transformer_config, self.slot_token + 1)
        width = self.transformer_config.width
        self.action_proj = nn.Linear(action_dim, width) if action_dim > 0 else None
        if self.action_proj is not None:
            nn.init.zeros_(self.action_proj.weight)
            nn.init.zeros_(self.action_proj.bias)
        self.reward_head = nn.Linear(width, 1)

    def transformer_parameters(self) -> list[nn.Parameter]:
        """Every parameter but the tokenizer's: transformer, reward head and action projection (trained together)."""
        return [p for n, p in self.named_parameters() if not n.startswith("tokenizer.")]

    def autocast(self) -> torch.autocast:
        """bf16 autocast on the model's device when ``precision="bf16"`` (a no-op context otherwise)."""
        device = next(self.parameters()).device.type
        return autocast(device, self.precision)

    # ---------------------------------------------------------------------------------------- sequences
    @property
    def frame_tokens(self) -> int:
        """Tokens per future frame: the slot token and the dynamics tokens."""
        return self.tokenizer_config.dynamics_tokens + 1

    def context_sequence(self, context_tokens: Tensor) -> Tensor:
        """The token ids (B, L) of context tokens (B, Tc, n): the frames joined by separators."""
        b, tc = context_tokens.shape[:2]
        sep = torch.full((b, 1), self.sep_token, dtype=torch.long, device=context_tokens.device)
        parts: list[Tensor] = []
        for t in range(tc):
            parts += [sep] if t else []
            parts.append(context_tokens[:, t])
        return torch.cat(parts, 1)

    def _embed(self, ids: Tensor, slot_actions: Tensor | None = None) -> Tensor:
        """Embeddings of token ids (B, L); ``slot_actions`` (B, L, A) is added (projected) where ids are slots."""
        x = self.transformer.embed(ids)
        if slot_actions is not None and self.action_proj is not None:
            x = x + self.action_proj(slot_actions) * (ids == self.slot_token)[..., None]
        return x

    def _check_actions(self, actions: Tensor | None, b: int, frames: int) -> Tensor | None:
        if self.action_proj is None:
            if actions is not None:
                raise ValueError("This model is action-free (action_dim=0) and would ignore the actions: build it "
                                 "with action_dim=A (IVideoGPT.from_pretrained(path, action_dim=A) for a pre-trained "
                                 "one), or give horizon= instead of actions.")
            return None
        if actions is None or actions.dim() != 3 or tuple(actions.shape[:2]) != (b, frames) \
                or actions.shape[-1] != self.action_dim:
            got = None if actions is None else tuple(actions.shape)
            raise ValueError(f"This model is action-conditioned: give actions of shape (B={b}, {frames}, "
                             f"{self.action_dim}), got {got}.")
        return actions.float()

    # ---------------------------------------------------------------------------------------- training
    def transformer_loss(
        self, frames: Tensor, actions: Tensor | None = None, rewards: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Cross-entropy on the future frames' tokens (and the reward regression) of uint8 clips (B, T, C, H, W).

        The tokenizer is frozen here (``no_grad``); train it with :meth:`tokenizer_loss`.

        :param actions: (B, T - 1, A): action ``t`` leads from frame ``t`` to ``t + 1`` (action-conditioned models).
        :param rewards: (B, T - 1): reward of the transition into frame ``t + 1``; trains the reward head.
        :return: the loss and its metrics (``token_loss``, ``token_accuracy``, ``reward_loss``).
        """
        tc = self.tokenizer_config.context_frames
        b, t = frames.shape[:2]
        future = t - tc
        if future < 1:
            raise ValueError(f"Clips need more than context_frames={tc} frames, got {t}.")
        with torch.no_grad():
            ctx_tokens, context, _, _ = self.tokenizer.encode_context(frames[:, :tc])
            dyn_tokens, _, _ = self.tokenizer.encode_dynamics(frames[:, tc:], context)
        acts = self._check_actions(None if actions is None else actions[:, tc - 1:], b, future)
        head = self.context_sequence(ctx_tokens)
        n = self.tokenizer_config.dynamics_tokens
        slots = torch.full((b, future, 1), self.slot_token, dtype=torch.long, device=frames.device)
        body = torch.cat([slots, dyn_tokens + self.context_codes], 2)  # (B, F, 1 + n)
        ids = torch.cat([head, body.flatten(1)], 1)
        slot_actions = None
        if acts is not None:
            slot_actions = torch.zeros(b, ids.shape[1], self.action_dim, device=frames.device)
            slot_actions[:, head.shape[1]:] = acts[:, :, None].expand(-1, -1, 1 + n, -1).flatten(1, 2)
        with self.autocast():
            hidden, _ = self.transformer(self._embed(ids, slot_actions))
        hidden = hidden.float()
        # the positions that predict dynamics tokens: each slot and every dynamics token but a frame's last
        frame_hidden = hidden[:, head.shape[1]:].reshape(b, future, 1 + n, -1)
        logits = self._dynamics_logits(frame_hidden[:, :, :n])
        token_loss = F.cross_entropy(logits.flatten(0, 2), dyn_tokens.flatten())
        metrics = {"token_loss": token_loss.detach(),
                   "token_accuracy": (logits.argmax(-1) == dyn_tokens).float().mean()}
        total = token_loss
        if rewards is not None:
            pred = self.reward_head(frame_hidden[:, :, n])[..., 0]
            reward_loss = F.mse_loss(pred, symlog(rewards[:, tc - 1:].float()))
            total = total + reward_loss
            metrics["reward_loss"] = reward_loss.detach()
        metrics["transformer_loss"] = total.detach()
        return total, metrics

    def tokenizer_loss(self, frames: Tensor, **kwargs: Any) -> tuple[Tensor, dict[str, Tensor]]:
        """The tokenizer's loss (see :meth:`~sb3_worldmodels.ivideogpt.tokenizer.CompressiveTokenizer.loss`)."""
        with self.autocast():
            loss, metrics = self.tokenizer.loss(frames, **kwargs)
        return loss.float(), metrics

    def _dynamics_logits(self, hidden: Tensor) -> Tensor:
        """Logits (fp32) over the dynamics codebook only (the one valid output at future-frame positions)."""
        with self.autocast():
            logits = self.transformer.head(hidden)
        return logits[..., self.context_codes:self.context_codes + self.dynamics_codes].float()

    # ---------------------------------------------------------------------------------------- generation
    def _sample(self, logits: Tensor, generator: torch.Generator | None) -> Tensor:
        if self.temperature <= 0:
            return logits.argmax(-1)
        logits = logits / self.temperature
        if 0 < self.top_k < logits.shape[-1]:
            kth = logits.topk(self.top_k, -1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        probs = torch.softmax(logits.float(), -1)
        return torch.multinomial(probs, 1, generator=generator)[..., 0]

    def _start(self, context_frames: Tensor) -> tuple[dict[int, Tensor], KVCache]:
        """Encode the context frames and run their tokens through the transformer."""
        tc = self.tokenizer_config.context_frames
        if context_frames.dim() != 5 or context_frames.shape[1] != tc:
            raise ValueError(f"IVideoGPT takes exactly context_frames={tc} context frames (B, {tc}, C, H, W), got "
                             f"shape {tuple(context_frames.shape)}.")
        with self.autocast():
            ctx_tokens, context, _, _ = self.tokenizer.encode_context(context_frames)
            _, cache = self.transformer(self._embed(self.context_sequence(ctx_tokens)))
        return context, cache

    def _step(self, cache: KVCache, action: Tensor | None, generator: torch.Generator | None
              ) -> tuple[Tensor, Tensor, KVCache]:
        """Generate one future frame's tokens: feed its slot (with the action), then sample token by token."""
        b = cache[0][0].shape[0]
        device = cache[0][0].device
        ids = torch.full((b, 1), self.slot_token, dtype=torch.long, device=device)
        x = self._embed(ids, None if action is None else action[:, None])
        tokens = []
        with self.autocast():
            for _ in range(self.tokenizer_config.dynamics_tokens):
                hidden, cache = self.transformer(x, cache)
                token = self._sample(self._dynamics_logits(hidden[:, -1]), generator)
                tokens.append(token)
                x = self._embed((token + self.context_codes)[:, None])
            hidden, cache = self.transformer(x, cache)  # the frame's last token: its hidden state reads the reward
        reward = symexp(self.reward_head(hidden[:, -1].float())[:, 0])
        return torch.stack(tokens, 1), reward, cache

    @torch.no_grad()
    def predict(
        self, context_frames: Tensor, actions: Tensor | None = None, horizon: int | None = None,
        context_actions: Tensor | None = None, generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Imagine future frames and rewards: the planners' and MBPO's video-predictor interface.

        :param context_frames: uint8 (B, context_frames, C, H, W).
        :param actions: (B, T, A), action ``j`` leading to future frame ``j`` (scaled to [-1, 1] as SB3 buffers
            store Box actions); ``None`` for an action-free model, which then needs ``horizon``.
        :param horizon: future frames of an action-free model.
        :param context_actions: accepted for the interface; iVideoGPT's context tokens carry no actions.
        :param generator: random generator of the sampling.
        :return: uint8 frames (B, T, C, H, W) and predicted rewards (B, T).
        """
        del context_actions
        was_training = self.training
        self.eval()
        try:
            b = context_frames.shape[0]
            steps = actions.shape[1] if actions is not None and actions.dim() == 3 else horizon
            if steps is None or steps < 1:
                raise ValueError("Give actions (B, T, A) or, for an action-free model, horizon=T >= 1.")
            acts = self._check_actions(actions, b, steps)
            context, cache = self._start(context_frames)
            tokens, rewards = [], []
            for j in range(steps):
                tok, reward, cache = self._step(cache, None if acts is None else acts[:, j], generator)
                tokens.append(tok)
                rewards.append(reward)
            with self.autocast():
                frames = self.tokenizer.decode_dynamics(torch.stack(tokens, 1), context)
        finally:
            self.train(was_training)
        return frames, torch.stack(rewards, 1)

    @torch.no_grad()
    def rollout(
        self, context_frames: Tensor, policy: Callable[[Tensor], Tensor], horizon: int,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Interactive rollout: the policy acts on each imagined frame, the model imagines the next (MBPO).

        :param policy: maps the frames so far, uint8 (B, t, C, H, W) with the context first, to actions (B, A).
        :return: imagined frames (B, horizon, C, H, W), the actions taken (B, horizon, A) and rewards (B, horizon).
        """
        if self.action_proj is None:
            raise ValueError("rollout needs an action-conditioned model (action_dim > 0); use predict(horizon=...) "
                             "for action-free prediction.")
        was_training = self.training
        self.eval()
        try:
            context, cache = self._start(context_frames)
            seen, actions, rewards = [context_frames], [], []
            for _ in range(horizon):
                action = policy(torch.cat(seen, 1)).float()
                tok, reward, cache = self._step(cache, action, generator)
                with self.autocast():
                    seen.append(self.tokenizer.decode_dynamics(tok[:, None], context))
                actions.append(action)
                rewards.append(reward)
        finally:
            self.train(was_training)
        return torch.cat(seen[1:], 1), torch.stack(actions, 1), torch.stack(rewards, 1)

    # ---------------------------------------------------------------------------------------- checkpoints
    def save_pretrained(self, path: str | os.PathLike[str]) -> Path:
        """Write ``tokenizer/`` and ``transformer/`` sub-directories, each a ``config.json`` and
        ``model.safetensors``, every file atomically (configs last)."""
        path = Path(path)
        parts = {
            "tokenizer": (self.tokenizer, config_dict(self.tokenizer_config)),
            "transformer": (nn.ModuleDict({"transformer": self.transformer, "reward_head": self.reward_head,
                                           **({"action_proj": self.action_proj} if self.action_proj else {})}),
                            {**config_dict(self.transformer_config), "action_dim": self.action_dim,
                             "temperature": self.temperature, "top_k": self.top_k, "precision": self.precision}),
        }
        for name, (module, config) in parts.items():
            folder = path / name
            folder.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
            with atomic_path(folder / WEIGHTS_FILE) as tmp:
                save_file(state, str(tmp))
            with atomic_path(folder / CONFIG_FILE) as tmp:
                tmp.write_text(json.dumps(config, indent=2))
        return path

    @classmethod
    def from_pretrained(
        cls, path: str | os.PathLike[str], device: torch.device | str = "cpu", action_dim: int | None = None
    ) -> IVideoGPT:
        """Rebuild a model written by :meth:`save_pretrained` (strict: every weight must be there, shapes equal).

        :param action_dim: the action size to fine-tune with. An action-free checkpoint (pre-trained on videos)
            then gets a new zero-initialised action projection, so it predicts as before until it learns to use
            the actions; a checkpoint with other actions is refused.
        """
        path = Path(path)
        for name in ("tokenizer", "transformer"):
            if not (path / name / CONFIG_FILE).is_file() or not (path / name / WEIGHTS_FILE).is_file():
                raise FileNotFoundError(f"{path} is not an IVideoGPT checkpoint: {path / name} needs {CONFIG_FILE} "
                                        f"and {WEIGHTS_FILE} (write one with model.save_pretrained(path)).")
        tok_cfg = json.loads((path / "tokenizer" / CONFIG_FILE).read_text())
        tr_cfg = json.loads((path / "transformer" / CONFIG_FILE).read_text())
        extra = {k: tr_cfg.pop(k) for k in ("action_dim", "temperature", "top_k", "precision") if k in tr_cfg}
        saved_actions = int(extra.get("action_dim", 0))
        if action_dim is not None and action_dim != saved_actions:
            if saved_actions:
                raise ValueError(f"The checkpoint {path} is conditioned on {saved_actions}-d actions, not "
                                 f"{action_dim}-d; fine-tune an action-free checkpoint or one of this action size.")
            extra["action_dim"] = action_dim
        model = cls(make_tokenizer_config("64", **tok_cfg), make_transformer_config("138M", **tr_cfg), **extra)
        model.tokenizer.load_state_dict(load_file(str(path / "tokenizer" / WEIGHTS_FILE)), strict=True)
        parts = nn.ModuleDict({"transformer": model.transformer, "reward_head": model.reward_head,
                               **({"action_proj": model.action_proj} if saved_actions else {})})
        parts.load_state_dict(load_file(str(path / "transformer" / WEIGHTS_FILE)), strict=True)
        return model.to(device)

    def architecture(self) -> dict[str, Any]:
        """The settings that rebuild this model: ``IVideoGPT(**model.architecture())``."""
        return {"tokenizer": self.tokenizer_config, "transformer": self.transformer_config,
                "action_dim": self.action_dim, "temperature": self.temperature, "top_k": self.top_k,
                "precision": self.precision}
