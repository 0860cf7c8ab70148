"""Update precision: validation, the bf16 autocast context and the warning on CPUs that emulate bf16."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from gymnasium import spaces

from sb3_worldmodels.common import precision as prec
from sb3_worldmodels.drqv2.policies import DrQv2Policy
from sb3_worldmodels.dreamer.config import make_config


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget that the once-per-process warning was given."""
    monkeypatch.setattr(prec, "_warned", False)


def test_check_precision() -> None:
    assert prec.check_precision("fp32") == "fp32"
    assert prec.check_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="'fp32' or 'bf16'"):
        prec.check_precision("fp16")


def test_configs_reject_unknown_precision() -> None:
    with pytest.raises(ValueError, match="'fp32' or 'bf16'"):
        make_config("v3", "tiny", precision="half")
    with pytest.raises(ValueError, match="'fp32' or 'bf16'"):
        DrQv2Policy(spaces.Box(0, 255, (3, 64, 64), np.uint8), spaces.Box(-1, 1, (1,), np.float32),
                    lambda _: 1e-4, precision="half")


def test_autocast_contexts() -> None:
    lin = torch.nn.Linear(4, 4)
    x = torch.randn(2, 4)
    with prec.autocast("cpu", "fp32"):
        assert lin(x).dtype == torch.float32
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with prec.autocast("cpu", "bf16"):
            assert lin(x).dtype == torch.bfloat16


def test_bf16_warning_on_emulating_cpu(monkeypatch: pytest.MonkeyPatch, fresh_warning: None) -> None:
    monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: False)
    with pytest.warns(UserWarning, match="precision='fp32'"):
        with prec.autocast("cpu", "bf16"):
            pass
    with warnings.catch_warnings():  # once per process: the second update is silent
        warnings.simplefilter("error")
        with prec.autocast("cpu", "bf16"):
            pass


def test_no_warning_for_fp32_or_native_bf16(monkeypatch: pytest.MonkeyPatch, fresh_warning: None) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: False)
        with prec.autocast("cpu", "fp32"):
            pass
        monkeypatch.setattr(prec, "cpu_has_fast_bf16", lambda: True)
        with prec.autocast("cpu", "bf16"):
            pass


def test_cpu_probe_matches_torch() -> None:
    expected = bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())
    assert prec.cpu_has_fast_bf16() is expected
