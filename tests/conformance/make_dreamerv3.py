"""Fixtures of the official DreamerV3 (danijar/dreamerv3) and Harmony-DreamerV3 (thuml/HarmonyDream ``dreamerv3-jax``)
loss functions on fixed inputs.

Run in the JAX virtual environment (numpy, jax, jaxlib and what the official modules import; no torch)::

    /work/official/venv-jax/bin/python tests/conformance/make_dreamerv3.py \
        --official /work/official/danijar+dreamerv3 --harmony /work/official/thuml+HarmonyDream/dreamerv3-jax

Every number comes from the official code itself: its functions and distribution classes are imported from the two
checkouts and called on numpy inputs. Where a loss is written inline in a method of a ninjax module (HarmonyDream's
``WorldModel.loss`` / ``imagine``, ``VFunction.score`` / ``loss``, ``ImagActorCritic.loss``, the official ``RSSM.loss``
and its ``dyn_loss`` / ``rep_loss`` / ``_stats``), that method is called unbound on a small stand-in ``self``
(:class:`Fake`) whose networks are replaced by the fixed inputs (a linear layer becomes the identity on a slice of
the input, an encoder returns zeros, a head returns an official distribution built on given logits), so the method's
own arithmetic runs unchanged. ninjax state (the return normalisers, the harmonizers' ``s``) lives in a ``pure``
context with chosen initial values. Gradients are ``jax.grad`` of those calls.

The two code bases are imported one after the other under their own package names (``dreamerv3``, ``embodied``);
package ``__init__`` files that pull in environments, replay and logging are skipped by registering bare package
modules, and two unused base classes (``embodied.Agent`` and ``embodied.jax.Agent``) and HarmonyDream's
``embodied.Path`` (used to read ``configs.yaml`` at import) are stubbed.

Arrays are stored batch-major, ``(batch, time, ...)``, whatever the official layout (HarmonyDream's imagination is
time-major: transposed here on the way in and out).
"""

from __future__ import annotations

import argparse
import functools
import importlib
import os
import pathlib
import sys
import types
from typing import Any

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import numpy as np  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import git_commit, save_fixture  # noqa: E402

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

f32 = np.float32
GAMMA = 1 - 1 / 333  # both official configs: horizon 333
LAM = 0.95
ACTENT = 3e-4


class Fake(types.SimpleNamespace):
    """A stand-in ``self`` for calling an official ninjax module method unbound (its scope wrapper reads ``_path``)."""

    _path = "fake"


class _Path:
    """HarmonyDream's ``embodied.Path``, only as far as ``agent.py`` uses it at import (reading ``configs.yaml``)."""

    def __init__(self, path: Any) -> None:
        self._p = pathlib.Path(path)

    @property
    def parent(self) -> _Path:
        return _Path(self._p.parent)

    def __truediv__(self, other: str) -> _Path:
        return _Path(self._p / other)

    def read(self) -> str:
        return self._p.read_text()


def _package(name: str, path: pathlib.Path) -> types.ModuleType:
    """Register a bare package (its ``__init__`` not run) whose submodules import from ``path``."""
    mod = types.ModuleType(name)
    mod.__path__ = [str(path)]
    sys.modules[name] = mod
    if "." in name:
        parent, child = name.rsplit(".", 1)
        setattr(sys.modules[parent], child, mod)
    return mod


def _purge() -> None:
    for key in list(sys.modules):
        if key.split(".")[0] in ("dreamerv3", "embodied"):
            del sys.modules[key]


def load_harmony(root: pathlib.Path) -> types.SimpleNamespace:
    """HarmonyDream's dreamerv3-jax modules: agent, nets, jaxutils, its vendored ninjax."""
    _purge()
    emb = types.ModuleType("embodied")
    emb.Agent = type("Agent", (), {})  # base class of the unused JAXAgent wrapper
    emb.Path = _Path
    sys.modules["embodied"] = emb
    _package("dreamerv3", root / "dreamerv3")
    return types.SimpleNamespace(
        agent=importlib.import_module("dreamerv3.agent"),
        nets=importlib.import_module("dreamerv3.nets"),
        ju=importlib.import_module("dreamerv3.jaxutils"),
        nj=importlib.import_module("dreamerv3.ninjax"),
    )


def load_danijar(root: pathlib.Path) -> types.SimpleNamespace:
    """danijar/dreamerv3's modules: dreamerv3.agent / rssm and embodied.jax's outs / nets / utils / heads."""
    _purge()
    _package("embodied", root / "embodied")
    ejax = _package("embodied.jax", root / "embodied" / "jax")
    ejax.Agent = type("Agent", (), {})  # base class of the unused dreamerv3.agent.Agent
    ns = types.SimpleNamespace(
        outs=importlib.import_module("embodied.jax.outs"),
        nets=importlib.import_module("embodied.jax.nets"),
        utils=importlib.import_module("embodied.jax.utils"),
        heads=importlib.import_module("embodied.jax.heads"),
    )
    ejax.outs, ejax.nets, ejax.utils, ejax.heads = ns.outs, ns.nets, ns.utils, ns.heads
    ejax.Normalize = ns.utils.Normalize
    _package("dreamerv3", root / "dreamerv3")
    ns.agent = importlib.import_module("dreamerv3.agent")
    ns.rssm = importlib.import_module("dreamerv3.rssm")
    ns.nj = importlib.import_module("ninjax")
    return ns


def np_tree(tree: Any) -> Any:
    return jax.tree_util.tree_map(lambda x: np.asarray(x), tree)


# ------------------------------------------------------------------------------------------------ shared inputs
def symlog_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    x = np.concatenate([
        [0.0, 1e-6, -1e-6, 1.0, -1.0, np.e - 1, 1e3, -1e3, 1e6, -1e6, 3e8, -3e8],
        rng.normal(0, 10, 20), rng.normal(0, 0.1, 8),
    ]).astype(f32)
    y = np.concatenate([np.linspace(-20, 20, 41), rng.normal(0, 3, 15), [1e-6, -1e-6]]).astype(f32)
    return {"x": x, "y": y}


def twohot_inputs() -> dict[str, np.ndarray]:
    """Logits of 27 distributions over 255 bins and one target each: on a bin, between bins, beyond the range."""
    rng = np.random.default_rng(2)
    lin = np.linspace(-20, 20, 255).astype(f32)
    picked = lin[[127, 128, 126, 140, 100, 200, 30]]
    on_bin = np.sign(picked) * np.expm1(np.abs(picked))
    between = np.concatenate([rng.normal(0, 3, 6), rng.normal(0, 300, 4), [0.5, -0.25, 1e-3]])
    beyond = np.array([1e10, -1e10, 4.9e8, -4.9e8])  # symlog 23.03 / 20.01: beyond the last bin, clipped to it
    dense = np.array([0.0, 17.0, -17.0])  # the middle bin, and an ordinary mid-size value
    target = np.concatenate([on_bin, between, beyond, dense]).astype(f32)
    n = len(target)
    logits_wide = rng.normal(0, 3, (n, 255)).astype(f32)  # sharp: the mean reads far from zero
    logits_flat = rng.normal(0, 0.3, (n, 255)).astype(f32)  # near-uniform: a critic early in training
    return {"target": target, "logits_wide": logits_wide, "logits_flat": logits_flat}


def kl_inputs(b: int = 4, t: int = 5, stoch: int = 8, classes: int = 8) -> dict[str, np.ndarray]:
    """Raw posterior / prior logits (before unimix) whose KL is below the free bit on some steps, above on others."""
    rng = np.random.default_rng(3)
    post = rng.normal(0, 1.5, (b, t, stoch, classes))
    eps = np.array([0.05, 0.2, 0.5, 1.0, 2.0])[None, :t, None, None] * rng.uniform(0.5, 1.5, (b, 1, 1, 1))
    prior = post + eps * rng.normal(0, 1, post.shape)
    return {"post_raw": post.astype(f32), "prior_raw": prior.astype(f32)}


def return_inputs(n: int = 6, h1: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(4)
    cont = np.ones((n, h1))
    cont[1, 3:] = 0.0  # a terminal inside the rollout
    cont[2, 2] = 0.7  # a soft continue prediction
    cont[3, 1:] = rng.uniform(0.2, 1.0, h1 - 1)
    return {
        "reward": rng.normal(0, 2, (n, h1)).astype(f32),
        "value": rng.normal(0, 5, (n, h1)).astype(f32),
        "cont": cont.astype(f32),
        "cotangent": rng.normal(0, 1, (n, h1 - 1)).astype(f32),
    }


def retnorm_inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {"returns": np.stack([
        rng.normal(0, 1, (8, 5)),  # spread below 1: the scale stays at its floor max(1, S)
        rng.normal(3, 300, (8, 5)),
        np.concatenate([rng.normal(0, 20, (8, 4)), np.full((8, 1), 5e3)], 1),  # outliers above the 95th
        rng.normal(-50, 100, (8, 5)),
    ]).astype(f32)}


def actor_inputs(discrete: bool, n: int = 8, h1: int = 6, act: int = 4, seed: int = 6) -> dict[str, np.ndarray]:
    """One imagined batch: N rollouts of H + 1 states (the first is the start state)."""
    rng = np.random.default_rng(seed)
    cont = np.ones((n, h1))
    cont[2, 3:] = 0.0
    cont[:, 1:] = np.where(rng.uniform(size=(n, h1 - 1)) < 0.15, rng.uniform(0.3, 1.0, (n, h1 - 1)), cont[:, 1:])
    is_terminal = np.zeros(n)
    is_terminal[5] = 1.0  # a rollout from a terminal start state gets no weight
    if discrete:
        raw = rng.normal(0, 1.5, (n, h1, act))
        action = np.eye(act)[rng.integers(0, act, (n, h1))]
    else:
        raw = rng.normal(0, 1.0, (n, h1, 2 * act))
        action = np.clip(rng.normal(0, 0.6, (n, h1, act)), -1 + 1e-6, 1 - 1e-6)
    return {
        "actor_raw": raw.astype(f32),
        "action": action.astype(f32),
        "reward": rng.normal(0, 30, (n, h1)).astype(f32),
        "cont": cont.astype(f32),
        "is_terminal": is_terminal.astype(f32),
        "critic_logits": rng.normal(0, 1.0, (n, h1, 255)).astype(f32),
        "slow_logits": rng.normal(0, 1.0, (n, h1, 255)).astype(f32),
        "retnorm_low": np.array(-3.0, f32),
        "retnorm_high": np.array(5.0, f32),
    }


def critic_inputs(n: int = 4, h1: int = 6) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(7)
    target = rng.normal(0, 5, (n, h1 - 1))
    target[0, :3] = [0.0, 250.0, -1e4]
    weight = np.cumprod(np.where(rng.uniform(size=(n, h1)) < 0.1, 0.0, GAMMA), 1) / GAMMA
    return {
        "critic_logits": rng.normal(0, 0.5, (n, h1, 255)).astype(f32),
        "slow_logits": rng.normal(0, 0.5, (n, h1, 255)).astype(f32),
        "target": target.astype(f32),
        "weight": weight.astype(f32),
    }


def wm_inputs(b: int = 4, t: int = 5) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(8)
    out = kl_inputs(b, t)
    cont = np.ones((b, t))
    cont[1, 3] = 0.0
    out.update({
        "image_pred": rng.uniform(-0.2, 1.2, (b, t, 2, 2, 3)).astype(f32),
        "image": rng.uniform(0, 1, (b, t, 2, 2, 3)).astype(f32),
        "vector_pred": rng.normal(0, 1, (b, t, 3)).astype(f32),
        "vector": rng.normal(0, 5, (b, t, 3)).astype(f32),
        "reward_logits": rng.normal(0, 1, (b, t, 255)).astype(f32),
        "reward": rng.normal(0, 3, (b, t)).astype(f32),
        "cont_logits": rng.normal(0, 2, (b, t)).astype(f32),
        "cont": cont.astype(f32),
        # HarmonyDream's s of the reward (s1), image (s2) and KL (s3) harmonizers
        "harmony_s": np.array([0.3, -0.4, 0.7], f32),
    })
    return out


# ------------------------------------------------------------------------------------------------ HarmonyDream
def harmony_fixtures(h: types.SimpleNamespace, meta: dict[str, Any]) -> None:
    agent, nets, ju, nj = h.agent, h.nets, h.ju, h.nj
    T = lambda x: jnp.swapaxes(x, 0, 1)  # noqa: E731  (batch, time) <-> (time, batch)

    # symlog / symexp (jaxutils.symlog / symexp)
    inp = symlog_inputs()
    gx = jax.grad(lambda x: ju.symlog(x).sum())(inp["x"])
    gy = jax.grad(lambda y: ju.symexp(y).sum())(inp["y"])
    save_fixture("harmony_v3_symlog", {**inp, "symlog": ju.symlog(inp["x"]), "symexp": ju.symexp(inp["y"]),
                                       "grad_symlog": gx, "grad_symexp": gy},
                 {**meta, "official": "jaxutils.symlog / symexp", "grads": "d sum(f(x)) / dx"})

    # two-hot (jaxutils.DiscDist as the symlog_disc reward / critic head builds it: 255 bins in [-20, 20])
    inp = twohot_inputs()
    arrays: dict[str, Any] = dict(inp)
    disc = lambda lg: ju.DiscDist(lg, 0, -20, 20, ju.symlog, ju.symexp)  # noqa: E731
    arrays["bins"] = disc(inp["logits_flat"]).bins
    for kind in ("wide", "flat"):
        lg = inp[f"logits_{kind}"]
        arrays[f"log_prob_{kind}"] = disc(lg).log_prob(inp["target"])
        arrays[f"mean_{kind}"] = disc(lg).mean()
        arrays[f"grad_log_prob_{kind}"] = jax.grad(lambda x: disc(x).log_prob(inp["target"]).sum())(lg)
        arrays[f"grad_mean_{kind}"] = jax.grad(lambda x: disc(x).mean().sum())(lg)
    save_fixture("harmony_v3_twohot", arrays, {**meta, "official": "jaxutils.DiscDist(logits, 0, -20, 20, symlog, "
                 "symexp): log_prob, mean", "grads": "d sum(log_prob) / d logits, d sum(mean) / d logits"})

    # KL of the categorical latents: nets.RSSM._stats (1% unimix) -> get_dist -> dyn_loss / rep_loss (free 1)
    def rssm_fake() -> Fake:
        fake = Fake(_classes=8, _stoch=8, _unimix=0.01)
        fake.get = lambda name, *a, **k: (lambda x: x)  # the stats layer: identity on the raw logits
        fake.get_dist = functools.partial(nets.RSSM.get_dist, fake)
        fake._stats = functools.partial(nets.RSSM._stats, fake)
        return fake

    def kl_terms(post_raw, prior_raw, free):
        fake = rssm_fake()
        flat = lambda x: x.reshape(*x.shape[:-2], -1)  # noqa: E731
        post, prior = fake._stats("obs_stats", flat(post_raw)), fake._stats("img_stats", flat(prior_raw))
        dyn = nets.RSSM.dyn_loss(fake, post, prior, impl="kl", free=free)
        rep = nets.RSSM.rep_loss(fake, post, prior, impl="kl", free=free)
        return dyn, rep

    inp = kl_inputs()
    dyn_raw, rep_raw = kl_terms(inp["post_raw"], inp["prior_raw"], 0.0)
    dyn, rep = kl_terms(inp["post_raw"], inp["prior_raw"], 1.0)

    def kl_loss(post_raw, prior_raw):
        d, r = kl_terms(post_raw, prior_raw, 1.0)
        return 0.5 * d.mean() + 0.1 * r.mean()  # loss_scales dyn 0.5, rep 0.1 (configs.yaml)

    g_post, g_prior = jax.grad(kl_loss, (0, 1))(inp["post_raw"], inp["prior_raw"])
    save_fixture("harmony_v3_kl", {**inp, "dyn_raw": dyn_raw, "rep_raw": rep_raw, "dyn": dyn, "rep": rep,
                                   "kl_loss": kl_loss(inp["post_raw"], inp["prior_raw"]),
                                   "grad_post_raw": g_post, "grad_prior_raw": g_prior},
                 {**meta, "official": "nets.RSSM._stats (unimix 0.01), dyn_loss / rep_loss(impl='kl', free=1.0); "
                  "dyn_raw / rep_raw with free=0", "kl_loss": "0.5 * mean(dyn) + 0.1 * mean(rep)",
                  "grads": "d kl_loss / d raw logits (before unimix)"})

    # lambda-returns: agent.VFunction.score on a trajectory (rewfn and the critic's mean replaced by inputs)
    inp = return_inputs()

    def score(reward, value, cont):
        fake = Fake(rewfn=lambda traj: T(reward)[1:], net=lambda traj: types.SimpleNamespace(mean=lambda: T(value)),
                    config=types.SimpleNamespace(horizon=333, return_lambda=LAM))
        traj = {"action": jnp.zeros((reward.shape[1], reward.shape[0], 1)), "cont": T(cont)}
        return T(agent.VFunction.score(fake, traj)[1])

    ret = score(inp["reward"], inp["value"], inp["cont"])
    grads = jax.grad(lambda *a: (score(*a) * inp["cotangent"]).sum(), (0, 1, 2))(
        inp["reward"], inp["value"], inp["cont"])
    save_fixture("harmony_v3_returns", {**inp, "ret": ret, "grad_reward": grads[0], "grad_value": grads[1],
                                        "grad_cont": grads[2]},
                 {**meta, "official": "agent.VFunction.score (time-major there; stored batch-major)",
                  "discount": GAMMA, "lambda": LAM, "grads": "d sum(ret * cotangent) / d (reward, value, cont)"})

    # return normaliser: jaxutils.Moments('perc_ema', decay 0.99, max 1, 5th / 95th)
    inp = retnorm_inputs()

    def run_moments(batches):
        norm = ju.Moments(impl="perc_ema", decay=0.99, max=1.0, perclo=5.0, perchi=95.0, name="retnorm")
        return [norm(x) for x in batches]

    stats, _ = nj.pure(run_moments)({}, jax.random.PRNGKey(0), list(inp["returns"]))
    save_fixture("harmony_v3_retnorm", {**inp, "offset": np.array([s[0] for s in stats]),
                                        "invscale": np.array([s[1] for s in stats])},
                 {**meta, "official": "jaxutils.Moments(impl='perc_ema', decay=0.99, max=1.0, perclo=5, perchi=95) "
                  "called once per batch (update, then stats)"})

    # critic loss: agent.VFunction.loss (critic_slowreg 'logprob', slowreg 1, critic scale 1)
    inp = critic_inputs()
    vf_config = types.SimpleNamespace(critic_slowreg="logprob",
                                      loss_scales=types.SimpleNamespace(slowreg=1.0, critic=1.0))

    def critic_loss(logits):
        fake = Fake(net=lambda traj: disc(traj["critic"]), slow=lambda traj: disc(traj["slow"]), config=vf_config)
        traj = {"critic": T(logits), "slow": T(inp["slow_logits"]), "weight": T(inp["weight"])}
        return agent.VFunction.loss(fake, traj, T(inp["target"]))[0]

    save_fixture("harmony_v3_critic", {**inp, "loss": critic_loss(inp["critic_logits"]),
                                       "grad_critic_logits": jax.grad(critic_loss)(inp["critic_logits"])},
                 {**meta, "official": "agent.VFunction.loss: mean(weight[:-1] * (-log p(target) - log p(slow mean)))"})

    # actor: agent.WorldModel.imagine (continuation and weight) + VFunction.score + ImagActorCritic.loss
    for grad in ("reinforce", "backprop"):
        discrete = grad == "reinforce"
        inp = actor_inputs(discrete)
        n, h1, adim = inp["action"].shape

        def actor_loss(actor_raw, reward, cont, critic_logits):
            def impure():
                fake_rssm = Fake(initial=lambda b: {"idx": jnp.zeros((b,), jnp.int32)},
                                 img_step=lambda prev, action: {"idx": prev["idx"] + 1})
                cont_T = T(cont)
                fake_wm = Fake(rssm=fake_rssm, heads={"cont": lambda traj: types.SimpleNamespace(mode=lambda: cont_T)},
                               config=types.SimpleNamespace(horizon=333, imag_unroll=True))
                actions_T = T(inp["action"])
                policy = lambda s: actions_T[s["idx"], jnp.arange(n)]  # noqa: E731
                start = {"idx": jnp.zeros((n,), jnp.int32), "is_terminal": inp["is_terminal"]}
                traj = agent.WorldModel.imagine(fake_wm, policy, start, h1 - 1)
                vf = Fake(rewfn=lambda tr: T(reward)[1:], net=lambda tr: disc(T(critic_logits)),
                          config=types.SimpleNamespace(horizon=333, return_lambda=LAM))
                vf.score = functools.partial(agent.VFunction.score, vf)
                if discrete:  # actor_dist_disc 'onehot' with unimix 0.01
                    dist = Fake(_shape=(adim,), _dist="onehot", _unimix=0.01, _minstd=0.1, _maxstd=1.0,
                                _outscale=1.0, _outnorm=False, _bins=255)
                    dist.get = lambda name, *a, **k: (lambda x: x)
                else:  # actor_dist_cont 'normal': mean and std pre-activations from the two halves of the output
                    dist = Fake(_shape=(adim,), _dist="normal", _unimix=0.0, _minstd=0.1, _maxstd=1.0,
                                _outscale=1.0, _outnorm=False, _bins=255)
                    dist.get = lambda name, *a, **k: (
                        (lambda x: x[..., :adim]) if name == "out" else (lambda x: x[..., adim:]))
                raw_T = T(actor_raw)
                ac = Fake(critics={"extr": vf}, scales={"extr": 1.0}, grad=grad,
                          retnorms={"extr": ju.Moments(impl="perc_ema", decay=0.99, max=1.0, perclo=5.0, perchi=95.0,
                                                       name="retnorm_extr")},
                          actor=lambda tr: nets.Dist.inner(dist, raw_T),
                          config=types.SimpleNamespace(actent=ACTENT, loss_scales=types.SimpleNamespace(actor=1.0)),
                          _metrics=lambda *a: {})
                loss, _ = agent.ImagActorCritic.loss(ac, traj)
                _, ret, base = vf.score(traj)
                offset, invscale = ac.retnorms["extr"].stats()
                return loss, {"ret": T(ret), "base": T(base), "weight": T(traj["weight"]),
                              "cont_used": T(traj["cont"]), "offset": offset, "invscale": invscale}

            state = {"retnorm_extr/low/value": inp["retnorm_low"], "retnorm_extr/high/value": inp["retnorm_high"]}
            out, _ = nj.pure(impure)(state, jax.random.PRNGKey(0))
            return out

        args = (inp["actor_raw"], inp["reward"], inp["cont"], inp["critic_logits"])
        loss, aux = actor_loss(*args)
        grads = jax.grad(lambda *a: actor_loss(*a)[0], (0, 1, 2, 3))(*args)
        inp.pop("slow_logits")  # the official actor loss does not read the slow critic
        save_fixture(f"harmony_v3_actor_{grad}", {
            **inp, "loss": loss, **aux, "grad_actor_raw": grads[0], "grad_reward": grads[1], "grad_cont": grads[2],
            "grad_critic_logits": grads[3]},
            {**meta, "official": "agent.WorldModel.imagine (weight, cont) + agent.VFunction.score + "
             "agent.ImagActorCritic.loss with nets.Dist.inner(" + ("'onehot', unimix 0.01" if discrete else
                                                                    "'normal', minstd 0.1, maxstd 1.0") + ")",
             "actor_grad": grad, "discount": GAMMA, "lambda": LAM, "actent": ACTENT,
             "retnorm": "Moments perc_ema, low / high preset to retnorm_low / retnorm_high, one update",
             "grads": "d loss / d (actor_raw, reward, cont, critic_logits)"})

    # world-model total: agent.WorldModel.loss, harmonized (harmony: True) or not, with or without a vector key
    inp = wm_inputs()
    b, t = inp["reward"].shape

    def wm_loss(post_raw, prior_raw, reward_logits, s, harmony, vector):
        def impure():
            fake_rssm = rssm_fake()
            fake_rssm.observe = lambda embed, actions, is_first, latent: (
                fake_rssm._stats("obs_stats", post_raw.reshape(b, t, -1)),
                fake_rssm._stats("img_stats", prior_raw.reshape(b, t, -1)))
            fake_rssm.dyn_loss = functools.partial(nets.RSSM.dyn_loss, fake_rssm)
            fake_rssm.rep_loss = functools.partial(nets.RSSM.rep_loss, fake_rssm)
            rew = Fake(_shape=(), _dist="symlog_disc", _outscale=0.0, _outnorm=False, _bins=255, _unimix=0.0,
                       _minstd=1.0, _maxstd=1.0, get=lambda name, *a, **k: (lambda x: x))
            con = Fake(_shape=(), _dist="binary", _outscale=1.0, _outnorm=False, _bins=255, _unimix=0.0,
                       _minstd=1.0, _maxstd=1.0, get=lambda name, *a, **k: (lambda x: x))

            def decoder(feats):
                out = {"image": ju.MSEDist(inp["image_pred"], 3, "sum")}  # image_dist 'mse'
                if vector:
                    out["vector"] = ju.SymlogDist(inp["vector_pred"], 1, "mse", "sum")  # vector_dist 'symlog_mse'
                return out

            scales = {"image": 1.0, "vector": 1.0, "reward": 1.0, "cont": 1.0, "dyn": 0.5, "rep": 0.1}
            fake = Fake(
                config=types.SimpleNamespace(
                    harmony=harmony, grad_heads=["decoder", "reward", "cont"],
                    dyn_loss={"impl": "kl", "free": 1.0}, rep_loss={"impl": "kl", "free": 1.0}),
                encoder=lambda data: jnp.zeros((b, t, 3)), rssm=fake_rssm,
                heads={"decoder": decoder, "reward": lambda f: nets.Dist.inner(rew, reward_logits),
                       "cont": lambda f: nets.Dist.inner(con, inp["cont_logits"][..., None])},
                harmony_s1=nets.Harmonizer(name="har_s1"), harmony_s2=nets.Harmonizer(name="har_s2"),
                harmony_s3=nets.Harmonizer(name="har_s3"), identity=nets.Identity(name="identity"),
                scales=scales, _metrics=lambda *a: {})
            data = {"action": jnp.zeros((b, t, 1)), "is_first": jnp.zeros((b, t)), "image": inp["image"],
                    "reward": inp["reward"], "cont": inp["cont"]}
            if vector:
                data["vector"] = inp["vector"]
            total, (_, out, _) = agent.WorldModel.loss(fake, data, (None, jnp.zeros((b, 1))))
            return total, {k: v.mean() for k, v in out.items() if k.endswith("_loss")}

        state = {"har_s1/harmony_s": s[0], "har_s2/harmony_s": s[1], "har_s3/harmony_s": s[2]}
        out, _ = nj.pure(impure)(state, jax.random.PRNGKey(0))
        return out

    arrays = dict(inp)
    for harmony in (True, False):
        for vector in (False, True):
            tag = ("harmonized" if harmony else "plain") + ("_vector" if vector else "")
            args = (inp["post_raw"], inp["prior_raw"], inp["reward_logits"], inp["harmony_s"])
            total, parts = wm_loss(*args, harmony, vector)
            grads = jax.grad(lambda *a: wm_loss(*a, harmony, vector)[0], (0, 1, 2, 3))(*args)
            arrays.update({f"{tag}_total": total, **{f"{tag}_mean_{k}": v for k, v in parts.items()},
                           f"{tag}_grad_post_raw": grads[0], f"{tag}_grad_prior_raw": grads[1],
                           f"{tag}_grad_reward_logits": grads[2]})
            if harmony:
                arrays[f"{tag}_grad_harmony_s"] = grads[3]
    save_fixture("harmony_v3_wm", arrays, {
        **meta, "official": "agent.WorldModel.loss (encoder, RSSM networks and decoder replaced by inputs; "
        "nets.RSSM._stats / dyn_loss / rep_loss, jaxutils.MSEDist / SymlogDist / DiscDist, nets.Dist 'binary', "
        "nets.Harmonizer real)", "variants": "harmonized (harmony: True) or plain, with '_vector': a second decoder "
        "key 'vector' (SymlogDist) besides 'image'",
        "loss_scales": {"dyn": 0.5, "rep": 0.1, "image": 1.0, "vector": 1.0, "reward": 1.0, "cont": 1.0},
        "harmony_s": "s1 reward, s2 image, s3 dyn + rep",
        "grads": "d total / d (post_raw, prior_raw, reward_logits[, harmony_s])"})


# ------------------------------------------------------------------------------------------------ danijar/dreamerv3
def danijar_fixtures(d: types.SimpleNamespace, meta: dict[str, Any]) -> None:
    outs, nets, utils, heads, agent, rssm, nj = d.outs, d.nets, d.utils, d.heads, d.agent, d.rssm, d.nj

    inp = symlog_inputs()
    save_fixture("dreamerv3_symlog", {
        **inp, "symlog": nets.symlog(inp["x"]), "symexp": nets.symexp(inp["y"]),
        "grad_symlog": jax.grad(lambda x: nets.symlog(x).sum())(inp["x"]),
        "grad_symexp": jax.grad(lambda y: nets.symexp(y).sum())(inp["y"])},
        {**meta, "official": "embodied/jax/nets.py symlog / symexp"})

    # two-hot: the default head (Head.symexp_twohot: 255 bins symexp-spaced, no squash), and outs.TwoHot configured
    # as the 2023 code base (bins linspace(-20, 20), squash symlog, unsquash symexp)
    inp = twohot_inputs()
    head = Fake(bins=255, kw={}, space=types.SimpleNamespace(shape=(), discrete=False))
    head.sub = lambda name, *a, **k: (lambda x: x)  # the logits layer: identity
    default = lambda lg: heads.Head.symexp_twohot(head, lg)  # noqa: E731
    lin = jnp.linspace(-20, 20, 255, dtype=jnp.float32)
    linear = lambda lg: outs.TwoHot(lg, lin, nets.symlog, nets.symexp)  # noqa: E731
    bins = default(inp["logits_flat"]).bins
    on_new_bin = np.asarray(bins)[[100, 127, 128, 150, 200]]
    arrays: dict[str, Any] = {**inp, "bins_default": bins, "target_on_default_bin": on_new_bin}
    for tag, make in (("default", default), ("linear", linear)):
        for kind in ("wide", "flat") if tag == "default" else ("flat",):
            lg = inp[f"logits_{kind}"]
            arrays[f"{tag}_loss_{kind}"] = make(lg).loss(inp["target"])
            arrays[f"{tag}_pred_{kind}"] = make(lg).pred()
            arrays[f"{tag}_grad_loss_{kind}"] = jax.grad(lambda x: make(x).loss(inp["target"]).sum())(lg)
            arrays[f"{tag}_grad_pred_{kind}"] = jax.grad(lambda x: make(x).pred().sum())(lg)
        arrays[f"{tag}_loss_on_default_bin"] = make(inp["logits_flat"][:5]).loss(on_new_bin)
    save_fixture("dreamerv3_twohot", arrays, {
        **meta, "official": "embodied/jax/outs.py TwoHot: loss, pred. 'default' = heads.Head.symexp_twohot "
        "(the config's reward / value head), 'linear' = TwoHot(logits, linspace(-20, 20, 255), symlog, symexp)",
        "grads": "d sum(loss) / d logits, d sum(pred) / d logits"})

    # KL: rssm.RSSM.loss (observe and the prior network replaced by the inputs; _dist = outs.OneHot unimix 0.01)
    inp = kl_inputs()

    def kl_terms(post_raw, prior_raw, free):
        fake = Fake(free_nats=free, unimix=0.01)
        fake._dist = functools.partial(rssm.RSSM._dist, fake)
        fake.observe = lambda carry, tokens, acts, reset, training: (carry, {}, {"logit": post_raw, "deter": None})
        fake._prior = lambda deter: prior_raw
        _, _, losses, _, _ = rssm.RSSM.loss(fake, {}, None, None, None, True)
        return losses["dyn"], losses["rep"]

    dyn_raw, rep_raw = kl_terms(inp["post_raw"], inp["prior_raw"], 0.0)
    dyn, rep = kl_terms(inp["post_raw"], inp["prior_raw"], 1.0)

    def kl_loss(post_raw, prior_raw):
        dd, rr = kl_terms(post_raw, prior_raw, 1.0)
        return 0.5 * dd.mean() + 0.1 * rr.mean()  # our / the paper's weights (this repo's config: dyn 1.0, rep 0.1)

    g_post, g_prior = jax.grad(kl_loss, (0, 1))(inp["post_raw"], inp["prior_raw"])
    save_fixture("dreamerv3_kl", {**inp, "dyn_raw": dyn_raw, "rep_raw": rep_raw, "dyn": dyn, "rep": rep,
                                  "kl_loss": kl_loss(inp["post_raw"], inp["prior_raw"]),
                                  "grad_post_raw": g_post, "grad_prior_raw": g_prior},
                 {**meta, "official": "dreamerv3/rssm.py RSSM.loss with free_nats 1.0 (0 for *_raw), unimix 0.01",
                  "kl_loss": "0.5 * mean(dyn) + 0.1 * mean(rep) (configs.yaml loss_scales say dyn 1.0, rep 0.1)"})

    # lambda-returns: dreamerv3/agent.py lambda_return(last, term, rew, val, boot, disc, lam)
    rng = np.random.default_rng(9)
    b, t = 4, 7
    last = np.zeros((b, t), bool)
    last[1, 3] = True
    last[2, 5] = True
    term = np.zeros((b, t), bool)
    term[1, 3] = True
    term[3, 2] = True
    rew = rng.normal(0, 2, (b, t)).astype(f32)
    boot = rng.normal(0, 5, (b, t)).astype(f32)
    cot = rng.normal(0, 1, (b, t - 1)).astype(f32)
    ret_fn = lambda r, bo: agent.lambda_return(last, term, r, bo, bo, GAMMA, LAM)  # noqa: E731
    g = jax.grad(lambda r, bo: (ret_fn(r, bo) * cot).sum(), (0, 1))(rew, boot)
    save_fixture("dreamerv3_returns", {"last": last, "term": term, "reward": rew, "boot": boot, "cotangent": cot,
                                       "ret": ret_fn(rew, boot), "grad_reward": g[0], "grad_boot": g[1]},
                 {**meta, "official": "dreamerv3/agent.py lambda_return", "discount": GAMMA, "lambda": LAM})

    # return normaliser: embodied/jax/utils.py Normalize (the config's retnorm: perc, rate 0.01, limit 1, no debias)
    inp = retnorm_inputs()

    def run_normalize(batches):
        norm = utils.Normalize("perc", rate=0.01, limit=1.0, perclo=5.0, perchi=95.0, debias=False, name="retnorm")
        return [norm(x, True) for x in batches]

    _, stats = nj.pure(run_normalize)({}, list(inp["returns"]), create=True)
    save_fixture("dreamerv3_retnorm", {**inp, "offset": np.array([s[0] for s in stats]),
                                       "invscale": np.array([s[1] for s in stats])},
                 {**meta, "official": "embodied/jax/utils.py Normalize('perc', rate=0.01, limit=1.0, perclo=5, "
                  "perchi=95, debias=False), called with update=True once per batch"})

    # imagination loss: dreamerv3/agent.py imag_loss, discrete actor (the config's 'categorical', no unimix),
    # contdisc=False (our discounting), critics as outs.TwoHot over linear bins (the 2023 two-hot)
    inp = actor_inputs(True, seed=10)
    inp.pop("action")
    n, h1, adim = inp["actor_raw"].shape
    act_idx = np.random.default_rng(11).integers(0, adim, (n, h1)).astype(np.int32)
    con = inp["cont"].copy()
    con[:, 0] = 1.0 - inp["is_terminal"]  # the start state's continue, as ours takes it from the data

    def imag(actor_raw, reward, con, critic_logits):
        def impure():
            norms = [utils.Normalize(impl, rate=0.01, limit=lim, perclo=5.0, perchi=95.0, debias=False, name=nm)
                     for impl, lim, nm in (("perc", 1.0, "retnorm"), ("none", 1e-8, "valnorm"),
                                           ("none", 1e-8, "advnorm"))]
            return agent.imag_loss(
                {"action": act_idx}, reward, con, {"action": outs.Categorical(actor_raw)}, linear(critic_logits),
                linear(inp["slow_logits"]), *norms, update=True, contdisc=False, slowtar=False, horizon=333, lam=LAM,
                actent=ACTENT, slowreg=1.0)

        state = {"retnorm/lo/value": inp["retnorm_low"], "retnorm/hi/value": inp["retnorm_high"]}
        _, (losses, out, _) = nj.pure(impure)(state, create=True)
        return losses, out

    args = (inp["actor_raw"], inp["reward"], con, inp["critic_logits"])
    losses, out = imag(*args)
    g_pol = jax.grad(lambda *a: imag(*a)[0]["policy"].mean(), (0, 1, 2, 3))(*args)
    g_val = jax.grad(lambda *a: imag(*a)[0]["value"].mean(), (0, 1, 2, 3))(*args)
    inp["cont"] = con
    save_fixture("dreamerv3_imag_loss", {
        **inp, "action_index": act_idx, "policy_loss": losses["policy"], "value_loss": losses["value"],
        "ret": out["ret"], "grad_policy_actor_raw": g_pol[0], "grad_value_critic_logits": g_val[3]},
        {**meta, "official": "dreamerv3/agent.py imag_loss(contdisc=False, slowtar=False, lam 0.95, actent 3e-4, "
         "slowreg 1) with outs.Categorical (no unimix) and outs.TwoHot(linspace(-20, 20, 255), symlog, symexp); "
         "retnorm Normalize perc preset to retnorm_low / retnorm_high", "discount": GAMMA})

    # replay value loss: dreamerv3/agent.py repl_loss (critics as above)
    rng = np.random.default_rng(12)
    b, t = 3, 6
    last = np.zeros((b, t), bool)
    last[0, 2] = True
    last[2, 4] = True
    term = np.zeros((b, t), bool)
    term[0, 2] = True
    rep = {"reward": rng.normal(0, 2, (b, t)).astype(f32), "boot": rng.normal(0, 5, (b, t)).astype(f32),
           "critic_logits": rng.normal(0, 1, (b, t, 255)).astype(f32),
           "slow_logits": rng.normal(0, 1, (b, t, 255)).astype(f32), "last": last, "term": term}

    def repl(critic_logits):
        def impure():
            valnorm = utils.Normalize("none", rate=0.01, limit=1e-8, name="valnorm")
            return agent.repl_loss(last, term, rep["reward"], rep["boot"], linear(critic_logits),
                                   linear(rep["slow_logits"]), valnorm, update=True, slowreg=1.0, slowtar=False,
                                   horizon=333, lam=LAM)

        _, (losses, out, _) = nj.pure(impure)({}, create=True)
        return losses["repval"], out["ret"]

    repval, ret = repl(rep["critic_logits"])
    save_fixture("dreamerv3_repl_loss", {
        **rep, "repval": repval, "ret": ret,
        "grad_critic_logits": jax.grad(lambda x: repl(x)[0].mean())(rep["critic_logits"])},
        {**meta, "official": "dreamerv3/agent.py repl_loss(slowreg 1, slowtar False, horizon 333, lam 0.95); the "
         "agent adds 0.3 * mean(repval) over (batch, time - 1)"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--official", type=pathlib.Path, required=True, help="danijar/dreamerv3 checkout")
    parser.add_argument("--harmony", type=pathlib.Path, required=True, help="thuml/HarmonyDream dreamerv3-jax folder")
    args = parser.parse_args()
    common = {"jax": jax.__version__, "numpy": np.__version__, "dtype": "float32", "platform": "cpu"}
    harmony_meta = {**common, "repo": "thuml/HarmonyDream", "path": "dreamerv3-jax",
                    "commit": git_commit(args.harmony)}
    danijar_meta = {**common, "repo": "danijar/dreamerv3", "commit": git_commit(args.official)}
    harmony_fixtures(load_harmony(args.harmony.resolve()), harmony_meta)
    danijar_fixtures(load_danijar(args.official.resolve()), danijar_meta)


if __name__ == "__main__":
    main()
