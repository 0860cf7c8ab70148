"""Tests for :mod:`sb3_worldmodels.common.buffers` (SequenceReplayBuffer)."""

from __future__ import annotations

import gc
import os
import pickle
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples

from sb3_worldmodels.common.buffers import SequenceReplayBuffer, SequenceSamples

VEC_SPACE = spaces.Box(-np.inf, np.inf, (2,), np.float32)  # [row counter, env id]
ACT_SPACE = spaces.Box(-1e9, 1e9, (1,), np.float32)


class FakeVecDriver:
    """Feeds a buffer like SB3's ``_store_transition`` does, with observation = per-env row counter.

    Every stored row of env ``i`` gets counter value ``v`` = its insertion index within env ``i``, so
    consecutive rows in insertion time have consecutive values. The action taken from a row with value
    ``v`` is ``v + 0.5`` and the reward ``10 v`` (Discrete actions: ``v % n``).
    """

    def __init__(
        self,
        buffer: SequenceReplayBuffer,
        ep_len: Callable[[int, int], int],
        truncated: Callable[[int, int], bool] = lambda env, ep: False,
        make_obs: Callable[[np.ndarray], Any] | None = None,
        discrete_actions: int | None = None,
    ) -> None:
        self.buf = buffer
        self.n = buffer.n_envs
        self.ep_len, self.truncated = ep_len, truncated
        self.make_obs = make_obs or (lambda v: np.stack([v, np.arange(self.n)], axis=1).astype(np.float32))
        self.discrete_actions = discrete_actions
        self.cur = np.zeros(self.n)  # counter value of the current obs of each env
        self.t_in_ep = np.zeros(self.n, dtype=int)
        self.ep = np.zeros(self.n, dtype=int)

    def action_of(self, v: np.ndarray) -> np.ndarray:
        if self.discrete_actions is not None:
            return (v % self.discrete_actions).astype(np.int64)
        return (v + 0.5).reshape(self.n, 1).astype(np.float32)

    def step(self, n_steps: int = 1) -> None:
        for _ in range(n_steps):
            nxt = self.cur + 1
            done = np.array([self.t_in_ep[i] + 1 == self.ep_len(i, self.ep[i]) for i in range(self.n)])
            infos: list[dict[str, Any]] = [{} for _ in range(self.n)]
            for i in np.flatnonzero(done):
                infos[i]["TimeLimit.truncated"] = self.truncated(i, self.ep[i])
                infos[i]["terminal_observation"] = "unused here"
            self.buf.add(
                self.make_obs(self.cur), self.make_obs(nxt), self.action_of(self.cur), 10 * self.cur, done, infos
            )
            self.t_in_ep += 1
            self.t_in_ep[done] = 0
            self.ep[done] += 1
            self.cur = np.where(done, nxt + 1, nxt)


def chronological_rows(buf: SequenceReplayBuffer, env: int) -> np.ndarray:
    """Ring indices of env ``env``'s stored rows, oldest first."""
    if buf.env_full[env]:
        return (buf.env_pos[env] + np.arange(buf.buffer_size)) % buf.buffer_size
    return np.arange(buf.env_pos[env])


def check_row_invariants(buf: SequenceReplayBuffer, env: int, key: str | None = None) -> None:
    """prev_action / reward of each row are those of the previous row (zeros on first rows)."""
    rows = chronological_rows(buf, env)
    obs = buf.observations if key is None else buf.observations[key]
    values = obs[rows, env].reshape(len(rows), -1)[:, 0].astype(np.float64)
    assert np.all(np.diff(values) == 1)
    first = buf.is_first[rows, env]
    prev_a, rew = buf.prev_actions[rows, env, 0], buf.rewards[rows, env]
    np.testing.assert_array_equal(prev_a[first], 0)
    np.testing.assert_array_equal(rew[first], 0)
    np.testing.assert_allclose(prev_a[~first], values[~first] - 1 + 0.5)
    np.testing.assert_allclose(rew[~first], 10 * (values[~first] - 1))
    # an episode start (except the oldest row) always follows an episode end
    later = np.arange(1, len(rows))
    np.testing.assert_array_equal(buf.is_last[rows[later - 1], env], first[later])
    # terminal implies last
    assert not np.any(buf.is_terminal[rows, env] & ~buf.is_last[rows, env])


def make_buffer(size: int, n_envs: int = 1, **kwargs: Any) -> SequenceReplayBuffer:
    return SequenceReplayBuffer(size, VEC_SPACE, ACT_SPACE, device="cpu", n_envs=n_envs, **kwargs)


# --------------------------------------------------------------------------- rows and flags


def test_hand_written_episode_rows_and_flags() -> None:
    buf = make_buffer(20)
    # episode 0: 3 steps, terminated; episode 1: 2 steps, truncated by a time limit; episode 2: running
    drv = FakeVecDriver(buf, ep_len=lambda e, ep: [3, 2, 100][ep], truncated=lambda e, ep: ep == 1)
    drv.step(3 + 2 + 2)
    n = buf.env_pos[0]
    assert n == (3 + 1) + (2 + 1) + 2 == buf.size() == buf.pos
    np.testing.assert_array_equal(buf.observations[:n, 0, 0], np.arange(n))
    np.testing.assert_array_equal(buf.is_first[:n, 0], [1, 0, 0, 0, 1, 0, 0, 1, 0])
    np.testing.assert_array_equal(buf.is_last[:n, 0], [0, 0, 0, 1, 0, 0, 1, 0, 0])
    np.testing.assert_array_equal(buf.is_terminal[:n, 0], [0, 0, 0, 1, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(buf.prev_actions[:n, 0, 0], [0, 0.5, 1.5, 2.5, 0, 4.5, 5.5, 0, 7.5])
    np.testing.assert_array_equal(buf.rewards[:n, 0], [0, 0, 10, 20, 0, 40, 50, 0, 70])
    # pending state: last action/reward from obs value 8, continuing episode
    np.testing.assert_array_equal(buf.pending_action, [[8.5]])
    np.testing.assert_array_equal(buf.pending_reward, [80.0])
    assert not buf.pending_first[0]
    check_row_invariants(buf, 0)


def test_no_timeout_handling_makes_truncation_terminal() -> None:
    buf = make_buffer(20, handle_timeout_termination=False)
    FakeVecDriver(buf, ep_len=lambda e, ep: 2, truncated=lambda e, ep: True).step(2)
    np.testing.assert_array_equal(buf.is_terminal[:3, 0], [0, 0, 1])
    np.testing.assert_array_equal(buf.is_last[:3, 0], [0, 0, 1])


def test_optimize_memory_usage_rejected() -> None:
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        make_buffer(10, optimize_memory_usage=True)


def test_reset() -> None:
    buf = make_buffer(10)
    FakeVecDriver(buf, ep_len=lambda e, ep: 4).step(30)
    assert buf.full and buf.size() == 10
    buf.reset()
    assert buf.size() == 0 and buf.pos == 0 and not buf.full and buf.pending_first.all()
    FakeVecDriver(buf, ep_len=lambda e, ep: 4).step(3)
    assert buf.size() == 3 and buf.is_first[0, 0]


# --------------------------------------------------------------------------- sequence sampling


def test_windows_never_cross_write_head_and_wrap_around() -> None:
    np.random.seed(0)
    rng = np.random.default_rng(1)
    lens = rng.integers(1, 12, size=1000)
    buf = make_buffer(37)
    FakeVecDriver(buf, ep_len=lambda e, ep: int(lens[ep]), truncated=lambda e, ep: ep % 2 == 1).step(200)
    assert buf.full and buf.size() == 37 and 0 < buf.pos < 37
    check_row_invariants(buf, 0)
    T = 10
    s = buf.sample_sequences(3000, T)
    v = s.observations[..., 0].numpy()
    assert s.observations.shape == (3000, T, 2) and s.observations.dtype == th.float32
    assert np.all(np.diff(v, axis=1) == 1), "windows must be consecutive in insertion time"
    newest = buf.observations[buf.pos - 1, 0, 0]
    oldest = buf.observations[buf.pos, 0, 0]
    assert v.min() == oldest and v.max() == newest  # whole valid range reachable
    # windows that wrap around the ring end (ring row N-1 followed by ring row 0)
    at_end = buf.observations[buf.buffer_size - 1, 0, 0]
    assert np.any((v[:, :-1] == at_end) & (v[:, 1:] == at_end + 1))
    # all valid starts are drawn (uniform over 37 - T + 1 starts)
    assert len(np.unique(v[:, 0])) == 37 - T + 1
    # flags aligned with observations
    prev = s.prev_actions[..., 0].numpy()
    first = s.is_first.numpy().astype(bool)
    np.testing.assert_allclose(prev[~first], v[~first] - 0.5)
    np.testing.assert_allclose(s.rewards.numpy()[~first], 10 * (v[~first] - 1))


def test_is_first_forced_at_window_start() -> None:
    np.random.seed(0)
    buf = make_buffer(100)
    FakeVecDriver(buf, ep_len=lambda e, ep: 1000).step(50)  # a single long episode
    s = buf.sample_sequences(64, 8)
    first = s.is_first.numpy()
    assert first.dtype == np.float32 and s.is_terminal.dtype == th.float32 and s.is_last.dtype == th.float32
    np.testing.assert_array_equal(first[:, 0], 1)
    starts_at_reset = s.observations[:, 0, 0].numpy() == 0
    np.testing.assert_array_equal(first[:, 1:], 0)
    assert not np.all(starts_at_reset)
    assert buf.is_first.sum() == 1  # storage is not modified


def test_too_little_data_raises_clear_error() -> None:
    buf = make_buffer(100, n_envs=2)
    with pytest.raises(ValueError, match="learning_starts"):
        buf.sample_sequences(4, 8)
    FakeVecDriver(buf, ep_len=lambda e, ep: 1000).step(5)
    with pytest.raises(ValueError, match=r"\[5, 5\] rows per env.*sequence_length"):
        buf.sample_sequences(4, 8)
    with pytest.raises(ValueError, match="sequence_length"):
        buf.sample_sequences(4, 51)  # longer than the per-env capacity


def test_n_envs_2_different_episode_ends() -> None:
    np.random.seed(0)
    buf = make_buffer(2 * 40, n_envs=2)
    assert buf.buffer_size == 40
    drv = FakeVecDriver(buf, ep_len=lambda e, ep: [3, 7][e] + ep % 3, truncated=lambda e, ep: e == 1)
    drv.step(20)
    assert buf.env_pos[0] != buf.env_pos[1]
    assert buf.size() == int(buf.env_pos.sum()) and buf.pos == buf.env_pos[0]
    for e in range(2):
        check_row_invariants(buf, e)
        rows = chronological_rows(buf, e)
        assert buf.is_terminal[rows, e].any() == (e == 0)
    drv.step(100)  # both wrap around, at different times
    assert buf.env_full.all()
    for e in range(2):
        check_row_invariants(buf, e)
    s = buf.sample_sequences(2000, 12)
    v, env_id = s.observations[..., 0].numpy(), s.observations[..., 1].numpy()
    assert np.all(np.diff(v, axis=1) == 1)
    assert np.all(env_id == env_id[:, :1])  # a window stays in one env
    frac_env0 = (env_id[:, 0] == 0).mean()
    assert 0.4 < frac_env0 < 0.6  # both full: equal number of valid starts


def test_env_choice_proportional_to_valid_starts() -> None:
    np.random.seed(0)
    buf = make_buffer(2 * 200, n_envs=2)
    FakeVecDriver(buf, ep_len=lambda e, ep: [2, 1000][e]).step(40)
    rows = buf._rows_per_env()
    assert rows.tolist() == [60, 40]  # env 0 stores an extra row per finished episode
    T = 11
    s = buf.sample_sequences(20000, T)
    frac_env0 = (s.observations[:, 0, 1].numpy() == 0).mean()
    assert abs(frac_env0 - 50 / 80) < 0.02
    assert np.all(np.diff(s.observations[..., 0].numpy(), axis=1) == 1)


def test_dict_observations_image_and_vector() -> None:
    np.random.seed(0)
    obs_space = spaces.Dict(
        {
            "image": spaces.Box(0, 255, (8, 8, 3), np.uint8),
            "vec": spaces.Box(-np.inf, np.inf, (3,), np.float64),
        }
    )
    buf = SequenceReplayBuffer(60, obs_space, ACT_SPACE, device="cpu", n_envs=2)
    assert buf.observations["image"].dtype == np.uint8 and buf.observations["vec"].dtype == np.float32

    def make_obs(v: np.ndarray) -> dict[str, np.ndarray]:
        img = np.broadcast_to((v % 256).astype(np.uint8)[:, None, None, None], (2, 8, 8, 3)).copy()
        return {"image": img, "vec": np.stack([v, v, v], 1).astype(np.float64)}

    drv = FakeVecDriver(buf, ep_len=lambda e, ep: [4, 6][e], make_obs=make_obs)
    drv.step(50)
    check_row_invariants(buf, 0, key="vec")
    s = buf.sample_sequences(16, 5)
    assert isinstance(s.observations, dict)
    img, vec = s.observations["image"], s.observations["vec"]
    assert img.dtype == th.uint8 and img.shape == (16, 5, 8, 8, 3)
    assert vec.dtype == th.float32 and vec.shape == (16, 5, 3)
    np.testing.assert_array_equal(img[:, :, 0, 0, 0].numpy(), vec[..., 0].numpy() % 256)
    tr = buf.sample(32)
    assert isinstance(tr, DictReplayBufferSamples)
    np.testing.assert_array_equal(tr.next_observations["vec"].numpy(), tr.observations["vec"].numpy() + 1)
    assert tr.observations["image"].dtype == th.uint8


def test_discrete_actions_and_discrete_obs() -> None:
    np.random.seed(0)
    buf = SequenceReplayBuffer(50, spaces.Discrete(1000), spaces.Discrete(4), device="cpu", n_envs=2)
    assert buf.action_dim == 1 and buf.prev_actions.shape == (25, 2, 1)
    drv = FakeVecDriver(buf, ep_len=lambda e, ep: 5, make_obs=lambda v: v.astype(np.int64), discrete_actions=4)
    drv.step(12)
    assert buf.observations.shape == (25, 2, 1)
    s = buf.sample_sequences(8, 6)
    assert s.prev_actions.shape == (8, 6, 1) and s.prev_actions.dtype == th.float32
    assert s.observations.shape == (8, 6, 1) and s.observations.dtype == th.float32
    v, a = s.observations[..., 0].numpy(), s.prev_actions[..., 0].numpy()
    first = s.is_first.numpy().astype(bool)
    np.testing.assert_array_equal(a[~first], (v[~first] - 1) % 4)
    tr = buf.sample(16)
    np.testing.assert_array_equal(tr.actions[:, 0].numpy(), tr.observations[:, 0].numpy() % 4)


def test_multidim_box_actions() -> None:
    buf = SequenceReplayBuffer(20, VEC_SPACE, spaces.Box(-1, 1, (2, 3), np.float64), device="cpu")
    assert buf.action_dim == 6 and buf.prev_actions.dtype == np.float32
    act = np.arange(6, dtype=np.float64).reshape(1, 2, 3)
    obs = np.zeros((1, 2), np.float32)
    buf.add(obs, obs + 1, act, np.array([1.0]), np.array([False]), [{}])
    buf.add(obs + 1, obs + 2, act, np.array([1.0]), np.array([False]), [{}])
    s = buf.sample_sequences(2, 2)
    assert s.prev_actions.shape == (2, 2, 6)
    np.testing.assert_array_equal(s.prev_actions[:, 1].numpy(), np.tile(np.arange(6), (2, 1)))


# --------------------------------------------------------------------------- single transitions


def test_sample_transitions_consistent() -> None:
    np.random.seed(0)
    buf = make_buffer(2 * 30, n_envs=2)
    FakeVecDriver(buf, ep_len=lambda e, ep: [1, 3, 4][ep % 3] + e, truncated=lambda e, ep: ep % 2 == 0).step(80)
    tr = buf.sample(4000)
    assert isinstance(tr, ReplayBufferSamples)
    obs, nxt = tr.observations.numpy(), tr.next_observations.numpy()
    assert tr.dones.shape == (4000, 1) and tr.rewards.shape == (4000, 1) and tr.actions.shape == (4000, 1)
    np.testing.assert_array_equal(nxt[:, 0], obs[:, 0] + 1)  # successor row in insertion time
    np.testing.assert_array_equal(nxt[:, 1], obs[:, 1])  # same env
    np.testing.assert_allclose(tr.actions[:, 0].numpy(), obs[:, 0] + 0.5)
    np.testing.assert_allclose(tr.rewards[:, 0].numpy(), 10 * obs[:, 0])
    # next obs is never the first row of an episode; dones are terminations only
    for e in range(2):
        rows = chronological_rows(buf, e)
        vals = buf.observations[rows, e, 0]
        firsts, terms = set(vals[buf.is_first[rows, e]]), set(vals[buf.is_terminal[rows, e]])
        sel = obs[:, 1] == e
        assert not firsts & set(nxt[sel, 0])
        expected_done = np.array([x in terms for x in nxt[sel, 0]])
        np.testing.assert_array_equal(tr.dones[sel, 0].numpy().astype(bool), expected_done)
        assert expected_done.any()
    # the newest row is never an obs (its successor is not stored), the oldest never a next obs
    for e in range(2):
        newest = buf.observations[(buf.env_pos[e] - 1) % buf.buffer_size, e, 0]
        oldest = buf.observations[buf.env_pos[e], e, 0]  # both envs are full
        sel = obs[:, 1] == e
        assert buf.env_full[e] and not np.any(obs[sel, 0] == newest) and not np.any(nxt[sel, 0] == oldest)


def test_sample_transitions_pathological_one_step_episodes() -> None:
    np.random.seed(0)
    buf = make_buffer(40)
    FakeVecDriver(buf, ep_len=lambda e, ep: 1).step(30)  # rows alternate reset / terminal
    tr = buf.sample(500)
    np.testing.assert_array_equal(tr.dones.numpy(), 1)
    np.testing.assert_array_equal(tr.next_observations[:, 0].numpy(), tr.observations[:, 0].numpy() + 1)
    buf2 = make_buffer(40)
    with pytest.raises(ValueError, match="learning_starts"):
        buf2.sample(4)


# --------------------------------------------------------------------------- discontinuities


def test_discontinuity_detection_and_truncate_last_trajectory() -> None:
    buf = make_buffer(20)
    obs = np.zeros((1, 2), np.float32)
    buf.add(obs, obs + 1, np.array([[0.5]]), np.array([0.0]), np.array([False]), [{}])
    with pytest.warns(UserWarning, match="does not continue"):
        # env was reset outside the buffer: obs 7 instead of the expected 1
        buf.add(obs + 7, obs + 8, np.array([[7.5]]), np.array([70.0]), np.array([False]), [{}])
    np.testing.assert_array_equal(buf.is_last[:2, 0], [1, 0])
    np.testing.assert_array_equal(buf.is_first[:2, 0], [1, 1])
    np.testing.assert_array_equal(buf.is_terminal[:2, 0], [0, 0])
    np.testing.assert_array_equal(buf.prev_actions[:2, 0, 0], [0, 0])
    buf.truncate_last_trajectory()
    assert buf.is_last[1, 0] and buf.pending_first[0]
    buf.add(obs + 20, obs + 21, np.array([[20.5]]), np.array([0.0]), np.array([False]), [{}])
    assert buf.is_first[2, 0] and buf.prev_actions[2, 0, 0] == 0


# --------------------------------------------------------------------------- pickling / memmap


def assert_buffers_equal(a: SequenceReplayBuffer, b: SequenceReplayBuffer) -> None:
    obs_a = a.observations if isinstance(a.observations, dict) else {"o": a.observations}
    obs_b = b.observations if isinstance(b.observations, dict) else {"o": b.observations}
    assert obs_a.keys() == obs_b.keys()
    for k in obs_a:
        np.testing.assert_array_equal(np.asarray(obs_a[k]), np.asarray(obs_b[k]))
        assert obs_a[k].dtype == obs_b[k].dtype
    for name in ["prev_actions", "rewards", "is_first", "is_terminal", "is_last", "env_pos", "env_full"]:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for name in ["pending_action", "pending_reward", "pending_first", "pending_next_valid"]:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    for k in a.pending_next_obs:
        np.testing.assert_array_equal(a.pending_next_obs[k], b.pending_next_obs[k])
    assert (a.pos, a.full, a.buffer_size, a.n_envs) == (b.pos, b.full, b.buffer_size, b.n_envs)


def test_in_memory_pickle_round_trip_and_resume() -> None:
    buf = make_buffer(2 * 25, n_envs=2)
    drv = FakeVecDriver(buf, ep_len=lambda e, ep: 4 + e)
    drv.step(17)
    buf2 = pickle.loads(pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL))
    assert_buffers_equal(buf, buf2)
    assert not buf2.is_memmap
    # both continue identically from the same env state
    drv2 = FakeVecDriver(buf2, ep_len=lambda e, ep: 4 + e)
    drv2.cur, drv2.t_in_ep, drv2.ep = drv.cur.copy(), drv.t_in_ep.copy(), drv.ep.copy()
    drv.step(23)
    drv2.step(23)
    assert_buffers_equal(buf, buf2)


@pytest.mark.parametrize("memmap", [False, True])
def test_pickle_holds_written_rows_only(tmp_path: Any, memmap: bool) -> None:
    """A buffer that has not wrapped around pickles in proportion to its content, not its capacity, and comes
    back at full capacity: equal arrays, then identical rows written past the old fill level and the wrap-around."""
    capacity = 2 * 5_000
    buf = make_buffer(capacity, n_envs=2, memmap_dir=tmp_path / "mm" if memmap else None)
    drv = FakeVecDriver(buf, ep_len=lambda e, ep: 4 + e)  # episode ends add rows: the envs fill unevenly
    drv.step(30)
    assert buf.env_pos[0] != buf.env_pos[1]
    blob = pickle.dumps(buf, protocol=pickle.HIGHEST_PROTOCOL)
    full_nbytes = sum(v.nbytes for v in buf._obs_store.values()) + buf.prev_actions.nbytes + buf.rewards.nbytes
    assert len(blob) < full_nbytes / 20  # ~37 of the 5,000 rows per env are written
    buf2 = pickle.loads(blob)
    assert buf2.observations.shape == buf.observations.shape and buf2.rewards.shape == buf.rewards.shape
    assert_buffers_equal(buf, buf2)
    drv2 = FakeVecDriver(buf2, ep_len=lambda e, ep: 4 + e)
    drv2.cur, drv2.t_in_ep, drv2.ep = drv.cur.copy(), drv.t_in_ep.copy(), drv.ep.copy()
    drv.step(buf.buffer_size)  # past the capacity: both wrap around
    drv2.step(buf.buffer_size)
    assert buf2.env_full.all()
    assert_buffers_equal(buf, buf2)


def test_memmap_mode(tmp_path: Any) -> None:
    np.random.seed(0)
    obs_space = spaces.Dict(
        {"image": spaces.Box(0, 255, (4, 4, 3), np.uint8), "vec/x": spaces.Box(-np.inf, np.inf, (2,), np.float32)}
    )

    def make_obs(v: np.ndarray) -> dict[str, np.ndarray]:
        img = np.broadcast_to((v % 256).astype(np.uint8)[:, None, None, None], (2, 4, 4, 3)).copy()
        return {"image": img, "vec/x": np.stack([v, np.arange(2)], 1).astype(np.float32)}

    mdir = tmp_path / "mm"
    bufs = [
        SequenceReplayBuffer(40, obs_space, ACT_SPACE, device="cpu", n_envs=2, memmap_dir=d) for d in (None, mdir)
    ]
    mem, mm = bufs
    assert mm.is_memmap and isinstance(mm.observations["image"], np.memmap)
    files = sorted(os.listdir(mdir))
    assert len(files) == 2 and all(f.endswith(".npy") for f in files)
    drivers = [FakeVecDriver(b, ep_len=lambda e, ep: 3 + 2 * e, make_obs=make_obs) for b in bufs]
    for d in drivers:
        d.step(31)
    assert_buffers_equal(mem, mm)
    np.random.seed(3)
    s1 = mem.sample_sequences(8, 5)
    np.random.seed(3)
    s2 = mm.sample_sequences(8, 5)
    for k in s1.observations:
        assert th.equal(s1.observations[k], s2.observations[k])
    assert th.equal(s1.is_first, s2.is_first)

    # pickle round trip: data in the pickle, new memmap files in the same directory
    blob = pickle.dumps(mm, protocol=pickle.HIGHEST_PROTOCOL)
    assert len(blob) > mm.observations["image"].nbytes
    mm2 = pickle.loads(blob)
    assert mm2.memmap_dir == os.fspath(mdir) and isinstance(mm2.observations["image"], np.memmap)
    assert len(os.listdir(mdir)) == 4
    assert_buffers_equal(mm, mm2)
    # resume: both continue identically
    drivers[1].step(9)
    d2 = FakeVecDriver(mm2, ep_len=lambda e, ep: 3 + 2 * e, make_obs=make_obs)
    d2.cur, d2.t_in_ep, d2.ep = drivers[0].cur.copy(), drivers[0].t_in_ep.copy(), drivers[0].ep.copy()
    d2.step(9)
    assert_buffers_equal(mm, mm2)
    # files are removed when the buffer is garbage-collected
    del mm2, d2
    gc.collect()
    assert len(os.listdir(mdir)) == 2

    # unwritable / impossible memmap_dir on load: falls back to a new temporary directory
    blob = pickle.dumps(mm)
    for f in os.listdir(mdir):
        os.remove(mdir / f)
    mdir.rmdir()
    mdir.write_text("not a directory")
    with pytest.warns(UserWarning, match="not writable"):
        mm3 = pickle.loads(blob)
    assert mm3.memmap_dir != os.fspath(mdir) and os.path.isdir(mm3.memmap_dir)
    assert_buffers_equal(mm, mm3)
    tmp_dir = mm3.memmap_dir
    del mm3
    gc.collect()
    assert not os.path.exists(tmp_dir)


# --------------------------------------------------------------------------- memory


def test_nbytes_per_step_64x64x3() -> None:
    img = spaces.Box(0, 255, (64, 64, 3), np.uint8)
    for act in (spaces.Box(-1, 1, (1,), np.float32), spaces.Box(-1, 1, (6,), np.float32)):
        buf = SequenceReplayBuffer(10, img, act, device="cpu")
        assert buf.nbytes_per_step <= 12.5 * 1000
        assert buf.nbytes_per_step == 64 * 64 * 3 + 4 * act.shape[0] + 4 + 3
        assert not hasattr(buf, "next_observations")


# --------------------------------------------------------------------------- SB3 integration


def test_sb3_sac_round_trip(tmp_path: Any) -> None:
    from stable_baselines3 import SAC

    kwargs: dict[str, Any] = dict(
        replay_buffer_class=SequenceReplayBuffer,
        learning_starts=50,
        buffer_size=1000,
        batch_size=32,
        train_freq=4,  # fewer gradient steps: the test is about the buffer, keep it fast
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
        device="cpu",
    )
    model = SAC("MlpPolicy", "Pendulum-v1", **kwargs)
    model.learn(252)  # Pendulum truncates at 200 steps: one truncated episode + a running one
    buf = model.replay_buffer
    assert isinstance(buf, SequenceReplayBuffer)
    assert buf.size() == 253 and buf.is_last.sum() == 1 and buf.is_terminal.sum() == 0
    assert buf.is_first[[0, 201], 0].all() and not buf.pending_first[0]
    # stored rows continue each other: obs of row t+1 is the next_obs of row t (checked via sample())
    path = tmp_path / "rb.pkl"
    model.save_replay_buffer(path)
    model2 = SAC("MlpPolicy", "Pendulum-v1", **kwargs)
    model2.load_replay_buffer(path)
    assert isinstance(model2.replay_buffer, SequenceReplayBuffer)
    assert_buffers_equal(buf, model2.replay_buffer)
    # the loaded buffer is consumable by SB3 (SAC.train calls sample())
    with pytest.warns(UserWarning, match="does not continue"):
        model2.learn(60)  # fresh env reset: the buffer closes the stored episode as truncated
    assert model2.replay_buffer.size() == 253 + 60
    assert model2.replay_buffer.is_last[252, 0] and model2.replay_buffer.is_first[253, 0]
    s = model2.replay_buffer.sample_sequences(4, 16)
    assert s.observations.shape == (4, 16, 3)


def test_sb3_dqn_discrete_actions() -> None:
    from stable_baselines3 import DQN

    model = DQN(
        "MlpPolicy",
        "CartPole-v1",
        replay_buffer_class=SequenceReplayBuffer,
        learning_starts=50,
        buffer_size=500,
        batch_size=16,
        policy_kwargs=dict(net_arch=[16]),
        seed=0,
        device="cpu",
    )
    model.learn(150)
    buf = model.replay_buffer
    assert buf.prev_actions.dtype == np.int64 and buf.is_terminal.sum() >= 1
    s = buf.sample_sequences(4, 8)
    assert isinstance(s, SequenceSamples) and s.prev_actions.shape == (4, 8, 1)


def test_vec_normalize_is_applied() -> None:
    import gymnasium as gym
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    venv = VecNormalize(DummyVecEnv([lambda: gym.make("Pendulum-v1")]), gamma=0.9)
    venv.reset()
    for _ in range(20):
        venv.step(np.zeros((1, 1), np.float32))
    buf = SequenceReplayBuffer(100, spaces.Box(-np.inf, np.inf, (3,), np.float32), ACT_SPACE, device="cpu")
    obs = np.zeros((1, 3), np.float32)
    for i in range(12):
        buf.add(obs + i, obs + i + 1, np.array([[0.0]]), np.array([float(i)]), np.array([False]), [{}])
    np.random.seed(0)
    s = buf.sample_sequences(4, 6, env=venv)
    raw = s.observations.numpy()
    np.random.seed(0)
    s_raw = buf.sample_sequences(4, 6)
    np.testing.assert_allclose(raw, venv.normalize_obs(s_raw.observations.numpy()), rtol=1e-6)
    np.testing.assert_allclose(s.rewards.numpy(), venv.normalize_reward(s_raw.rewards.numpy()), rtol=1e-6)
    assert s.observations.dtype == th.float32 and s.rewards.dtype == th.float32
    tr = buf.sample(8, env=venv)
    assert tr.observations.dtype == th.float32 and tr.rewards.dtype == th.float32


def test_memmap_release_pages_keeps_data(tmp_path) -> None:  # noqa: ANN001
    """Releasing the mapped pages (done automatically to keep RSS flat) loses no data."""
    from sb3_worldmodels.common import buffers as buffers_module

    obs_space = spaces.Box(0, 255, (3, 8, 8), np.uint8)
    act_space = spaces.Box(-1, 1, (2,), np.float32)
    buf = SequenceReplayBuffer(64, obs_space, act_space, device="cpu", memmap_dir=str(tmp_path))
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (41, 1, 3, 8, 8), dtype=np.uint8)
    for t in range(40):
        buf.add(frames[t], frames[t + 1], np.zeros((1, 2), np.float32), np.zeros(1, np.float32), np.zeros(1, bool), [{}])
    before = np.array(buf.observations[:40])
    buf.release_memmap_pages()
    np.testing.assert_array_equal(np.array(buf.observations[:40]), before)
    np.testing.assert_array_equal(before[:, 0], frames[:40, 0])
    assert buffers_module.MEMMAP_RELEASE_ROWS > 0


def test_unsupported_spaces_and_flat_indices_are_refused() -> None:
    """Nested / unknown observation spaces and SB3's flat-index sampling get clear errors."""
    act = spaces.Box(-1, 1, (1,), np.float32)
    nested = spaces.Dict(a=spaces.Dict(b=spaces.Box(-1, 1, (2,))))
    with pytest.raises(ValueError, match="FlattenObservation"):
        SequenceReplayBuffer(10, nested, act, device="cpu")
    buf = SequenceReplayBuffer(10, spaces.Box(-1, 1, (2,)), act, device="cpu")
    with pytest.raises(TypeError, match="sample"):
        buf._get_samples(np.array([0]))
