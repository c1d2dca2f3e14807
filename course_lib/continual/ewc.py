"""Elastic weight consolidation: which weights the old tasks need, and what moving them costs.

The diagonal Fisher F at the old solution θ* (:func:`diagonal_fisher`, empirical or
sampled-label, from per-example gradients) weighs the EWC penalty (λ/2) Σ_k F_k (θ_k − θ*_k)²
(:func:`ewc_penalty`, Kirkpatrick et al. 2017); with F_k = 1 it is the plain L2 tie
(:func:`l2_penalty`). θ, θ* and F are ``name → tensor`` dicts (``Params``).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

Params = dict[str, torch.Tensor]


def diagonal_fisher(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                    mask: torch.Tensor | None = None, generator: torch.Generator | None = None,
                    batch_size: int = 256) -> Params:
    """The diagonal of the Fisher information at θ: F_k = E[(∂ log p(y|x; θ) / ∂θ_k)²].

    The expectation runs over the n inputs x and labels y:

    - ``y`` given: the **empirical Fisher**, with the data's own labels;
    - ``y=None``: the **sampled-label Fisher**, with y ~ p(y|x; θ) drawn from the model
      (an unbiased one-sample estimate of the true Fisher; seeded by ``generator``).

    Gradients are per example (``torch.func.vmap`` over ``grad``), squared, then averaged —
    not the square of a batch gradient. Only parameters with ``requires_grad`` get an entry.

    Args:
        model: f_θ; x (n, …) → logits (n, C).
        x: inputs, shape (n, …). y: labels, shape (n,), or None.
        mask: logits a task may use, shape (C,) bool (the task-incremental head), or None.

    Returns:
        F as ``name → tensor shaped like θ[name]``.
    """
    theta = {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
    if len(x) == 0:
        raise ValueError("the Fisher is an average over examples: x holds none")
    if y is not None and len(x) != len(y):
        raise ValueError(f"x has {len(x)} examples but y has {len(y)}")
    if y is None:
        with torch.no_grad():
            logits = model(x)
            if mask is not None:
                logits = logits.masked_fill(~mask, float("-inf"))
            y = torch.multinomial(logits.softmax(1), 1, generator=generator)[:, 0]

    def log_p(params, xi, yi):  # log p(yᵢ | xᵢ; θ) of one example
        logits = functional_call(model, params, (xi[None],))[0]
        if mask is not None:
            logits = logits.masked_fill(~mask, float("-inf"))
        return -F.cross_entropy(logits[None], yi[None])

    per_example = vmap(grad(log_p), in_dims=(None, 0, 0))
    fisher = {n: torch.zeros_like(t) for n, t in theta.items()}
    for xb, yb in zip(x.split(batch_size), y.split(batch_size)):
        for n, g in per_example(theta, xb, yb).items():  # g: (b, *shape)
            fisher[n] += g.pow(2).sum(0)
    return {n: f / len(x) for n, f in fisher.items()}


def ewc_penalty(theta: Params, theta_star: Params, fisher: Params, lam: float) -> torch.Tensor:
    """The EWC penalty (λ/2) Σ_k F_k (θ_k − θ*_k)² (Kirkpatrick et al. 2017).

    A Laplace approximation of the old tasks' posterior around their solution θ*: weights that
    mattered to the old tasks (large F_k) are expensive to move, the others are free.

    Args:
        theta: θ, ``name → tensor``; theta_star: θ* (same names and shapes), a constant.
        fisher: F (same names and shapes). lam: λ ≥ 0.
    """
    if set(theta_star) != set(fisher) or not set(theta_star) <= set(theta):
        raise ValueError(f"θ*, F and θ must name the same parameters: θ* has {sorted(theta_star)}, "
                         f"F has {sorted(fisher)}")
    total = torch.zeros(())
    for n, anchor in theta_star.items():
        if theta[n].shape != anchor.shape or fisher[n].shape != anchor.shape:
            raise ValueError(f"shape mismatch at {n!r}: θ {tuple(theta[n].shape)}, "
                             f"θ* {tuple(anchor.shape)}, F {tuple(fisher[n].shape)}")
        # θ* and F are constants of the penalty: only θ receives a gradient
        total = total + (fisher[n].detach() * (theta[n] - anchor.detach()).pow(2)).sum()
    return 0.5 * lam * total


def l2_penalty(theta: Params, theta_star: Params, lam: float) -> torch.Tensor:
    """The plain L2 tie (λ/2) Σ_k (θ_k − θ*_k)²: EWC with F_k = 1 for every weight."""
    return ewc_penalty(theta, theta_star, {n: torch.ones_like(t) for n, t in theta_star.items()},
                       lam)
