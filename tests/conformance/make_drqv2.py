"""Generate the DrQ-v2 conformance fixture from the official code (facebookresearch/drqv2).

Run with the official code's virtual environment (torch + numpy; our package is not needed)::

    /work/official/venv-torch/bin/python tests/conformance/make_drqv2.py \
        --official /work/official/facebookresearch+drqv2

It imports the official ``drqv2.py`` / ``utils.py`` / ``replay_buffer.py`` from ``--official`` (``hydra`` and
``omegaconf`` are stubbed when missing: the agent code does not use them), builds a tiny ``DrQV2Agent`` (3
stacked RGB frames of 18x18, feature_dim 16, hidden_dim 32, 2 actions), gives its biases / LayerNorm
parameters and the target critic deterministic non-trivial values, and runs one ``DrQV2Agent.update`` on a
fixed batch with its randomness fed from :func:`~tests.conformance.common.fixed_uniform` (the shifts of
``RandomShiftsAug`` through ``torch.randint``, the noise of ``TruncatedNormal.sample`` through
``utils._standard_normal``). It records the weights, the batch, the noise, every intermediate (augmentation,
encoder features, actor mean / std, sampled actions, target and online Q-values, losses), the gradients of
every parameter after each backward, and the parameters after the optimizer steps and the soft target update.
It also records ``act`` (mean and exploration sample), the std schedule, a random-shift probe at the official
84x84 frame size and the official n-step replay sampler (``ReplayBuffer._sample``) on two short episodes.
Everything is written with :func:`~tests.conformance.common.save_fixture` as ``fixtures/drqv2.npz`` /
``fixtures/drqv2.json``.

Deviation from the official set-up, for the fixture's size only: ``Encoder.repr_dim`` is hard-coded to
``32 * 35 * 35`` (84x84 frames); it is set here from the conv stack's output on the fixture's 18x18 frames.
"""

from __future__ import annotations

import argparse
import random
import shlex
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: tests.conformance.common
from tests.conformance.common import fixed_uniform, git_commit, save_fixture  # noqa: E402

CONFIG: dict[str, Any] = dict(
    seed=0,
    frame=18,  # frame side (the official uses 84; 18 keeps the fixture small, 2x2 conv output)
    channels=3,  # RGB
    frame_stack=3,
    action_dim=2,
    feature_dim=16,
    hidden_dim=32,
    lr=1e-4,  # cfgs/config.yaml
    critic_target_tau=0.01,  # cfgs/config.yaml
    stddev_schedule="linear(1.0,0.1,500000)",  # cfgs/task/medium.yaml
    stddev_clip=0.3,  # cfgs/config.yaml
    pad=4,  # DrQV2Agent: RandomShiftsAug(pad=4)
    batch=8,
    step=123456,  # the global step passed to update / act (sets the std)
    nstep=3,  # cfgs/config.yaml
    discount=0.99,  # cfgs/config.yaml
)
#: salts of fixed_uniform: shifts of the k-th RandomShiftsAug call, noise of the k-th TruncatedNormal sample
SHIFT_SALT, NORMAL_SALT = 100, 200
#: the order in which the official code draws normal noise in this script
NOISE_NAMES = ("noise_act", "noise_target", "noise_actor")
SCHEDULE_STEPS = (0, 1, 1000, 123456, 250000, 499999, 500000, 2_000_000)
#: random-shift probe at the official frame size: (x, y) shifts of the padded image, in 0..2 * pad
PROBE_SHIFTS = ((8.0, 8.0),)


def fixed_normal(shape: tuple[int, ...], salt: int) -> np.ndarray:
    """Standard normal noise ``ndtri(fixed_uniform(shape, salt))`` (float64 inverse CDF, then float32)."""
    import torch

    u = torch.from_numpy(fixed_uniform(tuple(shape), salt).astype(np.float64))
    return torch.special.ndtri(u).float().numpy()


def shift_values(shape: tuple[int, ...], salt: int, pad: int) -> np.ndarray:
    """Whole-pixel shifts in ``0 .. 2 * pad`` (what ``torch.randint(0, 2 * pad + 1, shape)`` gives)."""
    return np.floor(fixed_uniform(tuple(shape), salt) * (2 * pad + 1)).astype(np.float32)


def import_official(path: Path) -> tuple[Any, Any, Any]:
    """The official ``drqv2``, ``utils`` and ``replay_buffer`` modules (hydra / omegaconf stubbed if
    absent)."""
    for name, attr in (("hydra", None), ("omegaconf", "OmegaConf")):
        try:
            __import__(name)
        except ImportError:
            stub = types.ModuleType(name)
            if attr:
                setattr(stub, attr, None)
            sys.modules[name] = stub
    sys.path.insert(0, str(path))
    import drqv2  # type: ignore[import-not-found]
    import replay_buffer  # type: ignore[import-not-found]
    import utils  # type: ignore[import-not-found]

    return drqv2, utils, replay_buffer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--official", required=True, type=Path, help="checkout of facebookresearch/drqv2")
    parser.add_argument("--name", default="drqv2", help="fixture name under tests/conformance/fixtures")
    args = parser.parse_args()

    import torch
    import torch.nn.functional as F

    torch.set_num_threads(1)
    off, off_utils, off_replay = import_official(args.official)
    cfg = CONFIG
    arrays: dict[str, Any] = {}

    # ------------------------------------------------------------------------------------------ the agent
    encoder_init = off.Encoder.__init__

    def sized_encoder_init(self: Any, obs_shape: Any) -> None:  # repr_dim for the fixture's frame size
        encoder_init(self, obs_shape)
        with torch.no_grad():
            self.repr_dim = int(self.convnet(torch.zeros(1, *obs_shape)).numel())

    off.Encoder.__init__ = sized_encoder_init
    obs_shape = (cfg["channels"] * cfg["frame_stack"], cfg["frame"], cfg["frame"])
    torch.manual_seed(cfg["seed"])
    agent = off.DrQV2Agent(
        obs_shape, (cfg["action_dim"],), "cpu", cfg["lr"], cfg["feature_dim"], cfg["hidden_dim"],
        cfg["critic_target_tau"], num_expl_steps=0, update_every_steps=1,
        stddev_schedule=cfg["stddev_schedule"], stddev_clip=cfg["stddev_clip"], use_tb=True,
    )
    nets = {"encoder": agent.encoder, "actor": agent.actor, "critic": agent.critic,
            "critic_target": agent.critic_target}
    # the weight matrices stay as the official weight_init left them (the test checks our seeded init);
    # biases (0 at init) and LayerNorm gains (1) get deterministic values, so that a mix-up of any two
    # parameters shows; the target critic differs from the critic everywhere (as it does after training)
    with torch.no_grad():
        for n_net, (net_name, net) in enumerate(nets.items()):
            for n_par, (name, p) in enumerate(net.named_parameters()):
                u = torch.from_numpy(fixed_uniform(tuple(p.shape), salt=1000 * n_net + n_par)) - 0.5
                if net_name == "critic_target":
                    p.add_(0.05 * u)
                elif name.endswith("bias"):
                    p.copy_(0.2 * u)
                elif p.dim() == 1:  # LayerNorm gain
                    p.copy_(1.0 + 0.5 * u)
        # action means near the bounds: the sample's clamp to [-1 + 1e-6, 1 - 1e-6] acts on some entries
        agent.actor.policy[-1].bias.add_(torch.tensor([1.6, -1.4]))
    for net_name, net in nets.items():
        for name, p in net.state_dict().items():
            arrays[f"init/{net_name}/{name}"] = p.clone()

    # ------------------------------------------------------------------------------------------ the batch
    rng = np.random.RandomState(cfg["seed"])
    b = cfg["batch"]
    batch = dict(
        obs=rng.randint(0, 256, (b, *obs_shape)).astype(np.uint8),
        action=rng.uniform(-1, 1, (b, cfg["action_dim"])).astype(np.float32),
        reward=rng.uniform(0, 1, (b, 1)).astype(np.float32),
        discount=np.full((b, 1), cfg["discount"] ** cfg["nstep"], np.float32),
        next_obs=rng.randint(0, 256, (b, *obs_shape)).astype(np.uint8),
    )
    batch["discount"][-1] = 0.0  # a window that ends in a termination
    arrays.update({f"batch/{k}": v for k, v in batch.items()})

    # ------------------------------------------------------------------------------------------ the noise
    normal_draws: list[np.ndarray] = []

    def standard_normal(shape: Any, dtype: Any, device: Any) -> Any:  # utils._standard_normal
        noise = fixed_normal(tuple(shape), NORMAL_SALT + len(normal_draws))
        normal_draws.append(noise)
        return torch.from_numpy(noise.copy()).to(dtype=dtype, device=device)

    off_utils._standard_normal = standard_normal

    shift_draws: list[np.ndarray] = []
    real_randint = torch.randint

    def randint(low: int, high: int, size: Any, device: Any = None, dtype: Any = None) -> Any:
        assert low == 0 and high == 2 * cfg["pad"] + 1, (low, high)  # only RandomShiftsAug calls it
        shifts = shift_values(tuple(size), SHIFT_SALT + len(shift_draws), cfg["pad"])
        shift_draws.append(shifts)
        return torch.from_numpy(shifts.copy()).to(dtype=dtype, device=device)

    # ------------------------------------------------------------------------------------------ act
    step = cfg["step"]
    with torch.no_grad(), off_utils.eval_mode(agent):  # as train.py calls it
        arrays["act/mean"] = agent.act(batch["obs"][0], step, eval_mode=True)
        arrays["act/sample"] = agent.act(batch["obs"][0], step, eval_mode=False)

    # ------------------------------------------------------------------------------------------ recorders
    calls: dict[str, list[Any]] = {"aug": [], "encoder": [], "actor": [], "critic": [], "critic_target": []}

    def detach(x: Any) -> Any:
        return tuple(detach(v) for v in x) if isinstance(x, tuple) else x.detach().clone()

    aug_forward = agent.aug.forward

    def aug(x: Any) -> Any:
        torch.randint = randint
        try:
            out = aug_forward(x)
        finally:
            torch.randint = real_randint
        calls["aug"].append(out.detach().clone())
        return out

    agent.aug.forward = aug
    agent.encoder.register_forward_hook(lambda m, i, o: calls["encoder"].append(o.detach().clone()))
    agent.actor.register_forward_hook(lambda m, i, o: calls["actor"].append((o.loc.detach().clone(),
                                                                             o.scale.detach().clone())))
    for name in ("critic", "critic_target"):
        getattr(agent, name).register_forward_hook(
            lambda m, i, o, name=name: calls[name].append((detach(i[1]), detach(o))))

    mse_targets: list[Any] = []

    class RecordingF:  # drqv2.F with F.mse_loss recording its target (the TD target of update_critic)
        def __getattr__(self, attr: str) -> Any:
            return getattr(F, attr)

        @staticmethod
        def mse_loss(input: Any, target: Any) -> Any:
            mse_targets.append(target.detach().clone())
            return F.mse_loss(input, target)

    off.F = RecordingF()

    def record_grads(prefix: str, net: Any) -> None:
        for name, p in net.named_parameters():
            arrays[f"{prefix}/{name}"] = p.grad.detach().clone()

    def wrap_step(opt: Any, before: Any, after: Any = None) -> None:
        step_fn = opt.step

        def wrapped(*a: Any, **k: Any) -> Any:
            before()
            out = step_fn(*a, **k)
            if after is not None:
                after()
            return out

        opt.step = wrapped

    wrap_step(agent.critic_opt, lambda: record_grads("grad_critic_loss/critic", agent.critic))
    wrap_step(agent.encoder_opt, lambda: record_grads("grad_critic_loss/encoder", agent.encoder))
    wrap_step(agent.actor_opt, lambda: record_grads("grad_actor_loss/actor", agent.actor))

    # ------------------------------------------------------------------------------------------ update
    replay_iter = iter([tuple(batch[k] for k in ("obs", "action", "reward", "discount", "next_obs"))])
    metrics = agent.update(replay_iter, step)
    assert [len(calls[k]) for k in ("aug", "encoder", "actor", "critic", "critic_target")] == [2, 2, 2, 2, 1]
    assert len(normal_draws) == len(NOISE_NAMES) and len(shift_draws) == 2 and len(mse_targets) == 2
    arrays.update(zip(NOISE_NAMES, normal_draws))
    arrays["shifts/obs"], arrays["shifts/next_obs"] = shift_draws
    arrays["aug/obs"], arrays["aug/next_obs"] = (x[:1] for x in calls["aug"])  # the first sample only (size)
    arrays["features/obs"], arrays["features/next_obs"] = calls["encoder"]
    (next_mu, next_std), (mu, std) = calls["actor"][-2:]
    next_action, (target_q1, target_q2) = calls["critic_target"][0]
    (critic_action, (q1, q2)), (actor_action, (actor_q1, actor_q2)) = calls["critic"]
    assert np.array_equal(critic_action.numpy(), batch["action"])
    assert torch.equal(mse_targets[0], mse_targets[1])
    arrays.update({
        "target/mu": next_mu, "target/std": next_std, "target/action": next_action, "target/q1": target_q1,
        "target/q2": target_q2, "target/q": mse_targets[0],
        "critic/q1": q1, "critic/q2": q2, "critic/loss": np.float32(metrics["critic_loss"]),
        "actor/mu": mu, "actor/std": std, "actor/action": actor_action, "actor/q1": actor_q1,
        "actor/q2": actor_q2,
        "actor/loss": np.float32(metrics["actor_loss"]),
    })
    for net_name, net in nets.items():
        for name, p in net.state_dict().items():
            arrays[f"after/{net_name}/{name}"] = p.clone()

    # ------------------------------------------------------------------------------------------ schedule
    arrays["schedule/steps"] = np.array(SCHEDULE_STEPS, np.int64)
    values = [off_utils.schedule(cfg["stddev_schedule"], s) for s in SCHEDULE_STEPS]
    arrays["schedule/values"] = np.array(values, np.float64).astype(np.float32)

    # ------------------------------------------------------------------------------------------ 84x84 probe
    # black and white pixels: the largest neighbour differences, where the resampling's rounding shows most
    probe_in = (255 * rng.randint(0, 2, (len(PROBE_SHIFTS), 1, 84, 84))).astype(np.uint8)
    probe_shifts = np.array(PROBE_SHIFTS, np.float32).reshape(-1, 1, 1, 2)
    def probe_randint(low: int, high: int, size: Any, device: Any = None, dtype: Any = None) -> Any:
        return torch.from_numpy(probe_shifts.copy()).to(dtype=dtype, device=device)  # the aug scales it

    torch.randint = probe_randint
    try:
        probe_out = off.RandomShiftsAug(pad=cfg["pad"])(torch.from_numpy(probe_in).float())
    finally:
        torch.randint = real_randint
    arrays.update({"probe/in": probe_in, "probe/shifts": probe_shifts, "probe/out": probe_out})

    # ------------------------------------------------------------------------------------------ n-step replay
    # two episodes of 7 transitions in the official storage layout (a dummy first transition from reset); the
    # second ends in a termination (discount 0); rewards and actions are distinct per step
    length, n = 7, cfg["nstep"]
    off_rb = off_replay.ReplayBuffer(Path("."), max_size=10**6, num_workers=1, nstep=n,
                                     discount=cfg["discount"], fetch_every=10**9, save_snapshot=True)
    off_rb._samples_since_last_fetch = 0  # no fetching from disk: the episodes are set below
    real_randint_np, real_choice = np.random.randint, random.choice
    for e in range(2):
        episode = {
            "observation": (10 * e + np.arange(length + 1, dtype=np.float32))[:, None],  # the frame id
            "action": np.concatenate([np.zeros((1, 1)), rng.uniform(-1, 1, (length, 1))]).astype(np.float32),
            "reward": np.concatenate([np.zeros((1, 1)), rng.uniform(0, 1, (length, 1))]).astype(np.float32),
            "discount": np.ones((length + 1, 1), np.float32),
        }
        if e == 1:
            episode["discount"][-1] = 0.0
        off_rb._episodes = {"episode": episode}
        off_rb._episode_fns = ["episode"]
        samples = []
        for first in range(length - n + 1):  # every index np.random.randint(0, len - nstep + 1) can give
            np.random.randint = lambda low, high, first=first: first
            random.choice = lambda seq: seq[0]
            try:
                samples.append(off_rb._sample())
            finally:
                np.random.randint, random.choice = real_randint_np, real_choice
        for k, v in episode.items():
            arrays[f"nstep/{e}/episode/{k}"] = v
        for k, name in enumerate(("obs", "action", "reward", "discount", "next_obs")):
            arrays[f"nstep/{e}/sample/{name}"] = np.stack([s[k] for s in samples])

    meta = dict(
        official_repo="https://github.com/facebookresearch/drqv2",
        official_commit=git_commit(args.official),
        official_files=["drqv2.py", "utils.py", "replay_buffer.py"],
        command="/work/official/venv-torch/bin/python tests/conformance/make_drqv2.py --official "
                + shlex.quote(str(args.official)),
        torch_version=torch.__version__,
        config=cfg,
        noise=dict(
            normal=f"utils._standard_normal -> ndtri(fixed_uniform(shape, {NORMAL_SALT} + k)) for the k-th "
                   f"draw, k in order {list(NOISE_NAMES)}",
            shifts=f"torch.randint in RandomShiftsAug -> floor(fixed_uniform(shape, {SHIFT_SALT} + k) * "
                   "(2 * pad + 1)), k = 0 for obs, 1 for next_obs",
        ),
        notes=[
            "Encoder.repr_dim set from the conv output on 18x18 frames (hard-coded for 84x84 in drqv2.py)",
            "weight matrices: official weight_init after torch.manual_seed(seed); biases, LayerNorm gains "
            "and the target critic: deterministic values from fixed_uniform (salt 1000 * net + parameter "
            "index)",
            "aug/obs, aug/next_obs: the first sample only",
            "grads are recorded just before each optimizer step (critic_opt, encoder_opt, actor_opt)",
        ],
    )
    path = save_fixture(args.name, arrays, meta)
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB, {len(arrays)} arrays)")


if __name__ == "__main__":
    main()
