"""Model-free control on a tabular environment: Q-learning (:func:`q_learning`, Watkins 1989)
learns Q(s, a) from sampled steps alone, with no P or R, exploring ε-greedily, and
:func:`evaluate_tabular` measures the returns of the policy a = π(s) it yields.
"""
from __future__ import annotations

import numpy as np
import torch
from tqdm.auto import tqdm

from .. import seeding
from ._checks import DTYPE, _count, _gamma, _probability
from .bandits import epsilon_greedy


def q_learning(env, episodes: int, alpha: float = 0.1, gamma: float = 0.99, epsilon=0.1,
               seed: int = 0, progress: bool = True) -> tuple[torch.Tensor, list[float]]:
    """Tabular Q-learning (Watkins 1989) with ε-greedy exploration.

    After each step (s, a, r, s'):  Q(s, a) ← Q(s, a) + α [r + γ max_{a'} Q(s', a') − Q(s, a)],
    where the max is 0 when the episode terminated (a time-limit truncation still bootstraps).

    Args:
        env: a gymnasium environment with Discrete states and actions.
        episodes: training episodes; the first is reset with ``seed``, the rest continue the
            environment's random stream, and the actions use a generator seeded with ``seed``.
        alpha: step size α; gamma: discount γ.
        epsilon: ε, or a pair (ε_start, ε_end) decayed linearly over the first half of training.

    Returns:
        Q, shape (S, A), float64; and the return of every training episode.
    """
    episodes, gamma = _count(episodes, "episodes"), _gamma(gamma)
    alpha = _probability(alpha, "alpha")
    start, end = (epsilon, epsilon) if np.isscalar(epsilon) else epsilon
    g = seeding.generator(seed)
    Q = torch.zeros(env.observation_space.n, env.action_space.n, dtype=DTYPE)
    returns = []
    for i in tqdm(range(episodes), desc="Q-learning", disable=not progress, leave=False):
        eps = start + (end - start) * min(1.0, 2 * i / max(episodes, 1))
        s, _ = env.reset(seed=seeding.seed(seed) if i == 0 else None)
        done, total = False, 0.0
        while not done:
            a = int(epsilon_greedy(Q[s], eps, g))
            s2, r, terminated, truncated, _ = env.step(a)
            target = r + (0.0 if terminated else gamma * float(Q[s2].max()))
            Q[s, a] += alpha * (target - Q[s, a])
            s, total, done = s2, total + r, terminated or truncated
        returns.append(total)
    return Q, returns


def evaluate_tabular(env, pi, episodes: int, seed: int = 10_000) -> torch.Tensor:
    """Returns of ``episodes`` episodes with the actions a = π(s), shape (S,); episode i is reset
    with seed ``seed + i``. On FrozenLake the mean is the success rate."""
    pi = torch.as_tensor(pi).tolist()
    out = []
    for i in range(_count(episodes, "episodes")):
        s, _ = env.reset(seed=seeding.seed(seed + i))
        done, total = False, 0.0
        while not done:
            s, r, terminated, truncated, _ = env.step(pi[s])
            total, done = total + r, terminated or truncated
        out.append(total)
    return torch.tensor(out, dtype=DTYPE)
