"""Exploration: the ε-greedy choice between the greedy action and a uniformly random one
(:func:`epsilon_greedy`, also what :mod:`.qlearning` explores with), and its cumulative regret on a
K-armed Gaussian bandit (:func:`bandit_regret`), the simplest problem in which exploring pays.
"""
from __future__ import annotations

import torch

from ..seeding import as_generator
from ._checks import DTYPE, _count, _probability


def epsilon_greedy(q, epsilon: float, generator) -> torch.Tensor:
    """A ∼ ε-greedy(q): with probability ε a uniformly random action, else argmax_a q(a).

    The greedy action is the first maximiser (as ``argmax``). A greedy action is therefore
    chosen with probability 1 − ε + ε/A and every other action with probability ε/A.

    Args:
        q: action values, shape (A,), or (B, A) for B independent choices.
        epsilon: ε ∈ [0, 1].
        generator: a ``torch.Generator`` or an int seed.

    Returns:
        actions, long, shape () for q of shape (A,), else (B,).
    """
    q, epsilon, g = torch.as_tensor(q), _probability(epsilon, "epsilon"), as_generator(generator)
    if q.dim() not in (1, 2) or q.shape[-1] == 0:
        raise ValueError(f"q should have shape (A,) or (B, A) with A ≥ 1, got {tuple(q.shape)}")
    batch = q.shape[:-1]
    explore = torch.rand(batch, generator=g) < epsilon
    random = torch.randint(q.shape[-1], batch, generator=g)
    return torch.where(explore, random, q.argmax(-1))


def bandit_regret(means, epsilon: float, steps: int, runs: int = 100, generator=0) -> torch.Tensor:
    """Cumulative regret of ε-greedy on a K-armed Gaussian bandit, for ``runs`` independent runs.

    Arm k pays R ∼ 𝒩(μ_k, 1). The agent keeps sample-average estimates q(k) (0 before the first
    pull) and picks arms ε-greedily. The regret after t pulls is Σ_{τ ≤ t} (μ* − μ_{A_τ}): what
    was lost, in expectation, by not always pulling the best arm. All runs are one tensor.

    Args:
        means: μ_1 … μ_K, shape (K,).
        epsilon: ε ∈ [0, 1]; steps: pulls per run; runs: independent runs.

    Returns:
        regret, shape (runs, steps).
    """
    mu = torch.as_tensor(means, dtype=DTYPE)
    if mu.dim() != 1 or len(mu) < 2:
        raise ValueError(f"means should have shape (K,) with K ≥ 2 arms, got {tuple(mu.shape)}")
    steps, runs, g = _count(steps, "steps"), _count(runs, "runs"), as_generator(generator)
    q = torch.zeros(runs, len(mu), dtype=DTYPE)  # sample-average estimates
    n = torch.zeros(runs, len(mu), dtype=DTYPE)  # pulls per arm
    rows, lost = torch.arange(runs), torch.empty(runs, steps, dtype=DTYPE)
    for t in range(steps):
        a = epsilon_greedy(q, epsilon, g)                                        # (runs,)
        reward = mu[a] + torch.randn(runs, generator=g, dtype=DTYPE)
        n[rows, a] += 1
        q[rows, a] += (reward - q[rows, a]) / n[rows, a]                         # incremental mean
        lost[:, t] = mu.max() - mu[a]
    return lost.cumsum(1)
