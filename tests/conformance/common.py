"""What the fixture generators and our conformance tests share: the fixture files, the deterministic noise, the
tolerance.

The generators (``make_*.py``) run the official code in its own virtual environment, which may hold neither our
package nor torch (the JAX one), so this module needs only numpy and the standard library; torch helpers import
torch lazily.

A fixture is two files under ``fixtures/``: ``NAME.npz`` (named float32 / int arrays: weights, inputs, the official
outputs and gradients) and ``NAME.json`` (the official repository and commit, the configuration, how it was made).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"
#: the issue's tolerance: max |ours - theirs| <= TOL * max(1, max |theirs|), in fp32 on the CPU
TOL = 1e-5


def save_fixture(name: str, arrays: dict[str, Any], meta: dict[str, Any]) -> Path:
    """Write ``fixtures/NAME.npz`` (arrays as numpy, float64 stored as float32) and ``fixtures/NAME.json``."""
    FIXTURES.mkdir(parents=True, exist_ok=True)
    out: dict[str, np.ndarray] = {}
    for key, value in arrays.items():
        arr = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        out[key] = arr.astype(np.float32) if arr.dtype == np.float64 else arr
    path = FIXTURES / f"{name}.npz"
    np.savez_compressed(path, **out)
    (FIXTURES / f"{name}.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    return path


def load_fixture(name: str) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays and the metadata of fixture ``NAME``."""
    with np.load(FIXTURES / f"{name}.npz") as data:
        arrays = {k: data[k] for k in data.files}
    return arrays, json.loads((FIXTURES / f"{name}.json").read_text())


def git_commit(checkout: str | Path) -> str:
    """The commit of an official checkout (recorded in every fixture's metadata)."""
    return subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()


def fixed_uniform(shape: tuple[int, ...], salt: int = 0) -> np.ndarray:
    """Deterministic "uniform noise" in (0, 1) that depends only on ``shape`` and ``salt``.

    Both sides of a comparison draw their random numbers through this (the official code's sampler patched to read
    it, ours through ``sb3_worldmodels.common.distributions.uniform_like``), so samples agree whatever the order in
    which each side draws them: every draw of one shape gets the same numbers. The values are a golden-ratio
    sequence over the flat index, well spread in (0, 1).
    """
    n = int(np.prod(shape)) if shape else 1
    idx = np.arange(n, dtype=np.float64) + 1.0 + 7919.0 * salt
    u = np.mod(idx * 0.6180339887498949 + 0.5 * np.sin(idx), 1.0)
    return np.clip(u, 1e-4, 1 - 1e-4).astype(np.float32).reshape(shape)


def rel_error(ours: Any, theirs: Any) -> float:
    """``max |ours - theirs| / max(1, max |theirs|)`` (0 for empty arrays)."""
    a = ours.detach().cpu().double().numpy() if hasattr(ours, "detach") else np.asarray(ours, np.float64)
    b = theirs.detach().cpu().double().numpy() if hasattr(theirs, "detach") else np.asarray(theirs, np.float64)
    if a.shape != b.shape:
        raise AssertionError(f"shapes differ: ours {a.shape}, official {b.shape}")
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / max(1.0, float(np.abs(b).max())))


#: when a dict, :func:`assert_close` records every error in it (name -> error) instead of raising: the report mode
#: of ``tests/conformance/report.py``, which measures how far a version of the code is from the official one
COLLECT: dict[str, float] | None = None


def assert_close(ours: Any, theirs: Any, name: str, tol: float = TOL) -> float:
    """Raise an ``AssertionError`` naming ``name`` when :func:`rel_error` exceeds ``tol``; return the error."""
    err = rel_error(ours, theirs)
    if COLLECT is not None:
        COLLECT[name] = max(err, COLLECT.get(name, 0.0))
        return err
    if not err <= tol:
        raise AssertionError(f"{name}: relative error {err:.3g} > {tol:g}")
    return err
