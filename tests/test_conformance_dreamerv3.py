"""Our DreamerV3 / Harmony-DreamerV3 loss functions against the official JAX code on the same inputs.

The fixtures (``tests/conformance/fixtures/dreamerv3_*`` from danijar/dreamerv3, ``harmony_v3_*`` from
thuml/HarmonyDream ``dreamerv3-jax``) hold fixed inputs with the official outputs and ``jax.grad`` gradients; they are
made by ``tests/conformance/make_dreamerv3.py`` (see ``tests/conformance/README.md``). Every comparison is
``max |ours - official| <= 1e-5 * max(1, max |official|)`` in fp32 on the CPU, gradients through torch autograd.

Where our loss is not a separate function (the actor and critic losses inside ``ActorCritic.losses``), a tiny real
``ActorCritic`` runs them with its networks replaced by tables of the fixture's logits, indexed by the "features",
and the imagination replaced by the fixture's trajectory: everything from the rewards, continues, values and action
distributions onwards is our code. Tests named ``*_deviation_*`` check that a documented difference
(``docs/guide/deviations_dreamerv3.rst.inc``) is exactly what the entry says.
"""

from __future__ import annotations

import math
import types

import numpy as np
import pytest
import torch
from gymnasium import spaces
from torch import Tensor, nn

from sb3_worldmodels.common.distributions import BernoulliDist, MSEDist, TwoHotDist, symexp, symlog
from sb3_worldmodels.common.returns import ReturnNormalizer, lambda_returns
from sb3_worldmodels.dreamer.behavior import ActorCritic
from sb3_worldmodels.dreamer.config import make_config
from sb3_worldmodels.dreamer.world_model import WorldModel, kl_loss_terms
from tests.conformance.common import TOL, assert_close, load_fixture, rel_error

GAMMA = 1 - 1 / 333
LAM = 0.95


def t(x: np.ndarray, grad: bool = False) -> Tensor:
    """An fp32 (or integer / bool) tensor of a fixture array, optionally a leaf that requires grad."""
    out = torch.from_numpy(np.array(x))
    if out.dtype == torch.float64:
        out = out.float()
    return out.requires_grad_(grad)


def check(ours: Tensor | float, theirs: np.ndarray, name: str) -> None:
    """:func:`assert_close` that also prints the relative error (``pytest -s`` lists them all)."""
    if isinstance(ours, Tensor) and ours.requires_grad:
        ours = ours.detach()
    if ours is None:  # a gradient torch did not reach: zero
        ours = np.zeros_like(theirs)
    err = assert_close(ours, theirs, name)
    print(f"{name}: {err:.3g}")


def grads(out: Tensor, inputs: list[Tensor]) -> list[Tensor | None]:
    return list(torch.autograd.grad(out, inputs, allow_unused=True, retain_graph=True))


def world_model(**overrides) -> WorldModel:
    cfg = make_config("v3", "tiny", **overrides)  # 8 latents x 8 classes, 255 bins, unimix 0.01
    return WorldModel(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), cfg)


# ------------------------------------------------------------------------------------------------ symlog, two-hot
@pytest.mark.parametrize("name", ["harmony_v3_symlog", "dreamerv3_symlog"])
def test_symlog_symexp(name):
    a, _ = load_fixture(name)
    x, y = t(a["x"], True), t(a["y"], True)
    check(symlog(x), a["symlog"], f"{name}.symlog")
    check(symexp(y), a["symexp"], f"{name}.symexp")
    check(torch.autograd.grad(symlog(x).sum(), x)[0], a["grad_symlog"], f"{name}.grad_symlog")
    check(torch.autograd.grad(symexp(y).sum(), y)[0], a["grad_symexp"], f"{name}.grad_symexp")


@pytest.mark.parametrize("kind", ["wide", "flat"])
def test_twohot_harmony(kind):
    """jaxutils.DiscDist (255 bins in [-20, 20] of symlog space): log-likelihood, mean and their gradients."""
    a, _ = load_fixture("harmony_v3_twohot")
    logits, target = t(a[f"logits_{kind}"], True), t(a["target"])
    dist = TwoHotDist(logits)
    check(dist.bins, a["bins"], "harmony_v3_twohot.bins")
    log_prob, mean = dist.log_prob(target), dist.mean
    check(log_prob, a[f"log_prob_{kind}"], f"harmony_v3_twohot.log_prob_{kind}")
    check(mean, a[f"mean_{kind}"], f"harmony_v3_twohot.mean_{kind}")
    check(grads(log_prob.sum(), [logits])[0], a[f"grad_log_prob_{kind}"], f"harmony_v3_twohot.grad_log_prob_{kind}")
    check(grads(mean.sum(), [logits])[0], a[f"grad_mean_{kind}"], f"harmony_v3_twohot.grad_mean_{kind}")


def test_twohot_danijar_linear_bins():
    """outs.TwoHot set up as the 2023 code (linspace bins, symlog squash): loss = -our log_prob, pred = our mean."""
    a, _ = load_fixture("dreamerv3_twohot")
    logits, target = t(a["logits_flat"], True), t(a["target"])
    dist = TwoHotDist(logits)
    loss, mean = -dist.log_prob(target), dist.mean
    check(loss, a["linear_loss_flat"], "dreamerv3_twohot.linear_loss")
    check(mean, a["linear_pred_flat"], "dreamerv3_twohot.linear_pred")
    check(grads(loss.sum(), [logits])[0], a["linear_grad_loss_flat"], "dreamerv3_twohot.linear_grad_loss")
    check(grads(mean.sum(), [logits])[0], a["linear_grad_pred_flat"], "dreamerv3_twohot.linear_grad_pred")


def test_twohot_deviation_symexp_bins():
    """danijar's default two-hot (bins symexp-spaced in raw space, interpolated there, mean read out as
    sum_i p_i symexp(b_i)) agrees with ours on a bin and beyond the range, not between bins nor in the mean."""
    a, _ = load_fixture("dreamerv3_twohot")
    target = a["target"]
    flat = TwoHotDist(t(a["logits_flat"]))
    # on one of its bins (= one of ours: the bins are the same points, symexp(linspace(-20, 20, 255)))
    on_bin = TwoHotDist(t(a["logits_flat"][:5])).log_prob(t(a["target_on_default_bin"]))
    check(-on_bin, a["default_loss_on_default_bin"], "dreamerv3_twohot.default_loss_on_bin")
    ours = -flat.log_prob(t(target)).numpy()
    beyond = np.abs(symlog(t(target)).numpy()) > 20
    assert beyond.sum() == 4
    check(ours[beyond], a["default_loss_flat"][beyond], "dreamerv3_twohot.default_loss_beyond")
    # between two bins the two-hot weights differ (linear in raw space there, in symlog space here)
    between = np.abs(symlog(t(target)).numpy()) < 19
    off_bin = between & (np.abs(a["default_loss_flat"] - ours) > 1e-3)
    assert off_bin.sum() >= 10, "the two-hot targets between bins should differ"
    # the readout: symexp(sum p b) here, sum p symexp(b) there
    assert rel_error(flat.mean, a["default_pred_flat"]) > 1e-2


# ------------------------------------------------------------------------------------------------ KL
@pytest.mark.parametrize("name", ["harmony_v3_kl", "dreamerv3_kl"])
def test_kl_free_bits(name):
    """RSSM.kl (unimix 1%) and kl_loss_terms (free bits per step, 0.5 dyn + 0.1 rep) with gradients."""
    a, _ = load_fixture(name)
    wm = world_model()
    post_raw, prior_raw = t(a["post_raw"], True), t(a["prior_raw"], True)
    dyn, rep = wm.rssm.kl({"logits": post_raw}, {"logits": prior_raw})
    check(dyn, a["dyn_raw"], f"{name}.dyn_raw")
    check(rep, a["rep_raw"], f"{name}.rep_raw")
    below = (a["dyn_raw"] < 1).mean()
    assert 0.1 < below < 0.9, "the fixture should have steps on both sides of the free bit"
    kl_loss, metrics = kl_loss_terms(wm.cfg, dyn, rep)
    check(metrics["dyn_loss"], a["dyn"].mean(), f"{name}.dyn_free_bits_mean")
    check(metrics["rep_loss"], a["rep"].mean(), f"{name}.rep_free_bits_mean")
    check(kl_loss, a["kl_loss"], f"{name}.kl_loss")
    g_post, g_prior = grads(kl_loss, [post_raw, prior_raw])
    check(g_post, a["grad_post_raw"], f"{name}.grad_post_raw")
    check(g_prior, a["grad_prior_raw"], f"{name}.grad_prior_raw")


def test_kl_deviation_dyn_weight_danijar():
    """danijar/dreamerv3's configs.yaml weights the dynamics KL 1.0 (ours and HarmonyDream's 0.5): with
    ``kl_dyn=1.0`` our KL loss is theirs."""
    a, _ = load_fixture("dreamerv3_kl")
    wm = world_model(kl_dyn=1.0)
    dyn, rep = wm.rssm.kl({"logits": t(a["post_raw"])}, {"logits": t(a["prior_raw"])})
    check(kl_loss_terms(wm.cfg, dyn, rep)[0], 1.0 * a["dyn"].mean() + 0.1 * a["rep"].mean(),
          "dreamerv3_kl.kl_loss_dyn_weight_1")
    assert abs(kl_loss_terms(make_config("v3", "tiny"), dyn, rep)[0].item() - a["kl_loss"]) < 1e-5 * a["kl_loss"]


# ------------------------------------------------------------------------------------------------ returns
def test_lambda_returns_harmony():
    """VFunction.score: R_t = r_{t+1} + gamma c_{t+1} ((1 - lam) v_{t+1} + lam R_{t+1}), R_H = v_H."""
    a, _ = load_fixture("harmony_v3_returns")
    reward, value, cont = t(a["reward"], True), t(a["value"], True), t(a["cont"], True)
    ret = lambda_returns(reward, value, GAMMA * cont, LAM)
    check(ret, a["ret"], "harmony_v3_returns.ret")
    g = grads((ret * t(a["cotangent"])).sum(), [reward, value, cont])
    for gi, key in zip(g, ("grad_reward", "grad_value", "grad_cont"), strict=True):
        check(gi, a[key], f"harmony_v3_returns.{key}")


def test_lambda_returns_danijar():
    """lambda_return(last, term, rew, val, boot, disc, lam) = ours with discount disc (1 - term), lam (1 - last)."""
    a, _ = load_fixture("dreamerv3_returns")
    reward, boot = t(a["reward"], True), t(a["boot"], True)
    term, last = t(a["term"]).float(), t(a["last"]).float()
    ret = lambda_returns(reward, boot, GAMMA * (1 - term), LAM * (1 - last))
    check(ret, a["ret"], "dreamerv3_returns.ret")
    g = grads((ret * t(a["cotangent"])).sum(), [reward, boot])
    check(g[0], a["grad_reward"], "dreamerv3_returns.grad_reward")
    check(g[1], a["grad_boot"], "dreamerv3_returns.grad_boot")


@pytest.mark.parametrize("name", ["harmony_v3_retnorm", "dreamerv3_retnorm"])
def test_return_normalizer(name):
    """EMA (decay 0.99) of the 5th / 95th percentiles, scale max(1, high - low), updated before it is read."""
    a, _ = load_fixture(name)
    norm = ReturnNormalizer()
    offsets, scales = [], []
    for batch in a["returns"]:
        norm.update(t(batch))
        offsets.append(norm.low.clone())
        scales.append(norm.scale.clone())
    check(torch.stack(offsets), a["offset"], f"{name}.offset")
    check(torch.stack(scales), a["invscale"], f"{name}.scale")
    assert (a["invscale"] == 1).any() and (a["invscale"] > 1).any(), "both sides of the floor max(1, S)"


# ------------------------------------------------------------------------------------------------ actor-critic
class Table(nn.Module):
    """A network replaced by a table: "features" (..., 2) hold the (rollout, step) index of each state."""

    def __init__(self, table: Tensor) -> None:
        super().__init__()
        self.table = table

    def forward(self, feat: Tensor) -> Tensor:
        return self.table[feat[..., 0].long(), feat[..., 1].long()]

    def dist(self, out: Tensor) -> TwoHotDist:
        return TwoHotDist(out)


def index_features(n: int, steps: int) -> Tensor:
    idx = torch.stack(torch.meshgrid(torch.arange(n), torch.arange(steps), indexing="ij"), -1)
    return idx.float()


def tabled_actor_critic(action_space: spaces.Space, tables: dict[str, Tensor], **overrides) -> ActorCritic:
    """A tiny real ActorCritic whose actor, critic and slow critic read ``tables``."""
    cfg = make_config("v3", "tiny", **overrides)
    ac = ActorCritic(8, action_space, cfg)
    ac.actor = Table(tables["actor_raw"])
    ac.critic = Table(tables["critic_logits"])
    ac.slow_critic = Table(tables["slow_logits"])
    return ac


def fake_world_model(reward: Tensor, cont: Tensor) -> types.SimpleNamespace:
    """What ActorCritic.losses reads of the world model: the reward and continue means of each imagined state."""
    def pick(table: Tensor, feat: Tensor) -> Tensor:
        return table[feat[..., 0].long(), feat[..., 1].long()]

    return types.SimpleNamespace(
        reward_dist=lambda feat: types.SimpleNamespace(mean=pick(reward, feat)),
        cont_dist=lambda feat: types.SimpleNamespace(mean=pick(cont, feat)),
        cont=True,  # the world model has a continue head
        parameters=lambda: iter(()),
    )


def run_actor_critic(a: dict[str, np.ndarray], discrete: bool, slow: np.ndarray | None = None, **overrides):
    """ActorCritic.losses on the fixture's imagined batch; returns the losses, metrics and the leaf inputs."""
    leaves = {k: t(a[k], True) for k in ("actor_raw", "reward", "cont", "critic_logits")}
    slow_logits = t(a["critic_logits"] if slow is None else slow)  # no slow critic in Harmony's actor fixture
    n, h1 = a["reward"].shape
    space = spaces.Discrete(a["actor_raw"].shape[-1]) if discrete else spaces.Box(-1, 1, (a["action"].shape[-1],))
    ac = tabled_actor_critic(space, {**leaves, "slow_logits": slow_logits}, **overrides)
    # imagined features carry gradients under dynamics backprop only (ActorCritic.imagine)
    feat = index_features(n, h1).requires_grad_(ac.backprop)
    actions = t(a["action"])
    ac.imagine = lambda wm, start, horizon: (feat, actions, ac.actor(feat))
    with torch.no_grad():
        ac.retnorm.low.fill_(float(a["retnorm_low"]))
        ac.retnorm.high.fill_(float(a["retnorm_high"]))
    wm = fake_world_model(leaves["reward"], leaves["cont"])
    actor_loss, critic_loss, metrics = ac.losses(wm, {}, t(a["is_terminal"]).reshape(2, -1), h1 - 1, GAMMA)
    return actor_loss, critic_loss, metrics, leaves


@pytest.mark.parametrize("grad", ["reinforce", "backprop"])
def test_actor_loss_harmony(grad):
    """ImagActorCritic.loss: REINFORCE with a one-hot actor (unimix 1%) or dynamics backprop with a normal actor;
    returns normalised by the percentile scale, entropy 3e-4, weighted by the continue products."""
    name = f"harmony_v3_actor_{grad}"
    a, _ = load_fixture(name)
    actor_loss, _, metrics, leaves = run_actor_critic(a, discrete=grad == "reinforce")
    check(actor_loss, a["loss"], f"{name}.loss")
    check(metrics["return_scale"], a["invscale"], f"{name}.return_scale")
    check(metrics["imag_return"], a["ret"].mean(), f"{name}.ret_mean")
    g = grads(actor_loss, list(leaves.values()))
    for gi, key in zip(g, leaves, strict=True):
        check(gi, a[f"grad_{key}"], f"{name}.grad_{key}")


def test_critic_loss_harmony():
    """VFunction.loss: mean(weight (-log p(ret) - log p(slow critic's mean))) over the first H states."""
    a, _ = load_fixture("harmony_v3_critic")
    ac = ActorCritic(8, spaces.Discrete(3), make_config("v3", "tiny"))
    logits = t(a["critic_logits"], True)
    slow_mean = TwoHotDist(t(a["slow_logits"][:, :-1])).mean
    loss = ac.value_loss(ac.critic.dist(logits[:, :-1]), t(a["target"]), slow_mean)
    loss = (t(a["weight"])[:, :-1] * loss).mean()
    check(loss, a["loss"], "harmony_v3_critic.loss")
    check(grads(loss, [logits])[0], a["grad_critic_logits"], "harmony_v3_critic.grad_critic_logits")


def test_imag_loss_danijar():
    """imag_loss (contdisc off, linear-bin two-hot, categorical actor without unimix) = our actor and critic loss."""
    a, _ = load_fixture("dreamerv3_imag_loss")
    a = dict(a)
    a["action"] = np.eye(a["actor_raw"].shape[-1], dtype=np.float32)[a["action_index"]]
    actor_loss, critic_loss, metrics, leaves = run_actor_critic(a, True, slow=a["slow_logits"], unimix=0.0)
    check(actor_loss, a["policy_loss"].mean(), "dreamerv3_imag_loss.policy_loss")
    check(critic_loss, a["value_loss"].mean(), "dreamerv3_imag_loss.value_loss")
    check(metrics["imag_return"], a["ret"].mean(), "dreamerv3_imag_loss.ret_mean")
    check(grads(actor_loss, [leaves["actor_raw"]])[0], a["grad_policy_actor_raw"],
          "dreamerv3_imag_loss.grad_policy_actor_raw")
    check(grads(critic_loss, [leaves["critic_logits"]])[0], a["grad_value_critic_logits"],
          "dreamerv3_imag_loss.grad_value_critic_logits")


def test_replay_value_loss_deviation_danijar():
    """repl_loss: same returns and per-state loss; ours averages over the non-last states, theirs over all states
    (the last state of an episode counted with weight 0)."""
    a, _ = load_fixture("dreamerv3_repl_loss")
    b, steps = a["reward"].shape
    logits = t(a["critic_logits"], True)
    ac = tabled_actor_critic(spaces.Discrete(3), {"actor_raw": torch.zeros(1), "critic_logits": logits,
                                                  "slow_logits": t(a["slow_logits"])})
    term, last = t(a["term"]).float(), t(a["last"]).float()
    loss, ret_mean = ac.replay_value_loss(index_features(b, steps), t(a["reward"]), term, last, t(a["boot"]), GAMMA)
    check(ret_mean, a["ret"].mean(), "dreamerv3_repl_loss.ret_mean")
    weight = 1 - last[:, :-1]
    official_mean = loss * weight.sum() / weight.numel()  # our mean over weighted states -> theirs over all
    check(official_mean, a["repval"].mean(), "dreamerv3_repl_loss.repval_mean")
    check(grads(official_mean, [logits])[0], a["grad_critic_logits"], "dreamerv3_repl_loss.grad_critic_logits")
    assert rel_error(loss, a["repval"].mean()) > 1e-2  # the documented normalisation difference


# ------------------------------------------------------------------------------------------------ world-model total
def world_model_losses(a: dict[str, np.ndarray], wm: WorldModel, vector: bool):
    """Our obs / reward / KL / continue losses on the fixture's predictions, and the leaves of the gradients."""
    leaves = {k: t(a[k], True) for k in ("post_raw", "prior_raw", "reward_logits")}
    obs_loss = -MSEDist(t(a["image_pred"]), dims=3).log_prob(t(a["image"])).mean()
    if vector:  # V3 decodes vectors in symlog space (WorldModel.preprocess / decode)
        obs_loss = obs_loss - MSEDist(t(a["vector_pred"]), dims=1).log_prob(symlog(t(a["vector"]))).mean()
    reward_loss = -TwoHotDist(leaves["reward_logits"]).log_prob(t(a["reward"])).mean()
    cont_loss = -BernoulliDist(t(a["cont_logits"])).log_prob(t(a["cont"])).mean()
    dyn, rep = wm.rssm.kl({"logits": leaves["post_raw"]}, {"logits": leaves["prior_raw"]})
    kl_loss, _ = kl_loss_terms(wm.cfg, dyn, rep)
    return obs_loss, reward_loss, kl_loss, cont_loss, leaves


def harmonized_world_model(s: np.ndarray) -> WorldModel:
    wm = world_model(harmony=True)
    s1, s2, s3 = (float(x) for x in s)  # official: s1 reward, s2 image, s3 KL
    with torch.no_grad():
        wm.harmonizer.log_sigma.copy_(torch.tensor([{"obs": s2, "reward": s1, "dyn": s3}[n]
                                                    for n in wm.harmonizer.names]))
    return wm


@pytest.mark.parametrize("harmony", [True, False])
def test_world_model_total(harmony):
    """WorldModel.loss: harmonized (s1 reward, s2 image, s3 on (0.5 dyn + 0.1 rep) / 0.6 with one regulariser) or
    the plain weighted sum, with the gradients to the latents' logits, the reward logits and the s."""
    a, _ = load_fixture("harmony_v3_wm")
    tag = "harmonized" if harmony else "plain"
    wm = harmonized_world_model(a["harmony_s"]) if harmony else world_model()
    *parts, leaves = world_model_losses(a, wm, vector=False)
    check(parts[0], a[f"{tag}_mean_image_loss"], f"harmony_v3_wm.{tag}.image_loss")
    check(parts[1], a[f"{tag}_mean_reward_loss"], f"harmony_v3_wm.{tag}.reward_loss")
    check(parts[3], a[f"{tag}_mean_cont_loss"], f"harmony_v3_wm.{tag}.cont_loss")
    total, _ = wm.combine_losses(*parts)
    check(total, a[f"{tag}_total"], f"harmony_v3_wm.{tag}.total")
    g = grads(total, list(leaves.values()))
    for gi, key in zip(g, leaves, strict=True):
        check(gi, a[f"{tag}_grad_{key}"], f"harmony_v3_wm.{tag}.grad_{key}")
    if harmony:
        g_s = grads(total, [wm.harmonizer.log_sigma])[0]
        by_name = dict(zip(wm.harmonizer.names, g_s, strict=True))
        check(torch.stack([by_name["reward"], by_name["obs"], by_name["dyn"]]), a[f"{tag}_grad_harmony_s"],
              f"harmony_v3_wm.{tag}.grad_harmony_s")


def test_world_model_total_deviation_vector_keys():
    """HarmonyDream harmonizes the decoder loss named 'image' only: a vector observation's loss enters its total with
    weight 1, ours with the obs harmonizer's exp(-s2). Without harmony both add it with weight 1."""
    a, _ = load_fixture("harmony_v3_wm")
    s2 = float(a["harmony_s"][1])
    vector_loss = -MSEDist(t(a["vector_pred"]), dims=1).log_prob(symlog(t(a["vector"]))).mean()
    check(vector_loss, a["harmonized_vector_mean_vector_loss"], "harmony_v3_wm.vector_loss")
    # theirs: the vector loss unharmonized
    check(a["harmonized_vector_total"] - a["harmonized_total"], a["harmonized_vector_mean_vector_loss"],
          "harmony_v3_wm.official_vector_weight_1")
    # ours: inside the obs harmonizer
    wm = harmonized_world_model(a["harmony_s"])
    with_vector = wm.combine_losses(*world_model_losses(a, wm, vector=True)[:4])[0]
    without = wm.combine_losses(*world_model_losses(a, wm, vector=False)[:4])[0]
    check(with_vector - without, math.exp(-s2) * vector_loss, "harmony_v3_wm.ours_vector_weight_exp(-s2)")
    assert rel_error(with_vector, a["harmonized_vector_total"]) > 1e-2
    # plain: the same
    wm = world_model()
    check(wm.combine_losses(*world_model_losses(a, wm, vector=True)[:4])[0], a["plain_vector_total"],
          "harmony_v3_wm.plain_vector.total")


def test_harmony_v2_kl_is_not_renormalised():
    """V2 (thuml/HarmonyDream wmlib-torch dreamerv2.py WorldModel.loss) harmonizes the balanced KL itself: the V3
    renormalisation by (kl_dyn + kl_rep) must not apply to it."""
    cfg = make_config("v2", "tiny", harmony=True)
    wm = WorldModel(spaces.Box(-1, 1, (3,), np.float32), spaces.Discrete(2), cfg)
    with torch.no_grad():
        wm.harmonizer.log_sigma.copy_(torch.tensor([0.2, -0.1, 0.4]))
    losses = [torch.tensor(v) for v in (3.0, 0.5, 2.0, 0.25)]
    total, _ = wm.combine_losses(*losses)
    s = dict(zip(wm.harmonizer.names, (0.2, -0.1, 0.4), strict=True))
    expected = sum(v * math.exp(-s[n]) + math.log1p(math.exp(s[n])) for n, v in zip(("obs", "reward", "dyn"),
                                                                                  (3.0, 0.5, 2.0), strict=True))
    assert total.item() == pytest.approx(expected + cfg.cont_scale * 0.25, rel=TOL)


def test_slow_critic_deviation_first_update():
    """The slow critic starts as a copy of the critic and moves 2% towards it per update, from the first (as
    danijar/dreamerv3's SlowModel); HarmonyDream's SlowUpdater copies the critic whole on the first update."""
    ac = ActorCritic(8, spaces.Discrete(3), make_config("v3", "tiny"))
    for slow, fast in zip(ac.slow_critic.parameters(), ac.critic.parameters(), strict=True):
        torch.testing.assert_close(slow, fast)
    with torch.no_grad():
        for p in ac.critic.parameters():
            p.add_(1.0)
    before = [p.clone() for p in ac.slow_critic.parameters()]
    ac.update_slow_critic()
    for old, slow, fast in zip(before, ac.slow_critic.parameters(), ac.critic.parameters(), strict=True):
        torch.testing.assert_close(slow, 0.98 * old + 0.02 * fast)
