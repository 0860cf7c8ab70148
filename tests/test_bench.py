"""``sb3wm bench``: quick speed checks of the hot paths on tiny presets."""

from __future__ import annotations

import json

import pytest

from sb3_worldmodels import bench
from sb3_worldmodels.cli import main


@pytest.mark.parametrize("args,key", [
    (["dreamer", "--model-size", "tiny", "--obs", "pixels"], "model_size"),
    (["drqv2", "--size", "64"], "size"),
    (["ivideogpt", "--tokenizer", "tiny", "--transformer", "tiny"], "tokens_per_second"),
])
def test_bench_cli(args: list[str], key: str, capsys: pytest.CaptureFixture) -> None:
    main(["bench", *args, "--repeats", "1", "--threads", "1"])
    out = capsys.readouterr().out
    record = json.loads(out[out.index("{"):])
    assert record["bench"] == args[0] and key in record and record["threads"] == 1
    assert 0 < record["seconds_min"] <= record["seconds_median"]


def test_time_calls_and_synthetic_batch() -> None:
    calls = []
    timing = bench.time_calls(lambda: calls.append(1), 3)
    assert len(calls) == 4 and timing["seconds_min"] <= timing["seconds_median"]  # a warm-up, then 3 timed
    batch = bench.synthetic_batch("vector", 2, 5, vector_dim=4)
    assert batch.observations.shape == (2, 5, 4) and batch.is_first[:, 0].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="repeats"):
        bench.time_calls(lambda: None, 0)
    with pytest.raises(ValueError, match="obs"):
        bench.synthetic_batch("depth", 1, 1)
