"""Load a saved SB3 agent (``.zip``) without being told its algorithm, to record episodes with it."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

from stable_baselines3.common.base_class import BaseAlgorithm

__all__ = ["algorithm_classes", "load_agent"]


def algorithm_classes() -> list[type[BaseAlgorithm]]:
    """The algorithms :func:`load_agent` knows: ours, SB3's, and sb3-contrib's when it is installed."""
    import stable_baselines3

    import sb3_worldmodels

    modules: list[Any] = [sb3_worldmodels, stable_baselines3]
    try:
        import sb3_contrib

        modules.append(sb3_contrib)
    except ImportError:
        pass
    classes = [getattr(m, name) for m in modules for name in getattr(m, "__all__", [])]
    return [c for c in classes if isinstance(c, type) and issubclass(c, BaseAlgorithm)]


def _policy_class(path: Path) -> type:
    """The policy class stored in an SB3 zip's ``data`` entry."""
    from stable_baselines3.common.save_util import json_to_data

    try:
        with zipfile.ZipFile(path) as archive:
            data = json_to_data(archive.read("data").decode())
    except (zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path} is not an agent saved by SB3's model.save() (no 'data' entry).") from exc
    policy_class = data.get("policy_class")
    if not isinstance(policy_class, type):
        raise ValueError(f"{path}: cannot read its policy class; pass algo= (e.g. algo='PPO').")
    return policy_class


def load_agent(path: str | os.PathLike[str], algo: str | type[BaseAlgorithm] | None = None,
               device: str = "auto") -> BaseAlgorithm:
    """Load an agent saved with ``model.save(path)``.

    Without ``algo`` the algorithm is found from the policy class stored in the zip: the first of
    :func:`algorithm_classes` whose ``policy_aliases`` hold that class (or a base of it). Algorithms that share a
    policy class (PPO and A2C, the Dreamer variants) rebuild the same policy from the saved data, so for predicting
    actions the choice between them does not matter.

    :param path: the ``.zip`` file.
    :param algo: the algorithm, as a class or its name (``"PPO"``, ``"DreamerV3"``), to skip the look-up.
    :param device: device of the loaded networks.
    :raises ValueError: the file is not an SB3 agent, or no known algorithm uses its policy class.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Agent file {path} does not exist.")
    classes = algorithm_classes()
    if isinstance(algo, str):
        named = [c for c in classes if c.__name__ == algo]
        if not named:
            raise ValueError(f"Unknown algorithm {algo!r}; choose one of {sorted(c.__name__ for c in classes)}.")
        algo = named[0]
    if algo is not None:
        return algo.load(path, device=device)
    policy_class = _policy_class(path)
    matches = [c for c in classes if any(issubclass(policy_class, p) for p in c.policy_aliases.values())]
    if not matches:
        raise ValueError(f"{path}: no known algorithm uses its policy {policy_class.__module__}."
                         f"{policy_class.__qualname__}; pass algo= (an algorithm class or name).")
    errors = []
    for candidate in matches:  # e.g. DrQv2 and MBPO share a policy: the one whose saved state fits loads
        try:
            return candidate.load(path, device=device)
        except Exception as exc:  # noqa: BLE001 - the next candidate may fit; all errors are reported below
            errors.append(f"{candidate.__name__}: {exc}")
    raise ValueError(f"{path}: none of the algorithms using its policy could load it; pass algo=. "
                     + " | ".join(errors))
