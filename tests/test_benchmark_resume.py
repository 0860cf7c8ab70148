"""The learning benchmarks' resumable runs (``benchmarks/learning.py``'s ``learn_resumable``).

A run stopped after an evaluation and started again must go on from that step with the same number of updates
and stored transitions as an uninterrupted run, keep the curve it had, and refuse other settings.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
import pytest
from stable_baselines3 import SAC
from stable_baselines3.common.monitor import Monitor

from sb3_worldmodels import DreamerV3

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from learning import learn_resumable, set_options  # noqa: E402


def make(algo: str) -> Any:
    env = gym.make("Pendulum-v1")
    if algo == "SAC":
        return SAC("MlpPolicy", env, seed=0, learning_starts=50, batch_size=16,
                   policy_kwargs=dict(net_arch=[16]))
    return DreamerV3("MlpPolicy", env, seed=0, learning_starts=50, batch_size=2, sequence_length=8, train_ratio=8,
                     policy_kwargs=dict(model_size="tiny"))


@pytest.mark.parametrize("algo", ["SAC", "DreamerV3"])
def test_resume_continues_where_it_stopped(tmp_path: Path, algo: str) -> None:
    def run(steps: int, run_dir: Path | None) -> tuple[Any, list[dict[str, Any]]]:
        return learn_resumable(make(algo), Monitor(gym.make("Pendulum-v1")), steps, 100, 1, {"algo": algo},
                               run_dir=run_dir, settings={"algo": algo})

    whole, _ = run(300, None)
    run_dir = tmp_path / algo
    first, first_curve = run(200, run_dir)
    assert [r["step"] for r in first_curve] == [100, 200]
    state = json.loads((run_dir / "state.json").read_text())
    assert state["step"] == 200 and len(state["curve"]) == 2
    resumed, curve = run(300, run_dir)
    assert resumed is not first and resumed.num_timesteps == 300
    assert [r["step"] for r in curve] == [100, 200, 300]
    assert curve[:2] == first_curve  # the old part of the curve is kept as it was
    assert resumed._n_updates == whole._n_updates  # no update lost or repeated across the stop
    assert resumed.replay_buffer.size() == whole.replay_buffer.size()  # no transition lost or stored twice
    assert not (tmp_path / f"{algo}.tmp").exists() and not (tmp_path / f"{algo}.old").exists()

    again, curve_again = run(300, run_dir)  # a finished run is read back, not trained further
    assert again.num_timesteps == 300 and curve_again == curve


def test_resume_refuses_other_settings(tmp_path: Path) -> None:
    def run(settings: dict[str, Any], restart: bool = False) -> list[dict[str, Any]]:
        return learn_resumable(make("SAC"), Monitor(gym.make("Pendulum-v1")), 100, 100, 1, {}, run_dir=tmp_path / "r",
                               settings=settings, restart=restart)[1]

    run({"lr": 1})
    with pytest.raises(ValueError, match="--restart"):
        run({"lr": 2})
    assert [r["step"] for r in run({"lr": 2}, restart=True)] == [100]


def test_collect_curves_reads_stopped_runs(tmp_path: Path) -> None:
    """``collect_curves.py`` gives the curve and last evaluation of a run stopped before its budget."""
    from collect_curves import collect

    with pytest.raises(FileNotFoundError, match="state.json"):
        collect(tmp_path / "bench")
    learn_resumable(make("SAC"), Monitor(gym.make("Pendulum-v1")), 200, 100, 1, {"algo": "SAC", "seed": 0},
                    run_dir=tmp_path / "bench" / "SAC_s0", settings={"lr": 1})
    rows, last = collect(tmp_path / "bench")
    assert [r["step"] for r in rows] == [100, 200]
    assert last["SAC_s0"]["step"] == 200 and last["SAC_s0"]["settings"] == {"lr": 1}
    assert last["SAC_s0"]["eval_return"] == rows[-1]["eval_return"]


def test_collect_curves_merge_keeps_other_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``collect_curves.py --merge``: the earlier results keep every run not collected now, numbers stay numbers
    (empty cells left out), and a collected (algo, seed) replaces its earlier rows and entry."""
    import learning
    from collect_curves import merge, read_curves

    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    earlier = [{"algo": "A", "seed": s, "step": step, "eval_return": 1.5 * step, "heldout_frame_mse": 0.25}
               for s in (0, 1) for step in (100, 200)] + [{"algo": "B", "seed": 0, "step": 100, "eval_return": -3.0}]
    learning.write_curves(earlier, "bench", "bench")
    assert read_curves(tmp_path / "bench.csv") == earlier
    (tmp_path / "bench.json").write_text(json.dumps({"runs": {"a_s0": {"step": 200}, "a_s1": {"step": 200},
                                                              "b_s0": {"step": 100}},
                                                     "heldout_baselines": {"copy_last_frame_mse": 0.5}}))
    new = [{"algo": "B", "seed": 0, "step": step, "eval_return": 7.0} for step in (100, 200)]
    rows, runs, before = merge(new, {"b_s0": {"step": 200}}, tmp_path / "bench.csv", tmp_path / "bench.json")
    assert rows == earlier[:4] + new
    assert runs == {"a_s0": {"step": 200}, "a_s1": {"step": 200}, "b_s0": {"step": 200}}
    assert before["heldout_baselines"] == {"copy_last_frame_mse": 0.5}
    with pytest.raises(FileNotFoundError, match="without --merge"):
        merge(new, {}, tmp_path / "other.csv", tmp_path / "other.json")


def test_set_options_records_only_changed_options() -> None:
    """Options left at their defaults stay out of a run's settings, so runs checkpointed before them resume."""
    defaults = {"precision": "fp32", "shadows": False}
    assert set_options({"precision": "fp32", "shadows": False}, defaults) == {}
    assert set_options({"precision": "bf16"}, defaults) == {"precision": "bf16"}
    assert set_options({"precision": "fp32", "shadows": True}, defaults) == {"shadows": True}


def test_transfer_openloop_measure_in_curve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transfer benchmark's held-out open-loop errors are added to every evaluation row, leave the model as they
    found it, and a CSV of rows with and without them is written with every column."""
    import numpy as np
    import torch
    from learning import write_curves
    from stable_baselines3.common.vec_env import DummyVecEnv, VecTransposeImage
    from transfer import openloop_baselines, openloop_errors

    from tests.dummy_envs import DotEnv

    env = DotEnv(size=16, continuous=True)
    obs, _ = env.reset(seed=0)
    images, actions, rewards = [obs], [np.zeros(1, np.float32)], [0.0]
    for t in range(15):
        action = np.array([1.0 if t % 4 else -1.0], np.float32)
        obs, reward, *_ = env.step(action)
        images.append(obs), actions.append(action), rewards.append(reward)
    clips = tmp_path / "clips.npz"
    np.savez(clips, images=np.stack(images)[None].transpose(0, 1, 4, 2, 3).repeat(2, 0),
             actions=np.stack(actions)[None].repeat(2, 0), rewards=np.array(rewards, np.float32)[None].repeat(2, 0))
    baselines = openloop_baselines(str(clips))
    moves = np.stack(images)[5:].astype(np.float32) / 255 - np.stack(images)[4].astype(np.float32) / 255
    assert baselines["copy_last_frame_mse"] == pytest.approx(float((moves**2).mean()), abs=1e-6)
    assert baselines["mean_reward_mse"] == pytest.approx(float(np.var(rewards[5:])), abs=1e-6)
    model = DreamerV3("CnnPolicy", DotEnv(size=16, continuous=True), seed=0, learning_starts=40, batch_size=2,
                      sequence_length=8, train_ratio=8, policy_kwargs=dict(model_size="tiny"))
    measure = openloop_errors(str(clips))
    before = {k: v.clone() for k, v in model.policy.state_dict().items()}
    model.policy.set_training_mode(True)
    figures = measure(model)
    assert set(figures) == {"heldout_frame_mse", "heldout_reward_mse"}
    assert 0 < figures["heldout_frame_mse"] < 1 and figures["heldout_reward_mse"] >= 0
    assert model.policy.training  # predict() ran in eval mode and put the mode back
    assert all(torch.equal(before[k], v) for k, v in model.policy.state_dict().items())

    eval_env = VecTransposeImage(DummyVecEnv([lambda: DotEnv(size=16, continuous=True)]))
    _, curve = learn_resumable(model, eval_env, 100, 50, 1, {"algo": "V3", "seed": 0}, measure=measure)
    assert [r["step"] for r in curve] == [50, 100]
    assert all(r["heldout_frame_mse"] > 0 for r in curve)
    import learning

    monkeypatch.setattr(learning, "RESULTS", tmp_path)
    write_curves([{"algo": "A", "step": 1, "eval_return": 1.0}, *curve], "mixed", "t")
    header = (tmp_path / "mixed.csv").read_text().splitlines()[0].split(",")
    assert "heldout_frame_mse" in header and (tmp_path / "mixed.png").exists()


def test_eval_checkpoint_replays_a_saved_run(tmp_path: Path) -> None:
    """``eval_checkpoint.py`` loads a run folder's model.zip with the class its name gives and plays the episodes."""
    from eval_checkpoint import algo_of, evaluate

    run_dir = tmp_path / "DreamerHarmony_s3"
    run_dir.mkdir()
    assert algo_of(run_dir) == "DreamerHarmony"
    with pytest.raises(ValueError, match="--algo"):
        algo_of(tmp_path / "unnamed")
    make("DreamerV3").save(run_dir / "model.zip")
    result = evaluate(run_dir, "DreamerV3", "Pendulum-v1", {}, 2, 0)
    assert result["episodes"] == 2 and len(result["returns"]) == 2 and result["lengths"] == [200, 200]
    assert result["mean"] == pytest.approx(sum(result["returns"]) / 2)
    assert result["num_timesteps"] == 0


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_drqv2_learning_builds_both_agents_on_what_they_observe(obs: str) -> None:
    import drqv2_learning
    from stable_baselines3.common.vec_env import VecEnv

    from sb3_worldmodels.drqv2.policies import CnnPolicy, MlpPolicy

    args = dict(steps=100, learning_starts=10, batch_size=4, precision="fp32", device="cpu", sac_train_freq=1,
                world_model="tiny", mbpo_kwargs="{}", obs=obs)
    drq, drq_eval = drqv2_learning.make_model("cartpole_swingup", "DrQv2", 0, args)
    sac, sac_eval = drqv2_learning.make_model("cartpole_swingup", "SAC", 0, args)
    if obs == "state":
        assert isinstance(drq.policy, MlpPolicy) and drq.observation_space.shape == (5,)
        assert sac.observation_space.shape == (5,) and drq_eval.observation_space.shape == (5,)
    else:
        assert isinstance(drq.policy, CnnPolicy) and drq.observation_space.shape == (3, 64, 64)
        assert sac.observation_space.shape == (9, 64, 64)  # 3 stacked frames, channels first
    assert isinstance(sac_eval, VecEnv)
    drq.learn(20)  # the agent runs on what it was built for
    suffix = drqv2_learning._obs_suffix(args)
    assert suffix == ("_state" if obs == "state" else "")
