"""Sequence replay buffer for world-model agents (Dreamer convention), usable as an SB3 replay buffer.

Storage layout: every *row* holds exactly one observation together with the quantities that led to it::

    row t of env i:  obs_t, prev_action = a_{t-1}, reward = r_{t-1}, is_first, is_terminal, is_last

``is_first`` marks a reset observation (``prev_action`` and ``reward`` are zero there), ``is_terminal`` a
state in which the episode *terminated* (not a time-limit truncation) and ``is_last`` the final observation
of an episode (terminal or truncated).  Because SB3 hands over the terminal observation of a finished
episode in ``next_obs`` (the vectorised env has already reset), a finished episode produces one extra row,
so every env keeps its own write position and ``full`` flag.

:class:`SequenceReplayBuffer` subclasses SB3's :class:`~stable_baselines3.common.buffers.ReplayBuffer`
so it can be passed as ``replay_buffer_class`` to any ``OffPolicyAlgorithm``; it offers both
:meth:`SequenceReplayBuffer.sample_sequences` (windows of ``T`` consecutive rows for world-model training)
and SB3's single-transition :meth:`SequenceReplayBuffer.sample`.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import re
import shutil
import tempfile
import uuid
import warnings
import weakref
from typing import Any, NamedTuple

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.buffers import BaseBuffer, ReplayBuffer
from stable_baselines3.common.preprocessing import is_image_space
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples
from stable_baselines3.common.vec_env import VecNormalize

try:  # Check memory used by the replay buffer when possible (same as SB3)
    import psutil
except ImportError:  # pragma: no cover
    psutil = None

__all__ = ["SequenceReplayBuffer", "SequenceSamples"]

#: Key used internally for a non-Dict observation space.
_SINGLE_KEY = "observation"


class SequenceSamples(NamedTuple):
    """A batch of ``B`` windows of ``T`` consecutive rows drawn by :meth:`SequenceReplayBuffer.sample_sequences`.

    :param observations: ``(B, T, *obs_shape)`` tensor, or a dict of such tensors for Dict observation
        spaces. Image observations stay ``torch.uint8`` (0..255, channel layout as stored); every other
        observation is ``torch.float32``.
    :param prev_actions: ``(B, T, action_dim)`` float32, the action that led to each observation
        (zeros on ``is_first`` rows). Discrete actions are the action index in a trailing dim of size 1
        (SB3 convention), MultiDiscrete/MultiBinary one entry per sub-action.
    :param rewards: ``(B, T)`` float32, the reward received on arriving at each observation (0 on first rows).
    :param is_first: ``(B, T)`` float32 in {0, 1}; the first row of every window is forced to 1.
    :param is_terminal: ``(B, T)`` float32 in {0, 1}; 1 where the episode terminated (not truncated).
    :param is_last: ``(B, T)`` float32 in {0, 1}; 1 on the last observation of an episode.
    """

    observations: th.Tensor | dict[str, th.Tensor]
    prev_actions: th.Tensor
    rewards: th.Tensor
    is_first: th.Tensor
    is_terminal: th.Tensor
    is_last: th.Tensor


# memmap mode: stored rows between two releases of the mapped pages (see release_memmap_pages)
MEMMAP_RELEASE_ROWS = 16_384


# per-row arrays besides the observations: pickled up to the last written row
_ROW_ARRAYS = ("prev_actions", "rewards", "is_first", "is_terminal", "is_last")


def _grown(rows: np.ndarray, capacity: int) -> np.ndarray:
    """``rows`` (the leading rows of a ring buffer) in a zeroed array of ``capacity`` rows."""
    if len(rows) == capacity:
        return rows
    full = np.zeros((capacity, *rows.shape[1:]), dtype=rows.dtype)
    full[: len(rows)] = rows
    return full


def _remove_memmap_files(paths: list[str], directory: str | None) -> None:
    """Delete memmap files (and a directory created by the buffer itself); errors are ignored."""
    for path in paths:
        with contextlib.suppress(OSError):
            os.remove(path)
    if directory is not None:
        shutil.rmtree(directory, ignore_errors=True)


class SequenceReplayBuffer(ReplayBuffer):
    """Replay buffer storing each observation once, with Dreamer-style per-row flags.

    Drop-in ``replay_buffer_class`` for SB3 off-policy algorithms: SB3 constructs it as
    ``SequenceReplayBuffer(buffer_size, observation_space, action_space, device=..., n_envs=...,
    optimize_memory_usage=..., **replay_buffer_kwargs)`` and feeds it through :meth:`add`.

    Arrays (``N = buffer_size // n_envs`` rows per env, ring buffers with per-env write positions):

    * ``observations``: ``(N, n_envs, *obs_shape)`` array, or a dict of such arrays for Dict spaces.
      Image spaces and any ``uint8`` Box are stored as ``uint8``; other Box spaces as ``float32``;
      Discrete/MultiDiscrete/MultiBinary with the space dtype.
    * ``prev_actions``: ``(N, n_envs, action_dim)`` with SB3's action dtype (float64 cast to float32).
    * ``rewards``: ``(N, n_envs)`` float32.
    * ``is_first``, ``is_terminal``, ``is_last``: ``(N, n_envs)`` bool.
    * ``env_pos`` / ``env_full``: per-env write position and wrap-around flag; ``pos`` / ``full`` mirror
      env 0 for SB3 code that reads them.

    :param buffer_size: Total number of rows over all envs (``buffer_size // n_envs`` per env, like SB3).
    :param observation_space: Observation space (Box, Discrete, MultiDiscrete, MultiBinary or a flat Dict).
    :param action_space: Action space.
    :param device: PyTorch device for sampled tensors.
    :param n_envs: Number of parallel environments.
    :param optimize_memory_usage: Must be ``False``: observations are already stored only once. ``True``
        raises a ``ValueError`` (SB3 would otherwise try to patch a ``dones`` array this buffer has not got).
    :param handle_timeout_termination: As in SB3: if ``True`` (default) an episode end flagged by
        ``infos[i]["TimeLimit.truncated"]`` is a truncation (``is_terminal=False``); if ``False`` every
        ``done`` counts as a termination.
    :param memmap_dir: If given, observation arrays are ``np.memmap`` ``.npy`` files in this directory
        (created if missing, one unique file per key and buffer instance, deleted when the buffer is
        garbage-collected). Pickling writes the data into the pickle; unpickling re-creates fresh memmap
        files in the same directory if writable, otherwise in a new temporary directory. In either mode a
        pickle (SB3's ``save_replay_buffer``) holds only the rows written so far: 10k pixel steps of a
        1M-step buffer pickle to 123 MB, not the 12.3 GB of its capacity.
    :param detect_discontinuity: If ``True`` (default), :meth:`add` checks that the ``obs`` of each env
        equals the ``next_obs`` it was given on the previous call (always true for SB3's collection loop
        within an episode). A mismatch means the env was reset behind the buffer's back (e.g. a new
        ``learn()`` call with ``reset_num_timesteps=True``, or a loaded buffer used with a fresh env): the
        previous row is then marked as a truncated episode end and the new row as ``is_first``.
    :param prioritize_ends: sample the last window of every episode more often, as the official DreamerV2 / APV
        replay does on Meta-World (``replay.prioritize_ends``, thuml/HarmonyDream ``wmlib/core/replay.py:146-149``):
        a window that would run past the end of its episode ends at that episode's last step instead. Of the draws
        that start in an episode of ``L`` rows, ``T / L`` get its last window of ``T`` rows (the official sampler:
        ``(T + 1) / (L + 1)``); episodes are drawn in proportion to their length (the official: uniformly), the same
        for Meta-World's fixed-length episodes.
    """

    observation_space: spaces.Space
    prev_actions: np.ndarray
    rewards: np.ndarray
    is_first: np.ndarray
    is_terminal: np.ndarray
    is_last: np.ndarray
    env_pos: np.ndarray
    env_full: np.ndarray

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        memmap_dir: str | os.PathLike[str] | None = None,
        detect_discontinuity: bool = True,
        prioritize_ends: bool = False,
    ) -> None:
        if optimize_memory_usage:
            raise ValueError(
                "SequenceReplayBuffer does not support optimize_memory_usage=True: it already stores every "
                "observation exactly once (no next_observations array). Use optimize_memory_usage=False."
            )
        if n_envs < 1:
            raise ValueError(f"n_envs must be >= 1, got {n_envs}")
        if buffer_size < 1:
            raise ValueError(f"buffer_size must be >= 1, got {buffer_size}")
        # ReplayBuffer.__init__ cannot allocate Dict spaces: initialise the base buffer only.
        BaseBuffer.__init__(self, buffer_size, observation_space, action_space, device, n_envs=n_envs)
        self.buffer_size = max(buffer_size // n_envs, 1)
        self.optimize_memory_usage = False
        self.handle_timeout_termination = handle_timeout_termination
        self.detect_discontinuity = detect_discontinuity
        self.prioritize_ends = prioritize_ends

        if isinstance(observation_space, spaces.Dict):
            sub_spaces: dict[str, spaces.Space] = dict(observation_space.spaces)
            for key, sub in sub_spaces.items():
                if isinstance(sub, (spaces.Dict, spaces.Tuple)):
                    raise ValueError(
                        f"Nested observation spaces are not supported (key {key!r}); flatten the nested space, "
                        "e.g. with gymnasium.wrappers.FlattenObservation on that part."
                    )
            self._is_dict = True
        else:
            sub_spaces = {_SINGLE_KEY: observation_space}
            self._is_dict = False
        self._obs_shapes: dict[str, tuple[int, ...]] = (
            dict(self.obs_shape) if self._is_dict else {_SINGLE_KEY: tuple(self.obs_shape)}  # type: ignore[arg-type]
        )
        self._obs_dtypes: dict[str, np.dtype] = {k: self._storage_dtype(s) for k, s in sub_spaces.items()}
        self._obs_is_image: dict[str, bool] = {k: is_image_space(s) for k, s in sub_spaces.items()}
        self._obs_is_discrete: dict[str, bool] = {k: isinstance(s, spaces.Discrete) for k, s in sub_spaces.items()}

        self.memmap_dir: str | None = os.fspath(memmap_dir) if memmap_dir is not None else None
        self._owns_memmap_dir = False
        self._memmap_paths: list[str] = []
        self._finalizer: weakref.finalize | None = None

        n, e = self.buffer_size, self.n_envs
        action_dtype = self._maybe_cast_dtype(action_space.dtype)
        self._action_dtype = np.dtype(action_dtype if action_dtype is not None else np.float32)
        self._obs_store: dict[str, np.ndarray] = self._allocate_observations(self.memmap_dir)
        self.prev_actions = np.zeros((n, e, self.action_dim), dtype=self._action_dtype)
        self.rewards = np.zeros((n, e), dtype=np.float32)
        self.is_first = np.zeros((n, e), dtype=bool)
        self.is_terminal = np.zeros((n, e), dtype=bool)
        self.is_last = np.zeros((n, e), dtype=bool)
        self._env_arange = np.arange(e)
        self._rows_since_release = 0
        self._init_positions_and_pending()

        if psutil is not None:
            in_ram = self.prev_actions.nbytes + self.rewards.nbytes + 3 * self.is_first.nbytes
            if self.memmap_dir is None:
                in_ram += sum(a.nbytes for a in self._obs_store.values())
            available = psutil.virtual_memory().available
            if in_ram > available:
                warnings.warn(
                    "This system does not have apparently enough memory to store the complete replay buffer "
                    f"{in_ram / 1e9:.2f}GB > {available / 1e9:.2f}GB (consider memmap_dir=...)",
                    stacklevel=2,
                )

    # ------------------------------------------------------------------ allocation / state

    @staticmethod
    def _storage_dtype(space: spaces.Space) -> np.dtype:
        """Storage dtype of one (non-Dict) observation space."""
        if isinstance(space, spaces.Box):
            return np.dtype(np.uint8) if space.dtype == np.uint8 else np.dtype(np.float32)
        if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary)):
            return np.dtype(space.dtype)
        raise ValueError(
            f"Observation space {space} is not supported by SequenceReplayBuffer; use Box, Discrete, "
            "MultiDiscrete, MultiBinary or a Dict of them (gymnasium.wrappers.FlattenObservation flattens others)."
        )

    def _allocate_observations(self, directory: str | None) -> dict[str, np.ndarray]:
        """Allocate zeroed observation arrays, in RAM or as memmap files inside ``directory``."""
        n, e = self.buffer_size, self.n_envs
        if directory is None:
            return {k: np.zeros((n, e, *shape), dtype=self._obs_dtypes[k]) for k, shape in self._obs_shapes.items()}
        os.makedirs(directory, exist_ok=True)
        uid = uuid.uuid4().hex[:12]
        store: dict[str, np.ndarray] = {}
        paths: list[str] = []
        for i, (key, shape) in enumerate(self._obs_shapes.items()):
            safe = re.sub(r"[^A-Za-z0-9_.-]", "_", key)[:64]
            path = os.path.join(directory, f"seqbuf_{uid}_{i}_{safe}.npy")
            store[key] = np.lib.format.open_memmap(path, mode="w+", dtype=self._obs_dtypes[key], shape=(n, e, *shape))
            paths.append(path)
        self._memmap_paths = paths
        self._finalizer = weakref.finalize(
            self, _remove_memmap_files, list(paths), directory if self._owns_memmap_dir else None
        )
        return store

    def _init_positions_and_pending(self) -> None:
        """(Re)initialise per-env positions, full flags and the pending (not yet written) per-env state."""
        e = self.n_envs
        self.env_pos = np.zeros(e, dtype=np.int64)
        self.env_full = np.zeros(e, dtype=bool)
        self.pending_action = np.zeros((e, self.action_dim), dtype=self._action_dtype)
        self.pending_reward = np.zeros(e, dtype=np.float32)
        self.pending_first = np.ones(e, dtype=bool)
        # Observation the next ``add`` is expected to start from (for discontinuity detection).
        self.pending_next_obs = {
            k: np.zeros((e, *shape), dtype=self._obs_dtypes[k]) for k, shape in self._obs_shapes.items()
        }
        self.pending_next_valid = np.zeros(e, dtype=bool)
        self._sync_sb3_position()

    def _sync_sb3_position(self) -> None:
        """Mirror env 0's position / full flag into SB3's scalar ``pos`` / ``full``."""
        self.pos = int(self.env_pos[0])
        self.full = bool(self.env_full[0])

    @property
    def observations(self) -> np.ndarray | dict[str, np.ndarray]:  # type: ignore[override]
        """Observation storage: ``(N, n_envs, *shape)`` array, or a dict of them for Dict spaces."""
        return self._obs_store if self._is_dict else self._obs_store[_SINGLE_KEY]

    @property
    def is_memmap(self) -> bool:
        """Whether observations live in memory-mapped files."""
        return self.memmap_dir is not None

    @property
    def nbytes_per_step(self) -> int:
        """Bytes stored per row (observation(s) + prev_action + reward + three flags).

        A finished episode costs one extra row (its terminal observation), so the bytes per env step are
        ``nbytes_per_step * (1 + 1 / mean_episode_length)``.
        """
        obs = sum(int(np.prod(s, dtype=np.int64)) * self._obs_dtypes[k].itemsize for k, s in self._obs_shapes.items())
        return obs + self.action_dim * self._action_dtype.itemsize + 4 + 3

    def reset(self) -> None:
        """Forget all stored rows and pending per-env state (storage is kept allocated)."""
        super().reset()
        self.is_first[:] = False
        self.is_terminal[:] = False
        self.is_last[:] = False
        self._init_positions_and_pending()

    def size(self) -> int:
        """Number of stored rows, summed over envs."""
        return int(self._rows_per_env().sum())

    def _rows_per_env(self) -> np.ndarray:
        """Number of stored rows of each env, ``(n_envs,)``."""
        return np.where(self.env_full, self.buffer_size, self.env_pos).astype(np.int64)

    def _oldest_row(self) -> np.ndarray:
        """Ring index of the oldest stored row of each env, ``(n_envs,)``."""
        return np.where(self.env_full, self.env_pos, 0).astype(np.int64)

    def __getstate__(self) -> dict[str, Any]:
        """Pickle state: only the rows written so far (a buffer that has not wrapped around pickles in proportion
        to its content, not its capacity); memmapped observations are written into the pickle as plain arrays."""
        state = self.__dict__.copy()
        state.pop("_finalizer", None)
        obs = self._obs_store
        if self.memmap_dir is not None:
            # Plain ndarray views of the memmaps: pickled by value, without an extra in-RAM copy.
            obs = {k: np.asarray(v).view(np.ndarray) for k, v in obs.items()}
            state["_memmap_paths"] = []
        rows = int(self._rows_per_env().max())
        # views of the leading rows: numpy pickles a view's own elements only
        state["_obs_store"] = {k: v[:rows] for k, v in obs.items()}
        for name in _ROW_ARRAYS:
            state[name] = state[name][:rows]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore from a pickle: the stored rows go back into arrays of the full capacity (in memmap mode, fresh
        memmap files)."""
        self.__dict__.update(state)
        self._finalizer = None
        for name in _ROW_ARRAYS:
            setattr(self, name, _grown(getattr(self, name), self.buffer_size))
        data = self._obs_store
        if self.memmap_dir is None:
            self._obs_store = {k: _grown(v, self.buffer_size) for k, v in data.items()}
            return
        directory: str = self.memmap_dir
        self._owns_memmap_dir = False
        try:
            os.makedirs(directory, exist_ok=True)
            if not os.access(directory, os.W_OK):
                raise PermissionError(directory)
            self._obs_store = self._allocate_observations(directory)
        except OSError:
            directory = tempfile.mkdtemp(prefix="sb3wm_replay_")
            warnings.warn(
                f"memmap_dir {self.memmap_dir!r} is not writable; re-materialising the replay buffer "
                f"observations in {directory!r}",
                stacklevel=2,
            )
            self.memmap_dir = directory
            self._owns_memmap_dir = True
            self._obs_store = self._allocate_observations(directory)
        for key, arr in self._obs_store.items():
            arr[: len(data[key])] = data[key]
            arr.flush()  # type: ignore[attr-defined]

    # ------------------------------------------------------------------ writing

    def _obs_dict(self, obs: np.ndarray | dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Normalise an ``add`` observation argument into ``{key: (n_envs, *shape)}`` arrays."""
        if self._is_dict:
            if not isinstance(obs, dict):
                raise TypeError(f"Expected a dict observation for a Dict space, got {type(obs).__name__}")
            raw = {k: obs[k] for k in self._obs_shapes}
        else:
            raw = {_SINGLE_KEY: obs}  # type: ignore[dict-item]
        out = {}
        for key, value in raw.items():
            arr = np.asarray(value)
            if self._obs_is_discrete[key] or arr.shape != (self.n_envs, *self._obs_shapes[key]):
                # As SB3: numpy cannot broadcast (n_envs,) to (n_envs, 1) for Discrete spaces.
                arr = arr.reshape((self.n_envs, *self._obs_shapes[key]))
            out[key] = arr
        return out

    def _write_rows(
        self,
        envs: np.ndarray,
        obs: dict[str, np.ndarray],
        prev_action: np.ndarray,
        reward: np.ndarray,
        is_first: np.ndarray,
        is_terminal: np.ndarray,
        is_last: np.ndarray,
    ) -> None:
        """Write one row for each env in ``envs`` at its write position and advance the positions."""
        rows = self.env_pos[envs]
        for key, arr in self._obs_store.items():
            arr[rows, envs] = obs[key]
        self.prev_actions[rows, envs] = prev_action
        self.rewards[rows, envs] = reward
        self.is_first[rows, envs] = is_first
        self.is_terminal[rows, envs] = is_terminal
        self.is_last[rows, envs] = is_last
        new_pos = rows + 1
        wrapped = new_pos >= self.buffer_size
        self.env_full[envs[wrapped]] = True
        self.env_pos[envs] = np.where(wrapped, 0, new_pos)

    def truncate_last_trajectory(self, env_indices: np.ndarray | list[int] | None = None) -> None:
        """Close the running episode of the given envs (all by default) as a time-limit truncation.

        The last written row is marked ``is_last`` (``is_terminal`` unchanged) and the next row added for the
        env will be an ``is_first`` row. Call this when the environment is reset outside of :meth:`add`.

        :param env_indices: Envs to truncate; ``None`` for all.
        """
        envs = self._env_arange if env_indices is None else np.asarray(env_indices, dtype=np.int64).reshape(-1)
        # Only envs with an open episode (a pending continuation) have a row to close.
        envs = envs[~self.pending_first[envs]]
        if len(envs) > 0:
            last_rows = (self.env_pos[envs] - 1) % self.buffer_size
            self.is_last[last_rows, envs] = True
        self.pending_first[envs] = True
        self.pending_action[envs] = 0
        self.pending_reward[envs] = 0.0
        self.pending_next_valid[envs] = False

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray | dict[str, np.ndarray],
        next_obs: np.ndarray | dict[str, np.ndarray],
        action: np.ndarray,
        reward: np.ndarray,
        done: np.ndarray,
        infos: list[dict[str, Any]],
    ) -> None:
        """Store one vectorised env step (SB3's ``ReplayBuffer.add`` signature).

        Writes the row of ``obs`` (with the pending prev_action / reward / is_first of each env) and
        remembers ``(action, reward)`` as pending for the next row. For every env with ``done[i]`` it also
        writes the row of the terminal observation ``next_obs[i]`` (``is_last=True``, ``is_terminal`` unless
        ``infos[i]["TimeLimit.truncated"]``) and the next row of that env becomes an ``is_first`` row.

        :param obs: Observations ``(n_envs, *obs_shape)`` (or dict of them) at time t.
        :param next_obs: Observations at t+1; for done envs the terminal observation (SB3 convention).
        :param action: Actions taken at t, ``(n_envs, ...)`` reshaped to ``(n_envs, action_dim)``.
        :param reward: Rewards ``(n_envs,)`` received for the step.
        :param done: Episode-end flags ``(n_envs,)`` (termination or truncation).
        :param infos: One info dict per env.
        """
        e = self.n_envs
        obs_d = self._obs_dict(obs)
        next_obs_d = self._obs_dict(next_obs)
        action = np.asarray(action).reshape((e, self.action_dim))
        reward = np.asarray(reward, dtype=np.float32).reshape(e)
        done = np.asarray(done).reshape(e).astype(bool)
        if len(infos) != e:
            raise ValueError(f"Expected {e} info dicts (one per env), got {len(infos)}")
        if self.handle_timeout_termination:
            truncated = np.array([bool(info.get("TimeLimit.truncated", False)) for info in infos], dtype=bool)
        else:
            truncated = np.zeros(e, dtype=bool)

        if self.detect_discontinuity:
            check = self.pending_next_valid & ~self.pending_first
            if check.any():
                broken = check & ~self._matches_pending(obs_d)
                if broken.any():
                    warnings.warn(
                        f"SequenceReplayBuffer: observation of env(s) {np.flatnonzero(broken).tolist()} does not "
                        "continue the previous step (env reset outside the buffer?); closing the previous "
                        "episode as truncated.",
                        stacklevel=2,
                    )
                    self.truncate_last_trajectory(np.flatnonzero(broken))

        # 1) the row of obs_t for every env
        all_envs = self._env_arange
        zeros = np.zeros(e, dtype=bool)
        self._write_rows(
            all_envs, obs_d, self.pending_action, self.pending_reward, self.pending_first, zeros, zeros
        )
        # 2) the extra row of the terminal observation for finished episodes
        done_envs = np.flatnonzero(done)
        if len(done_envs) > 0:
            n_done = len(done_envs)
            self._write_rows(
                done_envs,
                {k: v[done_envs] for k, v in next_obs_d.items()},
                action[done_envs],
                reward[done_envs],
                np.zeros(n_done, dtype=bool),
                ~truncated[done_envs],
                np.ones(n_done, dtype=bool),
            )
        # 3) pending state for the next row of each env
        self.pending_action[...] = action
        self.pending_reward[...] = reward
        self.pending_action[done] = 0
        self.pending_reward[done] = 0.0
        self.pending_first[...] = done
        for key, arr in next_obs_d.items():
            self.pending_next_obs[key][...] = arr
        self.pending_next_valid[...] = ~done
        self._sync_sb3_position()
        if self.memmap_dir is not None:
            self._rows_since_release += e + len(done_envs)
            if self._rows_since_release >= MEMMAP_RELEASE_ROWS:
                self.release_memmap_pages()

    def release_memmap_pages(self) -> None:
        """Unmap the memmap pages this process has touched (memmap mode), keeping its RSS flat.

        The data stays in the files (and in the OS page cache while memory allows); later reads fault the
        pages back in. Called automatically every ``MEMMAP_RELEASE_ROWS`` stored rows.
        """
        self._rows_since_release = 0
        for arr in self._obs_store.values():
            handle = getattr(arr, "_mmap", None)
            if handle is not None and hasattr(mmap, "MADV_DONTNEED"):
                handle.madvise(mmap.MADV_DONTNEED)

    def _matches_pending(self, obs_d: dict[str, np.ndarray]) -> np.ndarray:
        """``(n_envs,)`` bool: whether each env's ``obs`` equals the ``next_obs`` of its previous step."""
        match = np.ones(self.n_envs, dtype=bool)
        for key, arr in obs_d.items():
            ref = self.pending_next_obs[key]
            cur = arr.astype(ref.dtype, copy=False)
            eq = cur == ref
            if np.issubdtype(ref.dtype, np.floating):
                eq |= np.isnan(cur) & np.isnan(ref)
            match &= eq.reshape(self.n_envs, -1).all(axis=1)
        return match

    # ------------------------------------------------------------------ sampling

    @staticmethod
    def _draw(counts: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
        """Draw ``size`` items uniformly over ``sum(counts)``: returns (env index, offset within env)."""
        cum = np.cumsum(counts)
        u = np.random.randint(0, cum[-1], size=size)
        envs = np.searchsorted(cum, u, side="right")
        return envs, u - (cum[envs] - counts[envs])

    def _gather_obs(self, rows: np.ndarray, envs: np.ndarray) -> dict[str, np.ndarray]:
        """Gather observations at ring rows ``rows`` of envs ``envs`` (same shape, any ndim)."""
        flat = rows * self.n_envs + envs
        out = {}
        for key, arr in self._obs_store.items():
            flat_arr = arr.reshape(self.buffer_size * self.n_envs, *arr.shape[2:])
            out[key] = np.take(flat_arr, flat, axis=0)
        return out

    def _to_obs_output(self, obs: dict[str, np.ndarray], env: VecNormalize | None, for_sequences: bool) -> Any:
        """Normalise (VecNormalize), convert to tensors and unwrap single-key observations."""
        normalized = self._normalize_obs(obs if self._is_dict else obs[_SINGLE_KEY], env)
        obs_n = normalized if self._is_dict else {_SINGLE_KEY: normalized}
        tensors = {}
        for key, value in obs_n.items():  # type: ignore[union-attr]
            value = np.asarray(value)
            if for_sequences and not (self._obs_is_image[key] and value.dtype == np.uint8):
                value = value.astype(np.float32, copy=False)
            tensors[key] = th.as_tensor(value, device=self.device)
        return tensors if self._is_dict else tensors[_SINGLE_KEY]

    def sample_sequences(
        self, batch_size: int, sequence_length: int, env: VecNormalize | None = None
    ) -> SequenceSamples:
        """Sample ``batch_size`` windows of ``sequence_length`` consecutive rows.

        Windows are uniform over all valid (env, start) pairs, so an env is chosen with probability
        proportional to its number of valid starts. A window may span several episodes (``is_first``
        marks the resets) but never crosses the write head of its env; ``is_first`` is forced to 1 on the
        first row of each window.

        :param batch_size: Number of windows ``B``.
        :param sequence_length: Window length ``T``.
        :param env: Optional VecNormalize used to normalise observations and rewards.
        :return: A :class:`SequenceSamples` with ``(B, T, ...)`` tensors on ``self.device``.
        :raises ValueError: If no env holds at least ``sequence_length`` rows.
        """
        if batch_size < 1 or sequence_length < 1:
            raise ValueError(f"batch_size and sequence_length must be >= 1, got {batch_size}, {sequence_length}")
        rows_per_env = self._rows_per_env()
        counts = np.maximum(rows_per_env - sequence_length + 1, 0)
        if counts.sum() == 0:
            raise ValueError(
                f"Cannot sample sequences of length {sequence_length}: the replay buffer holds "
                f"{rows_per_env.tolist()} rows per env ({int(rows_per_env.sum())} in total, capacity "
                f"{self.buffer_size} per env) and a window must lie within one env. Raise learning_starts "
                "(collect more steps before training) or lower sequence_length."
            )
        envs, offsets = self._draw(counts, batch_size)
        if getattr(self, "prioritize_ends", False):  # (buffers pickled before the option have it off)
            offsets = self._end_aligned(envs, offsets, sequence_length)
        starts = self._oldest_row()[envs] + offsets
        rows = (starts[:, None] + np.arange(sequence_length)) % self.buffer_size  # (B, T)
        envs2 = np.broadcast_to(envs[:, None], rows.shape)

        obs = self._gather_obs(rows, envs2)
        prev_actions = self.prev_actions[rows, envs2].astype(np.float32, copy=False)
        rewards = self._normalize_reward(self.rewards[rows, envs2], env).astype(np.float32, copy=False)
        is_first = self.is_first[rows, envs2]
        is_first[:, 0] = True
        is_terminal = self.is_terminal[rows, envs2]
        is_last = self.is_last[rows, envs2]

        def t(x: np.ndarray) -> th.Tensor:
            return th.as_tensor(np.ascontiguousarray(x, dtype=np.float32), device=self.device)

        return SequenceSamples(
            observations=self._to_obs_output(obs, env, for_sequences=True),
            prev_actions=t(prev_actions),
            rewards=t(rewards),
            is_first=t(is_first),
            is_terminal=t(is_terminal),
            is_last=t(is_last),
        )

    def _end_aligned(self, envs: np.ndarray, offsets: np.ndarray, length: int) -> np.ndarray:
        """Offsets moved back so that a window crossing an episode end ends on that end (``prioritize_ends``)."""
        rows = (self._oldest_row()[envs][:, None] + offsets[:, None] + np.arange(length - 1)) % self.buffer_size
        ends = self.is_last[rows, envs[:, None]]  # (B, T - 1): an episode ends before the window's last row
        crossing = ends.any(1)
        first_end = ends.argmax(1)
        shift = np.where(crossing, length - 1 - first_end, 0)
        return np.maximum(offsets - shift, 0)

    def _sample_transition_indices(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """Uniformly draw ``(row, env)`` such that ring row ``row + 1`` of ``env`` continues the episode."""
        rows_per_env = self._rows_per_env()
        counts = np.maximum(rows_per_env - 1, 0)
        if counts.sum() == 0:
            raise ValueError(
                f"Cannot sample transitions: the replay buffer holds {rows_per_env.tolist()} rows per env; "
                "at least two consecutive rows of one episode are needed. Raise learning_starts."
            )
        oldest = self._oldest_row()
        out_rows = np.empty(batch_size, dtype=np.int64)
        out_envs = np.empty(batch_size, dtype=np.int64)
        filled = 0
        # Rejection sampling: only pairs whose second row starts a new episode are invalid (~1/episode length).
        for _ in range(32):
            need = batch_size - filled
            envs, offsets = self._draw(counts, need)
            rows = (oldest[envs] + offsets) % self.buffer_size
            ok = ~self.is_first[(rows + 1) % self.buffer_size, envs]
            k = int(ok.sum())
            out_rows[filled : filled + k] = rows[ok]
            out_envs[filled : filled + k] = envs[ok]
            filled += k
            if filled == batch_size:
                return out_rows, out_envs
        # Fallback (pathological data, e.g. mostly one-step episodes): enumerate the valid pairs exactly.
        cand_rows, cand_envs = [], []
        for env_i in range(self.n_envs):
            if counts[env_i] == 0:
                continue
            rows = (oldest[env_i] + np.arange(counts[env_i])) % self.buffer_size
            valid = ~self.is_first[(rows + 1) % self.buffer_size, env_i]
            cand_rows.append(rows[valid])
            cand_envs.append(np.full(int(valid.sum()), env_i, dtype=np.int64))
        all_rows, all_envs = np.concatenate(cand_rows), np.concatenate(cand_envs)
        if len(all_rows) == 0:
            raise ValueError("Cannot sample transitions: no episode in the replay buffer has two rows yet.")
        pick = np.random.randint(0, len(all_rows), size=batch_size - filled)
        out_rows[filled:] = all_rows[pick]
        out_envs[filled:] = all_envs[pick]
        return out_rows, out_envs

    def sample(  # type: ignore[override]
        self, batch_size: int, env: VecNormalize | None = None
    ) -> ReplayBufferSamples | DictReplayBufferSamples:
        """Sample SB3 single-step transitions built from consecutive rows (t, t+1) of one episode.

        ``observations = obs_t``, ``actions = prev_action[t+1]``, ``next_observations = obs_{t+1}``,
        ``dones = is_terminal[t+1]`` (truncations are not dones) and ``rewards = reward[t+1]``; the
        pair never crosses an episode start or the write head.

        :param batch_size: Number of transitions.
        :param env: Optional VecNormalize used to normalise observations and rewards.
        :return: ``ReplayBufferSamples`` (``DictReplayBufferSamples`` for Dict observation spaces);
            observations keep their storage dtype, ``dones`` and ``rewards`` are ``(B, 1)`` float32.
        """
        rows, envs = self._sample_transition_indices(batch_size)
        nxt = (rows + 1) % self.buffer_size
        obs = self._to_obs_output(self._gather_obs(rows, envs), env, for_sequences=False)
        next_obs = self._to_obs_output(self._gather_obs(nxt, envs), env, for_sequences=False)
        actions = th.as_tensor(self.prev_actions[nxt, envs], device=self.device)
        dones = th.as_tensor(self.is_terminal[nxt, envs].astype(np.float32).reshape(-1, 1), device=self.device)
        rewards = self._normalize_reward(self.rewards[nxt, envs].reshape(-1, 1), env)
        rewards_t = th.as_tensor(np.asarray(rewards, dtype=np.float32), device=self.device)
        if self._is_dict:
            return DictReplayBufferSamples(obs, actions, next_obs, dones, rewards_t)
        return ReplayBufferSamples(obs, actions, next_obs, dones, rewards_t)

    def _get_samples(self, batch_inds: np.ndarray, env: VecNormalize | None = None) -> ReplayBufferSamples:
        """Refused: flat indices are meaningless with per-env positions; use :meth:`sample`."""
        raise TypeError(
            "SequenceReplayBuffer has per-env write positions; use sample() or sample_sequences() instead."
        )
