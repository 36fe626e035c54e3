"""A single-file SAC, written the way people write it by hand, that borrows two pieces from fastsac:

- ``fastsac.ops.squashed_gaussian_with_alpha_loss``: the tanh-squashed Gaussian sample, its exact log-prob and the
  temperature loss in one fused call;
- ``fastsac.entropy.EntropyModule``: the learnable temperature (log_alpha, its target entropy and optimizer).

Everything else (MLPs, replay buffer, loop) is plain PyTorch + gymnasium. Those two pieces sit behind a small
``PolicyMath`` interface (``FastsacMath`` below), so the same loop can also run with hand-written math instead:
``bench/bench_foreign_agent.py`` times both versions side by side. Runs on CPU:

    python examples/sac_pendulum.py                       # 15k steps, prints evaluation returns
    python examples/sac_pendulum.py --total-steps 2000    # a quick look
"""

from __future__ import annotations

import argparse
import copy
import time

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from fastsac.entropy import EntropyModule
from fastsac.ops import deterministic_action, squashed_gaussian, squashed_gaussian_with_alpha_loss


def mlp(inp, out, hidden=256):
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, out))


class Actor(nn.Module):
    def __init__(self, obs_dim, act_dim):
        super().__init__()
        self.net = mlp(obs_dim, 2 * act_dim)

    def forward(self, obs):
        mean, raw_log_std = self.net(obs).chunk(2, dim=-1)
        return mean, raw_log_std  # the op bounds log_std smoothly (log_std_bounds)


class FastsacMath:
    """The policy distribution and the temperature, from fastsac: what this example borrows."""

    def __init__(self, act_dim, lr, scale, bias, bounds):
        self.scale, self.bias, self.bounds = scale, bias, bounds
        self.entropy = EntropyModule(act_dim, lr=lr)  # target entropy -act_dim, log_alpha learned with Adam

    @property
    def alpha(self):
        return self.entropy.alpha.detach()

    def sample(self, mean, raw):
        """(action, log_prob) for ``a ~ pi(.|s)`` given the actor's (mean, raw log-std)."""
        return squashed_gaussian(mean, raw, torch.randn_like(mean), action_scale=self.scale, action_bias=self.bias,
                                 log_std_bounds=self.bounds)

    def sample_with_alpha_loss(self, mean, raw):
        """(action, log_prob, alpha_loss) from one fused call."""
        return squashed_gaussian_with_alpha_loss(mean, raw, torch.randn_like(mean), self.entropy.log_alpha,
                                                 self.entropy.target, action_scale=self.scale,
                                                 action_bias=self.bias, log_std_bounds=self.bounds)

    def alpha_step(self, alpha_loss):
        self.entropy.gradient_step(alpha_loss)

    def deterministic(self, mean):
        return deterministic_action(mean, action_scale=self.scale, action_bias=self.bias)


def evaluate(actor, env_id, policy, episodes, seed):
    env = gym.make(env_id)
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            with torch.no_grad():
                mean, _ = actor(torch.as_tensor(obs, dtype=torch.float32))
                action = policy.deterministic(mean)
            obs, reward, terminated, truncated, _ = env.step(action.numpy())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def train(env_id="Pendulum-v1", total_steps=15_000, seed=0, learning_starts=1_000, batch_size=256,
          gamma=0.99, tau=0.005, actor_lr=3e-4, critic_lr=1e-3, eval_every=2_500, eval_episodes=5, log=print,
          math=FastsacMath, on_update=None):
    """Train; returns [(step, eval return)]. ``math``: the PolicyMath class (``FastsacMath``, or a stand-in with
    the same methods); ``on_update(step, critic_loss, actor_loss)``: called after every update (tensors)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    env = gym.make(env_id)
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    high, low = (torch.as_tensor(b, dtype=torch.float32) for b in (env.action_space.high, env.action_space.low))
    scale, bias = (high - low) / 2, (high + low) / 2
    bounds = (-5.0, 2.0)

    actor = Actor(obs_dim, act_dim)
    q1, q2 = mlp(obs_dim + act_dim, 1), mlp(obs_dim + act_dim, 1)
    q1_target, q2_target = copy.deepcopy(q1), copy.deepcopy(q2)
    actor_opt = torch.optim.Adam(actor.parameters(), lr=actor_lr)
    critic_opt = torch.optim.Adam([*q1.parameters(), *q2.parameters()], lr=critic_lr)
    policy = math(act_dim, actor_lr, scale, bias, bounds)

    # A plain replay buffer.
    obs_buf = torch.zeros(total_steps, obs_dim)
    act_buf = torch.zeros(total_steps, act_dim)
    rew_buf = torch.zeros(total_steps)
    next_buf = torch.zeros(total_steps, obs_dim)
    term_buf = torch.zeros(total_steps)

    obs, _ = env.reset(seed=seed)
    history, start = [], time.perf_counter()
    for step in range(total_steps):
        if step < learning_starts:
            action = torch.as_tensor(rng.uniform(-1, 1, act_dim), dtype=torch.float32) * scale + bias
        else:
            with torch.no_grad():
                mean, raw = actor(torch.as_tensor(obs, dtype=torch.float32))
                action, _ = policy.sample(mean, raw)
        next_obs, reward, terminated, truncated, _ = env.step(action.numpy())
        obs_buf[step], act_buf[step], rew_buf[step] = torch.as_tensor(obs), action, float(reward)
        next_buf[step], term_buf[step] = torch.as_tensor(next_obs), float(terminated)  # truncation bootstraps
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()

        if step >= learning_starts:
            idx = torch.randint(0, step + 1, (batch_size,))
            b_obs, b_act, b_rew, b_next, b_term = obs_buf[idx], act_buf[idx], rew_buf[idx], next_buf[idx], term_buf[idx]
            alpha = policy.alpha

            # Critic: soft Bellman target from the target critics, min over the pair.
            with torch.no_grad():
                mean, raw = actor(b_next)
                next_act, next_lp = policy.sample(mean, raw)
                sa = torch.cat([b_next, next_act], -1)
                next_q = torch.min(q1_target(sa), q2_target(sa)).squeeze(-1) - alpha * next_lp
                target_q = b_rew + gamma * (1 - b_term) * next_q
            sa = torch.cat([b_obs, b_act], -1)
            critic_loss = F.mse_loss(q1(sa).squeeze(-1), target_q) + F.mse_loss(q2(sa).squeeze(-1), target_q)
            critic_opt.zero_grad()
            critic_loss.backward()
            critic_opt.step()

            # Actor and temperature: one fused call gives the action, its log-prob and the alpha loss.
            mean, raw = actor(b_obs)
            act, lp, alpha_loss = policy.sample_with_alpha_loss(mean, raw)
            sa = torch.cat([b_obs, act], -1)
            actor_loss = (alpha * lp - torch.min(q1(sa), q2(sa)).squeeze(-1)).mean()
            actor_opt.zero_grad()
            actor_loss.backward()
            actor_opt.step()
            policy.alpha_step(alpha_loss)

            # Polyak averaging of the target critics.
            with torch.no_grad():
                for net, target in ((q1, q1_target), (q2, q2_target)):
                    for p, tp in zip(net.parameters(), target.parameters()):
                        tp.lerp_(p, tau)
            if on_update is not None:
                on_update(step, critic_loss.detach(), actor_loss.detach())

        if (step + 1) % eval_every == 0 or step + 1 == total_steps:
            ret = evaluate(actor, env_id, policy, eval_episodes, seed=10_000 + seed)
            history.append((step + 1, ret))
            log(f"step {step + 1:6d}  eval return {ret:8.1f}  alpha {policy.alpha.item():.3f}  "
                f"{(step + 1) / (time.perf_counter() - start):.0f} steps/s")
    return history


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="Pendulum-v1")
    p.add_argument("--total-steps", type=int, default=15_000)
    p.add_argument("--learning-starts", type=int, default=1_000)
    p.add_argument("--eval-every", type=int, default=2_500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    history = train(args.env, args.total_steps, args.seed, min(args.learning_starts, args.total_steps // 2),
                    eval_every=args.eval_every)
    print(f"final evaluation return: {history[-1][1]:.1f}")
    return history


if __name__ == "__main__":
    main()
