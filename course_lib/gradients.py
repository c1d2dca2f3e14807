"""Gradients as flat vectors: ∇_θ ℒ ∈ ℝᴾ over a list of parameter tensors, and back.

Gradient surgery (PCGrad in :mod:`course_lib.multitask`) and gradient alignment
(cos(∇ℒ_new, ∇ℒ_old) in :mod:`course_lib.continual`) both compare whole gradients, so both
flatten them here.
"""
from __future__ import annotations

import torch


def flat_grad(loss: torch.Tensor, params: list[torch.Tensor]) -> torch.Tensor:
    """∇_θ ℒ as one vector, shape (P,) with P = Σ numel(θⱼ); zeros where ℒ does not depend on θⱼ.

    The graph is kept (``retain_graph``), so several losses of one forward pass can be
    differentiated in turn.
    """
    if not loss.requires_grad:  # ℒ is constant in θ (e.g. computed through frozen columns)
        return torch.cat([torch.zeros_like(p).flatten() for p in params])
    grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten()
                      for g, p in zip(grads, params)])


def set_flat_grad(params: list[torch.Tensor], vector: torch.Tensor) -> None:
    """Write ``vector`` (shape (P,)) into ``p.grad`` of each parameter, in order, for an optimiser
    step."""
    size = sum(p.numel() for p in params)
    if vector.numel() != size:
        raise ValueError(f"the vector has {vector.numel()} entries, the parameters {size}")
    offset = 0
    for p in params:
        p.grad = vector[offset: offset + p.numel()].view_as(p).clone()
        offset += p.numel()
