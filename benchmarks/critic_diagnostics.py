"""Value scale of a Dreamer checkpoint, and how fast its critic can fit its own TD(lambda) targets.

    python benchmarks/critic_diagnostics.py benchmarks/.runs/learning_cartpole_state_tiny_r512_lr4x/DreamerV3_s0
    python benchmarks/critic_diagnostics.py <run_dir> --critic-updates 300 --critic-lr 1.2e-4 --out diag_tiny_lr4x

For a run checkpointed by ``learning.py`` (``<run_dir>/model.zip`` and ``replay.pkl``): on one replayed batch of
16 x 64 sequences it reports the world model's losses, the reward head against the replayed rewards, the actor's
action std, the critic's values on the posterior and imagined states, the mean lambda-return in imagination and,
as the scale the value should reach for the data's policy, ``mean reward / (1 - gamma)``. Then it trains a copy of
the critic alone, on that batch's imagined features held fixed, for ``--critic-updates`` Adam steps towards its own
TD(lambda) targets with the slow-critic regulariser, as the agent's update does (and, with ``--replay-scale``, the
replay value loss on the batch's replayed states), and prints the mean value every 50 steps: how far the critic
moves when the world model and the actor stand still. Writes
``benchmarks/results/<out>.json`` when ``--out`` is given.
"""

from __future__ import annotations

import argparse
import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def diagnose(run_dir: Path, env_id: str, env_kwargs: dict[str, Any], critic_updates: int, critic_lr: float | None,
             seed: int = 0, replay_scale: float = 0.0) -> dict[str, Any]:
    """The figures described in the module docstring, as a dict."""
    import gymnasium as gym
    import torch

    import sb3_worldmodels
    from sb3_worldmodels.common.returns import lambda_returns

    torch.manual_seed(seed)
    env = gym.make(env_id, **env_kwargs)
    model = sb3_worldmodels.DreamerV3.load(run_dir / "model.zip", env=env)
    model.load_replay_buffer(run_dir / "replay.pkl")
    policy, gamma = model.policy, float(model.gamma)
    wm, ac = policy.world_model, copy.deepcopy(policy.behavior)
    batch = model.replay_buffer.sample_sequences(16, 64)
    out: dict[str, Any] = {"run_dir": str(run_dir), "num_timesteps": int(model.num_timesteps), "gamma": gamma}
    with torch.no_grad():
        _, post, metrics = wm.loss(batch.observations, batch.prev_actions, batch.rewards, batch.is_first,
                                   batch.is_terminal, gamma)
        out["world_model"] = {k: round(float(v), 4) for k, v in metrics.items()}
        feat = wm.rssm.feat(post)
        reward = wm.reward_dist(feat).mean
        out["reward_data_mean"] = float(batch.rewards.mean())
        out["reward_pred_mean"] = float(reward.mean())
        out["reward_corr"] = float(np.corrcoef(batch.rewards.flatten().numpy(), reward.flatten().numpy())[0, 1])
        dist = ac.actor_dist(feat)
        if hasattr(dist, "std"):
            out["actor_std_mean"] = float(dist.std.mean())
        out["value_posterior_mean"] = float(ac.value(feat).mean.mean())
        out["value_scale_of_data"] = out["reward_data_mean"] / (1 - gamma)
        _, _, behavior = ac.losses(wm, post, batch.is_terminal, model.imagination_horizon, gamma,
                                   batch.rewards, batch.is_last)
        out["imagination"] = {k: round(float(v), 4) for k, v in behavior.items() if not k.endswith("_loss")}
        imag_feat = ac.imagine(wm, post, model.imagination_horizon)[0].detach()
        imag_reward = wm.reward_dist(imag_feat).mean
        imag_discount = gamma * wm.cont_dist(imag_feat).mean

    lr = critic_lr if critic_lr is not None else policy.cfg.critic_lr
    opt = torch.optim.Adam(ac.critic.parameters(), lr=lr, eps=policy.cfg.ac_eps)
    fit: list[dict[str, float]] = []
    for step in range(critic_updates + 1):
        critic_out = ac.critic(imag_feat)
        value_dist = ac._value_from(critic_out[:, :-1])
        with torch.no_grad():
            values = ac._value_from(critic_out).mean
            target = lambda_returns(imag_reward, values, imag_discount, policy.cfg.lam)
            slow = ac._value_from(ac.slow_critic(imag_feat)[:, :-1]).mean
            posterior_value = ac.value(feat).mean.mean()
        if step % 50 == 0:
            fit.append({"update": step, "value": float(values.mean()), "target": float(target.mean()),
                        "posterior_value": float(posterior_value)})
            print(f"critic-only update {step}: value {fit[-1]['value']:.2f}, target {fit[-1]['target']:.2f}, "
                  f"on the replayed states {fit[-1]['posterior_value']:.2f}", flush=True)
        if step == critic_updates:
            break
        loss = ac.value_loss(value_dist, target, slow).mean()
        if replay_scale > 0:  # DreamerV3's replay value loss, bootstrapped from each state's imagined return
            boot = target[:, 0].reshape(batch.rewards.shape)
            loss = loss + replay_scale * ac.replay_value_loss(feat, batch.rewards, batch.is_terminal,
                                                              batch.is_last, boot, gamma)[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        ac.update_slow_critic()
    out["critic_only_fit"] = {"lr": lr, "replay_scale": replay_scale, "curve": fit}
    return out


def main() -> None:
    """Command line: see the module docstring."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a learning.py run checkpoint folder (model.zip, replay.pkl)")
    parser.add_argument("--env", default="sb3wm/dmc-cartpole-swingup-v0")
    parser.add_argument("--env-kwargs", default='{"obs_type": "state"}', help="JSON keyword arguments of the env")
    parser.add_argument("--critic-updates", type=int, default=300)
    parser.add_argument("--critic-lr", type=float, default=None, help="default: the checkpoint's critic_lr")
    parser.add_argument("--replay-scale", type=float, default=0.0,
                        help="add the replay value loss at this scale to the critic-only fit (0.3 in DreamerV3)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="", help="write benchmarks/results/<out>.json")
    args = parser.parse_args()
    if not (args.run_dir / "model.zip").exists():
        parser.error(f"{args.run_dir} holds no model.zip: pass a benchmarks/.runs/<bench>/<algo>_s<seed> folder")
    import torch

    torch.set_num_threads(args.threads)
    result = diagnose(args.run_dir, args.env, json.loads(args.env_kwargs), args.critic_updates, args.critic_lr,
                      replay_scale=args.replay_scale)
    print(json.dumps({k: v for k, v in result.items() if k != "critic_only_fit"}, indent=1))
    if args.out:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / f"{args.out}.json").write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
