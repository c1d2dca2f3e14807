"""La-MAML (Gupta, Yadav & Paull 2020): look-ahead meta-learning of per-weight rates, with replay.

Every incoming batch is a small MAML problem: :func:`lookahead` takes a few SGD steps on it at
the learned rates α, the meta-loss on the batch plus a memory batch is taken at the
looked-ahead weights, and :func:`lamaml_update` moves α, then θ. :class:`LaMAML` is the method:
a :class:`~course_lib.continual.methods.Replay` whose update is this meta-step.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call

from ..maml import Params, inner_loop
from .methods import Replay


def lookahead(model: nn.Module, theta: Params, alpha: Params, x: torch.Tensor, y: torch.Tensor,
              inner_steps: int, loss_fn, first_order: bool = False) -> Params:
    """La-MAML's look-ahead: split the incoming batch into ``inner_steps`` chunks and take one
    SGD step per chunk, θ_{k+1} = θ_k − max(α, 0) ⊙ ∇ℒ(θ_k, chunk_k), from θ_0 = θ.

    Each step is :func:`course_lib.maml.inner_loop` with per-parameter rates (as in Meta-SGD),
    so the result is differentiable in θ and α.

    Args:
        theta: θ, ``name → tensor``. alpha: α, the same names and shapes.
        x: incoming inputs, shape (B, …); y: labels (B,); B ≥ inner_steps.
        loss_fn: ``(logits, y) → loss``.

    Returns:
        the looked-ahead weights θ_k, a dict with θ's keys.
    """
    if inner_steps < 1 or inner_steps > len(x):
        raise ValueError(f"inner_steps must be in 1…{len(x)} (the batch size), got {inner_steps}")
    rate = {n: a.clamp(min=0) for n, a in alpha.items()}  # max(α, 0)
    phi = theta
    for xc, yc in zip(x.tensor_split(inner_steps), y.tensor_split(inner_steps)):
        phi = inner_loop(model, phi, xc, yc, rate, steps=1, first_order=first_order,
                         loss_fn=loss_fn)
    return phi


def _clip(grads, max_norm: float) -> list[torch.Tensor]:
    """The tensors scaled together so that their joint norm is at most ``max_norm``."""
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
    return [g * scale for g in grads]


@torch.no_grad()
def lamaml_update(theta: Params, alpha: Params, grad_theta: Params, grad_alpha: Params,
                  alpha_lr: float) -> None:
    """La-MAML's outer step, in place: first α ← α − η ∇_α ℒ_meta, then
    θ ← θ − max(α, 0) ⊙ ∇_θ ℒ_meta with the new α. A parameter whose α is ≤ 0 does not move.

    Args:
        theta, alpha: θ and α (``name → tensor``, updated in place).
        grad_theta, grad_alpha: ∇_θ ℒ_meta and ∇_α ℒ_meta, the same names and shapes.
        alpha_lr: η, the learning rate of the learning rates.
    """
    for n in theta:
        alpha[n] -= alpha_lr * grad_alpha[n]
        theta[n] -= alpha[n].clamp(min=0) * grad_theta[n]


class LaMAML(Replay):
    """La-MAML (Gupta, Yadav & Paull 2020): look-ahead meta-learning with replay.

    For every incoming batch b: look ahead with ``inner_steps`` SGD steps on b at the learned
    per-parameter rates α (:func:`lookahead`); evaluate the meta-loss ℒ_meta on b plus a batch
    from the reservoir memory at the looked-ahead weights; then :func:`lamaml_update`. The
    meta-gradient rewards steps on the new data that also lower the loss on the old data, the
    gradient-alignment objective of MER, at a fraction of its cost.

    Args:
        alpha_init: initial α of every parameter. alpha_lr: η.
        inner_steps: look-ahead steps per incoming batch.
        first_order: treat the inner gradients as constants (∇_α still flows).
        clip: bound the norms of ∇_θ ℒ_meta and ∇_α ℒ_meta (None: no clipping).
        per_task, replay_batch: the replay memory, as in :class:`Replay`.
    """

    name = "La-MAML"

    def __init__(self, alpha_init: float = 0.1, alpha_lr: float = 0.1, inner_steps: int = 4,
                 first_order: bool = False, clip: float | None = 2.0, **kw):
        super().__init__(**kw)
        self.clip = clip
        self.alpha_init, self.alpha_lr = alpha_init, alpha_lr
        self.inner_steps, self.first_order = inner_steps, first_order
        self.alpha: Params | None = None

    def begin_task(self, model, task, stream):
        super().begin_task(model, task, stream)
        if self.alpha is None:
            self.alpha = {n: torch.full_like(p, self.alpha_init).requires_grad_()
                          for n, p in model.named_parameters()}

    def update(self, model, x, y, ids, task, stream):
        theta = dict(model.named_parameters())
        phi = lookahead(model, theta, self.alpha, x, y, self.inner_steps,
                        lambda logits, yy: stream.loss(logits, yy, ids[0]), self.first_order)
        mx, my, mids = x, y, ids
        if len(self.memory):
            px, py, pids = self.memory.sample(self.replay_batch or len(y))
            mx, my, mids = torch.cat([x, px]), torch.cat([y, py]), torch.cat([ids, pids])
        meta = stream.loss(functional_call(model, phi, (mx,)), my, mids)
        names = list(theta)
        grads = torch.autograd.grad(meta, [theta[n] for n in names] + [self.alpha[n] for n in names])
        grad_theta, grad_alpha = grads[:len(names)], grads[len(names):]
        if self.clip:  # as the authors' code does: bound ‖∇_θ‖ and ‖∇_α‖ (separately)
            grad_theta, grad_alpha = _clip(grad_theta, self.clip), _clip(grad_alpha, self.clip)
        lamaml_update(theta, self.alpha, dict(zip(names, grad_theta)),
                      dict(zip(names, grad_alpha)), self.alpha_lr)
        self.memory.add(x, y, ids)
        return meta.item()
