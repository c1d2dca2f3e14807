"""Returns: every discounted return G_t = Σ_k γᵏ R_{t+k+1} of an episode, the reward-to-go
(:func:`discounted_returns`, one product with a discount matrix), and what REINFORCE multiplies
log π(a_t|s_t) by (:func:`episode_weights`: the whole episode's return G_0 or the reward-to-go G_t).
"""
from __future__ import annotations

import torch

from ._checks import _gamma


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
    rewards that follow it: better credit assignment, less variance). With γ = 1 both give the
    same expected gradient. With γ < 1 the gradient of E[G_0] weights step t by γᵗ G_t; G_t
    alone, as here and in most implementations, leaves γᵗ out, so it is not an unbiased
    estimate of ∇E[G_0] (it weighs late steps as much as early ones).

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
