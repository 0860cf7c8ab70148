"""Environments: DeepMind Control Suite tasks registered as ``sb3wm/dmc-{domain}-{task}-v0``.

Importing this package is cheap: dm_control/mujoco are only imported when an env is made.
Underscores in names become hyphens: ``gym.make("sb3wm/dmc-ball-in-cup-catch-v0", obs_type="state")``.
"""

from __future__ import annotations

from sb3_worldmodels.envs.base import register_ids
from sb3_worldmodels.envs.dmc import make_dmc
from sb3_worldmodels.envs.rendering import configure_mujoco_gl

__all__ = ["DMC_TASKS", "configure_mujoco_gl", "dmc_env_id", "make_dmc"]

configure_mujoco_gl()

#: ``dm_control.suite.ALL_TASKS`` of dm-control 1.0.28, hardcoded to keep imports fast
#: (``tests/test_envs.py`` checks it against the installed dm_control).
DMC_TASKS: tuple[tuple[str, str], ...] = (
    ("acrobot", "swingup"), ("acrobot", "swingup_sparse"),
    ("ball_in_cup", "catch"),
    ("cartpole", "balance"), ("cartpole", "balance_sparse"), ("cartpole", "swingup"),
    ("cartpole", "swingup_sparse"), ("cartpole", "two_poles"), ("cartpole", "three_poles"),
    ("cheetah", "run"),
    ("dog", "stand"), ("dog", "walk"), ("dog", "trot"), ("dog", "run"), ("dog", "fetch"),
    ("finger", "spin"), ("finger", "turn_easy"), ("finger", "turn_hard"),
    ("fish", "upright"), ("fish", "swim"),
    ("hopper", "stand"), ("hopper", "hop"),
    ("humanoid", "stand"), ("humanoid", "walk"), ("humanoid", "run"), ("humanoid", "run_pure_state"),
    ("humanoid_CMU", "stand"), ("humanoid_CMU", "walk"), ("humanoid_CMU", "run"),
    ("lqr", "lqr_2_1"), ("lqr", "lqr_6_2"),
    ("manipulator", "bring_ball"), ("manipulator", "bring_peg"),
    ("manipulator", "insert_ball"), ("manipulator", "insert_peg"),
    ("pendulum", "swingup"),
    ("point_mass", "easy"), ("point_mass", "hard"),
    ("quadruped", "walk"), ("quadruped", "run"), ("quadruped", "escape"), ("quadruped", "fetch"),
    ("reacher", "easy"), ("reacher", "hard"),
    ("stacker", "stack_2"), ("stacker", "stack_4"),
    ("swimmer", "swimmer6"), ("swimmer", "swimmer15"),
    ("walker", "stand"), ("walker", "walk"), ("walker", "run"),
)  # fmt: skip


def dmc_env_id(domain: str, task: str) -> str:
    """Gymnasium id of a DMC task: ``("ball_in_cup", "catch")`` -> ``"sb3wm/dmc-ball-in-cup-catch-v0"``."""
    return f"sb3wm/dmc-{domain.replace('_', '-')}-{task.replace('_', '-')}-v0"


def _register_dmc() -> None:
    """Register every DMC task once (re-running is a no-op)."""
    register_ids(  # no TimeLimit: the env truncates itself at DMC's time limit
        ((dmc_env_id(domain, task), {"domain": domain, "task": task}) for domain, task in DMC_TASKS),
        "sb3_worldmodels.envs.dmc:make_dmc",
    )


_register_dmc()

# The other suites register their ids from their own modules (each cheap to import: the simulator itself
# is imported only when an env is made). One line per suite:
from sb3_worldmodels.envs import metaworld as _metaworld; _metaworld.register()  # noqa: E402
from sb3_worldmodels.envs import atari as _atari; _atari.register()  # noqa: E402
from sb3_worldmodels.envs import crafter as _crafter; _crafter.register()  # noqa: E402
from sb3_worldmodels.envs import minedojo as _minedojo; _minedojo.register()  # noqa: E402
from sb3_worldmodels.envs import dmcr as _dmcr; _dmcr.register()  # noqa: E402
