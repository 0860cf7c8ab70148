"""Visual MPC: CEM and MPPI over a video predictor, the SB3 acting loop, and our world models as predictors."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.monitor import Monitor
from torch import Tensor

from sb3_worldmodels import CEMPlanner, ContextDreamer, DreamerV3, MPPIPlanner
from sb3_worldmodels.planning import VideoPredictor
from tests.dummy_envs import DotEnv

SIDE, SIGMA, SPEED = 16, 0.08, 0.15  # image side, blob width, move per unit of scaled action
BOX = spaces.Box(-1.0, 1.0, (2,), np.float32)


def render(pos: Tensor) -> Tensor:
    """uint8 (..., 3, SIDE, SIDE) images of a blob at ``pos`` (..., 2) = (x, y) in [0, 1]."""
    grid = torch.linspace(0, 1, SIDE)
    dx = (grid - pos[..., 0, None]).pow(2)[..., None, :]
    dy = (grid - pos[..., 1, None]).pow(2)[..., :, None]
    blob = torch.exp(-(dx + dy) / (2 * SIGMA**2))
    return (blob * 255).round().to(torch.uint8)[..., None, :, :].expand(*pos.shape[:-1], 3, SIDE, SIDE)


def locate(frames: Tensor) -> Tensor:
    """Blob centres (..., 2) of uint8 (..., 3, SIDE, SIDE) frames."""
    w = frames[..., 0, :, :].float()
    w = w / w.sum((-1, -2), keepdim=True)
    grid = torch.linspace(0, 1, SIDE)
    return torch.stack([(w.sum(-2) * grid).sum(-1), (w.sum(-1) * grid).sum(-1)], -1)


class BlobPredictor:
    """An exact video predictor: the blob moves by ``SPEED * action``; reward ``-|pos - target|``."""

    def __init__(self, target: tuple[float, float] = (0.8, 0.8)) -> None:
        self.target = torch.tensor(target)
        self.calls: list[dict[str, Any]] = []

    def predict(self, context_frames: Tensor, actions: Tensor, context_actions: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        self.calls.append({"context": context_frames.shape, "context_actions": context_actions})
        pos = locate(context_frames[:, -1])
        frames, rewards = [], []
        for t in range(actions.shape[1]):
            pos = (pos + SPEED * actions[:, t]).clamp(0, 1)
            frames.append(render(pos))
            rewards.append(-(pos - self.target).norm(dim=-1))
        return torch.stack(frames, 1), torch.stack(rewards, 1)


class BlobEnv(gym.Env):
    """The predictor's world as an env: channels-last frames, actions in [-2, 2] (the planner rescales)."""

    def __init__(self, target: tuple[float, float] = (0.8, 0.8)) -> None:
        self.observation_space = spaces.Box(0, 255, (SIDE, SIDE, 3), np.uint8)
        self.action_space = spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.target = torch.tensor(target)

    def _obs(self) -> np.ndarray:
        return render(self.pos).permute(1, 2, 0).numpy()

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        self.pos, self.t = torch.tensor([0.15, 0.2]), 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        assert self.action_space.contains(action.astype(np.float32)), action
        self.pos = (self.pos + SPEED * torch.as_tensor(action, dtype=torch.float32) / 2.0).clamp(0, 1)
        self.t += 1
        return self._obs(), -float((self.pos - self.target).norm()), False, self.t >= 8, {}


def rollout(start: Tensor, plan: Tensor) -> Tensor:
    pos = start
    for a in plan:
        pos = (pos + SPEED * a).clamp(0, 1)
    return pos


PLANNERS = [
    (CEMPlanner, dict(elites=8)),
    (MPPIPlanner, dict(temperature=0.002, noise_std=0.6)),
]


@pytest.mark.parametrize("cls,kwargs", PLANNERS)
def test_planner_reaches_a_goal_image(cls: type, kwargs: dict) -> None:
    start, goal = torch.tensor([0.2, 0.2]), torch.tensor([0.7, 0.6])
    model = BlobPredictor()
    planner = cls(model, BOX, horizon=5, population=64, iterations=5, goal=render(goal).numpy(), seed=0, **kwargs)
    context = render(start)[None]
    plan = planner.plan(context)
    assert plan.shape == (5, 2) and plan.abs().max() <= 1
    assert (rollout(start, plan) - goal).norm() < 0.1
    random = torch.rand(64, 5, 2) * 2 - 1
    assert planner.evaluate(context, plan[None])[0] < 0.3 * planner.evaluate(context, random).mean()


@pytest.mark.parametrize("cls,kwargs", PLANNERS)
def test_planner_maximises_predicted_reward_without_a_goal(cls: type, kwargs: dict) -> None:
    model = BlobPredictor(target=(0.8, 0.8))
    planner = cls(model, BOX, horizon=6, population=64, iterations=4, seed=1, **kwargs)
    start = torch.tensor([0.1, 0.3])
    plan = planner.plan(render(start)[None])
    assert (rollout(start, plan) - torch.tensor([0.8, 0.8])).norm() < 0.15


def test_goal_distance_in_feature_space() -> None:
    start, goal = torch.tensor([0.8, 0.2]), torch.tensor([0.3, 0.7])
    features = lambda images: locate((images * 255).round().to(torch.uint8))  # noqa: E731
    planner = CEMPlanner(BlobPredictor(), BOX, horizon=5, population=64, iterations=5, elites=8,
                         goal=render(goal), feature_fn=features, goal_frames="all", seed=2)
    plan = planner.plan(render(start)[None])
    assert (rollout(start, plan) - goal).norm() < 0.12


def test_mpc_loop_through_sb3_evaluate_policy() -> None:
    env = BlobEnv()
    planner = CEMPlanner(BlobPredictor(), env.action_space, horizon=4, population=48, iterations=3, elites=6, seed=0)
    planned, _ = evaluate_policy(planner, Monitor(env), n_eval_episodes=2)  # type: ignore[arg-type]
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    random_returns = []
    for _ in range(2):
        env.reset()
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(rng.uniform(-2, 2, 2).astype(np.float32))
            total, done = total + r, term or trunc
        random_returns.append(total)
    assert planned > np.mean(random_returns) + 1.0  # 8 steps: planning gets ~0.3 closer to the target per step


def test_history_gives_context_frames_and_the_actions_between_them() -> None:
    model = BlobPredictor()
    planner = MPPIPlanner(model, BOX, horizon=3, population=8, iterations=1, context=2, seed=0)
    obs = render(torch.tensor([[0.5, 0.5]])).numpy()  # a batch of one env, channels first
    action, state = planner.predict(obs)
    first = model.calls[-1]
    assert action.shape == (1, 2) and first["context"][1] == 2  # the first frame repeated
    assert torch.equal(first["context_actions"], torch.zeros(8, 1, 2))
    previous = torch.as_tensor(action[0])  # BOX is [-1, 1]: env and planner scales coincide
    _, state = planner.predict(obs, state=state, episode_start=np.array([False]))
    torch.testing.assert_close(model.calls[-1]["context_actions"][0, 0], previous)
    _, state = planner.predict(obs, state=state, episode_start=np.array([True]))
    assert torch.equal(model.calls[-1]["context_actions"], torch.zeros(8, 1, 2))  # history cleared


def test_planner_errors_name_the_fix() -> None:
    with pytest.raises(ValueError, match="Box action space"):
        CEMPlanner(BlobPredictor(), spaces.Discrete(3))
    with pytest.raises(ValueError, match="predict"):
        CEMPlanner(object(), BOX)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="elites"):
        CEMPlanner(BlobPredictor(), BOX, population=4, elites=5)
    planner = CEMPlanner(BlobPredictor(), BOX, population=4, elites=2, goal=np.zeros((3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="goal image has shape"):
        planner.plan(render(torch.tensor([0.5, 0.5]))[None])
    frames_only = type("FramesOnly", (), {"predict": lambda self, c, a: BlobPredictor().predict(c, a)[0]})()
    with pytest.raises(ValueError, match="set_goal"):
        CEMPlanner(frames_only, BOX, population=4, elites=2).plan(render(torch.tensor([0.5, 0.5]))[None])
    with pytest.raises(ValueError, match="uint8"):
        planner.set_goal(np.zeros((3, 8, 8), np.float32))


@pytest.mark.parametrize("algo", [DreamerV3, ContextDreamer])
def test_our_world_models_are_video_predictors(algo: type) -> None:
    env = DotEnv(obs="image", size=64, continuous=True)
    model = algo("CnnPolicy", env, policy_kwargs=dict(model_size="tiny"), seed=0)
    wm = model.policy.world_model
    assert isinstance(wm, VideoPredictor)
    wm.train()
    context = torch.randint(0, 256, (2, 3, 3, 64, 64), dtype=torch.uint8)
    frames, rewards = wm.predict(context, torch.rand(2, 4, 1) * 2 - 1, context_actions=torch.zeros(2, 2, 1))
    assert frames.shape == (2, 4, 3, 64, 64) and frames.dtype == torch.uint8
    assert rewards.shape == (2, 4) and torch.isfinite(rewards).all()
    assert wm.training  # the mode is restored
    planner = CEMPlanner(wm, env.action_space, horizon=3, population=6, iterations=2, elites=2, context=2, seed=0)
    obs, _ = env.reset(seed=0)
    action, _ = planner.predict(obs)
    assert env.action_space.contains(action)


def test_world_model_with_vector_inputs_cannot_predict_frames() -> None:
    model = DreamerV3("MultiInputPolicy", DotEnv(obs="dict", size=64, continuous=True),
                      policy_kwargs=dict(model_size="tiny"))
    with pytest.raises(ValueError, match="one image observation"):
        model.policy.world_model.predict(torch.zeros(1, 1, 3, 64, 64, dtype=torch.uint8), torch.zeros(1, 2, 1))
