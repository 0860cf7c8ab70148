"""Tests for :mod:`sb3_worldmodels.common.rssm`."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from sb3_worldmodels.common.distributions import unimix_logits
from sb3_worldmodels.common.rssm import RSSM, GRUCell

B, T, E, A = 2, 6, 7, 3
DETER, HIDDEN, STOCH, CLASSES = 16, 12, 4, 5


def make(classes: int = CLASSES, action_dim: int = A, **kw) -> RSSM:
    return RSSM(E, action_dim, deter=DETER, hidden=HIDDEN, stoch=STOCH, classes=classes, **kw)


def stats_keys(rssm: RSSM) -> set[str]:
    return {"logits"} if rssm.discrete else {"mean", "std"}


def seed_every_step(monkeypatch: pytest.MonkeyPatch, rssm: RSSM, first_step: int) -> None:
    """Reseed torch before every step of ``observe`` with a seed derived from the absolute time index.

    ``observe`` samples the posterior at every step, so a run over the suffix ``[k:]`` of a
    sequence would otherwise consume different random numbers than steps ``k:`` of a run over the whole
    sequence. Reseeding with ``1000 + absolute_step`` makes the noise of step ``t`` identical in both runs
    (same batch size, same tensor shapes) while keeping the real sampling code in play, so the two runs can
    be compared exactly.
    """
    original = RSSM._filter_step.__get__(rssm)  # the class method, not an earlier wrapper
    step = {"t": first_step}

    def wrapped(*args, **kwargs):
        torch.manual_seed(1000 + step["t"])
        step["t"] += 1
        return original(*args, **kwargs)

    monkeypatch.setattr(rssm, "_filter_step", wrapped)


def assert_states_close(a: dict, b: dict, **kw) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=lambda m, k=k: f"{k}: {m}", **kw)


# ------------------------------------------------------------------------------------------------ GRU
def test_gru_cell_update_bias():
    cell = GRUCell(3, 4, bias=True, update_bias=-1.0)
    nn.init.zeros_(cell.linear.weight)
    nn.init.zeros_(cell.linear.bias)
    h = torch.randn(5, 4)
    # all gate pre-activations 0: candidate tanh(0) = 0, update gate sigmoid(-1)
    torch.testing.assert_close(cell(torch.randn(5, 3), h), (1 - torch.sigmoid(torch.tensor(-1.0))) * h)
    assert isinstance(GRUCell(3, 4).norm, nn.LayerNorm) and GRUCell(3, 4).linear.bias is None


@pytest.mark.parametrize("norm", [True, False])
def test_gru_has_layernorm_in_every_generation(norm):
    """The official DreamerV2 cell has a LayerNorm (eps 1e-3) and a bias even where the network has no norm."""
    gru = RSSM(E, A, DETER, 8, STOCH, CLASSES, norm=norm).gru
    assert isinstance(gru.norm, nn.LayerNorm) and gru.norm.eps == 1e-3
    assert (gru.linear.bias is None) == norm


def test_gru_without_layernorm_checkpoint_is_refused_with_the_reason():
    rssm = RSSM(E, A, DETER, 8, STOCH, CLASSES, norm=False)
    old = {k: v for k, v in rssm.state_dict().items() if not k.startswith("gru.norm.")}
    with pytest.raises(ValueError, match="GRU has no LayerNorm.*cannot be converted"):
        rssm.load_state_dict(old)


# ------------------------------------------------------------------------------------------- shapes
@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_observe_imagine_shapes(classes):
    rssm = make(classes)
    stoch_flat = STOCH * classes if classes else STOCH
    assert rssm.stoch_flat == stoch_flat
    assert rssm.feat_dim == DETER + stoch_flat
    embed, actions = torch.randn(B, T, E), torch.randn(B, T, A)
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1
    post, prior = rssm.observe(embed, actions, is_first)
    assert post.keys() == {"deter", "stoch"} | stats_keys(rssm)
    assert prior.keys() == {"deter"} | stats_keys(rssm)  # observe's priors feed the KL only: no sample
    for s in (post, prior):
        assert s["deter"].shape == (B, T, DETER)
        if "stoch" in s:
            assert s["stoch"].shape == (B, T, stoch_flat)
        if classes:
            assert s["logits"].shape == (B, T, STOCH, CLASSES)
            if "stoch" not in s:
                continue
            # stoch is a concatenation of one-hot vectors
            onehots = s["stoch"].detach().reshape(B, T, STOCH, CLASSES)
            torch.testing.assert_close(onehots.sum(-1), torch.ones(B, T, STOCH))
            torch.testing.assert_close(onehots, onehots.round())
        else:
            assert s["mean"].shape == s["std"].shape == (B, T, STOCH)
            assert (s["std"] >= rssm.min_std).all()
    # posterior and prior share the deterministic state
    torch.testing.assert_close(post["deter"], prior["deter"])
    assert rssm.feat(post).shape == (B, T, rssm.feat_dim)
    torch.testing.assert_close(rssm.feat(post), torch.cat([post["deter"], post["stoch"]], -1))

    start = {k: v.reshape(B * T, *v.shape[2:]) for k, v in post.items()}
    calls = []

    def policy(state):
        calls.append(state["deter"].shape)
        return torch.tanh(state["deter"][:, :A])

    horizon = 4
    states, acts = rssm.imagine(policy, start, horizon)
    assert len(calls) == horizon + 1
    assert acts.shape == (B * T, horizon + 1, A)
    assert states["deter"].shape == (B * T, horizon + 1, DETER)
    assert states["stoch"].shape == (B * T, horizon + 1, stoch_flat)
    assert_states_close({k: v[:, 0] for k, v in states.items()}, start)
    # action t is the policy's output in state t
    torch.testing.assert_close(acts, torch.tanh(states["deter"][..., :A]))
    # imagined states depend on the actions
    states2, _ = rssm.imagine(lambda s: torch.zeros(s["deter"].shape[0], A) + 5.0, start, horizon)
    assert not torch.allclose(states2["deter"][:, 1], states["deter"][:, 1])


def test_gradients_reach_all_rssm_parameters():
    rssm = make()
    post, prior = rssm.observe(torch.randn(B, T, E), torch.randn(B, T, A), torch.ones(B, T))
    dyn, rep = rssm.kl(post, prior)
    (dyn.mean() + rep.mean() + rssm.feat(post).pow(2).mean()).backward()
    for name, p in rssm.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_observe_matches_obs_step_loop(classes):
    """``observe`` applies the prior head to all steps after the loop: each step's deter and prior statistics
    equal those of ``obs_step`` fed the same previous posterior, and ``img_step`` gives the same prior."""
    rssm = make(classes)
    embed, actions = torch.randn(B, T, E), torch.randn(B, T, A)
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1
    is_first[1, 2] = 1
    post, prior = rssm.observe(embed, actions, is_first)
    state = rssm.initial(B)
    for t in range(T):
        step_post, step_prior = rssm.obs_step(state, actions[:, t], embed[:, t], is_first[:, t])
        for key in ["deter", *stats_keys(rssm)]:
            torch.testing.assert_close(step_prior[key], prior[key][:, t])
        for key in stats_keys(rssm):  # the posterior statistics depend on deter and embed only
            torch.testing.assert_close(step_post[key], post[key][:, t])
        state = {k: v[:, t] for k, v in post.items()}  # continue from observe's own sample
    # prior statistics differ from posterior ones (the comparison above is not vacuous)
    key = sorted(stats_keys(rssm))[0]
    assert not torch.allclose(prior[key], post[key])


def test_obs_step_sample_false_is_deterministic():
    rssm = make()
    state = rssm.initial(B)
    a = rssm.obs_step(state, torch.randn(B, A), torch.randn(B, E), torch.zeros(B), sample=False)[0]
    b = rssm.obs_step(state, a["stoch"][:, :A] * 0 + 1, torch.randn(B, E), torch.zeros(B), sample=False)[0]
    # posterior stoch is the one-hot mode of the posterior logits
    mode = torch.nn.functional.one_hot(a["logits"].argmax(-1), CLASSES).float().reshape(B, -1)
    torch.testing.assert_close(a["stoch"].detach(), mode)
    assert b["stoch"].shape == a["stoch"].shape


# ------------------------------------------------------------------------------------------- is_first
@pytest.mark.parametrize("classes", [CLASSES, 0])
@pytest.mark.parametrize("learned_initial", [True, False])
def test_is_first_step_k_is_noise_free_reset(classes, learned_initial):
    """At the reset step the prior deter and the posterior statistics do not depend on any sample drawn
    at or before that step (state comes from ``initial``, action is zeroed), so no RNG control is needed."""
    rssm = make(classes, learned_initial=learned_initial)
    if learned_initial:
        with torch.no_grad():
            rssm.initial_deter.normal_()
    k = 3
    embed, actions = torch.randn(B, T, E), torch.randn(B, T, A)
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1
    is_first[:, k] = 1
    post, prior = rssm.observe(embed, actions, is_first)
    torch.manual_seed(123)  # different noise on purpose
    post_s, prior_s = rssm.observe(embed[:, k:], torch.randn(B, T - k, A), is_first[:, k:])
    for key in ["deter", *stats_keys(rssm)]:
        torch.testing.assert_close(post[key][:, k], post_s[key][:, 0])
        torch.testing.assert_close(prior[key][:, k], prior_s[key][:, 0])
    # without the reset, step k differs (so the comparison above is meaningful)
    is_first[:, k] = 0
    post_n, _ = rssm.observe(embed, actions, is_first)
    assert not torch.allclose(post_n["deter"][:, k], post["deter"][:, k])


@pytest.mark.parametrize("classes", [CLASSES, 0])
@pytest.mark.parametrize("learned_initial", [True, False])
def test_is_first_reset_equals_running_suffix(monkeypatch, classes, learned_initial):
    rssm = make(classes, learned_initial=learned_initial)
    if learned_initial:
        with torch.no_grad():
            rssm.initial_deter.normal_()
    k = 3
    embed, actions = torch.randn(B, T, E), torch.randn(B, T, A)
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1
    is_first[0, k] = 1  # only sequence 0 restarts at step k

    seed_every_step(monkeypatch, rssm, first_step=0)
    post, prior = rssm.observe(embed, actions, is_first)

    # suffix run over steps k.. with a fresh start. The first action is replaced by another value:
    # a reset zeroes it, so the result must not depend on it.
    seed_every_step(monkeypatch, rssm, first_step=k)
    sfx_actions = actions[:, k:].clone()
    sfx_actions[:, 0] = torch.randn(B, A) * 3
    sfx_first = torch.zeros(B, T - k)
    sfx_first[:, 0] = 1
    post_s, prior_s = rssm.observe(embed[:, k:], sfx_actions, sfx_first)
    assert_states_close({kk: v[0, k:] for kk, v in post.items()}, {kk: v[0] for kk, v in post_s.items()})
    assert_states_close({kk: v[0, k:] for kk, v in prior.items()}, {kk: v[0] for kk, v in prior_s.items()})

    # sequence 1 (no reset at k) is unaffected by sequence 0's reset: same as a run without it
    seed_every_step(monkeypatch, rssm, first_step=0)
    no_reset = is_first.clone()
    no_reset[0, k] = 0
    post_n, _ = rssm.observe(embed, actions, no_reset)
    assert_states_close({kk: v[1] for kk, v in post.items()}, {kk: v[1] for kk, v in post_n.items()})
    # ... and sequence 0 does change at k when it is not reset (the test can fail)
    assert not torch.allclose(post_n["deter"][0, k:], post["deter"][0, k:])


def test_reseeding_helper_reproduces_observe(monkeypatch):
    """Sanity check of the comparison method: two reseeded runs are identical, unseeded ones differ."""
    rssm = make()
    embed, actions, is_first = torch.randn(B, T, E), torch.randn(B, T, A), torch.zeros(B, T)
    a, _ = rssm.observe(embed, actions, is_first)
    b, _ = rssm.observe(embed, actions, is_first)
    assert not torch.equal(a["stoch"], b["stoch"])  # stoch really is sampled
    seed_every_step(monkeypatch, rssm, 0)
    c, _ = rssm.observe(embed, actions, is_first)
    seed_every_step(monkeypatch, rssm, 0)
    d, _ = rssm.observe(embed, actions, is_first)
    assert_states_close(c, d)


# ---------------------------------------------------------------------------------------- action-free
@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_action_free_rssm(classes):
    rssm = make(classes, action_dim=0)
    assert rssm.img_in[0].in_features == rssm.stoch_flat
    is_first = torch.zeros(B, T)
    is_first[:, 0] = 1
    post, prior = rssm.observe(torch.randn(B, T, E), None, is_first)
    assert post["deter"].shape == (B, T, DETER) and post["stoch"].shape == (B, T, rssm.stoch_flat)
    assert prior["deter"].shape == (B, T, DETER)
    start = {k: v[:, -1] for k, v in post.items()}
    states, acts = rssm.imagine(lambda s: torch.zeros(s["deter"].shape[0], 0), start, 3)
    assert states["deter"].shape == (B, 4, DETER) and acts.shape == (B, 4, 0)
    # a reset in the action-free model works too
    is_first[:, 3] = 1
    rssm.observe(torch.randn(B, T, E), None, is_first)


# ------------------------------------------------------------------------------------------------ KL
def _post_prior(rssm: RSSM):
    post, prior = rssm.observe(torch.randn(B, T, E), torch.randn(B, T, A), torch.ones(B, T))
    return post, prior


@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_kl_values(classes):
    rssm = make(classes)
    post, prior = _post_prior(rssm)
    dyn, rep = rssm.kl(post, prior)
    assert dyn.shape == rep.shape == (B, T)
    torch.testing.assert_close(dyn, rep)
    assert (dyn > 0).all()
    if classes:
        p = torch.distributions.Categorical(logits=unimix_logits(post["logits"], rssm.unimix))
        q = torch.distributions.Categorical(logits=unimix_logits(prior["logits"], rssm.unimix))
        ref = torch.distributions.kl_divergence(p, q).sum(-1)
    else:
        p = torch.distributions.Normal(post["mean"], post["std"])
        q = torch.distributions.Normal(prior["mean"], prior["std"])
        ref = torch.distributions.kl_divergence(p, q).sum(-1)
    torch.testing.assert_close(dyn, ref, rtol=1e-4, atol=1e-5)
    # KL of a distribution with itself is zero
    same_dyn, same_rep = rssm.kl(post, post)
    torch.testing.assert_close(same_dyn, torch.zeros(B, T), atol=1e-5, rtol=0)
    torch.testing.assert_close(same_rep, torch.zeros(B, T), atol=1e-5, rtol=0)


@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_kl_stop_gradients(classes):
    rssm = make(classes)
    keys = sorted(stats_keys(rssm))
    post = {k: torch.randn(B, T, STOCH, CLASSES) if classes else torch.randn(B, T, STOCH) for k in keys}
    prior = {k: torch.randn_like(v) for k, v in post.items()}
    if not classes:
        post["std"], prior["std"] = post["std"].exp(), prior["std"].exp()
    post = {k: v.requires_grad_(True) for k, v in post.items()}
    prior = {k: v.requires_grad_(True) for k, v in prior.items()}
    dyn, rep = rssm.kl(post, prior)
    g_dyn = torch.autograd.grad(dyn.sum(), [*post.values(), *prior.values()], allow_unused=True)
    g_rep = torch.autograd.grad(rep.sum(), [*post.values(), *prior.values()], allow_unused=True)
    n = len(keys)

    def is_zero(g):
        return g is None or torch.count_nonzero(g) == 0

    # dyn trains only the prior, rep only the posterior
    assert all(is_zero(g) for g in g_dyn[:n]) and all(not is_zero(g) for g in g_dyn[n:])
    assert all(not is_zero(g) for g in g_rep[:n]) and all(is_zero(g) for g in g_rep[n:])


# ---------------------------------------------------------------------------------------- initial state
def test_learned_initial_state():
    rssm = make(learned_initial=True)
    assert rssm.initial_deter.requires_grad
    with torch.no_grad():
        rssm.initial_deter.normal_()
    init = rssm.initial(3)
    torch.testing.assert_close(init["deter"], torch.tanh(rssm.initial_deter.detach()).expand(3, -1))
    # stoch is the (one-hot) mode of the prior predicted from that deter
    logits = rssm.img_out(init["deter"]).reshape(3, STOCH, CLASSES)
    torch.testing.assert_close(init["logits"], logits)
    mode = torch.nn.functional.one_hot(logits.argmax(-1), CLASSES).float().reshape(3, -1)
    torch.testing.assert_close(init["stoch"].detach(), mode)
    # d deter / d initial_deter is the tanh derivative
    (g,) = torch.autograd.grad(rssm.initial(1)["deter"].sum(), rssm.initial_deter)
    torch.testing.assert_close(g, 1 - torch.tanh(rssm.initial_deter.detach()) ** 2)
    # the initial state is trained through observe
    post, _ = rssm.observe(torch.randn(B, T, E), torch.randn(B, T, A), torch.ones(B, T))
    post["deter"].sum().backward()
    assert rssm.initial_deter.grad is not None and rssm.initial_deter.grad.abs().sum() > 0


@pytest.mark.parametrize("classes", [CLASSES, 0])
def test_zeros_initial_state(classes):
    rssm = make(classes, learned_initial=False)
    assert not rssm.initial_deter.requires_grad
    with torch.no_grad():
        rssm.initial_deter.normal_()  # must have no effect
    init = rssm.initial(3)
    assert torch.count_nonzero(init["deter"]) == 0 and torch.count_nonzero(init["stoch"]) == 0
    assert init["deter"].shape == (3, DETER) and init["stoch"].shape == (3, rssm.stoch_flat)
    if classes:
        assert torch.count_nonzero(init["logits"]) == 0 and init["logits"].shape == (3, STOCH, CLASSES)
    else:
        assert torch.count_nonzero(init["mean"]) == 0
        torch.testing.assert_close(init["std"], torch.full((3, STOCH), 0.6931472 + rssm.min_std))


def test_explicit_start_state_is_used():
    rssm = make()
    embed, actions, is_first = torch.randn(B, T, E), torch.randn(B, T, A), torch.zeros(B, T)
    start = rssm.initial(B)
    start = {**start, "deter": start["deter"] + 1.0}
    torch.manual_seed(5)
    a, _ = rssm.observe(embed, actions, is_first, state=start)
    torch.manual_seed(5)
    b, _ = rssm.observe(embed, actions, is_first)
    assert not torch.allclose(a["deter"][:, 0], b["deter"][:, 0])
    # but is_first at step 0 overrides the given state
    torch.manual_seed(5)
    c, _ = rssm.observe(embed, actions, torch.ones(B, T), state=start)
    torch.manual_seed(5)
    d, _ = rssm.observe(embed, actions, torch.ones(B, T))
    assert_states_close(c, d)
