"""Run the official PyTorch ``wmlib`` (thuml/HarmonyDream ``wmlib-torch``, thuml/ContextWM ``wmlib``) on a fixed batch.

Used by the fixture generators only, in a virtual environment with torch and the official code's own pure-Python
dependencies (``torchtyping``, ``typeguard<3``, ``einops``, ``ruamel.yaml``); see ``README.md``. Imports of the
official package that the comparison never runs (environments, the replay's image and video libraries) are
stubbed. Sampling is made deterministic by patching the official samplers to draw their uniform noise from
:func:`~tests.conformance.common.fixed_uniform` (the distributions stay the same: Gumbel-max for one-hot
categoricals, the inverse CDF for the truncated normal), as our test patches ``uniform_like``.
"""

from __future__ import annotations

import argparse
import copy
import inspect
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tests.conformance.common import fixed_uniform, git_commit, save_fixture

#: imported by the official package, never run by the comparison (environments, replay files, the context
#: encoder's augmentation libraries when ``ctx_aug`` is ``none``)
STUBBED = ("scipy", "scipy.ndimage", "imageio", "cv2", "gym", "dm_control", "kornia", "kornia.augmentation",
           "torchvision", "torchvision.transforms")


def import_wmlib(root: str | Path) -> Any:
    """Import the ``wmlib`` package of an official checkout (``root`` holds ``wmlib/`` and ``configs/``)."""
    root = Path(root).resolve()
    for name in STUBBED:
        sys.modules.setdefault(name, types.ModuleType(name))
    for name in STUBBED:  # ``import a.b as c`` reads attribute b of a
        parent, _, child = name.rpartition(".")
        if parent:
            setattr(sys.modules[parent], child, sys.modules[name])
    envs = types.ModuleType("wmlib.envs")  # environments are never stepped here
    sys.modules["wmlib.envs"] = envs
    sys.path.insert(0, str(root))
    import wmlib  # noqa: PLC0415

    wmlib.envs = envs
    import wmlib.agents  # noqa: F401, PLC0415
    import wmlib.utils  # noqa: F401, PLC0415

    patch_samplers(wmlib)
    _lr_scheduler_verbose_argument()
    return wmlib


def _lr_scheduler_verbose_argument() -> None:
    """Let the official ``ConstantLR`` (written for torch 1.12) pass the ``verbose`` argument that newer torch
    schedulers no longer take (it only printed the learning rate)."""
    base = torch.optim.lr_scheduler.LRScheduler
    if "verbose" in inspect.signature(base.__init__).parameters:
        return
    init = base.__init__

    def compat(self: Any, optimizer: Any, last_epoch: int = -1, verbose: Any = False) -> None:
        init(self, optimizer, last_epoch)

    base.__init__ = compat


def config(root: str | Path, yaml_file: str, sections: list[str], overrides: dict[str, Any]) -> Any:
    """The official ``Config`` of ``configs/<yaml_file>``: ``defaults``, then ``sections``, then ``overrides``."""
    import ruamel.yaml as yaml  # noqa: PLC0415
    import wmlib.utils as utils  # noqa: PLC0415

    configs = yaml.YAML(typ="safe").load((Path(root) / "configs" / yaml_file).read_text())
    cfg = utils.Config(configs["defaults"])
    for name in sections:
        cfg = cfg.update(configs[name])
    return cfg.update(overrides)


def _uniform(shape: tuple[int, ...], like: torch.Tensor) -> torch.Tensor:
    return torch.from_numpy(fixed_uniform(tuple(int(s) for s in shape))).to(like.device, like.dtype)


def patch_samplers(wmlib: Any) -> None:
    """Make the official one-hot and truncated-normal samplers read :func:`fixed_uniform` noise."""
    dists = wmlib.core.dists

    def onehot_sample(self: Any, sample_shape: Any = (), seed: Any = None) -> torch.Tensor:
        assert tuple(sample_shape) == (), "the comparison draws one sample per distribution"
        logits = self.logits
        gumbel = -torch.log(-torch.log(_uniform(logits.shape, logits)))
        sample = torch.nn.functional.one_hot((logits.detach() + gumbel).argmax(-1), logits.shape[-1]).to(logits)
        probs = self.probs
        return sample + (probs - probs.detach())

    def truncnorm_rsample(self: Any, sample_shape: Any = torch.Size()) -> torch.Tensor:
        shape = self._extended_shape(sample_shape)
        eps = torch.finfo(self.a.dtype).eps
        return self.icdf(_uniform(shape, self.a).clamp(eps, 1 - eps))

    dists.OneHotDist.sample = onehot_sample
    dists.TruncatedStandardNormal.rsample = truncnorm_rsample


def named_grads(module: torch.nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """``{prefix + name: grad}`` of every parameter of ``module`` that has one."""
    return {f"{prefix}{k}": p.grad.detach().numpy().copy() for k, p in module.named_parameters() if p.grad is not None}


def named_params(module: torch.nn.Module, prefix: str) -> dict[str, np.ndarray]:
    """``{prefix + name: value}`` of every parameter and buffer of ``module``."""
    return {f"{prefix}{k}": v.detach().numpy().copy() for k, v in module.state_dict().items()}


def make_batch(B: int, T: int, A: int, seed: int = 0, discrete: bool = False) -> dict[str, torch.Tensor]:  # noqa: N803
    """A fixed batch: uint8 images (B, T, 3, 64, 64), actions (one-hot with ``discrete``), rewards, an episode start
    and a terminal inside."""
    rng = np.random.default_rng(seed)
    b, t, c, h, w = np.meshgrid(*(np.arange(n) for n in (B, T, 3, 64, 64)), indexing="ij")
    # smooth moving patterns: they compress, unlike uniform noise
    wave = np.sin(0.15 * (c + 1) * h + 0.2 * w + 0.7 * b + 0.5 * t) * np.cos(0.1 * w - 0.3 * t + c)
    image = np.round(127.5 * (1 + wave)).astype(np.uint8)
    action = rng.uniform(-1, 1, (B, T, A)).astype(np.float32)
    if discrete:
        action = np.eye(A, dtype=np.float32)[action.argmax(-1)]
    reward = rng.normal(0, 1, (B, T)).astype(np.float32)
    is_first = np.zeros((B, T), np.float32)
    is_first[:, 0] = 1
    is_first[1, 3] = 1  # a new episode inside the second sequence
    is_terminal = np.zeros((B, T), np.float32)
    is_terminal[1, 2] = 1  # ... after a terminal step
    is_last = is_terminal.copy()
    action[is_first == 1] = 0  # the action that led to a first step is zero, as the replay stores it
    reward[is_first == 1] = 0  # and so is its reward
    return {k: torch.from_numpy(v) for k, v in dict(
        image=image, action=action, reward=reward, is_first=is_first, is_terminal=is_terminal, is_last=is_last,
    ).items()}


def _expl(key: str) -> bool:
    return key.startswith("_expl_behavior.")


def record_agent(agent: Any, cfg: Any, data: dict[str, torch.Tensor], float64: bool = False) -> dict[str, np.ndarray]:
    """Run an official wmlib agent (DreamerV2, APV_Finetune) on ``data`` and return what the fixtures store.

    ``weights/*``: the initial agent state dict (the greedy agent's exploration behaviour is its task behaviour:
    stored once); ``batch/*``; ``wm/*``: loss terms, total, posteriors and ``wm_grad/*`` the gradient of every
    world-model parameter after one backward; ``ac/*``: the imagined trajectory from those (detached) posteriors,
    its λ-returns, actor and critic losses and ``ac_grad/*`` their gradients, before any update; ``after/*``: the
    state dict after one whole ``train`` step with the official optimizers from the initial weights. Python-side
    counters the state dict does not hold (the slow critic's update count, the bonus queue's fill) are restored
    before that step and recorded as ``counters/*``.

    With ``float64`` the forward pass of ``wm/*`` runs in fp32 as the agent is, and the gradients, the imagined
    trajectory and the training step run in fp64 from the same weights: the fp32 gradients of a BatchNorm ResNet
    (APV, ContextWM) are ill-conditioned, the official fp32 ones differing from the official fp64 ones by up to 1e-2
    relative, so a 1e-5 comparison is only meaningful where rounding does not dominate. The fixture stores them (as
    float32) under the same keys.
    """
    counters = _counters(agent)
    init = copy.deepcopy(agent.state_dict())
    out: dict[str, Any] = {f"weights/{k}": v.numpy().copy() for k, v in init.items() if not _expl(k)}
    out.update({f"batch/{k}": v.numpy() for k, v in data.items()})
    out.update({f"counters/{k}": np.asarray(v) for k, v in counters.items()})

    wm = agent.wm
    wm.train()
    wm.zero_grad(set_to_none=True)
    if float64:  # the fp32 forward pass (on a copy: it moves the bonus queue), for the fp32 comparison
        with torch.no_grad():
            loss32, _, outs32, metrics32 = copy.deepcopy(agent).wm.loss(dict(data))
        agent.double()
        torch.set_default_dtype(torch.float64)  # the official initial states and zero actions use the default dtype
        data = {k: v.double() for k, v in data.items()}  # 0..255 floats: the official preprocess keeps the dtype
    model_loss, _, outs, metrics = wm.loss(dict(data))
    model_loss.backward()
    start = {k: v.detach() for k, v in outs["post"].items()}  # the imagination starts (fp64 with float64)
    if float64:
        model_loss, metrics = loss32, metrics32
        outs = {**outs, "post": outs32["post"], "prior": outs32["prior"], "kl": outs32["kl"]}
    out["wm/model_loss"] = model_loss.detach().numpy()
    for key, value in metrics.items():
        if key.endswith("_loss") and key != "model_loss":
            out[f"wm/loss_{key[: -len('_loss')]}"] = np.asarray(value)
    for key in ("deter", "stoch", "logit"):
        out[f"wm/post_{key}"] = outs["post"][key].detach().numpy()
    out["wm/prior_logit"] = outs["prior"]["logit"].detach().numpy()
    out["wm/kl_value"] = outs["kl"].detach().numpy()
    out.update(named_grads(wm, "wm_grad/wm."))

    behavior = agent._task_behavior
    wm.eval()
    wm.zero_grad(set_to_none=True)
    behavior.zero_grad(set_to_none=True)
    seq = wm.imagine(behavior.actor, start, data["is_terminal"], cfg.imag_horizon)
    reward = wm.heads["reward"](seq["feat"]).mode
    seq["reward"], _ = behavior.rewnorm(reward)
    target, _ = behavior.target(seq)
    actor_loss, _ = behavior.actor_loss(seq, target)
    critic_loss, _ = behavior.critic_loss(seq, target)
    actor_loss.backward(inputs=list(behavior.actor.parameters()), retain_graph=True)
    critic_loss.backward(inputs=list(behavior.critic.parameters()))
    for key in ("feat", "action", "reward", "discount", "weight"):
        out[f"ac/{key}"] = seq[key].detach().numpy()
    out["ac/target"] = target.detach().numpy()
    out["ac/actor_loss"] = actor_loss.detach().numpy()
    out["ac/critic_loss"] = critic_loss.detach().numpy()
    out.update(named_grads(behavior.actor, "ac_grad/_task_behavior.actor."))
    out.update(named_grads(behavior.critic, "ac_grad/_task_behavior.critic."))

    agent.load_state_dict({k: v.double() if float64 and v.is_floating_point() else v for k, v in init.items()})
    _set_counters(agent, counters)
    agent.init_optimizers()
    agent.train(dict(data))
    out.update({f"after/{k}": v.numpy().copy() for k, v in agent.state_dict().items() if not _expl(k)})
    out.update({f"counters_after/{k}": np.asarray(v) for k, v in _counters(agent).items()})
    torch.set_default_dtype(torch.float32)
    return out


def _counters(agent: Any) -> dict[str, int]:
    counters = {"slow_critic_updates": int(getattr(agent._task_behavior, "_updates", 0))}
    bonus = getattr(agent.wm, "intr_bonus", None)
    if bonus is not None:
        counters["bonus_queue_fill"] = int(bonus.tf_queue_step)
    return counters


def _set_counters(agent: Any, counters: dict[str, int]) -> None:
    agent._task_behavior._updates = counters["slow_critic_updates"]
    if "bonus_queue_fill" in counters:
        agent.wm.intr_bonus.tf_queue_step = counters["bonus_queue_fill"]


def build_agent(wmlib: Any, root: Path, yaml_file: str, agent: str, sections: list[str], overrides: dict[str, Any],
                action_dim: int, discrete: bool = False) -> tuple[Any, Any]:
    """The official agent ``wmlib.agents.<agent>`` for a 64x64 image task with ``action_dim`` actions (one-hot ones
    of a discrete space with ``discrete``; its modules created by its own dummy pass, seeded) and its config
    (``configs/<yaml_file>``)."""
    cfg = config(root, yaml_file, sections, overrides)
    obs_space = {"image": types.SimpleNamespace(shape=(64, 64, 3))}  # HWC as the official envs declare it
    obs_space.update({k: types.SimpleNamespace(shape=()) for k in ("reward", "is_first", "is_last", "is_terminal")})
    act_space = {"action": types.SimpleNamespace(shape=(action_dim,), **({"n": action_dim} if discrete else {}))}
    torch.manual_seed(0)
    return getattr(wmlib.agents, agent)(cfg, obs_space, act_space, wmlib.utils.Counter(0)), cfg


def write(name: str, out: dict[str, Any], meta: dict[str, Any], root: Path) -> None:
    """Save fixture ``name`` with the official commit in its metadata, and say where it went."""
    path = save_fixture(name, out, {**meta, "commit": git_commit(root)})
    print(f"{name}: {len(out)} arrays -> {path} ({path.stat().st_size / 1e6:.2f} MB)")


def cli(doc: str, checkout: str, configs: dict[str, Any], make: Callable[[Any, Path, str, Any], None],
        prepare: Callable[[Any], None] | None = None) -> None:
    """The generators' command line: ``--official PATH`` (the checkout: ``checkout`` names it) and ``--only NAME
    ...``; imports the official ``wmlib``, applies ``prepare`` to it, then ``make(wmlib, root, name, config)`` for each
    configuration."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--official", required=True, help=f"path of {checkout}")
    parser.add_argument("--only", nargs="*", help="configuration names to write (default: all)")
    args = parser.parse_args()
    root = Path(args.official)
    wmlib = import_wmlib(root)
    if prepare is not None:
        prepare(wmlib)
    torch.set_num_threads(1)
    for name, configuration in configs.items():
        if not args.only or name in args.only:
            make(wmlib, root, name, configuration)
