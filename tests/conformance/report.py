"""How far our code is from the official code: every conformance comparison of the PyTorch families, with the
largest relative error per quantity instead of a pass / fail.

    python -m tests.conformance.report [--json out.json]

It runs the tests of ``tests/test_conformance_dreamerv2.py`` and ``tests/test_conformance_apv_finetune.py`` with
:data:`tests.conformance.common.COLLECT` set, so that every ``assert_close`` records its error and goes on, and prints
per fixture the largest error of each group of quantities (losses, gradients, actor-critic, parameters after one
step). A comparison that cannot run at all (e.g. a mapping that does not fit an older version of the code) is
reported with its error message.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
import torch

from sb3_worldmodels.common import distributions
from tests.conformance import common

GROUPS = (("gradient of world_model.", "world-model gradients"), ("gradient of behavior.", "actor-critic gradients"),
          ("after one step", "parameters after one step"), ("loss", "losses"))


def group(name: str) -> str:
    """The group a quantity's name belongs to."""
    for key, label in GROUPS:
        if key in name:
            return label
    return "states"


def run(test: Callable[..., Any], *args: Any) -> tuple[dict[str, float], str | None]:
    """Run one conformance test in report mode: its errors, and the exception that stopped it (if one did)."""
    common.COLLECT = {}
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(distributions, "uniform_like",
                        lambda x: torch.from_numpy(common.fixed_uniform(tuple(x.shape))).to(x.device, x.dtype))
    try:
        test(*args)
        return dict(common.COLLECT), None
    except Exception as exc:  # noqa: BLE001 - reported
        return dict(common.COLLECT), f"{type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    finally:
        monkeypatch.undo()
        common.COLLECT = None


def main() -> None:
    """Print (and optionally write) the largest error per fixture and group of quantities."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args()
    from tests import test_conformance_apv_finetune as apv
    from tests import test_conformance_dreamerv2 as v2

    torch.set_num_threads(1)
    results: dict[str, dict[str, Any]] = {}
    for module in (v2, apv):
        tests = [getattr(module, n) for n in dir(module) if re.match(r"test_.*match|test_one_training_step", n)]
        for case in module.CASES:
            per_group: dict[str, Any] = defaultdict(float)
            for test in tests:
                errors, stopped = run(test, case)
                for name, err in errors.items():
                    per_group[group(name)] = max(per_group[group(name)], err)
                if stopped:
                    per_group[f"{test.__name__} stopped"] = stopped
            results[case] = dict(per_group)
            print(case)
            for key, value in results[case].items():
                print(f"  {key}: {value:.3g}" if isinstance(value, float) else f"  {key}: {value}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
