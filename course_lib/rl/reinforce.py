"""Policy gradients: REINFORCE (Williams 1992) on CartPole. :func:`cartpole` builds the
environment (its pole length makes another task), :func:`policy_net` the policy π_θ(a|s),
:func:`run_episodes` samples :class:`Trajectory` objects, :func:`reinforce_loss` is the surrogate
whose gradient is the policy-gradient estimate, :func:`train_reinforce` trains π_θ and records a
:class:`ReinforceHistory`, and :func:`evaluate_policy` measures its returns.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch
from tqdm.auto import tqdm

from .. import seeding
from ..models import MLP
from ..plots import running_mean
from ..training import adam
from ._checks import DTYPE, _count, _gamma
from .returns import episode_weights


def cartpole(length: float = 0.5, max_episode_steps: int = 500):
    """CartPole-v1 with a pole of half-length ``length`` (gymnasium's default 0.5).

    A different length is a different task with the same states, actions and reward: the
    setting of meta-RL, where a policy should adapt to a new task from few episodes.
    """
    env = gym.make("CartPole-v1", max_episode_steps=max_episode_steps)
    u = env.unwrapped
    u.length, u.polemass_length = length, u.masspole * length
    return env


def policy_net(obs_dim: int = 4, hidden: int = 64, actions: int = 2, seed: int = 0) -> MLP:
    """π_θ(a|s) as logits: an obs_dim-hidden-actions ReLU MLP, seeded."""
    torch.manual_seed(seeding.seed(seed))
    return MLP(obs_dim, (hidden,), actions)


@dataclass
class Trajectory:
    """One episode: states (T, obs_dim), actions (T,), rewards (T,) with rewards[t] = R_{t+1}."""

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor

    @property
    def ret(self) -> float:
        """The undiscounted return Σ_t R_{t+1}."""
        return float(self.rewards.sum())


def run_episodes(policy, envs: list, seeds: list[int], generator, greedy: bool = False) -> list[Trajectory]:
    """One episode in each env, stepped in lockstep with one batched forward pass per step.

    Args:
        policy: maps states (B, obs_dim) to logits (B, A).
        envs: gymnasium environments; ``envs[i]`` is reset with ``seeds[i]`` (its effective seed,
            :func:`~course_lib.seeding.seed`, which moves with ``COURSE_SEED``).
        generator: draws a_t ∼ π(·|s_t) (a ``torch.Generator``).
        greedy: take a_t = argmax_a π(a|s_t) instead of sampling.
    """
    if len(envs) != len(seeds):
        raise ValueError(f"one seed per environment: {len(envs)} envs, {len(seeds)} seeds")
    obs = [[env.reset(seed=seeding.seed(int(s)))[0]] for env, s in zip(envs, seeds)]
    acts, rews = [[] for _ in envs], [[] for _ in envs]
    alive = list(range(len(envs)))
    while alive:
        x = torch.as_tensor(np.stack([obs[i][-1] for i in alive]), dtype=torch.float32)  # (B, obs_dim)
        with torch.no_grad():
            logits = policy(x)
        a = logits.argmax(1) if greedy else torch.multinomial(logits.softmax(1), 1, generator=generator)[:, 0]
        still = []
        for i, ai in zip(alive, a.tolist()):
            o, r, terminated, truncated, _ = envs[i].step(ai)
            acts[i].append(ai)
            rews[i].append(r)
            if terminated or truncated:
                continue
            obs[i].append(o)
            still.append(i)
        alive = still
    return [Trajectory(torch.as_tensor(np.stack(o), dtype=torch.float32), torch.tensor(a),
                       torch.tensor(r, dtype=torch.float32)) for o, a, r in zip(obs, acts, rews)]


def reinforce_loss(logp: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """The REINFORCE surrogate −(1/N) Σ_t log π_θ(a_t|s_t) · Ψ_t over the N steps of a batch.

    Its gradient is the policy-gradient estimate −ĝ with ĝ = (1/N) Σ_t Ψ_t ∇_θ log π_θ(a_t|s_t)
    (Williams 1992); Ψ_t is the episode's return, the reward-to-go, or a normalised advantage.
    The weights are constants: no gradient flows through them.

    Args:
        logp: log π_θ(a_t|s_t), shape (N,), differentiable in θ.
        weights: Ψ_t, shape (N,).
    """
    if logp.shape != weights.shape or logp.dim() != 1:
        raise ValueError(f"logp and weights should both have shape (N,), got {tuple(logp.shape)} "
                         f"and {tuple(weights.shape)}")
    return -(logp * weights.detach()).mean()


@dataclass
class ReinforceHistory:
    """What :func:`train_reinforce` records: every training episode's return, every update's loss."""

    returns: list = field(default_factory=list)
    losses: list = field(default_factory=list)

    def running_mean(self, window: int = 100) -> torch.Tensor:
        """The mean return over the last ``window`` episodes after each episode (fewer at first)."""
        return running_mean(self.returns, window)

    def episodes_to(self, target: float = 475.0, window: int = 100) -> int | None:
        """Training episodes until the mean return of the last ``window`` episodes first reaches
        ``target`` (counting only full windows), or None if it never does."""
        r = torch.tensor(self.returns, dtype=DTYPE)
        if len(r) < window:
            return None
        means = r.unfold(0, window, 1).mean(1)  # means[i]: episodes i … i + window − 1
        hit = (means >= target).nonzero()
        return int(hit[0]) + window if len(hit) else None


def train_reinforce(policy, make_env=cartpole, episodes: int = 1000, batch: int = 8, lr: float = 1e-2,
                    gamma: float = 0.99, weighting: str = "rtg", normalise: bool = True, seed: int = 0,
                    stop_at: float | None = None, window: int = 100,
                    progress: bool = True) -> ReinforceHistory:
    """REINFORCE: sample ``batch`` episodes with π_θ, take one Adam step on :func:`reinforce_loss`.

    Every step t is weighted by Ψ_t from :func:`episode_weights` (``"rtg"``: the reward-to-go
    G_t; ``"return"``: the whole episode's return G_0), normalised over the batch to mean 0 and
    standard deviation 1 when ``normalise``. Subtracting the mean is a baseline that lowers the
    variance; because the batch mean includes each episode's own weights it shifts the expected
    gradient by a term of order 1/batch, and dividing by the standard deviation rescales each
    batch's step, so the normalised estimate is stabler but not exactly unbiased.

    Args:
        policy: π_θ, states (B, obs_dim) → logits (B, A); trained in place.
        make_env: builds one environment (called ``batch`` times).
        episodes: training episodes (rounded up to whole batches).
        lr: Adam's learning rate; gamma: γ of the weights.
        seed: episode i is reset with seed ``seed + i``; actions use a generator seeded with it.
        stop_at: stop once the mean return of the last ``window`` episodes reaches it (None:
            train all ``episodes``).

    Returns:
        the history of episode returns and losses.
    """
    episodes, batch, gamma = _count(episodes, "episodes"), _count(batch, "batch"), _gamma(gamma)
    episode_weights([0.0], gamma, weighting)  # checks ``weighting`` before any work
    envs, g = [make_env() for _ in range(batch)], seeding.generator(seed)
    optimiser = adam(policy.parameters(), lr=lr)
    history = ReinforceHistory()
    bar = tqdm(total=episodes, desc=f"REINFORCE ({weighting})", disable=not progress, leave=False)
    for start in range(0, episodes, batch):
        trajectories = run_episodes(policy, envs, list(range(seed + start, seed + start + batch)), g)
        obs = torch.cat([tr.obs for tr in trajectories])                      # (N, obs_dim)
        actions = torch.cat([tr.actions for tr in trajectories])              # (N,)
        adv = torch.cat([episode_weights(tr.rewards, gamma, weighting) for tr in trajectories])
        if normalise:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        logp = policy(obs).log_softmax(1).gather(1, actions[:, None])[:, 0]  # (N,)
        loss = reinforce_loss(logp, adv)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        history.returns += [tr.ret for tr in trajectories]
        history.losses.append(loss.item())
        bar.update(batch)
        bar.set_postfix(mean_return=f"{history.running_mean(window)[-1]:.0f}")
        if stop_at is not None and history.episodes_to(stop_at, window) is not None:
            break
    bar.close()
    return history


def evaluate_policy(policy, make_env=cartpole, episodes: int = 100, seed: int = 10_000,
                    greedy: bool = False) -> torch.Tensor:
    """Returns of ``episodes`` episodes of π_θ (all stepped together), reset with seeds
    ``seed``, ``seed + 1``, …; actions sampled from π_θ (generator seeded with ``seed``) unless
    ``greedy``. Shape (episodes,)."""
    envs = [make_env() for _ in range(_count(episodes, "episodes"))]
    g = seeding.generator(seed)
    trajectories = run_episodes(policy, envs, list(range(seed, seed + episodes)), g, greedy=greedy)
    return torch.tensor([tr.ret for tr in trajectories])
