"""Dynamic programming on a known model P, R (the convention of the package docstring): the
Bellman expectation equation solved by iteration (:func:`policy_evaluation`) or exactly
(:func:`solve_bellman`, the linear system (I − γ P_π) v = r_π), the optimality equation by
:func:`value_iteration`, the one-step look-ahead :func:`q_values` with :func:`greedy_policy`, and
:func:`policy_iteration`, which alternates the two. A policy is a (S, A) tensor of probabilities
π(a|s) or a (S,) tensor of actions a = π(s); :func:`policy_matrix` turns either into the first.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ._checks import DTYPE, _gamma


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
        P: (S, A, S) transition probabilities; R: (S, A) expected rewards (package docstring).
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
