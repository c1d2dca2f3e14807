"""Reinforcement learning basics: returns, Bellman equations, exploration, Q-learning, REINFORCE.

An agent sees a state S_t, takes an action A_t, and the environment answers with a reward
R_{t+1} and the next state S_{t+1}. The agent looks for a policy π (a = π(s), or π(a|s)) that
maximises the expected discounted return

    G_t = R_{t+1} + γ R_{t+2} + γ² R_{t+3} + … = Σ_k γᵏ R_{t+k+1},      γ ∈ [0, 1].

This module holds the pieces of ``notebooks/08_rl_basics.ipynb`` and the reference of
``solutions/rl/rl.ipynb``:

- returns: :func:`discounted_returns` (every G_t of an episode: the reward-to-go),
  :func:`episode_weights` (what REINFORCE multiplies log π(a_t|s_t) by) and
  :func:`plot_discounting`; :func:`first_frame` renders an environment;
- known models: :class:`GridWorld` (a small ``gymnasium.Env`` maze with P(s'|s,a) and R),
  :func:`tabular_model` (P and R as tensors, also from FrozenLake's ``env.unwrapped.P``) and
  :func:`draw_gridworld` (arrows for π(s) next to the numbers v_π(s));
- dynamic programming: :func:`policy_evaluation` (iterative), :func:`solve_bellman` (the exact
  linear solve of v = r_π + γ P_π v), :func:`value_iteration`, :func:`greedy_policy` and
  :func:`policy_iteration`;
- exploration: :func:`epsilon_greedy` and the multi-armed bandit :func:`bandit_regret`;
- :func:`q_learning` (tabular) and :func:`evaluate_tabular`;
- REINFORCE: :func:`reinforce_loss`, :func:`run_episodes`, :func:`train_reinforce` and
  :func:`evaluate_policy` for CartPole, with :func:`cartpole` to change the pole length.

Model convention. A finite MDP with S states and A actions is a pair of tensors:
``P`` (S, A, S) with P[s, a, s'] the probability of moving from s to s' under a *and going on*,
and ``R`` (S, A) the expected reward r(s, a) = E[R_{t+1} | S_t = s, A_t = a]. Transitions that
end the episode are left out of P (its rows may sum to less than one), so a terminal state
is worth 0 and the Bellman equations need no special case for it. A policy is a (S, A) tensor
of probabilities π(a|s), or a (S,) tensor of actions a = π(s).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import gymnasium as gym
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from .models import MLP
from .plots import finish, running_mean
from .seeding import as_generator

# Gymnasium's grid worlds (FrozenLake, CliffWalking) number the moves this way.
ACTIONS = ("left", "down", "right", "up")
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # (row, column) step of each action
DTYPE = torch.float64


# ---------------------------------------------------------------------------- checks
def _gamma(gamma) -> float:
    gamma = float(gamma)
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"the discount γ must lie in [0, 1], got {gamma}")
    return gamma


def _probability(value, name: str) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} is a probability and must lie in [0, 1], got {value}")
    return value


def _count(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} should be an int ≥ {minimum}, got {value!r}")
    return value


# ---------------------------------------------------------------------------- returns
def discounted_returns(rewards, gamma: float) -> torch.Tensor:
    """Every return G_t = Σ_k γᵏ R_{t+k+1} of an episode (the discounted reward-to-go).

    Computed as one product with the upper-triangular discount matrix D[t, j] = γ^(j−t)
    (j ≥ t), so G = D r with no Python loop: fine for episodes of a few thousand steps.

    Args:
        rewards: R_1 … R_T, shape (T,), or (N, T) for N episodes padded with zeros.
            ``rewards[t]`` is R_{t+1}, the reward that follows the action at time t.
        gamma: γ ∈ [0, 1]; γ = 1 gives the undiscounted reward-to-go Σ_{t' ≥ t} R_{t'+1}.

    Returns:
        G, the shape of ``rewards`` (floating point): G[t] = G_t, and G[0] is the return of
        the whole episode.
    """
    gamma = _gamma(gamma)
    r = torch.as_tensor(rewards)
    if not r.is_floating_point():
        r = r.to(torch.get_default_dtype())
    if r.dim() not in (1, 2):
        raise ValueError(f"rewards should have shape (T,) or (N, T), got {tuple(r.shape)}")
    T = r.shape[-1]
    lag = torch.arange(T)[None, :] - torch.arange(T)[:, None]  # lag[t, j] = j − t
    D = torch.where(lag >= 0, torch.tensor(gamma, dtype=r.dtype) ** lag.clamp(min=0),
                    torch.zeros((), dtype=r.dtype))            # (T, T), 0⁰ = 1 for γ = 0
    return r @ D.T                                              # (…, T): G_t = Σ_j D[t, j] r_j


def episode_weights(rewards, gamma: float, weighting: str = "rtg") -> torch.Tensor:
    """What REINFORCE multiplies log π(a_t|s_t) by, for every step t of one episode.

    ``"return"``: the whole episode's return G_0 at every step (each action is credited with
    rewards that came before it too). ``"rtg"``: the reward-to-go G_t (each action only with the
    rewards that follow it: better credit assignment, same expected gradient, less variance).

    Args:
        rewards: R_1 … R_T of one episode, shape (T,).
    Returns:
        weights, shape (T,).
    """
    G = discounted_returns(rewards, gamma)
    if weighting == "rtg":
        return G
    if weighting == "return":
        return G[:1].expand_as(G).clone()
    raise ValueError(f"weighting should be 'rtg' (reward-to-go) or 'return', got {weighting!r}")


def plot_discounting(rewards, gammas, title: str = "", name: str | None = None):
    """Two panels for each γ: the weights γᵏ of the future rewards, and the returns G_t.

    Args:
        rewards: R_1 … R_T of one episode, shape (T,).
        gammas: the discounts to compare (one line each).
    """
    rewards = torch.as_tensor(rewards, dtype=DTYPE)
    T = len(rewards)
    fig, (ax_w, ax_g) = plt.subplots(1, 2, figsize=(10, 3.6))
    ax_g.bar(range(T), rewards.numpy(), color="0.8", label="reward $R_{t+1}$")
    for gamma in gammas:
        ax_w.plot(range(T), [gamma ** k for k in range(T)], marker="o", ms=3, label=f"$\\gamma$ = {gamma:g}")
        ax_g.plot(range(T), discounted_returns(rewards, gamma).numpy(), marker="o", ms=3,
                  label=f"$G_t$, $\\gamma$ = {gamma:g}")
    ax_w.set(xlabel="steps ahead k", ylabel="weight $\\gamma^k$ of $R_{t+k+1}$", title="How much a later reward counts")
    ax_g.set(xlabel="time step t", ylabel="return $G_t$", title="Returns of the reward sequence")
    for ax in (ax_w, ax_g):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return finish(fig, name)


def first_frame(env_id: str = "CartPole-v1", seed: int = 0):
    """One rendered frame (H, W, 3) of ``env_id`` right after ``reset(seed=seed)``."""
    # rgb_array needs no window; the dummy video driver keeps SDL from looking for a display
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=seed)
    frame = env.render()
    env.close()
    return frame


# ---------------------------------------------------------------------------- a known model
MAZE = ("S..#.",
        ".#.#.",
        ".#...",
        ".###.",
        "#...G")


class GridWorld(gym.Env):
    """A maze whose model P(s'|s,a), R is known: a ``gymnasium.Env`` with a Toy-Text ``P``.

    Layout characters: ``S`` start, ``.`` free, ``#`` wall, ``G`` goal. The state is the cell
    index s = row · columns + column; the actions are 0 left, 1 down, 2 right, 3 up (as in
    FrozenLake). A move into a wall or off the grid leaves the agent where it is. Every step
    costs ``step_reward`` (−1), so with γ = 1 the value of a state is minus the expected number
    of steps to the goal, as in the lecture's maze. Entering the goal ends the episode.

    With ``slip`` > 0 the agent moves in the intended direction with probability 1 − slip and
    in each of the two perpendicular directions with probability slip/2.

    ``P[s][a]`` is the list of outcomes ``(probability, next state, reward, terminated)``, the
    format of gymnasium's FrozenLake, so :func:`tabular_model` reads both.
    """

    metadata = {"render_modes": []}

    def __init__(self, layout=MAZE, slip: float = 0.0, step_reward: float = -1.0):
        rows = [str(r) for r in layout]
        if not rows or len({len(r) for r in rows}) != 1:
            raise ValueError("layout should be a non-empty list of strings of equal length")
        if "".join(rows).count("S") != 1 or "G" not in "".join(rows):
            raise ValueError("layout needs exactly one start S and at least one goal G")
        if set("".join(rows)) - set("SG.#"):
            raise ValueError(f"layout may only use S, G, . and #, got {sorted(set(''.join(rows)))}")
        self.desc = rows
        self.nrow, self.ncol = len(rows), len(rows[0])
        self.slip = _probability(slip, "slip")
        self.observation_space = gym.spaces.Discrete(self.nrow * self.ncol)
        self.action_space = gym.spaces.Discrete(4)
        self.start = "".join(rows).index("S")
        self.P = {s: {a: self._outcomes(s, a, step_reward) for a in range(4)}
                  for s in range(self.nrow * self.ncol)}
        self.s = self.start

    def _cell(self, s: int) -> str:
        return self.desc[s // self.ncol][s % self.ncol]

    def _move(self, s: int, a: int) -> int:
        r, c = divmod(s, self.ncol)
        r2, c2 = r + MOVES[a][0], c + MOVES[a][1]
        if 0 <= r2 < self.nrow and 0 <= c2 < self.ncol and self.desc[r2][c2] != "#":
            return r2 * self.ncol + c2
        return s

    def _outcomes(self, s: int, a: int, step_reward: float) -> list:
        if self._cell(s) in "G#":  # the episode is over (a wall cell is never entered)
            return [(1.0, s, 0.0, True)]
        chances = {a: 1.0 - self.slip, (a + 1) % 4: self.slip / 2, (a + 3) % 4: self.slip / 2}
        out = {}
        for b, p in chances.items():
            if p > 0:
                s2 = self._move(s, b)
                out[s2] = out.get(s2, 0.0) + p
        return [(p, s2, step_reward, self._cell(s2) == "G") for s2, p in out.items()]

    def reset(self, *, seed: int | None = None, options=None):
        super().reset(seed=seed)
        self.s = self.start
        return self.s, {}

    def step(self, action: int):
        outcomes = self.P[self.s][int(action)]
        i = self.np_random.choice(len(outcomes), p=[o[0] for o in outcomes])
        _, self.s, reward, terminated = outcomes[i]
        return self.s, reward, terminated, False, {}


def tabular_model(env) -> tuple[torch.Tensor, torch.Tensor]:
    """The model of a Toy-Text environment as tensors: P (S, A, S) and R (S, A), float64.

    Reads ``env.unwrapped.P`` (GridWorld, FrozenLake, CliffWalking, Taxi): P[s, a, s'] sums the
    probabilities of the outcomes that lead to s' and do *not* end the episode; R[s, a] is the
    expected reward Σ p · r over all outcomes. See the module docstring.
    """
    model = getattr(env.unwrapped, "P", None)
    if not isinstance(model, dict):
        raise ValueError(f"{env} has no tabular model env.unwrapped.P (a Toy-Text environment has one)")
    S, A = env.observation_space.n, env.action_space.n
    P, R = torch.zeros(S, A, S, dtype=DTYPE), torch.zeros(S, A, dtype=DTYPE)
    for s in range(S):
        for a in range(A):
            for p, s2, r, terminated in model[s][a]:
                R[s, a] += p * r
                if not terminated:
                    P[s, a, s2] += p
    return P, R


def layout(env) -> list[str]:
    """The grid of a GridWorld or FrozenLake as strings (FrozenLake's holes ``H`` are blocked)."""
    desc = env.unwrapped.desc
    return ["".join(c.decode() if isinstance(c, bytes) else c for c in row) for row in desc]


# ---------------------------------------------------------------------------- Bellman equations
def _model(P, R) -> tuple[torch.Tensor, torch.Tensor]:
    P, R = torch.as_tensor(P, dtype=DTYPE), torch.as_tensor(R, dtype=DTYPE)
    if P.dim() != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2]:
        raise ValueError(f"P should have shape (S, A, S) and R (S, A), got {tuple(P.shape)} and {tuple(R.shape)}")
    if (P < 0).any() or (P.sum(-1) > 1 + 1e-9).any():
        raise ValueError("P[s, a] should hold probabilities that sum to at most 1")
    return P, R


def policy_matrix(pi, S: int, A: int) -> torch.Tensor:
    """π as a (S, A) matrix of probabilities π(a|s), from (S, A) probabilities or (S,) actions."""
    pi = torch.as_tensor(pi)
    if pi.shape == (S,) and not pi.is_floating_point():
        if ((pi < 0) | (pi >= A)).any():
            raise ValueError(f"actions a = π(s) should lie in 0…{A - 1}, got {pi.tolist()}")
        return F.one_hot(pi.long(), A).to(DTYPE)
    if pi.shape != (S, A):
        raise ValueError(f"π should be a (S, A) = ({S}, {A}) matrix of probabilities or ({S},) actions, "
                         f"got shape {tuple(pi.shape)}")
    pi = pi.to(DTYPE)
    if (pi < 0).any() or not torch.allclose(pi.sum(1), torch.ones(S, dtype=DTYPE), atol=1e-6):
        raise ValueError("each row π(·|s) should be a probability distribution over the actions")
    return pi


def q_values(P, R, v, gamma: float) -> torch.Tensor:
    """One-step look-ahead q(s, a) = r(s, a) + γ Σ_{s'} P(s'|s, a) v(s'); (S, A)."""
    return R + gamma * P @ v  # (S, A, S) @ (S,) → (S, A)


def policy_evaluation(P, R, pi, gamma: float, tol: float = 1e-10, max_iter: int = 100_000) -> torch.Tensor:
    """v_π by iterating the Bellman expectation backup v ← r_π + γ P_π v from v = 0.

    Args:
        P: (S, A, S) transition probabilities; R: (S, A) expected rewards (module docstring).
        pi: π(a|s), shape (S, A), or actions π(s), shape (S,).
        gamma: γ ∈ [0, 1] (γ = 1 needs a policy that ends every episode).
        tol: stop when max_s |v_{k+1}(s) − v_k(s)| < tol.

    Returns:
        v_π, shape (S,), float64.
    """
    P, R = _model(P, R)
    gamma, pi = _gamma(gamma), policy_matrix(pi, *R.shape)
    r_pi, P_pi = (pi * R).sum(1), torch.einsum("sa,sat->st", pi, P)  # (S,), (S, S)
    v = torch.zeros(len(R), dtype=DTYPE)
    for _ in range(max_iter):
        v_new = r_pi + gamma * P_pi @ v
        if (v_new - v).abs().max() < tol:
            return v_new
        v = v_new
    raise ValueError(f"policy evaluation did not converge in {max_iter} sweeps (γ = {gamma}: does "
                     "every episode end under π?)")


def solve_bellman(P, R, pi, gamma: float) -> torch.Tensor:
    """v_π exactly: the solution of the linear Bellman equations (I − γ P_π) v = r_π; (S,)."""
    P, R = _model(P, R)
    gamma, pi = _gamma(gamma), policy_matrix(pi, *R.shape)
    r_pi, P_pi = (pi * R).sum(1), torch.einsum("sa,sat->st", pi, P)
    A = torch.eye(len(R), dtype=DTYPE) - gamma * P_pi
    if torch.linalg.matrix_rank(A) < len(R):
        raise ValueError(f"I − γ P_π is singular: with γ = {gamma} some episode under π never ends")
    return torch.linalg.solve(A, r_pi)


def value_iteration(P, R, gamma: float, tol: float = 1e-10, max_iter: int = 100_000) -> torch.Tensor:
    """v* by iterating the Bellman optimality backup v ← max_a [r(s, a) + γ Σ_{s'} P(s'|s,a) v(s')].

    Starts from v = 0 and stops when max_s |v_{k+1}(s) − v_k(s)| < tol. Returns v*, shape (S,).
    """
    P, R = _model(P, R)
    gamma = _gamma(gamma)
    v = torch.zeros(len(R), dtype=DTYPE)
    for _ in range(max_iter):
        v_new = q_values(P, R, v, gamma).max(1).values
        if (v_new - v).abs().max() < tol:
            return v_new
        v = v_new
    raise ValueError(f"value iteration did not converge in {max_iter} sweeps (γ = {gamma})")


def greedy_policy(P, R, v, gamma: float) -> torch.Tensor:
    """π(s) = argmax_a q(s, a) for the look-ahead q of v (ties: the lowest action); (S,) long.

    Values within 1e-9 of the best count as tied, so rounding noise does not pick the action.
    """
    P, R = _model(P, R)
    q = q_values(P, R, torch.as_tensor(v, dtype=DTYPE), _gamma(gamma))
    best = q >= q.max(1, keepdim=True).values - 1e-9
    return best.to(torch.int8).argmax(1)  # the first tied action


def policy_iteration(P, R, gamma: float, pi=None, max_iter: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """The optimal (v*, π*) exactly: alternate :func:`solve_bellman` and :func:`greedy_policy`.

    Starts from ``pi`` (default: uniform random) and stops when the greedy policy is stable.
    Returns v* (S,) and π* (S,).
    """
    P, R = _model(P, R)
    S, A = R.shape
    pi = torch.full((S, A), 1.0 / A, dtype=DTYPE) if pi is None else pi
    for _ in range(max_iter):
        v = solve_bellman(P, R, pi, gamma)
        new = greedy_policy(P, R, v, gamma)
        if torch.is_tensor(pi) and pi.shape == (S,) and torch.equal(new, pi):
            return v, new
        pi = new
    raise ValueError(f"policy iteration did not settle in {max_iter} steps")


# ---------------------------------------------------------------------------- drawing
def draw_gridworld(env, pi, v, title: str = "", decimals: int = 1, name: str | None = None):
    """Two panels, as in the lecture: arrows for π(s) on the left, the numbers v_π(s) on the right.

    Args:
        env: a GridWorld or FrozenLake (any env with a ``desc`` grid).
        pi: actions π(s), shape (S,), or probabilities π(a|s), shape (S, A) (one arrow per action,
            as long as its probability).
        v: v_π(s), shape (S,).
    """
    grid = layout(env)
    nrow, ncol = len(grid), len(grid[0])
    pi = policy_matrix(pi, nrow * ncol, 4)
    v = torch.as_tensor(v, dtype=DTYPE).reshape(nrow, ncol)
    blocked = np.array([[c in "#H" for c in row] for row in grid])
    goal = np.array([[c == "G" for c in row] for row in grid])
    fig, (ax_pi, ax_v) = plt.subplots(1, 2, figsize=(2 * 0.9 * ncol + 1.5, 0.9 * nrow + 0.8))
    shown = np.ma.masked_array(v.numpy(), blocked | goal)  # a terminal goal is worth 0: no colour
    ax_v.imshow(shown, cmap="RdYlGn", vmin=float(shown.min()), vmax=float(shown.max()) + 1e-9)
    ax_pi.imshow(np.where(blocked, 0.25, 1.0), cmap="gray", vmin=0, vmax=1)
    for r in range(nrow):
        for c in range(ncol):
            cell, s = grid[r][c], r * ncol + c
            if cell in "#H":
                ax_v.add_patch(plt.Rectangle((c - 0.5, r - 0.5), 1, 1, color="0.25"))
                continue
            if cell in "SG":
                ax_pi.text(c - 0.4, r - 0.28, cell, fontsize=9, weight="bold", color="tab:green")
            if cell == "G":
                ax_v.text(c, r, "goal", ha="center", va="center", fontsize=9, color="tab:green")
                continue
            ax_v.text(c, r, f"{v[r, c]:.{decimals}f}", ha="center", va="center", fontsize=9)
            for a, (dr, dc) in enumerate(MOVES):
                p = float(pi[s, a])
                if p > 1e-6:  # an arrow from the centre, as long as π(a|s)
                    length = 0.12 + 0.28 * p
                    ax_pi.arrow(c, r, length * dc, length * dr, head_width=0.1, head_length=0.08,
                                length_includes_head=True, color="tab:blue")
    for ax, label in [(ax_pi, "policy π(s)"), (ax_v, "value v(s)")]:
        ax.set_xticks(range(ncol))
        ax.set_yticks(range(nrow))
        ax.set_xlabel("column")
        ax.set_ylabel("row")
        ax.set_title(label)
    fig.suptitle(title)
    return finish(fig, name)


# ---------------------------------------------------------------------------- exploration
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


# ---------------------------------------------------------------------------- Q-learning
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
    g = torch.Generator().manual_seed(seed)
    Q = torch.zeros(env.observation_space.n, env.action_space.n, dtype=DTYPE)
    returns = []
    for i in tqdm(range(episodes), desc="Q-learning", disable=not progress, leave=False):
        eps = start + (end - start) * min(1.0, 2 * i / max(episodes, 1))
        s, _ = env.reset(seed=seed if i == 0 else None)
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
        s, _ = env.reset(seed=seed + i)
        done, total = False, 0.0
        while not done:
            s, r, terminated, truncated, _ = env.step(pi[s])
            total, done = total + r, terminated or truncated
        out.append(total)
    return torch.tensor(out, dtype=DTYPE)


# ---------------------------------------------------------------------------- REINFORCE
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
    torch.manual_seed(seed)
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
        envs: gymnasium environments; ``envs[i]`` is reset with ``seeds[i]``.
        generator: draws a_t ∼ π(·|s_t) (a ``torch.Generator``).
        greedy: take a_t = argmax_a π(a|s_t) instead of sampling.
    """
    if len(envs) != len(seeds):
        raise ValueError(f"one seed per environment: {len(envs)} envs, {len(seeds)} seeds")
    obs = [[env.reset(seed=int(s))[0]] for env, s in zip(envs, seeds)]
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

    def episodes_to(self, target: float = 195.0, window: int = 100) -> int | None:
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
    standard deviation 1 when ``normalise`` (subtracting the mean is a baseline; it lowers the
    variance and leaves the expected gradient unchanged).

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
    envs, g = [make_env() for _ in range(batch)], torch.Generator().manual_seed(seed)
    optimiser = torch.optim.Adam(policy.parameters(), lr=lr)
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
    g = torch.Generator().manual_seed(seed)
    trajectories = run_episodes(policy, envs, list(range(seed, seed + episodes)), g, greedy=greedy)
    return torch.tensor([tr.ret for tr in trajectories])
