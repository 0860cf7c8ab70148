"""Conformance of our DrQv2 with the official DrQ-v2 (facebookresearch/drqv2), from the stored fixture only.

The fixture (``tests/conformance/fixtures/drqv2.*``, made by ``tests/conformance/make_drqv2.py`` from the
official code) holds the official weights, a batch, the noise the official code drew, and the official
outputs: one ``DrQV2Agent.update`` (augmentation, encoder features, actor mean / std, sampled actions, TD
target, Q-values, losses, the gradients of every parameter before each optimizer step, the parameters after
the steps and the soft target update), ``act``, the std schedule, a random-shift probe at 84x84 and the n-step
replay sampler. Here the weights are mapped into our :class:`~sb3_worldmodels.drqv2.DrQv2` with
:func:`~sb3_worldmodels.drqv2.official.drqv2_state_from_official`, the same noise is fed through our seams
(:func:`sb3_worldmodels.common.distributions.normal_like`,
:func:`sb3_worldmodels.common.augment.shift_offsets`) and every quantity is compared with
:func:`~tests.conformance.common.assert_close`. The remaining, documented deviations
(``docs/guide/deviations_drqv2.rst.inc``) have their own tests at the end.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from sb3_worldmodels.common import augment, distributions
from sb3_worldmodels.drqv2 import DrQv2, NStepFrameStackReplayBuffer
from sb3_worldmodels.drqv2.official import drqv2_state_from_official, load_official_drqv2, official_name
from tests.conformance.common import assert_close, fixed_uniform, load_fixture, rel_error

NETS = ("encoder", "actor", "critic", "critic_target")


@pytest.fixture(scope="module")
def fixture() -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    return load_fixture("drqv2")


def _part(arrays: dict[str, np.ndarray], prefix: str) -> dict[str, torch.Tensor]:
    """``{official name: tensor}`` of the arrays under ``prefix/``."""
    return {k[len(prefix) + 1:]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith(prefix + "/")}


def _mapped(arrays: dict[str, np.ndarray], prefix: str,
            nets: tuple[str, ...] = NETS) -> dict[str, torch.Tensor]:
    """The arrays under ``prefix/<net>/`` under our policy's parameter names."""
    return drqv2_state_from_official(**{net: _part(arrays, f"{prefix}/{net}") for net in nets})


class _Spaces(gym.Env):
    """Only spaces: RGB frames of the fixture's size (channels-last, as an env gives them) and its actions."""

    def __init__(self, frame: int, action_dim: int) -> None:
        self.observation_space = spaces.Box(0, 255, (frame, frame, 3), np.uint8)
        self.action_space = spaces.Box(-1.0, 1.0, (action_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        return np.zeros(self.observation_space.shape, np.uint8), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        return np.zeros(self.observation_space.shape, np.uint8), 0.0, False, False, {}


def _model(meta: dict[str, Any], channels_last: bool = True) -> DrQv2:
    """Our DrQv2 in the fixture's configuration, seeded like the official agent (its networks are built after
    ``torch.manual_seed(seed)``, as the official ones)."""
    cfg = meta["config"]
    assert cfg["channels"] == 3
    return DrQv2(
        "CnnPolicy", _Spaces(cfg["frame"], cfg["action_dim"]), learning_rate=cfg["lr"], buffer_size=100,
        batch_size=cfg["batch"], tau=cfg["critic_target_tau"], gamma=cfg["discount"], n_steps=cfg["nstep"],
        frame_stack=cfg["frame_stack"], std_clip=cfg["stddev_clip"], augment_pad=cfg["pad"], seed=cfg["seed"],
        policy_kwargs=dict(feature_dim=cfg["feature_dim"], hidden_dim=cfg["hidden_dim"],
                           channels_last=channels_last),
        device="cpu",
    )


def _feed_normal(monkeypatch: pytest.MonkeyPatch, draws: list[np.ndarray]) -> deque:
    """Make ``normal_like`` return the official draws, in order (each checked for its shape)."""
    queue = deque(draws)

    def normal_like(x: torch.Tensor) -> torch.Tensor:
        noise = queue.popleft()
        assert tuple(x.shape) == noise.shape, (tuple(x.shape), noise.shape)
        return torch.from_numpy(noise).to(x)

    monkeypatch.setattr(distributions, "normal_like", normal_like)
    return queue


class _Errors:
    """The compared quantities: :meth:`check` records one (:meth:`check_params` a group of parameters),
    :meth:`assert_all` checks each with :func:`assert_close` and fails naming every one over the tolerance."""

    def __init__(self) -> None:
        self.pairs: dict[str, list[tuple[str, Any, Any]]] = {}  # quantity -> [(name, ours, official)]

    def check(self, name: str, ours: Any, theirs: Any) -> None:
        self.pairs[name] = [(name, ours, theirs)]

    def check_params(self, name: str, ours: dict[str, Any], theirs: dict[str, torch.Tensor]) -> None:
        assert set(ours) == set(theirs), sorted(set(ours) ^ set(theirs))
        self.pairs[name] = [(key, ours[key], theirs[key]) for key in sorted(theirs)]

    def errors(self) -> dict[str, float]:
        """The largest relative error of each quantity."""
        return {name: max(rel_error(a, b) for _, a, b in pairs) for name, pairs in self.pairs.items()}

    def assert_all(self) -> None:
        print("\n" + "\n".join(f"{k:24s} {v:.3g}" for k, v in self.errors().items()))
        failures = []
        for pairs in self.pairs.values():
            for name, ours, theirs in pairs:
                try:
                    assert_close(ours, theirs, name)
                except AssertionError as e:
                    failures.append(str(e))
        assert not failures, "\n".join(failures)


# ------------------------------------------------------------------------------------------------ weights
def test_weight_init_is_the_official_one(fixture: Any) -> None:
    """Seeded alike, our networks start with the official ``utils.weight_init`` values: orthogonal Linear
    weights, orthogonal conv weights with the ReLU gain, zero biases, LayerNorm at (1, 0), target critic =
    critic."""
    arrays, meta = fixture
    policy = _model(meta).policy
    init = _mapped(arrays, "init", ("encoder", "actor", "critic"))
    params = dict(policy.named_parameters())
    matrices = [k for k, v in init.items() if v.dim() > 1]
    assert len(matrices) == 4 + (1 + 3) + (1 + 2 * 3)  # encoder convs, actor, critic
    for key in matrices:  # the fixture keeps the official initial matrices (only vectors were changed)
        assert_close(params[key], init[key], key)
    for key, p in params.items():
        if p.dim() == 1:
            expected = 1.0 if key.endswith("trunk.1.weight") else 0.0
            assert torch.equal(p, torch.full_like(p, expected)), key
    for (k, p), (kt, pt) in zip(policy.critic.named_parameters(), policy.critic_target.named_parameters(),
                                strict=True):
        assert k == kt and torch.equal(p, pt)


def test_official_names_map_to_every_parameter(fixture: Any) -> None:
    arrays, meta = fixture
    policy = _model(meta).policy
    state = _mapped(arrays, "init")
    assert set(state) == set(policy.state_dict())
    load_official_drqv2(policy, *(_part(arrays, f"init/{net}") for net in NETS))
    for key, value in policy.state_dict().items():
        assert torch.equal(value, state[key]), key
    assert official_name("critic", "Q2.4.bias") == "critic.q_nets.1.4.bias"
    assert official_name("encoder", "convnet.6.weight", "pixels") == "encoder.convs.pixels.6.weight"
    with pytest.raises(KeyError, match="Q3"):
        official_name("critic", "Q3.0.weight")
    wrong = _part(arrays, "init/actor")
    wrong["trunk.0.weight"] = wrong["trunk.0.weight"][:, :-1]
    with pytest.raises(ValueError, match="84x84"):
        load_official_drqv2(policy, _part(arrays, "init/encoder"), wrong, _part(arrays, "init/critic"))


def _load(model: DrQv2, arrays: dict[str, np.ndarray]) -> None:
    load_official_drqv2(model.policy, *(_part(arrays, f"init/{net}") for net in NETS))


# ------------------------------------------------------------------------------------------------ acting
def test_act_matches_official(fixture: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """``predict`` on the official stack: the mean (``eval_mode=True``) and the exploration sample."""
    arrays, meta = fixture
    cfg = meta["config"]
    model = _model(meta)
    _load(model, arrays)
    model.num_timesteps = cfg["step"]
    stack = arrays["batch/obs"][0]  # (9, H, W): 3 RGB frames, oldest first
    frame, state = stack[None, -3:], np.concatenate([stack[:3], stack[:-3]])[None]  # predict pushes the frame
    mean, new_state = model.predict(frame, state=state, episode_start=np.array([False]), deterministic=True)
    np.testing.assert_array_equal(new_state[0], stack)
    errors = _Errors()
    errors.check("act/mean", mean[0], arrays["act/mean"])
    queue = _feed_normal(monkeypatch, [arrays["noise_act"]])
    model.policy.exploration_std = model.current_std()  # what _sample_action sets before acting
    sample, _ = model.predict(frame, state=state, episode_start=np.array([False]), deterministic=False)
    assert not queue
    errors.check("act/sample", sample[0], arrays["act/sample"])
    errors.assert_all()


# ------------------------------------------------------------------------------------------------ update
def _noise_matches_fixed_uniform(arrays: dict[str, np.ndarray], meta: dict[str, Any]) -> None:
    """The stored noise is what the generator says: ndtri / floor of ``fixed_uniform`` (so the fixture's noise
    is reproducible without the official code)."""
    pad = meta["config"]["pad"]
    for k, name in enumerate(("noise_act", "noise_target", "noise_actor")):
        u = torch.from_numpy(fixed_uniform(arrays[name].shape, 200 + k).astype(np.float64))
        np.testing.assert_array_equal(torch.special.ndtri(u).float().numpy(), arrays[name])
    for k, name in enumerate(("shifts/obs", "shifts/next_obs")):
        shape = arrays[name].shape
        np.testing.assert_array_equal(np.floor(fixed_uniform(shape, 100 + k) * (2 * pad + 1)), arrays[name])


def _batch(arrays: dict[str, np.ndarray], gamma: float, n_steps: int) -> ReplayBufferSamples:
    """The official batch as our samples: the official ``discount`` (``gamma^n`` times the env discounts, 0
    after a termination) is our ``(1 - dones) * discounts``."""
    discount = torch.from_numpy(arrays["batch/discount"])
    dones = (discount == 0).float()
    discounts = torch.where(discount == 0, torch.tensor(gamma**n_steps, dtype=torch.float32), discount)
    return ReplayBufferSamples(
        torch.from_numpy(arrays["batch/obs"]), torch.from_numpy(arrays["batch/action"]),
        torch.from_numpy(arrays["batch/next_obs"]), dones, torch.from_numpy(arrays["batch/reward"]),
        discounts,
    )


def run_update(arrays: dict[str, np.ndarray], meta: dict[str, Any], monkeypatch: pytest.MonkeyPatch,
               channels_last: bool = True) -> _Errors:
    """One update of our DrQv2 on the official weights, batch and noise: the relative error of every
    quantity."""
    cfg = meta["config"]
    _noise_matches_fixed_uniform(arrays, meta)
    model = _model(meta, channels_last)
    _load(model, arrays)
    model.num_timesteps = cfg["step"]
    policy = model.policy
    batch = _batch(arrays, model.gamma, model.n_steps)

    # the official shifts s in 0..2 pad of the padded image are our offsets s - pad; one draw for obs and
    # next_obs together
    shifts = np.concatenate([arrays["shifts/obs"], arrays["shifts/next_obs"]]).reshape(-1, 2) - cfg["pad"]

    def shift_offsets(n: int, pad: int, device: Any = None, generator: Any = None) -> torch.Tensor:
        assert (n, pad) == (2 * cfg["batch"], cfg["pad"])
        return torch.from_numpy(shifts).long()

    monkeypatch.setattr(augment, "shift_offsets", shift_offsets)
    queue = _feed_normal(monkeypatch, [arrays["noise_target"], arrays["noise_actor"]])

    # recorders: module outputs (and action inputs), the TD target, the gradients before each optimizer step
    calls: dict[str, list[Any]] = {name: [] for name in NETS}
    for name in NETS:
        getattr(policy, name).register_forward_hook(
            lambda m, i, o, name=name: calls[name].append(
                (tuple(x.detach().clone() for x in i), o.detach().clone())))
    targets: list[torch.Tensor] = []
    td_target = model.td_target
    monkeypatch.setattr(model, "td_target", lambda *a, **k: targets.append(td_target(*a, **k)) or targets[-1])
    augmented: list[Any] = []
    real_augment = model._augment
    monkeypatch.setattr(model, "_augment", lambda b: augmented.append(real_augment(b)) or augmented[-1])
    grads: dict[str, dict[str, torch.Tensor]] = {}
    for opt_name, nets in (("critic_optimizer", ("encoder", "critic")), ("actor_optimizer", ("actor",))):
        opt = getattr(policy, opt_name)
        step = opt.step

        def recorded_step(*a: Any, step: Any = step, nets: Any = nets, **k: Any) -> Any:
            for net in nets:
                for name, p in getattr(policy, net).named_parameters():
                    grads[f"{net}.{name}"] = p.grad.detach().clone()
            return step(*a, **k)

        monkeypatch.setattr(opt, "step", recorded_step)

    metrics = model.train_on_batch(batch)
    assert not queue and [len(calls[n]) for n in NETS] == [2, 2, 2, 1]

    errors = _Errors()
    obs_aug, next_aug = augmented[0]
    errors.check("aug/obs", obs_aug[:1].float(), arrays["aug/obs"])
    errors.check("aug/next_obs", next_aug[:1].float(), arrays["aug/next_obs"])
    errors.check("features/obs", calls["encoder"][0][1], arrays["features/obs"])
    errors.check("features/next_obs", calls["encoder"][1][1], arrays["features/next_obs"])
    std = model.current_std()
    (_, next_mu), (_, mu) = calls["actor"]
    (next_in, target_q) = calls["critic_target"][0]
    (critic_in, q), (actor_in, actor_q) = calls["critic"]
    torch.testing.assert_close(critic_in[1], batch.actions, rtol=0, atol=0)
    errors.check("target/mu", next_mu, arrays["target/mu"])
    errors.check("target/std", np.full_like(arrays["target/std"], std), arrays["target/std"])
    errors.check("target/action", next_in[1], arrays["target/action"])
    errors.check("target/q1", target_q[:, :1], arrays["target/q1"])
    errors.check("target/q2", target_q[:, 1:], arrays["target/q2"])
    errors.check("target/q", targets[0], arrays["target/q"])
    errors.check("critic/q1", q[:, :1], arrays["critic/q1"])
    errors.check("critic/q2", q[:, 1:], arrays["critic/q2"])
    errors.check("critic/loss", metrics["critic_loss"], arrays["critic/loss"])
    errors.check("actor/mu", mu, arrays["actor/mu"])
    errors.check("actor/std", np.full_like(arrays["actor/std"], std), arrays["actor/std"])
    errors.check("actor/action", actor_in[1], arrays["actor/action"])
    errors.check("actor/q1", actor_q[:, :1], arrays["actor/q1"])
    errors.check("actor/q2", actor_q[:, 1:], arrays["actor/q2"])
    errors.check("actor/loss", metrics["actor_loss"], arrays["actor/loss"])
    official_grads = {**_mapped(arrays, "grad_critic_loss", ("encoder", "critic")),
                      **_mapped(arrays, "grad_actor_loss", ("actor",))}
    for net in ("encoder", "critic", "actor"):
        errors.check_params(f"grad/{net}", {k: v for k, v in grads.items() if k.startswith(net + ".")},
                            {k: v for k, v in official_grads.items() if k.startswith(net + ".")})
    after = _mapped(arrays, "after")
    ours = {k: v.detach() for k, v in policy.state_dict().items()}
    for net in NETS:
        errors.check_params(f"after/{net}", {k: v for k, v in ours.items() if k.startswith(net + ".")},
                            {k: v for k, v in after.items() if k.startswith(net + ".")})
    return errors


@pytest.mark.parametrize("channels_last", [True, False])
def test_update_matches_official(fixture: Any, monkeypatch: pytest.MonkeyPatch, channels_last: bool) -> None:
    """Augmentation, features, actor, TD target, Q-values, losses, gradients and parameters after one
    update."""
    arrays, meta = fixture
    run_update(arrays, meta, monkeypatch, channels_last).assert_all()


def test_std_schedule_matches_official(fixture: Any) -> None:
    """Our default ``linear_schedule(1.0, 0.1, 500_000)`` over env steps is the official
    ``utils.schedule('linear(1.0,0.1,500000)', step)``."""
    arrays, meta = fixture
    assert meta["config"]["stddev_schedule"] == "linear(1.0,0.1,500000)"
    model = _model(meta)
    ours = []
    for step in arrays["schedule/steps"]:
        model.num_timesteps = int(step)
        ours.append(model.current_std())
    assert_close(np.array(ours), arrays["schedule/values"], "schedule")


# ------------------------------------------------------------------------------------------------ replay
def _our_samples(arrays: dict[str, np.ndarray], e: int, gamma: float, n: int,
                 upto: int | None = None) -> dict[int, tuple]:
    """Our n-step transitions of official episode ``e`` (its first ``upto`` steps: still running if fewer than
    all), by start frame id: (obs id, action, return, next id, (1 - done) * discount)."""
    episode = {k: arrays[f"nstep/{e}/episode/{k}"] for k in ("observation", "action", "reward", "discount")}
    frame = spaces.Box(0, 255, (1, 1, 1), np.uint8)
    buffer = NStepFrameStackReplayBuffer(50, frame, spaces.Box(-1, 1, (1,), np.float32), device="cpu",
                                         n_steps=n, gamma=gamma, frame_stack=1)
    length = len(episode["reward"]) - 1
    steps = length if upto is None else upto
    for t in range(steps):  # SB3's add: obs_t, obs_t+1, the action at t, the reward and end flags after it
        last = t == length - 1
        terminated = last and episode["discount"][t + 1, 0] == 0
        info = {"TimeLimit.truncated": last and not terminated} if last else {}
        buffer.add(episode["observation"][t].reshape(1, 1, 1, 1).astype(np.uint8),
                   episode["observation"][t + 1].reshape(1, 1, 1, 1).astype(np.uint8),
                   episode["action"][t + 1][None], episode["reward"][t + 1], np.array([last]), [info])
    rows = np.arange(steps)  # every start row (the terminal frame's row and the newest row are not starts)
    if steps < length:
        rows = rows[:-1]
    envs = np.zeros(len(rows), np.int64)
    buffer._sample_transition_indices = lambda batch_size: (rows, envs)  # type: ignore[method-assign]
    batch = buffer.sample(len(rows))
    out = {}
    for i in range(len(rows)):
        out[int(batch.observations[i, 0, 0, 0])] = (
            float(batch.observations[i, 0, 0, 0]), float(batch.actions[i, 0]), float(batch.rewards[i, 0]),
            float(batch.next_observations[i, 0, 0, 0]),
            float((1 - batch.dones[i, 0]) * batch.discounts[i, 0]),
        )
    return out


@pytest.mark.parametrize("episode", [0, 1], ids=["truncated", "terminated"])
def test_n_step_transitions_match_official_replay(fixture: Any, episode: int) -> None:
    """Every transition the official ``ReplayBuffer._sample`` can give is ours for the same start, with the
    same action, n-step return, next observation and bootstrap discount."""
    arrays, meta = fixture
    cfg = meta["config"]
    ours = _our_samples(arrays, episode, cfg["discount"], cfg["nstep"])
    official = {k: arrays[f"nstep/{episode}/sample/{k}"]
                for k in ("obs", "action", "reward", "discount", "next_obs")}
    for i, start in enumerate(official["obs"][:, 0]):
        theirs = (start, official["action"][i, 0], official["reward"][i, 0], official["next_obs"][i, 0],
                  official["discount"][i, 0])
        assert_close(np.array(ours[int(start)]), np.array(theirs), f"n-step transition from frame {start}")


# ------------------------------------------------------------------------------------------------ deviations
def test_deviation_random_shift_is_an_exact_crop(fixture: Any) -> None:
    """Deviation "random shift": at the official 84x84 frames the official bilinear ``grid_sample`` blends
    neighbouring pixels with weights of float rounding (up to ~1.5e-5), ours crops: ours is the official
    output rounded to whole grey levels, and the official output is off from it by up to ~0.004 grey levels (a
    relative error of ~1.5e-5 of 255, just over the conformance tolerance; on the 18x18 frames of the update
    it stays under it)."""
    arrays, _ = fixture
    probe, shifts = torch.from_numpy(arrays["probe/in"]), arrays["probe/shifts"].reshape(-1, 2)
    official = torch.from_numpy(arrays["probe/out"])
    offsets = torch.from_numpy(shifts - 4).long()  # official shift s of the padded image = our offset s - pad
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(augment, "shift_offsets", lambda n, pad, device=None, generator=None: offsets)
        ours = augment.random_shift(probe, 4).float()
    assert torch.equal(ours, official.round())
    diff, rel = float((ours - official).abs().max()), rel_error(ours, official)
    print(f"random shift at 84x84: max |ours - official| = {diff:.3g} grey levels, relative {rel:.3g}")
    assert 1e-5 < rel < 2e-5 and diff < 5e-3


def test_deviation_n_step_starts_near_the_episode_end(fixture: Any) -> None:
    """Deviation "n-step windows": the official sampler never starts a transition in the last ``nstep - 1``
    steps of an episode, nor in an episode still running; ours does, with a shorter window (``k < n`` rewards,
    bootstrap discount ``gamma^k``)."""
    arrays, meta = fixture
    cfg = meta["config"]
    gamma, n = cfg["discount"], cfg["nstep"]
    rewards = arrays["nstep/0/episode/reward"][:, 0]
    length = len(rewards) - 1
    official_starts = {int(s) for s in arrays["nstep/0/sample/obs"][:, 0]}  # of the finished episode
    for upto in (length, length - 2):  # the finished (truncated) episode, then the same episode still running
        ours = _our_samples(arrays, 0, gamma, n, upto)
        end = upto if upto == length else upto - 1  # the last stored frame (a running episode's newest)
        assert sorted(ours) == list(range(end))
        short = sorted(s for s in ours if end - s < n)
        assert len(short) == n - 1
        if upto == length:
            assert set(ours) - official_starts == set(short)  # the official sampler never starts there
        for start in short:
            k = end - start  # steps left in the stored part of the episode
            assert ours[start][3] == start + k and ours[start][4] == pytest.approx(gamma**k)
            expected = sum(gamma**i * rewards[start + 1 + i] for i in range(k))
            assert ours[start][2] == pytest.approx(expected, rel=1e-6)


def test_deviation_update_times_follow_sb3(fixture: Any) -> None:
    """Deviation "loop": the official loop updates at global steps t = seed, seed + 2, ... before taking step
    t (with the std of step t, on the episodes finished by then); ours (SB3) updates after
    ``update_every_steps`` env steps once ``num_timesteps > learning_starts``: at num_timesteps = seed + 2,
    seed + 4, ... (with the std of that step, on every step stored). As many updates, each one 2 steps later;
    the random actions are those of the same steps."""
    _, meta = fixture
    model = _model(meta)
    model.learning_starts, total = 10, 24
    seen: list[tuple[int, float]] = []
    acted: list[int] = []
    train, predict = model.train, model.policy.predict
    model.train = lambda gradient_steps, batch_size=256: (  # type: ignore[method-assign]
        seen.append((model.num_timesteps, model.current_std())), train(gradient_steps, batch_size))
    model.policy.predict = lambda *a, **k: (  # type: ignore[method-assign]
        acted.append(model.num_timesteps), predict(*a, **k))[1]
    model.learn(total)
    assert acted[0] == model.learning_starts  # random actions before, as the official step < num_expl_steps
    every = model.update_every_steps
    official_steps = [t for t in range(total) if t >= model.learning_starts and t % every == 0]
    assert [t for t, _ in seen] == [t + model.update_every_steps for t in official_steps]
    assert [std for _, std in seen] == [model.std_schedule.value(t + 2) for t in official_steps]


def test_deviation_transitions_are_sampled_uniformly() -> None:
    """Deviation "sampling": the official sampler picks an episode uniformly, then a start in it; ours picks a
    transition uniformly. With episodes of 4 and 12 steps (n = 3) the official one draws half of its starts from
    the short episode (2 of its 12 possible starts), ours a quarter (4 of 16); with DMC's equal-length episodes
    both are uniform over the transitions."""
    frame = spaces.Box(0, 255, (1, 1, 1), np.uint8)
    buffer = NStepFrameStackReplayBuffer(100, frame, spaces.Box(-1, 1, (1,), np.float32), device="cpu",
                                         n_steps=3, gamma=0.99, frame_stack=1)
    for length in (4, 12):
        for t in range(length):
            last = t == length - 1
            buffer.add(np.full((1, 1, 1, 1), t, np.uint8), np.full((1, 1, 1, 1), t + 1, np.uint8),
                       np.zeros((1, 1), np.float32), np.array([1.0]), np.array([last]),
                       [{"TimeLimit.truncated": True} if last else {}])
    np.random.seed(0)
    rows, _ = buffer._sample_transition_indices(40_000)
    short = float(np.mean(rows < 5))  # rows 0..4: the short episode (its terminal frame in row 4)
    assert short == pytest.approx(4 / 16, abs=0.01)
